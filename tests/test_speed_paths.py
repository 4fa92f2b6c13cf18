"""The engine's speed paths, proven in CPython: the einsum products Pyodide uses, and the
prefill that runs the last block on the last token only."""
from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

from support import MODEL_NAMES, fixture_model, reference
from engine import Shard
from engine.gpt2 import forward
from engine.parallel import run_shards


@pytest.fixture
def pyodide_products(monkeypatch):
    """engine.gpt2 as Pyodide imports it (einsum instead of BLAS); restored afterwards."""
    monkeypatch.setattr(sys, "platform", "emscripten")
    importlib.reload(forward)
    assert "einsum" in forward.matmul_t.__code__.co_names
    yield
    monkeypatch.undo()
    importlib.reload(forward)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_einsum_logits_match_transformers(name, pyodide_products):
    ref = reference(name)
    logits = fixture_model(name).logits(ref["ids"].tolist())
    assert logits.dtype == np.float32
    scale = np.abs(ref["logits"]).max(axis=-1)
    assert np.all(np.abs(logits - ref["logits"]).max(axis=-1) <= 2e-5 * scale)


@pytest.mark.parametrize("name", ["tiny", "odd-heads"])
def test_einsum_cached_decoding_equals_full_forward(name, pyodide_products):
    model = fixture_model(name)
    ids = reference(name)["ids"].tolist()
    full = model.logits(ids)
    shard = Shard(model.config, model.params)
    logits = run_shards([shard], ids[:5], 0)[-1]
    np.testing.assert_allclose(logits, full[4], rtol=0, atol=1e-5 * np.abs(full).max())
    for i in range(5, len(ids)):
        logits = run_shards([shard], [ids[i]], i)[-1]
        assert logits.dtype == np.float32
        np.testing.assert_allclose(logits, full[i], rtol=0, atol=1e-5 * np.abs(full).max())


@pytest.mark.parametrize("name", ["tiny", "odd-heads"])
def test_last_only_prefill_keeps_the_last_state_and_the_whole_cache(name):
    model = fixture_model(name)
    ids = reference(name)["ids"].tolist()
    full_shard, last_shard = Shard(model.config, model.params), Shard(model.config, model.params)
    full = run_shards([full_shard], ids, 0, last_only=False)
    last = run_shards([last_shard], ids, 0, last_only=True)
    full_cache, last_cache = full_shard.cache, last_shard.cache
    assert last.shape == (1, model.config.n_vocab)
    np.testing.assert_allclose(last, full[-1:], rtol=0, atol=1e-5)
    assert last_cache.length == full_cache.length == len(ids)
    np.testing.assert_array_equal(last_cache.k, full_cache.k)
    np.testing.assert_array_equal(last_cache.v_t, full_cache.v_t)


def test_einsum_products_too_large_for_its_iteration_count_run_in_blocks_of_rows(monkeypatch):
    """In Pyodide einsum counts iterations in 32 bits: the logits of 128 tokens over GPT-2's
    50257 tokens (128 * 50257 * 768 > 2**31) are taken in blocks of rows that stay under it."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((50, 8), dtype=np.float32), rng.standard_normal((30, 8), dtype=np.float32)
    sizes, einsum = [], np.einsum
    monkeypatch.setattr(np, "einsum", lambda spec, x, y: sizes.append(x.shape[0] * y.size) or einsum(spec, x, y))
    np.testing.assert_allclose(forward.einsum_t(a, b, max_iteration=7 * 30 * 8), a @ b.T, rtol=1e-5, atol=1e-5)
    assert len(sizes) == 8 and max(sizes) <= 7 * 30 * 8
