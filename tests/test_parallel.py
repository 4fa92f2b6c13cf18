"""Tensor parallelism (engine/parallel.py): the model split over 2 or 3 shards gives the same
greedy tokens as one worker and logits within 2e-5 of transformers."""
from __future__ import annotations

import ast
import sys

import numpy as np
import pytest

from support import MODEL_NAMES, MODELS, ROOT, fixture_model, reference
from engine import GenerationSettings, gpt2
from engine.generation import Decoder, Session, generate
from model_loader.safetensors import read_safetensors
from model_loader.weights import build_params
from engine.gpt2.params import split_range
from engine.parallel import all_reduce, make_shards, run_shards

SHARDINGS = [(name, n) for name in MODEL_NAMES for n in (1, 2, 3) if n <= fixture_model(name).config.n_head]


def test_split_range_covers_everything_once():
    for n in range(1, 20):
        for parts in range(1, n + 1):
            ranges = [split_range(n, parts, i) for i in range(parts)]
            assert sum((list(range(n))[r] for r in ranges), []) == list(range(n))
            assert max(r.stop - r.start for r in ranges) - min(r.stop - r.start for r in ranges) <= 1


def test_odd_heads_split_unevenly():
    model = fixture_model("odd-heads")
    assert model.config.n_head == 3
    shards = make_shards(model.params, model.config, 2)
    assert [s.n_head for s in shards] == [2, 1]
    assert [s.params.blocks[0].w_qkv.shape[0] for s in shards] == [2 * 3 * model.config.head_dim, 3 * model.config.head_dim]


@pytest.mark.parametrize("name,n", SHARDINGS)
def test_sharded_logits_match_transformers(name, n):
    model, ref = fixture_model(name), reference(name)
    logits = run_shards(make_shards(model.params, model.config, n), ref["ids"].tolist(), 0, last_only=False)
    assert logits.dtype == np.float32 and logits.shape == ref["logits"].shape
    scale = np.abs(ref["logits"]).max(axis=-1)
    assert np.all(np.abs(logits - ref["logits"]).max(axis=-1) <= 2e-5 * scale)
    single = model.logits(ref["ids"].tolist())
    np.testing.assert_allclose(logits, single, rtol=0, atol=2e-6 * np.abs(single).max())


def test_one_shard_is_the_single_worker_engine_bit_for_bit():
    model, ids = fixture_model("odd-heads"), reference("odd-heads")["ids"].tolist()
    logits = run_shards(make_shards(model.params, model.config, 1), ids, 0, last_only=False)
    assert np.array_equal(logits, model.logits(ids))


@pytest.mark.parametrize("name,n", SHARDINGS)
def test_sharded_greedy_tokens_equal_single_worker_and_transformers(name, n):
    model, ref = fixture_model(name), reference(name)
    settings = GenerationSettings(temperature=0, repetition_penalty=1.0, max_new_tokens=24)
    steps = list(generate(Session(make_shards(model.params, model.config, n)), model.tokenizer,
                                  ref["greedy_prompt"].tolist(), settings))
    single = list(model.generate(ref["greedy_prompt"].tolist(), settings))
    assert [s.token_id for s in steps] == [s.token_id for s in single] == ref["greedy_ids"].tolist()
    assert [(s.text, s.finish) for s in steps] == [(s.text, s.finish) for s in single]


@pytest.mark.parametrize("n", [2, 3])
def test_sampling_past_the_context_window_equals_single_worker(n):
    model = fixture_model("odd-heads")
    settings = GenerationSettings(temperature=0.9, top_k=0, top_p=1.0, max_new_tokens=2 * model.config.n_ctx,
                                  seed=3, stop=())
    prompt = reference("odd-heads")["ids"].tolist()[:40]
    steps = list(generate(Session(make_shards(model.params, model.config, n)), model.tokenizer, prompt, settings))
    single = list(model.generate(prompt, settings))
    assert [(s.token_id, s.text, s.dropped, s.finish) for s in steps] == \
        [(s.token_id, s.text, s.dropped, s.finish) for s in single]
    assert sum(s.dropped for s in steps) > 0


