"""Checkpoints read as a stream of byte blocks (model_loader/checkpoint.py): the same tensors,
Params and shards as from the whole file, clear errors, and memory for one tensor at a time."""
from __future__ import annotations

import json
import struct
from dataclasses import replace

import numpy as np
import pytest
from safetensors.numpy import save

from support import MODEL_NAMES, MODELS, fixture_model
from test_loader import BAD_FILES, safetensors_bytes, traced_peak
from engine import GPT2Config, Shard, gpt2
from engine.parallel import run_shards
from engine.gpt2 import ShardSlicer, map_matrices, slice_params
from engine.gpt2.params import stored_shapes, tensors as tensor_table
from model_loader.safetensors import SafetensorsError, SafetensorsStream, read_safetensors
from model_loader.checkpoint import feed_file, stream_params
from model_loader.weights import ParamsBuilder, WeightsError, build_params

STORED = [name for name in MODEL_NAMES if any((MODELS / name).glob("*.safetensors"))]
BLOCK_SIZES = [1000, 4096, None]  # None: the whole file as one block
SHARDINGS = [(name, n) for name in STORED for n in (1, 2, 3) if n <= fixture_model(name).config.n_head]


def blocks_of(raw: bytes, size: int | None):
    """The file's bytes as consecutive blocks of `size` bytes (views, not copies)."""
    view, size = memoryview(raw), size or len(raw)
    return (view[i:i + size] for i in range(0, len(raw), size))


def files_of(name: str) -> list[bytes]:
    return [path.read_bytes() for path in sorted((MODELS / name).glob("*.safetensors"))]


def streamed(name: str, block_size: int | None, keep=None):
    """A fixture's Params read from its safetensors files block by block."""
    builder = ParamsBuilder(gpt2, fixture_model(name).config, keep)
    for raw in files_of(name):
        feed_file(builder, blocks_of(raw, block_size), len(raw))
    return builder.finish()


def read_stream(raw: bytes, block_size: int | None, size: int | None = None) -> list:
    tensors = []
    stream = SafetensorsStream(len(raw) if size is None else size, lambda *tensor: tensors.append(tensor))
    for block in blocks_of(raw, block_size):
        stream.feed(block)
    stream.finish()
    return tensors


def shard_arrays(params) -> dict:
    arrays = {"wte": params.wte, "lm_head": params.lm_head, "wpe": params.wpe, "ln_f_g": params.ln_f_g,
              "ln_f_b": params.ln_f_b}
    return arrays | {f"h.{i}.{field}": a for i, block in enumerate(params.blocks) for field, a in vars(block).items()}


def assert_same_shard(got: Shard, expected: Shard) -> None:
    assert (got.n_head, got.params.vocab_start) == (expected.n_head, expected.params.vocab_start)
    got, expected = got.params, expected.params
    assert (got.lm_head is got.wte) == (expected.lm_head is expected.wte)
    got_arrays, expected_arrays = shard_arrays(got), shard_arrays(expected)
    for key, array in expected_arrays.items():
        assert (got_arrays[key] is None) == (array is None), key
        if array is not None:
            assert got_arrays[key].dtype == np.float32 and got_arrays[key].flags.c_contiguous, key
            assert np.array_equal(got_arrays[key], array), key


def synthetic_checkpoint(config: GPT2Config, lm_head: np.ndarray | None = None) -> bytes:
    """A float32 GPT-2 checkpoint of random weights in Hugging Face names (with lm_head if given)."""
    rng = np.random.default_rng(0)
    shapes = stored_shapes(config)
    tensors = {name: rng.standard_normal(shapes[field], dtype=np.float32)
               for name, (field, *_) in tensor_table(config).items() if field != "lm_head"}
    return save(tensors if lm_head is None else {**tensors, "lm_head.weight": lm_head})


@pytest.mark.parametrize("block_size", BLOCK_SIZES)
@pytest.mark.parametrize("name", STORED)
def test_stream_hands_out_the_tensors_of_the_whole_file(name, block_size):
    for raw in files_of(name):
        whole = read_safetensors(raw)
        tensors = read_stream(raw, block_size)
        assert sorted(n for n, _, _ in tensors) == sorted(whole)
        for tensor_name, dtype_name, array in tensors:
            assert dtype_name == whole[tensor_name][0]
            assert array.flags.writeable and array.flags.aligned and array.flags.c_contiguous
            np.testing.assert_array_equal(array, whole[tensor_name][1])


