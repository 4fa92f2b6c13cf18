"""worker/memory.py: what a worker needs for each GPT-2 size, against the checkpoint's own
tensor table, and how many workers the big ones take under WebAssembly's 4 GiB per memory."""
from __future__ import annotations

import math

import pytest

from engine import gpt2
from worker.memory import MEMORY_LIMIT, refusal, worker_need, workers_needed

SIZES = {  # the published checkpoints' config.json fields
    "gpt2": dict(n_embd=768, n_layer=12, n_head=12),
    "gpt2-medium": dict(n_embd=1024, n_layer=24, n_head=16),
    "gpt2-large": dict(n_embd=1280, n_layer=36, n_head=20),
    "gpt2-xl": dict(n_embd=1600, n_layer=48, n_head=25),
}


def config(name: str):
    return gpt2.read_config({"model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024, **SIZES[name]})


def table_bytes(name: str, fields: set[str]) -> int:
    """float32 bytes of a checkpoint's tensors of these fields, from the engine's tensor table."""
    return sum(4 * math.prod(t.shape) for t in gpt2.tensors(config(name)).values() if t.field in fields)


@pytest.mark.parametrize("name", list(SIZES))
@pytest.mark.parametrize("n_shards", [1, 2, 5])
def test_the_kernels_hold_the_block_matrices_the_head_and_the_kv_cache_and_the_heap_the_rest(name, n_shards):
    matrices = table_bytes(name, gpt2.params.MATRICES)
    head = table_bytes(name, {"lm_head"})  # float32: the tied wte, moved; int8: a copy beside it
    c = config(name)
    kv_cache = 2 * c.n_layer * c.n_ctx * c.n_embd * 4  # keys and values of every layer and position, float32
    need = worker_need(gpt2, c, n_shards, kernels=True, int8=False)
    assert need.kernels == pytest.approx((matrices + head + kv_cache) / n_shards, abs=2)
    int8 = worker_need(gpt2, c, n_shards, kernels=True, int8=True)
    assert int8.kernels == pytest.approx(((matrices + head) / 4 + kv_cache) / n_shards, abs=2)
    embedding = table_bytes(name, {"wte"})  # in the heap in int8 (exact rows), not in float32
    assert int8.heap - need.heap == pytest.approx(embedding / n_shards, abs=2)
    assert need.heap > table_bytes(name, {"wpe"}) // n_shards  # and one chunk and one tensor
    numpy = worker_need(gpt2, c, n_shards, kernels=False, int8=False)
    assert numpy.kernels == 0
    assert numpy.heap == pytest.approx(need.heap + (matrices + head + kv_cache) / n_shards, abs=2)


def test_how_many_workers_each_size_takes():
    """XL's block matrices are 5.9 GB of float32: more than one 4 GiB memory, so two workers, or
    one with int8; large's 2.8 GB fit one worker's kernels, but not with the rest in NumPy's heap."""
    assert table_bytes("gpt2-xl", gpt2.params.MATRICES) > MEMORY_LIMIT
    assert workers_needed(gpt2, config("gpt2-xl"), kernels=True, int8=False).n_shards == 2
    assert workers_needed(gpt2, config("gpt2-xl"), kernels=True, int8=True).n_shards == 1
    assert workers_needed(gpt2, config("gpt2-large"), kernels=True, int8=False).n_shards == 1
    assert workers_needed(gpt2, config("gpt2-large"), kernels=False, int8=False).n_shards == 2
    for name in ("gpt2", "gpt2-medium"):
        assert workers_needed(gpt2, config(name), kernels=True, int8=False).n_shards == 1
    # read whole (no browser cache): the file sits in the heap, so XL's cannot be read whole at all
    large, xl = gpt2.weight_bytes(config("gpt2-large")), gpt2.weight_bytes(config("gpt2-xl"))
    assert worker_need(gpt2, config("gpt2-large"), 1, kernels=True, int8=False, whole_file=large).heap > large
    assert workers_needed(gpt2, config("gpt2-xl"), kernels=True, int8=True, whole_file=xl) is None


def test_refusals_say_how_many_workers_or_that_the_device_is_too_small():
    xl = config("gpt2-xl")
    one_worker = refusal("gpt2-xl", gpt2, xl, 1, kernels=True, int8=False)
    assert "needs 2 workers here" in one_worker.reason and one_worker.workers == 2
    assert "or choose int8 weights" in one_worker.reason
    assert refusal("gpt2-xl", gpt2, xl, 2, kernels=True, int8=False) is None
    assert refusal("gpt2-xl", gpt2, xl, 1, kernels=True, int8=True) is None
    small_device = refusal("gpt2-xl", gpt2, xl, 2, kernels=True, int8=False, device_memory=4 * 2**30)
    assert small_device.reason.startswith("gpt2-xl is too big for this device")
    assert "reports 4.3 GB" in small_device.reason and small_device.workers is None
    one_head = gpt2.read_config({"model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024,
                                 **SIZES["gpt2-xl"], "n_head": 1})
    too_big = refusal("one-head", gpt2, one_head, 4, kernels=True, int8=False)
    assert "even split over 1 worker(s)" in too_big.reason and too_big.workers is None
