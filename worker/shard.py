"""One shard of a model split over several workers (engine/parallel.py), driven by the
coordinator in app/parallel.js. Exported through worker/worker.py as shard_*; arrays travel
as Float32Array (copied once each way), everything else as JSON strings.

Every shard: shard_load, then per forward pass shard_feed and 2 * n_layer + 1 shard_exchange.
Shard 0, the lead, also holds the generation state: shard_start and shard_next (the logits
in, the step out, with the next feed)."""
from __future__ import annotations

import json
import time
from collections.abc import Callable

import js
import numpy as np

from engine import Model
from engine.generation import Decoder
from engine.parallel import Shard
from worker.loading import ShardOfModel, load_checkpoint
from worker.protocol import read_start, step_fields

state: dict = {"shard": None, "tokenizer": None, "decoder": None}
busy = {"seconds": 0.0, "calls": 0, "wait": 0.0}  # time computing in exchanges, and waiting for peers
# On a cross-origin-isolated page the shards all-reduce among themselves, through SharedArrayBuffers
# (shard_share), and the page calls each of them once per token (shard_run).
shared: dict = {}
BARRIER_TIMEOUT_S = 120
SPIN_S = 0.0005  # how long a shard polls the barrier before it sleeps on it


def to_numpy(array) -> np.ndarray:
    """A JS Float32Array (or a list) as a NumPy float32 array (a copy)."""
    if hasattr(array, "assign_to"):
        out = np.empty(array.length, dtype=np.float32)
        array.assign_to(out)
        return out
    return np.asarray(array.to_py() if hasattr(array, "to_py") else array, dtype=np.float32)


def to_float32array(array: np.ndarray):
    """A NumPy array as a new JS Float32Array (a copy)."""
    array = np.ascontiguousarray(array, dtype=np.float32).reshape(-1)
    out = js.Float32Array.new(array.size)
    out.assign(array)
    return out


def release() -> None:
    """Drop this worker's shard."""
    state.update(shard=None, tokenizer=None, decoder=None)


async def shard_load(request: str, index: int, n_shards: int, push: Callable[..., None]) -> tuple[Model | None, str]:
    """Load shard `index` of n_shards of a model (at most one shard per attention head: the
    lead answers how many are used). The reply: load's facts plus {shard, n_shards, heads,
    n_embd, n_vocab, shard_bytes}, or {error}. A model that is not split (one head, a .bin
    checkpoint, no browser cache) comes back whole, with n_shards 1, for worker.load's state."""
    loaded, reply = await load_checkpoint(json.loads(request), push, (int(index), int(n_shards)))
    if not isinstance(loaded, ShardOfModel):
        return loaded, json.dumps(reply if loaded is None else {**reply, "n_shards": 1})
    shard = loaded.shard
    state.update(shard=shard, tokenizer=loaded.tokenizer)
    return None, json.dumps({**reply, "shard": shard.index, "n_shards": shard.n_shards, "heads": shard.n_head,
                             "n_embd": shard.config.n_embd, "n_vocab": shard.config.n_vocab,
                             "shard_bytes": shard.nbytes})


def shard_start(request: str) -> str:
    """Lead only: begin a reply (the request as worker.start's). {prompt_tokens, n_ctx, feed: [ids,
    position]} or {error}."""
    shard, tokenizer = state["shard"], state["tokenizer"]
    try:
        ids, settings = read_start(request, tokenizer)
    except ValueError as e:
        return json.dumps({"error": str(e)})
    decoder = state["decoder"] = Decoder(shard.config, tokenizer, ids, settings)
    return json.dumps({"prompt_tokens": decoder.prompt_tokens, "n_ctx": shard.config.n_ctx, "feed": decoder.feed})


def shard_feed(ids: str, position: int):
    """Start a forward pass of `ids` (JSON) at cache `position`; this shard's embedding rows."""
    return to_float32array(state["shard"].feed(json.loads(ids), int(position)))


def shard_exchange(total):
    """The sum of every shard's last partials in; the next partials (or logits slice) out."""
    start = time.perf_counter()
    out = to_float32array(state["shard"].exchange(to_numpy(total)))
    busy["seconds"] += time.perf_counter() - start
    busy["calls"] += 1
    return out


