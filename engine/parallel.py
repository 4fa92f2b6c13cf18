"""Forward passes on one worker or split over several (tensor parallelism), with one code path.

A Shard is one worker's part of a model: its slice of the parameters (all of them on one
worker; see ShardSlicer for what a shard of several keeps), its key/value cache and the forward
pass in progress. The pass (the architecture's forward_pass) yields partial sums and takes
their total over all shards, 2 * n_layer + 2 times; whoever moves the partials between the
shards only adds them up, in shard order:

    partials = [shard.feed(ids, position) for shard in shards]
    while partials[0] is not None:
        partials = [shard.exchange(all_reduce(partials)) for shard in shards]
    logits = shards[0].logits

Here the shards run in one process (run_shards); in the browser each runs in its own worker
(worker/shard.py), summing through SharedArrayBuffers or messages. `all_reduce` sums in shard
order, in float32, so every worker gets the same totals bit for bit.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .architectures import architecture_of


def all_reduce(partials: Sequence[np.ndarray]) -> np.ndarray:
    """The sum of the shards' partial arrays, in shard order, in float32 (a new array, except
    for a single shard's, which is its own total)."""
    if len(partials) == 1:
        return partials[0]
    total = np.array(partials[0], dtype=np.float32)
    for partial in partials[1:]:
        total += partial
    return total


class Shard:
    """One worker's part of a model: params (whole, or a shard's slice_params / a checkpoint
    read with ShardSlicer), its KV cache, and the forward pass between two exchanges. new_cache
    makes the cache, (config, n_head) -> cache: by default the architecture's KVCache."""

    def __init__(self, config, params, new_cache: Callable | None = None):
        self.config, self.params = config, params
        self.architecture = architecture_of(config)
        self.n_head = self.architecture.shard_heads(params, config)
        self.cache = (new_cache or self.architecture.KVCache)(config, self.n_head)
        self.running = None  # the forward pass in progress
        self.shape: tuple[int, ...] = ()  # of its last partials, and so of their total
        self.logits: np.ndarray | None = None  # the last pass's result

    @property
    def nbytes(self) -> int:
        """Bytes of its weights and KV cache."""
        return sum(a.nbytes for a in self.params.arrays) + self.cache.nbytes

    def feed(self, ids: Sequence[int], position: int, last_only: bool = True) -> np.ndarray:
        """Start a forward pass of new tokens written at cache `position` (earlier entries are
        kept); its first partial sums."""
        self.running = self.architecture.forward_pass(ids, position, self.params, self.config, self.cache, last_only)
        return self.sent(next(self.running))

    def sent(self, partial: np.ndarray) -> np.ndarray:
        self.shape = partial.shape
        return partial

    def exchange(self, total: np.ndarray) -> np.ndarray | None:
        """Take the total of every shard's last partials (this shard may write into it; flat
        is fine); return the next partials, or None when the pass is over (its logits are then
        in `logits`)."""
        try:
            return self.sent(self.running.send(total.reshape(self.shape)))
        except StopIteration as done:
            self.running, self.logits = None, done.value
            return None


def run_shards(shards: Sequence[Shard], ids: Sequence[int], position: int, last_only: bool = True) -> np.ndarray:
    """One forward pass over shards in this process (one shard: one worker's model); the logits
    [n_seq or 1, n_vocab]."""
    partials = [shard.feed(ids, position, last_only) for shard in shards]
    while partials[0] is not None:
        total = all_reduce(partials)
        totals = [total] + [total.copy() for _ in shards[1:]]  # each shard's own: it may write into it
        partials = [shard.exchange(mine) for shard, mine in zip(shards, totals)]
    return shards[0].logits


def make_shards(params, config, n_shards: int) -> list[Shard]:
    """The whole params split into n_shards shards (copies)."""
    architecture = architecture_of(config)
    return [Shard(config, architecture.slice_params(params, config, i, n_shards)) for i in range(n_shards)]


__all__ = ["Shard", "all_reduce", "make_shards", "run_shards"]