@pytest.mark.parametrize("name", STORED)
def test_streamed_params_equal_build_params(name):
    expected, got = fixture_model(name).params, streamed(name, 1000)
    assert got.lm_head is got.wte
    for field in ("wte", "wpe", "ln_f_g", "ln_f_b"):
        assert np.array_equal(getattr(got, field), getattr(expected, field)), field
    for got_block, block in zip(got.blocks, expected.blocks, strict=True):
        for field, array in vars(block).items():
            assert np.array_equal(getattr(got_block, field), array), field


@pytest.mark.parametrize("block_size", BLOCK_SIZES)
@pytest.mark.parametrize("name,n", SHARDINGS)
def test_streamed_shard_equals_the_shard_of_the_whole_params(name, n, block_size):
    model = fixture_model(name)
    for index in range(n):
        parts = streamed(name, block_size, ShardSlicer(model.config, index, n))
        expected = Shard(model.config, slice_params(model.params, model.config, index, n))
        assert_same_shard(Shard(model.config, parts), expected)


TOY = GPT2Config(n_vocab=96, n_ctx=16, n_embd=48, n_head=3, n_layer=16, n_inner=192)


@pytest.mark.parametrize("head", ["own", "equal to wte"])
def test_a_checkpoint_with_an_lm_head_streams_like_the_whole_file(head):
    wte = read_safetensors(synthetic_checkpoint(TOY))["wte.weight"][1]
    raw = synthetic_checkpoint(TOY, lm_head=wte + 1 if head == "own" else wte)
    whole = build_params(gpt2, read_safetensors(raw), TOY)
    for index in range(3):
        parts = stream_params(gpt2, TOY, blocks_of(raw, 777), len(raw), ShardSlicer(TOY, index, 3))
        shard = Shard(TOY, parts)
        assert_same_shard(shard, Shard(TOY, slice_params(whole, TOY, index, 3)))
        assert (parts.lm_head is parts.wte) == (head == "equal to wte")


class Held:
    """A matrix held apart, as worker/kernels.py's HeldWeight holds one in the kernels' memory:
    multiplied by (matmul_t) and read by rows (w[ids], len(w)), never a NumPy array."""

    def __init__(self, matrix: np.ndarray):
        self.matrix, self.shape, self.nbytes, self.size = matrix.copy(), matrix.shape, matrix.nbytes, matrix.size

    def matmul_t(self, x: np.ndarray) -> np.ndarray:
        return x @ self.matrix.T

    def __getitem__(self, ids: np.ndarray) -> np.ndarray:
        return self.matrix[ids]

    def __len__(self) -> int:
        return len(self.matrix)


def hold(matrix):
    return matrix if isinstance(matrix, Held) else Held(matrix)


@pytest.mark.parametrize("head", [None, "own", "equal to wte"])
def test_a_held_embedding_is_the_held_lm_head_with_the_same_logits(head):
    """With hold_embedding, each shard's rows of wte go to hold as they are read (the float32
    kernels); a tied head is then that same held matrix, whose rows the embedding reads back, and
    the split model's logits are those of the NumPy shards."""
    wte = read_safetensors(synthetic_checkpoint(TOY))["wte.weight"][1]
    raw = synthetic_checkpoint(TOY, lm_head=None if head is None else wte + 1 if head == "own" else wte)
    whole = build_params(gpt2, read_safetensors(raw), TOY)
    held, plain = [], []
    for index in range(2):
        parts = stream_params(gpt2, TOY, blocks_of(raw, 777), len(raw), ShardSlicer(TOY, index, 2, hold, True))
        assert isinstance(parts.wte, Held) and isinstance(parts.blocks[0].w_fc, Held)
        parts = map_matrices(parts, hold, head=True, tied_embedding=True)
        assert isinstance(parts.lm_head, Held) and (parts.lm_head is parts.wte) == (head != "own")
        held.append(Shard(TOY, parts))
        plain.append(Shard(TOY, slice_params(whole, TOY, index, 2)))
    ids = [0, 95, 47, 48, 3]  # the first shard's vocabulary ends at 48
    expected = run_shards(plain, ids, 0, last_only=False)
    assert np.allclose(run_shards(held, ids, 0, last_only=False), expected, rtol=1e-5, atol=1e-5)


