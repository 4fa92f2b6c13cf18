"""The model worker: messages in, tokens out. The page's main thread calls these exported
functions with `await`; progress is pushed to it with postMessage. Arguments and results are
JSON strings, so nothing depends on how the two interpreters convert objects."""
from __future__ import annotations

import json
from dataclasses import asdict

from polyscript import xworker

from engine import GenerationSettings, Model
from worker import shard
from worker.loading import cache_delete, cache_models, load_checkpoint, model_size
from worker.protocol import read_start, step_fields
from worker.shard import (shard_busy, shard_exchange, shard_feed, shard_next, shard_run, shard_share, shard_start,
                          shard_stop)

state: dict = {"model": None, "steps": None}


def push(kind: str, **data) -> None:
    """Send an event to the main thread (it listens with the worker's onmessage)."""
    xworker.postMessage(json.dumps({"kind": kind, **data}))


async def load(request: str) -> str:
    """Load a model, freeing the previous one first. request is JSON {repo, revision, endpoint,
    tiktoken} for the hub, or {local: {file name: blob URL}, tiktoken} for the visitor's files.
    The reply: {repo, commit, n_params, n_ctx, n_layer, seconds, from_cache, downloaded,
    not_cached (why nothing was cached, or null)} or {error}."""
    release()
    state["model"], reply = await load_checkpoint(json.loads(request), push)
    return json.dumps(reply)


def release() -> None:
    """Drop the loaded model, whole or a shard of it (its memory is reused by the next load)."""
    state["model"] = state["steps"] = None
    shard.release()


def defaults() -> str:
    """The default generation settings, as JSON."""
    return json.dumps(asdict(GenerationSettings()))


def start(request: str) -> str:
    """Begin a reply (the request: see worker.protocol.read_start). The reply: {prompt_tokens,
    n_ctx}, or {error} for bad settings."""
    model: Model = state["model"]
    try:
        ids, settings = read_start(request, model.tokenizer)
    except ValueError as e:
        return json.dumps({"error": str(e)})
    state["steps"] = model.generate(ids, settings)
    return json.dumps({"prompt_tokens": len(ids), "n_ctx": model.config.n_ctx})


def step() -> str:
    """The next token of the current reply (see worker.protocol.step_fields)."""
    token = next(state["steps"])
    if token.finish:
        state["steps"] = None
    return json.dumps(step_fields(token, state["model"].tokenizer))


def stop() -> None:
    """End the current reply (closing the generator frees its KV cache)."""
    if state["steps"] is not None:
        state["steps"].close()
    state["steps"] = None


def tokenize(text: str) -> str:
    """Token ids of text with the loaded model's tokenizer (whole, or the lead shard's), as JSON."""
    tokenizer = state["model"].tokenizer if state["model"] is not None else shard.state["tokenizer"]
    return json.dumps(tokenizer.encode(text))


def heap_bytes() -> float:
    """Size of the worker's WebAssembly memory (it only grows, so a leak shows as growth).
    A float: integers above 2**31 do not survive the trip to the main thread."""
    import pyodide_js
    return float(pyodide_js._module.HEAP8.length)


async def shard_load(request: str, index: int, n_shards: int) -> str:
    """Load a model as one shard of several workers (worker/shard.py, app/parallel.js); a model
    that is not split is loaded whole, as by load (the reply says n_shards 1)."""
    release()
    state["model"], reply = await shard.shard_load(request, index, n_shards, push)
    return reply


__export__ = ["load", "release", "defaults", "start", "step", "stop", "tokenize", "heap_bytes",
              "cache_models", "cache_delete", "model_size",
              "shard_load", "shard_start", "shard_feed", "shard_exchange", "shard_next", "shard_stop",
              "shard_busy", "shard_share", "shard_run"]