def test_decoder_stops_on_stop_strings_and_eos_like_generate():
    model = fixture_model("tiny")
    for settings in (GenerationSettings(temperature=0, max_new_tokens=30, stop=(" the",)),
                     GenerationSettings(temperature=1.5, top_k=0, top_p=1.0, max_new_tokens=200, seed=5)):
        steps = list(generate(Session(make_shards(model.params, model.config, 2)), model.tokenizer,
                                      "Once upon a time", settings))
        single = list(model.generate("Once upon a time", settings))
        assert [(s.token_id, s.text, s.finish) for s in steps] == [(s.token_id, s.text, s.finish) for s in single]
        assert np.allclose([s.prob for s in steps], [s.prob for s in single], rtol=1e-4)


def test_all_reduce_sums_in_shard_order_in_float32():
    parts = [np.float32([1e8, 1]), np.float32([1, 1e-8]), np.float32([-1e8, 0])]
    assert all_reduce(parts).dtype == np.float32
    assert all_reduce(parts).tolist() == [0.0, 1.0]  # (1e8 + 1) rounds to 1e8 in float32


def test_shard_memory_is_its_slice():
    model = fixture_model("sharded")
    shards = make_shards(model.params, model.config, 2)
    whole = sum(a.nbytes for a in [model.params.wte, model.params.wpe]
                + [a for b in model.params.blocks for a in vars(b).values()])
    assert all(s.nbytes < 0.75 * whole for s in shards)


def test_decoder_reports_prompt_tokens_and_first_feed():
    model = fixture_model("tiny")
    decoder = Decoder(model.config.n_ctx, model.tokenizer, "Hello world", GenerationSettings())
    ids = model.tokenizer.encode("Hello world")
    assert decoder.prompt_tokens == len(ids) and decoder.feed == (ids, 0)


def test_shards_hold_no_view_of_the_checkpoint_buffer():
    """Weights built in place in a download buffer: every shard copies its parts out, so the
    buffer (the whole model) can be freed."""
    model = fixture_model("tiny")
    buffer = bytearray((MODELS / "tiny" / "model.safetensors").read_bytes())
    params, whole = build_params(gpt2, read_safetensors(buffer), model.config), np.frombuffer(buffer, np.uint8)
    for shard in make_shards(params, model.config, 2):
        assert not any(np.shares_memory(a, whole) for a in shard.params.arrays)


def engine_functions_run(run) -> set:
    """The code objects of engine/ that run() calls."""
    seen = set()
    sys.setprofile(lambda frame, event, arg: seen.add(frame.f_code) if event == "call" else None)
    try:
        run()
    finally:
        sys.setprofile(None)
    return {code for code in seen if code.co_filename.startswith(str(ROOT / "engine"))}


def test_one_worker_and_several_run_the_same_forward_pass_code():
    model, ids = fixture_model("odd-heads"), reference("odd-heads")["ids"].tolist()
    one = engine_functions_run(lambda: model.logits(ids))
    three = engine_functions_run(lambda: run_shards(make_shards(model.params, model.config, 3), ids, 0, False))
    forward = str(ROOT / "engine" / "gpt2" / "forward.py")
    block = {code for code in one if code.co_filename == forward}
    assert {"forward_pass", "embeddings", "attention_partial", "mlp_partial", "logits_partial", "attention",
            "layer_norm", "gelu"} <= {code.co_name for code in block}
    assert block == {code for code in three if code.co_filename == forward}


def test_the_block_math_is_written_once():
    """No module but engine/gpt2/forward.py calls the forward pass's pieces."""
    pieces = {"layer_norm", "attention", "gelu", "softmax", "matmul_t", "linear", "split_heads"}
    callers = set()
    for path in [*ROOT.glob("engine/**/*.py"), *ROOT.glob("worker/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in pieces:
                callers.add(str(path.relative_to(ROOT)))
    assert callers == {"engine/gpt2/forward.py"}