def test_unused_bytes_are_skipped_and_empty_tensors_handed_out():
    header = {"y": {"dtype": "I8", "shape": [3], "data_offsets": [20, 23]},
              "x": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
              "e": {"dtype": "F32", "shape": [0, 5], "data_offsets": [12, 12]}, "__metadata__": {"a": "b"}}
    data = bytearray(30)
    data[4:12], data[20:23] = np.float32([1.5, -2]).tobytes(), bytes([1, 2, 255])
    raw = safetensors_bytes(header, bytes(data))
    for block_size in (1, 5, None):
        tensors = read_stream(raw, block_size)
        assert [(name, dtype, array.shape) for name, dtype, array in tensors] == \
            [("x", "F32", (2,)), ("e", "F32", (0, 5)), ("y", "I8", (3,))]
        assert tensors[0][2].tolist() == [1.5, -2] and tensors[2][2].tolist() == [1, 2, -1]


@pytest.mark.parametrize("raw, message", BAD_FILES)
def test_the_stream_refuses_what_read_safetensors_refuses(raw, message):
    with pytest.raises(SafetensorsError, match=message):
        read_stream(raw, 3)


TINY = (MODELS / "tiny" / "model.safetensors").read_bytes()


@pytest.mark.parametrize("raw, size, message", [
    (TINY[:-100], len(TINY), "ended after 681444 of its 681544 bytes"),  # the stream stops early
    (TINY[:20], len(TINY), "ended after 20 of"),  # within the header
    (TINY + b"\0", len(TINY), "runs past the 681544 bytes"),  # one byte too many
    (TINY, len(TINY) - 100, "out of range"),  # a size that lies: the header does not fit it
    (TINY, len(TINY) + 100, "ended after 681544 of its 681644 bytes"),
    (struct.pack("<Q", 2**40) + TINY[8:], len(TINY), "past the end"),  # a header length that lies
])
def test_a_stream_of_the_wrong_length_is_refused(raw, size, message):
    with pytest.raises(SafetensorsError, match=message):
        read_stream(raw, 4096, size)


