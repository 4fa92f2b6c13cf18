"""The model worker: messages in, tokens out. The page's main thread calls these exported
functions with `await`; progress is pushed to it with postMessage. Arguments and results are
JSON strings, so nothing depends on how the two interpreters convert objects."""
from __future__ import annotations

import asyncio
import json
from dataclasses import asdict

from polyscript import xworker
from pyscript.js_modules import idb

from engine import GenerationSettings
from engine.generation import Decoder
from worker import shard
from worker.cache_manager import cache_delete, cache_models, model_size
from worker.download import cancel_load as cancel
from worker.kernels import kernels_bytes
from worker.loading import load_checkpoint
from worker.protocol import (FUNCTIONS, ChunkReaderPort, ErrorReply, LoadRequest, StepReply, Token, begin_reply,
                             encode, read, step_reply)
from worker.shard import shard_busy, shard_exchange, shard_feed, shard_next, shard_share, shard_start, shard_stop

state: dict = {"model": None, "session": None, "decoder": None}


def on_page_message(event) -> None:
    """A message the page posts to this worker: a chunk reader to use (ChunkReaderPort). Others
    (PyScript's own start message comes here too) are not for it."""
    if getattr(event.data, "kind", None) == ChunkReaderPort.kind and event.ports.length:
        idb.useChunkReader(event.ports[0])


xworker.onmessage = on_page_message


def push(event) -> None:
    """Send an event (worker.protocol) to the main thread (it listens with the worker's onmessage)."""
    xworker.postMessage(encode(event))


async def load(request: str) -> str:
    """Load a model (a LoadRequest), freeing the previous one first: a LoadReply or an ErrorReply."""
    release()
    try:
        wanted = read(LoadRequest, request)
    except (TypeError, ValueError) as e:
        return encode(ErrorReply(str(e)))
    state["model"], reply = await load_checkpoint(wanted, push)
    state["session"] = state["model"] and state["model"].session()
    return encode(reply)


def release() -> None:
    """Drop the loaded model, whole or a shard of it (its memory is reused by the next load)."""
    state.update(model=None, session=None, decoder=None)
    shard.release()


def defaults() -> str:
    """The default generation settings, as JSON."""
    return json.dumps(asdict(GenerationSettings()))


def start(request: str) -> str:
    """Begin a reply (a StartRequest): a StartReply, or an ErrorReply for bad settings. What the
    KV cache holds of the prompt since the last reply is not run again."""
    state["decoder"], reply = begin_reply(request, state["session"], state["model"].tokenizer)
    return encode(reply)


def step() -> str:
    """The next token of the current reply: a StepReply."""
    return encode(next_step())


def next_step() -> StepReply:
    decoder: Decoder = state["decoder"]
    token = decoder.next(state["session"].run(*decoder.feed))
    if decoder.feed is None:
        state["decoder"] = None
    return step_reply(token, state["model"].tokenizer)


async def generate() -> None:
    """After start: the rest of the reply, each token pushed to the page (a Token event) as soon
    as it is picked, until it is finished or stop() ends it; between two tokens the worker
    answers other calls, stop among them."""
    decoder = state["decoder"]
    while decoder is not None and state["decoder"] is decoder:
        push(Token(**asdict(next_step())))
        await asyncio.sleep(0)  # Pyodide schedules it at once, through a MessageChannel


def stop() -> None:
    """End the current reply (the KV cache keeps what ran, for the next)."""
    state["decoder"] = None


def tokenize(text: str) -> str:
    """Token ids of text with the loaded model's tokenizer (whole, or the lead shard's), as JSON."""
    tokenizer = state["model"].tokenizer if state["model"] is not None else shard.state["tokenizer"]
    return json.dumps(tokenizer.encode(text))


def logits(ids: str):
    """Logits of token ids (JSON) under the whole model loaded by load, flat [len(ids) * n_vocab]
    as a Float32Array (to score a text); the chat's KV cache is left as it is."""
    return shard.to_float32array(state["model"].logits(json.loads(ids)))


def heap_bytes() -> float:
    """Bytes of the worker's WebAssembly memories: Pyodide's heap (it only grows, so a leak
    shows as growth) and the loaded model's kernels (worker/kernels.py), if any.
    A float: integers above 2**31 do not survive the trip to the main thread."""
    import pyodide_js
    model = state["model"] or shard.state["shard"]
    return float(pyodide_js._module.HEAP8.length + (kernels_bytes(model.params) if model else 0))


async def shard_load(request: str, index: int, n_shards: int) -> str:
    """Load a model (a LoadRequest) as one shard of several workers (worker/shard.py,
    client/parallel.js): a ShardLoadReply; a model that is not split is loaded whole, as by load
    (a LoadReply with n_shards 1)."""
    release()
    try:
        wanted = read(LoadRequest, request)
    except (TypeError, ValueError) as e:
        return encode(ErrorReply(str(e)))
    state["model"], reply = await shard.shard_load(wanted, index, n_shards, push)
    return encode(reply)


def shard_generate() -> None:
    """Cross-origin-isolated pages, in every shard at once: run the reply begun by shard_start;
    the lead pushes its tokens (worker/shard.py)."""
    shard.shard_generate(push)


__export__ = list(FUNCTIONS)  # the protocol's functions, each defined or imported above
