"""How much memory one worker needs for a model, and how many workers it takes: asked before the
big download, so a model this device cannot hold is refused before any weight is requested.

A worker has two WebAssembly memories, each at most 4 GiB (32-bit): Pyodide's heap and, with the
SIMD kernels, the kernels' own, which holds the blocks' weight matrices and the LM head (a quarter
of their bytes in int8; in float32 the head is the tied token embedding, whose rows the embedding
reads back), and the KV cache. The heap holds the rest of the shard's weights (the position
embedding, the token embedding in int8, NumPy's matrices and KV cache when there are no kernels),
and while loading one cache chunk and one tensor (the rolling download and the tensor-by-tensor
read), or the whole file where it is read whole (no cache, a .bin). Pure arithmetic:
worker/loading.py applies it, tests/test_memory.py checks it."""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from worker.chunk_store import CHUNK_SIZE

MEMORY_LIMIT = 4 * 2**30  # each of a worker's WebAssembly memories
HEADROOM = 0.85  # of which a plan uses at most this much (activations, the allocator's slack)
BASE_HEAP = 64 * 2**20  # Pyodide, NumPy and the worker's code, before any model


@dataclass(frozen=True)
class Need:
    """What one worker of a split into n_shards needs at its peak, in bytes."""

    n_shards: int
    heap: int
    kernels: int

    @property
    def total(self) -> int:
        return self.heap + self.kernels

    def fits(self, limit: int = MEMORY_LIMIT) -> bool:
        return max(self.heap, self.kernels) <= HEADROOM * limit


def worker_need(architecture: ModuleType, config, n_shards: int, kernels: bool, int8: bool,
                whole_file: int = 0) -> Need:
    """One worker's peak memory for a shard (1 of n_shards); whole_file: the bytes of a weight
    file it reads whole (0 when it streams it)."""
    params = architecture.param_count(config)
    head = config.n_vocab * config.n_embd  # the LM head's parameters: the tied wte
    held = architecture.matrix_params(config) + head if kernels else 0  # the blocks' matrices and the head
    in_heap = params - held + (head if kernels and int8 else 0)  # int8 keeps the embedding in float32 too
    kv_cache = architecture.kv_cache_bytes(config) // n_shards
    heap = 4 * in_heap // n_shards + (0 if kernels else kv_cache)
    loading = whole_file or CHUNK_SIZE + 4 * architecture.largest_tensor_params(config)
    kernels_memory = held * (1 if int8 else 4) // n_shards + (kv_cache if kernels else 0)
    return Need(n_shards, BASE_HEAP + heap + loading, kernels_memory)


def workers_needed(architecture: ModuleType, config, kernels: bool, int8: bool, whole_file: int = 0,
                   limit: int = MEMORY_LIMIT) -> Need | None:
    """The fewest shards whose every worker fits (at most one per head), or None."""
    for n in range(1, architecture.max_shards(config) + 1):
        need = worker_need(architecture, config, n, kernels, int8, whole_file)
        if need.fits(limit):
            return need
    return None


@dataclass(frozen=True)
class Refusal:
    """Why a model cannot be loaded here, and over how many workers it could be (None: none)."""

    reason: str
    workers: int | None = None


def gigabytes(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def refusal(label: str, architecture: ModuleType, config, n_shards: int, kernels: bool, int8: bool,
            whole_file: int = 0, device_memory: float | None = None, limit: int = MEMORY_LIMIT) -> Refusal | None:
    """Why `label` cannot be loaded over n_shards workers on this device, or None if it can.
    device_memory: what the browser reports (navigator.deviceMemory, in bytes; None if it does not)."""
    n_shards = min(n_shards, architecture.max_shards(config))
    need = worker_need(architecture, config, n_shards, kernels, int8, whole_file)
    if not need.fits(limit):
        enough = workers_needed(architecture, config, kernels, int8, whole_file, limit)
        if enough is None:
            most = worker_need(architecture, config, architecture.max_shards(config), kernels, int8, whole_file)
            return Refusal(f"{label} is too big for this device: even split over {most.n_shards} worker(s), each "
                           f"would need {gigabytes(max(most.heap, most.kernels))} of a memory that stops at "
                           f"{gigabytes(limit)}")
        return Refusal(f"{label} needs {enough.n_shards} workers here, each holding about {gigabytes(enough.total)} "
                       f"(a worker's memory stops at {gigabytes(limit)}): set Workers to {enough.n_shards} under "
                       "Advanced" + ("" if int8 or not kernels else ", or choose int8 weights"), enough.n_shards)
    if device_memory and need.total * n_shards > device_memory:
        return Refusal(f"{label} is too big for this device: it needs about {gigabytes(need.total * n_shards)} in "
                       f"all and the browser reports {gigabytes(device_memory)} of memory")
    return None