def test_the_stream_holds_one_tensor_and_one_block():
    tensor, block = 64 * 1024, 16 * 1024
    raw = save({f"t{i:03}": np.full(tensor // 4, i, np.float32) for i in range(64)})
    assert len(raw) > 40 * (tensor + block)
    names = []

    def read():
        stream = SafetensorsStream(len(raw), lambda name, dtype_name, array: names.append(name))
        for part in blocks_of(raw, block):
            stream.feed(part)
        stream.finish()

    _, peak = traced_peak(read)
    assert len(names) == 64
    assert peak < tensor + block + 32 * 1024


def test_a_streamed_shard_holds_its_slices_not_the_model():
    raw = synthetic_checkpoint(TOY)
    largest = max(array.nbytes for _, array in read_safetensors(raw).values())
    parts, peak = traced_peak(lambda: stream_params(gpt2, TOY, blocks_of(raw, 4096), len(raw), ShardSlicer(TOY, 1, 3)))
    kept = sum(a.nbytes for a in [parts.wte, parts.ln_f_g, parts.ln_f_b]
               + [a for block in parts.blocks for a in vars(block).values()])
    assert parts.wpe is None and parts.lm_head is parts.wte
    assert peak < kept + 4 * largest + 64 * 1024  # the tensor read, its transpose and slice; the header
    assert peak < len(raw) / 2


def test_keep_sees_every_field_float32_in_the_engine_layout():
    model, seen = fixture_model("f16"), {}

    class Keep:
        def __call__(self, field, array):
            seen[field] = (array.dtype, array.shape)
            return None if field == "wpe" else array

        def rows(self, field):
            return None

    params = streamed("f16", 4096, Keep())
    c = model.config.n_embd
    assert set(seen) == set(vars(params.blocks[0])) | {"wte", "wpe", "ln_f_g", "ln_f_b"}
    assert {dtype for dtype, _ in seen.values()} == {np.dtype(np.float32)}
    assert seen["w_qkv"][1] == (3 * c, c) and seen["w_fc"][1] == (model.config.n_inner, c)
    assert params.wpe is None


def test_a_tensor_given_twice_is_refused():
    builder = ParamsBuilder(gpt2, fixture_model("tiny").config)
    dtype_name, array = read_safetensors(TINY)["transformer.ln_f.bias"]
    builder.add("transformer.ln_f.bias", dtype_name, array)
    with pytest.raises(WeightsError, match="ln_f.bias appears twice"):
        builder.add("ln_f.bias", dtype_name, array)


def test_the_header_is_checked_before_any_data_comes():
    header = json.dumps({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    stream = SafetensorsStream(8 + len(header) + 1000, lambda *tensor: pytest.fail("no tensor"))
    with pytest.raises(SafetensorsError, match="do not hold"):
        stream.feed(struct.pack("<Q", len(header)) + header)


def test_a_shard_reads_only_its_rows_of_the_token_embedding():
    """The token embedding, GPT-2's largest tensor, is never held whole: the stream keeps only
    the shard's vocabulary rows of it (and nothing of wpe off shard 0)."""
    config = replace(TOY, n_vocab=8192, n_layer=2)
    raw = synthetic_checkpoint(config)
    wte_bytes = config.n_vocab * config.n_embd * 4
    assert wte_bytes > len(raw) / 2  # the embedding dominates, as in GPT-2
    parts, peak = traced_peak(lambda: stream_params(gpt2, config, blocks_of(raw, 4096), len(raw), ShardSlicer(config, 1, 2)))
    whole = build_params(gpt2, read_safetensors(raw), config)
    assert np.array_equal(parts.wte, whole.wte[ShardSlicer(config, 1, 2).vocab]) and parts.wpe is None
    assert peak < 0.75 * wte_bytes  # its half of the rows, and small tensors; never the whole


def test_an_empty_stream_is_refused():
    with pytest.raises(SafetensorsError, match="file is 0 bytes, too short"):
        read_stream(b"", 4096)
    with pytest.raises(SafetensorsError, match="file is 0 bytes, too short"):
        SafetensorsStream(0, lambda *tensor: pytest.fail("no tensor")).finish()


def test_a_huge_tensor_declaration_is_refused_before_its_buffer_is_made():
    """A header that declares a 256 GiB tensor, in a file of a few bytes more: refused once the
    header is whole, before the first byte of the tensor would make its buffer."""
    header = json.dumps({"x": {"dtype": "F32", "shape": [2**36], "data_offsets": [0, 2**38]}}).encode()
    raw = struct.pack("<Q", len(header)) + header + b"\0" * 16

    def read():
        with pytest.raises(SafetensorsError, match=r"'x': data_offsets \[0, 274877906944\] out of range"):
            read_stream(raw, 4)
    assert traced_peak(read)[1] < 64 * 1024


def test_a_huge_header_is_refused_from_its_length_alone():
    stream = SafetensorsStream(2**40, lambda *tensor: pytest.fail("no tensor"))
    with pytest.raises(SafetensorsError, match="more than a GPT-2's header needs"):
        stream.feed(struct.pack("<Q", 97 * 2**20))


def test_stream_errors_name_the_file():
    stream = SafetensorsStream(len(TINY) + 1, lambda *tensor: None, file="model-00002-of-00003.safetensors")
    stream.feed(TINY)
    with pytest.raises(SafetensorsError, match="^model-00002-of-00003.safetensors: the file ended after"):
        stream.finish()


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_streamed_weights_that_are_not_finite_are_named(value):
    tensors = {name: array.copy() for name, (_, array) in read_safetensors(TINY).items()}
    tensors["transformer.h.0.attn.c_proj.weight"][1, 2] = value
    raw = save(tensors)
    with pytest.raises(WeightsError, match="tensor h.0.attn.c_proj.weight has NaN or infinite values"):
        stream_params(gpt2, fixture_model("tiny").config, blocks_of(raw, 4096), len(raw))