def shard_busy() -> str:
    """JSON {seconds, calls, wait}: time computing in exchanges and waiting for the other shards
    (shard_run) since the last call (then reset)."""
    reply = json.dumps(busy)
    busy.update(seconds=0.0, calls=0, wait=0.0)
    return reply


def shard_share(ctrl, data, logits) -> None:
    """Cross-origin-isolated pages: all-reduce through SharedArrayBuffers shared by every shard.
    ctrl: Int32Array [arrivals, generation] (a barrier); data: Float32Array of 2 * n_shards slots
    (two sets, used in turn) of n_ctx * n_embd; logits: Float32Array (n_vocab,)."""
    shared.clear()
    shared.update(ctrl=ctrl, data=data, logits=logits, exchange=0)


def barrier(n_shards: int) -> None:
    """Wait until every shard has arrived (Atomics on ctrl: a count and a generation)."""
    ctrl, atomics = shared["ctrl"], js.Atomics
    generation = atomics.load(ctrl, 1)
    if atomics.add(ctrl, 0, 1) == n_shards - 1:
        atomics.store(ctrl, 0, 0)
        atomics.add(ctrl, 1, 1)
        atomics.notify(ctrl, 1)
        return
    now = time.perf_counter()
    spin_until, deadline = now + SPIN_S, now + BARRIER_TIMEOUT_S
    while atomics.load(ctrl, 1) == generation:  # the others are usually a few 100 µs away
        if time.perf_counter() > spin_until:
            break
    while atomics.load(ctrl, 1) == generation:  # then sleep (a wake-up costs ~1 ms here)
        if time.perf_counter() > deadline:
            raise TimeoutError("the other shards did not answer")
        atomics.wait(ctrl, 1, generation, 1000)


def shared_all_reduce(partial: np.ndarray, shard: Shard) -> np.ndarray:
    """Every shard's partial summed in shard order (as engine.parallel.all_reduce): write ours
    into our slot of this exchange's set, wait for all, read every slot. Two sets used in turn:
    no shard can write an exchange's set again before all have read it (they passed a barrier)."""
    data, n = shared["data"], shard.n_shards
    slot = data.length // (2 * n)
    first = (shared["exchange"] % 2) * n * slot
    shared["exchange"] += 1
    partial = np.ascontiguousarray(partial, dtype=np.float32).reshape(-1)
    size = partial.size
    data.subarray(first + shard.index * slot, first + shard.index * slot + size).assign(partial)
    start = time.perf_counter()
    barrier(n)
    busy["wait"] += time.perf_counter() - start
    total, part = np.empty(size, dtype=np.float32), np.empty(size, dtype=np.float32)
    data.subarray(first, first + size).assign_to(total)
    for j in range(1, n):
        data.subarray(first + j * slot, first + j * slot + size).assign_to(part)
        total += part
    return total


def shard_run(ids: str, position: int) -> str:
    """Cross-origin-isolated pages: a whole forward pass of `ids` at cache `position`, every shard
    at once, all-reducing among themselves. The lead then picks the next token and returns the
    step as shard_next does; the others return "null"."""
    shard: Shard = state["shard"]
    partial = shard.feed(json.loads(ids), int(position))
    for _ in range(2 * shard.config.n_layer + 1):
        total = shared_all_reduce(partial, shard)
        start = time.perf_counter()
        partial = shard.exchange(total)
        busy["seconds"] += time.perf_counter() - start
        busy["calls"] += 1
    logits = shared["logits"]
    logits.subarray(shard.vocab.start, shard.vocab.stop).assign(np.ascontiguousarray(partial[-1]))
    barrier(shard.n_shards)
    if shard.index != 0:
        return "null"
    return next_step(to_numpy(logits))


def shard_next(logits) -> str:
    """Lead only: the full logits of the last position in; the step as worker.step's, plus
    feed: [ids, position] for the next pass, or null when the reply is finished."""
    return next_step(to_numpy(logits))


def next_step(logits: np.ndarray) -> str:
    decoder: Decoder = state["decoder"]
    token = decoder.next(logits)
    if decoder.feed is None:
        state["decoder"] = None
    return json.dumps({**step_fields(token, state["tokenizer"]), "feed": decoder.feed})


def shard_stop() -> None:
    state["decoder"] = None
