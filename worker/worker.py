"""The model worker: messages in, tokens out. The page's main thread calls these exported
functions with `await`; progress is pushed to it with postMessage. Arguments and results are
JSON strings, so nothing depends on how the two interpreters convert objects."""
from __future__ import annotations

import json
import time

from polyscript import xworker

from engine import GenerationSettings, Model
from model_loader.checkpoint import assemble_model, read_tokenizer_files
from model_loader.config import parse_config
from worker.browser_tokenizer import wasm_tokenizer
from worker.download import fetch_checkpoint

state: dict = {"model": None, "steps": None}


def push(kind: str, **data) -> None:
    """Send an event to the main thread (it listens with the worker's onmessage)."""
    xworker.postMessage(json.dumps({"kind": kind, **data}))


class Progress:
    """Per-file byte counts, pushed at most every 100 ms."""

    def __init__(self):
        self.files: dict[str, list[int]] = {}
        self.last = 0.0

    def update(self, name: str, received: int, total: int) -> None:
        self.files[name] = [received, total]
        now = time.monotonic()
        if now - self.last > 0.1 or received == total:
            self.last = now
            push("progress", file=name, files=self.files)


async def load(request: str) -> str:
    """Download (or reuse) a model: request is JSON {repo, revision, endpoint, tiktoken}."""
    options = json.loads(request)
    state["model"] = state["steps"] = None
    started = time.monotonic()
    progress = Progress()
    try:
        have = await fetch_checkpoint(options["endpoint"], options["repo"], options["revision"],
                                      progress.update, parse_config)
        push("status", text="Building the model…")
        tokenizer = await wasm_tokenizer(read_tokenizer_files(have), options["tiktoken"])
        model = assemble_model(have, tokenizer)
    except (OSError, ValueError) as e:
        return json.dumps({"error": str(e)})
    del have
    state["model"] = model
    return json.dumps({
        "repo": options["repo"], "n_params": model.n_params, "n_ctx": model.config.n_ctx,
        "n_layer": model.config.n_layer, "seconds": time.monotonic() - started,
    })


def start(prompt: str, settings: str) -> str:
    """Begin a reply to prompt; settings is JSON of GenerationSettings fields."""
    model: Model = state["model"]
    ids = model.tokenizer.encode(prompt)
    state["steps"] = model.generate(ids, GenerationSettings.from_dict(json.loads(settings)))
    return json.dumps({"prompt_tokens": len(ids)})


def step() -> str:
    """The next token of the current reply: {text, token_id, prob, finish}."""
    token = next(state["steps"])
    if token.finish:
        state["steps"] = None
    return json.dumps({"text": token.text, "token_id": token.token_id, "prob": token.prob,
                       "finish": token.finish, "dropped": token.dropped})


def stop() -> None:
    """End the current reply (closing the generator frees its KV cache)."""
    if state["steps"] is not None:
        state["steps"].close()
    state["steps"] = None


def tokenize(text: str) -> str:
    """Token ids of text with the loaded model's tokenizer, as JSON."""
    return json.dumps(state["model"].tokenizer.encode(text))


def heap_bytes() -> float:
    """Size of the worker's WebAssembly memory (it only grows, so a leak shows as growth).
    A float: integers above 2**31 do not survive the trip to the main thread."""
    import pyodide_js
    return float(pyodide_js._module.HEAP8.length)


__export__ = ["load", "start", "step", "stop", "tokenize", "heap_bytes"]
