"""One shard of a model split over several workers (engine/parallel.py's Shard), moved by the
coordinator in client/parallel.js. Exported through worker/worker.py as shard_*; arrays travel
as Float32Array (copied once each way), everything else as JSON strings.

Every shard: shard_load, then per forward pass shard_feed and shard_exchange until it answers
an empty array (the pass is over). Each exchange takes every shard's last partials and sums them
here (engine.parallel.all_reduce), so the page only moves arrays. Shard 0, the lead, also holds
the generation state: shard_start, and shard_next (the step, with the next feed). On a
cross-origin-isolated page the shards instead run a reply among themselves (shard_share, then
shard_generate in every shard) and the lead pushes its tokens to the page."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict

import js
import numpy as np

from engine import Model
from engine.generation import Decoder, Session
from engine.parallel import Shard, all_reduce
from worker.loading import ShardOfModel, load_checkpoint
from worker.protocol import (CONTROL, Busy, ErrorReply, LoadReply, LoadRequest, ShardLoadReply, StepReply, Token,
                             begin_reply, encode, step_reply)

state: dict = {"shard": None, "session": None, "tokenizer": None, "decoder": None}
busy = {"seconds": 0.0, "calls": 0, "wait": 0.0}  # time computing in exchanges, and waiting for peers
# On a cross-origin-isolated page the shards all-reduce among themselves, through SharedArrayBuffers
# (shard_share), and run a reply's passes among themselves (shard_generate).
shared: dict = {}
ARRIVALS, GENERATION, STOP, N_IDS, POSITION, IDS = range(len(CONTROL))
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
    state.update(shard=None, session=None, tokenizer=None, decoder=None)


async def shard_load(request: LoadRequest, index: int, n_shards: int, push: Callable
                     ) -> tuple[Model | None, LoadReply | ErrorReply]:
    """Load shard `index` of n_shards of a model (at most as many shards as the model allows:
    the lead answers how many are used): a ShardLoadReply. A model that is not split (one head,
    a .bin checkpoint, no browser cache) comes back whole, with a LoadReply (n_shards 1), for
    worker.load's state."""
    loaded, reply = await load_checkpoint(request, push, (int(index), int(n_shards)))
    if not isinstance(loaded, ShardOfModel):
        return loaded, reply
    state.update(shard=loaded, session=Session([loaded.shard]), tokenizer=loaded.tokenizer)
    shard, config = loaded.shard, loaded.config
    return None, ShardLoadReply(**{**asdict(reply), "n_shards": loaded.n_shards}, shard=loaded.index,
                                heads=shard.n_head, n_embd=config.n_embd, n_vocab=config.n_vocab,
                                shard_bytes=shard.nbytes)


def shard_start(request: str) -> str:
    """Lead only: begin a reply (a StartRequest): a StartReply with the first feed, or an ErrorReply."""
    state["decoder"], reply = begin_reply(request, state["session"], state["tokenizer"])
    return encode(reply)


def shard_feed(ids: str, position: int):
    """Start a forward pass of `ids` (JSON) at cache `position`; this shard's first partials."""
    return to_float32array(begin_pass(json.loads(ids), int(position)))


def begin_pass(ids: list[int], position: int) -> np.ndarray:
    """This shard's first partials of a pass at `position`; its cache forgets what was there."""
    state["session"].forget_from(position)
    return state["shard"].shard.feed(ids, position)


def shard_exchange(partials):
    """Every shard's last partials in (a JS array of Float32Arrays, in shard order); summed here,
    the next partials out, or an empty array once the pass is over (the lead then has the logits)."""
    start = time.perf_counter()
    partial = state["shard"].shard.exchange(all_reduce([to_numpy(p) for p in partials]))
    out = to_float32array(np.empty(0, dtype=np.float32) if partial is None else partial)
    busy["seconds"] += time.perf_counter() - start
    busy["calls"] += 1
    return out


def shard_busy() -> str:
    """A Busy: time computing in exchanges and waiting for the other shards (shard_generate) since
    the last call (then reset)."""
    reply = encode(Busy(**busy))
    busy.update(seconds=0.0, calls=0, wait=0.0)
    return reply


def shard_share(ctrl, data) -> None:
    """Cross-origin-isolated pages: all-reduce and pass the next feed through SharedArrayBuffers
    shared by every shard. ctrl: Int32Array laid out as protocol.CONTROL (a barrier's count and
    generation, the page's stop flag, the next pass's feed); data: Float32Array of 2 * n_shards
    slots (two sets, used in turn), each as long as the longest partial (the prompt's activations,
    or the logits)."""
    shared.clear()
    shared.update(ctrl=ctrl, data=data, exchange=0)


