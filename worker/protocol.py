"""Every message between the page and the model workers, defined once (as web-llm's message.ts
does): what the page sends to a worker's exported functions, what they answer, and the events a
worker pushes. All travel as JSON strings, except the float32 arrays the shards exchange.
client/protocol.js is generated from this file (`python3 -m worker.protocol`) and a test keeps
it current: the JavaScript side names the same functions, events and fields.

Runs in the worker (Pyodide) and in CPython (tests, the generator); imports nothing browser-only.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, fields, replace
from typing import ClassVar

from engine import GenerationSettings, Step
from engine.chat import chat_prompt
from engine.generation import Decoder, Session, TokenizerLike
from model_loader.hub import DEFAULT_ENDPOINT

# ---- requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadRequest:
    """load, shard_load: a Hub repository, or the visitor's files ({file name: blob URL}, local).
    tiktoken: the base URL of the npm tiktoken package the worker tokenises with. kernels: "simd"
    multiplies by the weights with WebAssembly SIMD where the browser has it, "numpy" with NumPy;
    weights: "float32", or "int8" (a scale per row; with the SIMD kernels only). memory_limit: the
    bytes each of a worker's memories may hold (default: WebAssembly's 4 GiB; a lower one shows
    how a model splits on a smaller device)."""

    tiktoken: str
    repo: str | None = None
    revision: str = "main"
    endpoint: str = DEFAULT_ENDPOINT
    local: dict[str, str] | None = None
    kernels: str = "simd"
    weights: str = "float32"
    memory_limit: int | None = None


@dataclass(frozen=True)
class StartRequest:
    """start, shard_start: {prompt} continues a text; {turns: [[role, text], ...], style:
    "transcript" | "eot"} asks for the next assistant turn. settings: GenerationSettings fields."""

    prompt: str | None = None
    turns: list[list[str]] | None = None
    style: str = "transcript"
    settings: dict | None = None


@dataclass(frozen=True)
class ModelRequest:
    """model_size, cache_delete: one Hub model ({} for cache_delete: every model)."""

    endpoint: str
    repo: str
    revision: str


# ---- replies --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorReply:
    """Any request that failed, and why (the app stays usable). workers_needed: a load refused
    because each worker could not hold its part, which a split over that many workers would fit."""

    error: str
    workers_needed: int | None = None


@dataclass(frozen=True)
class LoadReply:
    """load: the model is ready. not_cached says why nothing was kept in the browser, or null;
    kernels which multiply by the weights: "simd" (WebAssembly SIMD) or "numpy"; weights their
    type as held: "float32" or "int8"."""

    repo: str
    commit: str | None
    host: str | None
    n_params: int
    n_ctx: int
    n_layer: int
    seconds: float
    from_cache: bool
    downloaded: int
    not_cached: str | None
    kernels: str = "numpy"
    weights: str = "float32"
    n_shards: int = 1


@dataclass(frozen=True)
class ShardLoadReply(LoadReply):
    """shard_load: as load's, plus this shard (index shard of n_shards) and the sizes the page
    needs to move its arrays."""

    shard: int = 0
    heads: int = 0
    n_embd: int = 0
    n_vocab: int = 0
    shard_bytes: int = 0


@dataclass(frozen=True)
class StartReply:
    """start, shard_start: the reply has begun. reused: prompt tokens the KV cache held from the
    last reply, not run again; feed: [ids, position] of the first forward pass (which shard_start's
    caller runs)."""

    prompt_tokens: int
    n_ctx: int
    reused: int = 0
    feed: list | None = None


@dataclass(frozen=True)
class StepReply:
    """step, shard_next: one token. top: the likeliest tokens as [text, probability];
    finish: null, "length", "stop" or "eos"; dropped: tokens that left the context window;
    feed (shards): the next forward pass, or null when the reply is over."""

    text: str
    token_id: int
    prob: float
    top: list[list]
    finish: str | None
    dropped: int
    feed: list | None = None


@dataclass(frozen=True)
class CachedModels:
    """cache_models, cache_delete: models [{endpoint, repo, revision, files, bytes, partial}],
    storage {usage, quota}, off: why the cache is unusable, or null."""

    models: list[dict]
    storage: dict
    off: str | None


@dataclass(frozen=True)
class ModelSize:
    """model_size: the download size of a Hub model's weights (from the Hub's listing), whether
    the browser holds them all, and the host they come from (null: the default Hub)."""

    cached: bool
    bytes: int
    host: str | None


@dataclass(frozen=True)
class Busy:
    """shard_busy: seconds computing in exchanges and waiting for the other shards, since the last call."""

    seconds: float
    calls: int
    wait: float


# ---- events (worker.push) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """Bytes of each file so far, {name: [received, total]}; speed in bytes/s; cached: read from
    the browser; host: where the bytes come from, when not the default Hub."""

    kind: ClassVar[str] = "progress"
    file: str
    files: dict[str, list[int]]
    cached: bool
    speed: float
    host: str | None


@dataclass(frozen=True)
class Status:
    """A line for the status bar."""

    kind: ClassVar[str] = "status"
    text: str


@dataclass(frozen=True)
class Shards:
    """The lead has the files in the browser cache: the other workers may load their shards (of
    n_shards) of this commit."""

    kind: ClassVar[str] = "shards"
    n_shards: int
    commit: str | None


@dataclass(frozen=True)
class Token(StepReply):
    """generate, shard_generate (the lead): one token of the reply, pushed as soon as it is picked."""

    kind: ClassVar[str] = "token"


EVENTS = (Progress, Status, Shards, Token)


# ---- messages to a worker (the page's postMessage to it) ----------------------------------------


@dataclass(frozen=True)
class ChunkReaderPort:
    """The page started the lead's chunk reader as it opened (client/parallel.js readAhead), to
    read ahead from the browser cache while the worker starts: the worker asks it for chunks on
    the MessagePort sent with this message, and starts none of its own."""

    kind: ClassVar[str] = "chunk_reader"


TO_WORKER = (ChunkReaderPort,)

# The Int32Array the shards of a cross-origin-isolated page share (shard_share): these fields,
# then the ids of the next forward pass (n_ids of them; -1: the reply is over).
CONTROL = ("arrivals", "generation", "stop", "n_ids", "position", "ids")

# The model worker's exported functions: (request, reply). Arrays: Float32Array in or out.
FUNCTIONS = {
    "load": (LoadRequest, LoadReply), "cancel": (None, None), "release": (None, None), "defaults": (None, "GenerationSettings fields"),
    "start": (StartRequest, StartReply), "step": (None, StepReply), "generate": (None, None), "stop": (None, None),
    "tokenize": ("text", "token ids"), "logits": ("token ids", "Float32Array"), "heap_bytes": (None, "bytes"),
    "cache_models": (None, CachedModels), "cache_delete": (ModelRequest, CachedModels),
    "model_size": (ModelRequest, ModelSize),
    "shard_load": (LoadRequest, ShardLoadReply), "shard_start": (StartRequest, StartReply),
    "shard_feed": ("ids, position", "Float32Array"), "shard_exchange": ("Float32Array[]", "Float32Array"),
    "shard_next": (None, StepReply), "shard_generate": (None, None), "shard_stop": (None, None),
    "shard_share": ("Int32Array, Float32Array", None), "shard_busy": (None, Busy),
}


def encode(message) -> str:
    """A reply or an event as the JSON the page reads (an event with its kind)."""
    kind = {"kind": message.kind} if hasattr(message, "kind") else {}
    return json.dumps({**kind, **asdict(message)})


def read(kind: type, text: str):
    """A request from its JSON; unknown fields are refused (ValueError)."""
    values = json.loads(text)
    known = {f.name for f in fields(kind)}
    if not isinstance(values, dict) or values.keys() - known:
        raise ValueError(f"{kind.__name__}: unexpected fields {sorted(set(values) - known) if isinstance(values, dict) else values!r}")
    return kind(**values)


def read_start(request: str, tokenizer: TokenizerLike, cached: list[int]) -> tuple[list[int], GenerationSettings]:
    """The prompt ids and settings of a start request; a chat keeps the ids of the KV cache's
    tokens (`cached`) where they spell its turns. Bad settings raise ValueError."""
    start = read(StartRequest, request)
    settings = GenerationSettings.from_dict(start.settings or {})
    if start.turns is not None:
        ids, stops = chat_prompt([tuple(turn) for turn in start.turns], tokenizer, start.style, cached)
        return ids, replace(settings, stop=settings.stop + stops)
    return tokenizer.encode(start.prompt or ""), settings


def begin_reply(request: str, session: Session, tokenizer: TokenizerLike
                ) -> tuple[Decoder | None, StartReply | ErrorReply]:
    """A start request's generation loop, reusing what the session's caches hold, and the reply
    to send; (None, ErrorReply) for a bad request."""
    try:
        ids, settings = read_start(request, tokenizer, session.cached)
    except (TypeError, ValueError) as e:
        return None, ErrorReply(str(e))
    decoder = session.decoder(tokenizer, ids, settings)
    return decoder, StartReply(prompt_tokens=decoder.prompt_tokens, n_ctx=decoder.n_ctx, reused=decoder.reused,
                               feed=decoder.feed)


def step_reply(step: Step, tokenizer, feed: list | None = None) -> StepReply:
    return StepReply(text=step.text, token_id=step.token_id, prob=step.prob,
                     top=[[tokenizer.decode([i]), p] for i, p in step.top], finish=step.finish,
                     dropped=step.dropped, feed=feed)


# ---- client/protocol.js ---------------------------------------------------------------------

JS_TYPES = {"str": "string", "int": "number", "float": "number", "bool": "boolean", "dict": "object", "list": "Array"}


def js_type(annotation: str) -> str:
    """A field's annotation ("str | None", "dict[str, list[int]]") as a JSDoc type."""
    kinds = [JS_TYPES.get(part.strip().split("[")[0], "object") if part.strip() != "None" else "null"
             for part in annotation.split(" | ")]
    return kinds[0] if len(kinds) == 1 else "(" + "|".join(kinds) + ")"


def js_typedef(message: type) -> list[str]:
    doc = " ".join((message.__doc__ or "").split())
    lines = ["/**", f" * @typedef {{object}} {message.__name__}  {doc}"]
    if hasattr(message, "kind"):
        lines.append(f' * @property {{"{message.kind}"}} kind')
    lines += [f" * @property {{{js_type(f.type)}}} {f.name}" for f in fields(message)]
    return lines + [" */"]


def javascript() -> str:
    """The JavaScript side of this protocol: a JSDoc typedef of every message, the event kinds
    and the model worker's functions."""
    messages = [m for m in vars(sys.modules[__name__]).values()
                if isinstance(m, type) and m.__module__ == __name__ and hasattr(m, "__dataclass_fields__")]
    out = ["// The messages between the page and the model workers. Generated from worker/protocol.py by",
           "// `python3 -m worker.protocol > client/protocol.js`: edit that file, not this one.", ""]
    for message in messages:
        out += js_typedef(message) + [""]
    out.append("/** The kinds of the events a worker pushes (its postMessage). */")
    out.append("export const EVENT = Object.freeze({" + ", ".join(f'{e.kind}: "{e.kind}"' for e in EVENTS) + "});")
    out.append("")
    out.append("/** The kinds of the messages the page posts to a worker. */")
    out.append("export const TO_WORKER = Object.freeze({" + ", ".join(f'{m.kind}: "{m.kind}"' for m in TO_WORKER) + "});")
    out.append("")
    out.append("/** The fields of the shards' shared control array, by index (then the next pass's ids). */")
    out.append("export const CONTROL = Object.freeze({" + ", ".join(f"{name}: {i}" for i, name in enumerate(CONTROL)) + "});")
    out.append("")
    out.append("/** The model worker's exported functions. */")
    out.append("export const FUNCTIONS = Object.freeze([" + ", ".join(f'"{name}"' for name in FUNCTIONS) + "]);")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(javascript())