def barrier(n_shards: int) -> None:
    """Wait until every shard has arrived (Atomics on ctrl's count and generation)."""
    ctrl, atomics = shared["ctrl"], js.Atomics
    generation = atomics.load(ctrl, GENERATION)
    if atomics.add(ctrl, ARRIVALS, 1) == n_shards - 1:
        atomics.store(ctrl, ARRIVALS, 0)
        atomics.add(ctrl, GENERATION, 1)
        atomics.notify(ctrl, GENERATION)
        return
    now = time.perf_counter()
    spin_until, deadline = now + SPIN_S, now + BARRIER_TIMEOUT_S
    while atomics.load(ctrl, GENERATION) == generation:  # the others are usually a few 100 µs away
        if time.perf_counter() > spin_until:
            break
    while atomics.load(ctrl, GENERATION) == generation:  # then sleep (a wake-up costs ~1 ms here)
        if time.perf_counter() > deadline:
            raise TimeoutError("the other shards did not answer")
        atomics.wait(ctrl, GENERATION, generation, 1000)


def shared_all_reduce(partial: np.ndarray) -> np.ndarray:
    """Every shard's partial summed in shard order (engine.parallel.all_reduce): write ours into
    our slot of this exchange's set, wait for all, read every slot. Two sets used in turn: no
    shard can write an exchange's set again before all have read it (they passed a barrier)."""
    data, index, n = shared["data"], state["shard"].index, state["shard"].n_shards
    slot = data.length // (2 * n)
    first = (shared["exchange"] % 2) * n * slot
    shared["exchange"] += 1
    shape, partial = partial.shape, np.ascontiguousarray(partial, dtype=np.float32).reshape(-1)
    size = partial.size
    data.subarray(first + index * slot, first + index * slot + size).assign(partial)
    start = time.perf_counter()
    barrier(n)
    busy["wait"] += time.perf_counter() - start
    parts = [to_numpy(data.subarray(first + j * slot, first + j * slot + size)) for j in range(n)]
    return all_reduce(parts).reshape(shape)


def shard_generate(push: Callable) -> None:
    """Cross-origin-isolated pages, every shard at once after the lead's shard_start: the reply's
    forward passes, among themselves, until it is finished or the page sets ctrl's stop flag.
    After each pass the lead picks the token, pushes it to the page (a Token event) and writes the
    next pass's feed into ctrl for the others; so the page only reads tokens, and its thread's
    work never holds up a pass."""
    lead = state["shard"].index == 0
    while (feed := shared_feed(lead)) is not None:
        run_pass(*feed)
        if lead:
            push(Token(**asdict(next_step())))


def shared_feed(lead: bool) -> tuple[list[int], int] | None:
    """The next pass's (ids, position), the same in every shard, or None when the reply is over:
    the lead writes its decoder's feed into ctrl (none once finished or stopped), all read it."""
    ctrl, n = shared["ctrl"], state["shard"].n_shards
    if lead:
        decoder = state["decoder"]
        feed = None if decoder is None or js.Atomics.load(ctrl, STOP) else decoder.feed
        ctrl[N_IDS] = -1 if feed is None else len(feed[0])
        if feed is not None:
            ctrl[POSITION] = feed[1]
            ctrl.subarray(IDS, IDS + len(feed[0])).assign(np.asarray(feed[0], dtype=np.int32))
    barrier(n)  # Atomics: what the lead wrote before it is seen after it
    n_ids = ctrl[N_IDS]
    if n_ids < 0:
        return None
    ids = np.empty(n_ids, dtype=np.int32)
    ctrl.subarray(IDS, IDS + n_ids).assign_to(ids)
    return ids.tolist(), ctrl[POSITION]


def run_pass(ids: list[int], position: int) -> None:
    """A whole forward pass of `ids` at cache `position`, all-reducing with the other shards (the
    lead then has the logits)."""
    shard: Shard = state["shard"].shard
    partial = begin_pass(ids, position)
    while partial is not None:
        total = shared_all_reduce(partial)
        start = time.perf_counter()
        partial = shard.exchange(total)
        busy["seconds"] += time.perf_counter() - start
        busy["calls"] += 1


def shard_next() -> str:
    """Lead only, once a pass is over: a StepReply, with feed: [ids, position] for the next
    pass, or null when the reply is finished."""
    return encode(next_step())


def next_step() -> StepReply:
    decoder: Decoder = state["decoder"]
    state["session"].ran(*decoder.feed)
    token = decoder.next(state["shard"].shard.logits[-1])
    if decoder.feed is None:
        state["decoder"] = None
    return step_reply(token, state["tokenizer"], decoder.feed)


def shard_stop() -> None:
    state["decoder"] = None
