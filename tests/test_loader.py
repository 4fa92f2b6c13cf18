"""Bad checkpoints give clear errors and never run code."""
from __future__ import annotations

import io
import json
import pickle
import shutil
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from support import MODELS, reference
from browser_llm import load_model
from engine import ARCHITECTURES, gpt2
from engine.gpt2 import LIMITS, param_count, weight_bytes
from model_loader import MissingFileError
from model_loader.config import MAX_CONFIG, ConfigError, parse_config
from model_loader.safetensors import SafetensorsError, read_safetensors
from model_loader.tokenizer import TokenizerError, bytes_to_unicode, read_vocabulary, tiktoken_tokenizer
from model_loader.torch_pickle import MAX_PICKLE, CheckpointError, read_torch_checkpoint
from model_loader.weights import WeightsError

TINY = MODELS / "tiny"


def safetensors_bytes(header: dict | str, data: bytes = b"") -> bytes:
    """A safetensors file of the header (a dict, or its JSON text) and data."""
    raw = (header if isinstance(header, str) else json.dumps(header)).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def traced_peak(work):
    """(work(), the peak of Python's allocations while it ran)."""
    tracemalloc.start()
    try:
        return work(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def refused_within(error: type[Exception], match: str, work, memory: int = 2**20) -> None:
    """work() raises `error` saying `match`, having allocated less than `memory` bytes."""
    def attempt():
        with pytest.raises(error, match=match):
            work()
    assert traced_peak(attempt)[1] < memory


def copy_of(tmp_path: Path, name: str = "tiny") -> Path:
    return Path(shutil.copytree(MODELS / name, tmp_path / name))


ONE = {"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}


BAD_FILES = [  # (bytes, what the error says)
    (b"\x01\x02", "too short"),
    (struct.pack("<Q", 1000) + b"{}", "past the end"),
    (struct.pack("<Q", 5) + b"{nope", "not valid JSON"),
    (safetensors_bytes({"x": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}}, bytes(8)), "unknown dtype"),
    (safetensors_bytes({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}}, bytes(8)), "out of range"),
    (safetensors_bytes({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8)), "do not hold"),
    (safetensors_bytes({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                        "y": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12)), "overlap"),
    (safetensors_bytes({"x": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, bytes(8)), "bad shape"),
    (safetensors_bytes({"x": {"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]}}, bytes(8)), "unknown dtype"),
    (safetensors_bytes({"x": {"dtype": "F32", "shape": [True, True], "data_offsets": [0, 4]}}, bytes(4)), "bad shape"),
    (safetensors_bytes({"x": {"dtype": "F32", "shape": [1.0, 2], "data_offsets": [0, 8]}}, bytes(8)), "bad shape"),
    (safetensors_bytes({"x": {"dtype": "F32", "shape": [1] * 9, "data_offsets": [0, 4]}}, bytes(4)), "bad shape"),
    (safetensors_bytes({"x": {"dtype": "F32", "shape": [0, 2**62, 2**62], "data_offsets": [0, 0]}}), "larger than"),
    (safetensors_bytes({"x": {"dtype": "F32", "shape": [2], "data_offsets": [False, 8]}}, bytes(8)), "bad data_off"),
    (safetensors_bytes({"x": {"dtype": "F32", "shape": [1], "data_offsets": [True, 5]}}, bytes(8)), "bad data_offsets"),
    (safetensors_bytes({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8.0]}}, bytes(8)), "bad data_offsets"),
    (safetensors_bytes({"x": [[["F32"]]]}, bytes(8)), "entry is a nested array"),
    (safetensors_bytes('{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
                       '"x": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}', bytes(16)), "key 'x' twice"),
    (safetensors_bytes('{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, NaN]}}', bytes(8)), "NaN"),
    (safetensors_bytes("[" * 200_000 + "]" * 200_000), "nested too deeply"),
    (safetensors_bytes({"__metadata__": {"padding": "x" * 2**21}}), "more than a GPT-2's header needs"),
]


@pytest.mark.parametrize("raw, message", BAD_FILES)
def test_bad_safetensors_are_refused(raw, message):
    with pytest.raises(SafetensorsError, match=message):
        read_safetensors(raw)


def test_good_safetensors_reads_values():
    values = np.array([1.5, -2.0], dtype="<f4")
    dtype, array = read_safetensors(safetensors_bytes(ONE, values.tobytes()))["x"]
    assert dtype == "F32"
    np.testing.assert_array_equal(array, values)


def test_truncated_checkpoint_file_is_refused(tmp_path):
    folder = copy_of(tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(SafetensorsError, match="out of range"):
        load_model(folder)


def rewrite_tensors(folder: Path, change) -> None:
    """Rewrite model.safetensors after change(dict name -> array) with the real writer."""
    from safetensors.numpy import load_file, save_file
    tensors = load_file(folder / "model.safetensors")
    change(tensors)
    save_file(tensors, folder / "model.safetensors")


def test_missing_tensor_is_named(tmp_path):
    folder = copy_of(tmp_path)
    rewrite_tensors(folder, lambda t: t.pop("transformer.h.1.mlp.c_fc.bias"))
    with pytest.raises(WeightsError, match="h.1.mlp.c_fc.bias is missing"):
        load_model(folder)


def test_misshaped_tensor_is_named(tmp_path):
    folder = copy_of(tmp_path)
    rewrite_tensors(folder, lambda t: t.update({"transformer.ln_f.weight": np.ones(3, np.float32)}))
    with pytest.raises(WeightsError, match=r"ln_f.weight has shape \(3,\), expected \(64,\)"):
        load_model(folder)


def test_unexpected_tensor_is_refused(tmp_path):
    folder = copy_of(tmp_path)
    rewrite_tensors(folder, lambda t: t.update({"score.weight": np.ones((2, 64), np.float32)}))
    with pytest.raises(WeightsError, match="score.weight"):
        load_model(folder)


GOOD_CONFIG = json.loads((TINY / "config.json").read_text())


@pytest.mark.parametrize("change, message", [
    ({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}, "model_type='llama' is not a model this engine runs"),
    ({"architectures": ["LlamaForCausalLM"]}, "not a GPT-2 model"),
    ({"model_type": None}, "model_type=None is not"),
    ({"n_head": None}, "n_head is None"),
    ({"n_head": 5}, "not divisible"),
    ({"activation_function": "relu"}, "relu"),
    ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
])
def test_configs_that_are_not_gpt2_are_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(json.dumps({**GOOD_CONFIG, **change}), ARCHITECTURES)


def test_config_that_does_not_fit_the_tensors_is_refused(tmp_path):
    folder = copy_of(tmp_path)
    (folder / "config.json").write_text(json.dumps({**GOOD_CONFIG, "n_layer": 3}))
    with pytest.raises(WeightsError, match="h.2.ln_1.weight is missing"):
        load_model(folder)


@pytest.mark.parametrize("name", ["vocab.json", "merges.txt", "config.json"])
def test_missing_files_are_named(tmp_path, name):
    folder = copy_of(tmp_path)
    (folder / name).unlink()
    with pytest.raises(MissingFileError, match=name):
        load_model(folder)


def test_missing_weights_are_reported(tmp_path):
    folder = copy_of(tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(MissingFileError, match="no weights"):
        load_model(folder)


def torch_zip(pickled: bytes, storages: dict[str, bytes] = {}) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("archive/data.pkl", pickled)
        for key, data in storages.items():
            z.writestr(f"archive/data/{key}", data)
    return out.getvalue()


def global_pickle(module: str, name: str, *args) -> bytes:
    """A protocol-2 pickle that calls module.name(*args) when loaded by a plain unpickler."""
    return (b"\x80\x02c" + f"{module}\n{name}\n".encode() + pickle.dumps(args, protocol=2)[2:-1]
            + b"R.")


@pytest.mark.parametrize("module, name", [("os", "system"), ("builtins", "eval"), ("builtins", "exec"),
                                          ("subprocess", "call")])
def test_pickle_naming_a_forbidden_global_is_refused_without_running(tmp_path, module, name):
    marker = tmp_path / "ran"
    payload = global_pickle(module, name, f"open({str(marker)!r}, 'w')" if name in ("eval", "exec")
                            else f"touch {marker}")
    with pytest.raises(CheckpointError, match=f"{module}.{name}"):
        read_torch_checkpoint(torch_zip(payload))
    assert not marker.exists()


def test_plain_pickle_would_have_run_it(tmp_path):
    """The payload above is real: an unrestricted unpickler runs it."""
    marker = tmp_path / "ran"
    pickle.loads(global_pickle("builtins", "eval", f"open({str(marker)!r}, 'w').close()"))
    assert marker.exists()


def test_damaged_bin_is_refused():
    data = (MODELS / "bin" / "pytorch_model.bin").read_bytes()
    with pytest.raises(CheckpointError):
        read_torch_checkpoint(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="zip"):
        read_torch_checkpoint(b"\x80\x02}q\x00.")


def test_a_pickle_that_changes_an_allowed_global_cannot_poison_a_later_load():
    """BUILD on torch.FloatStorage: in a shared table of globals, every later load would read
    float32 storages as BF16. The objects are immutable, and each load has its own anyway, so
    the next good file is exact."""
    poison = (b"\x80\x02ctorch\nFloatStorage\n}X\n\x00\x00\x00dtype_nameX\x04\x00\x00\x00BF16sb.")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("archive/data.pkl", poison)
    with pytest.raises(CheckpointError, match="damaged checkpoint"):
        read_torch_checkpoint(archive.getvalue())
    good = read_torch_checkpoint((MODELS / "bin" / "pytorch_model.bin").read_bytes())
    assert {dtype for dtype, _ in good.values()} == {"F32"}
    ref = reference("bin")
    logits = load_model(MODELS / "bin").logits(ref["ids"].tolist())
    assert np.abs(logits - ref["logits"]).max() <= 2e-5 * np.abs(ref["logits"]).max()


@pytest.mark.parametrize("shard", ["../../escape.safetensors", "/etc/passwd", "sub/../../x.safetensors"])
def test_an_index_naming_a_file_outside_the_folder_is_refused(tmp_path, shard):
    folder = copy_of(tmp_path / "model", "sharded")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    index["weight_map"] = {name: shard for name in index["weight_map"]}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "escape.safetensors").write_bytes(b"outside")  # what ../../ would reach
    with pytest.raises(MissingFileError, match="outside the model's folder"):
        load_model(folder)


def test_a_huge_header_is_refused_unread():
    """Parsing JSON takes up to 25 times its size (here 80 MB for 3 MB): a header beyond what a
    GPT-2 needs is not parsed."""
    raw = safetensors_bytes('{"__metadata__": {"lists": [' + "[], " * 2**20 + "[]]}}")
    refused_within(SafetensorsError, "more than a GPT-2's header needs", lambda: read_safetensors(raw))


def test_a_tensor_in_two_shards_is_refused(tmp_path):
    from safetensors.numpy import load_file, save_file
    folder = copy_of(tmp_path, "sharded")
    first, second = (folder / f"model-0000{i}-of-00003.safetensors" for i in (1, 2))
    name, array = next(iter(load_file(first).items()))
    save_file({**load_file(second), name: array}, second)
    with pytest.raises(SafetensorsError, match=f"model-00002-of-00003.safetensors: tensor '{name}' is in an earlier"):
        load_model(folder)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_weights_that_are_not_finite_are_named(tmp_path, value):
    folder = copy_of(tmp_path)

    def spoil(tensors):
        tensors["transformer.h.1.mlp.c_fc.weight"][3, 5] = value
    rewrite_tensors(folder, spoil)
    with pytest.raises(WeightsError, match="tensor h.1.mlp.c_fc.weight has NaN or infinite values"):
        load_model(folder)


def test_float64_weights_beyond_float32_are_refused():
    from model_loader.weights import ParamsBuilder
    builder = ParamsBuilder(gpt2, parse_config(json.dumps(GOOD_CONFIG), ARCHITECTURES))
    with pytest.raises(WeightsError, match="ln_f.bias has NaN or infinite"):
        builder.add("ln_f.bias", "F64", np.full(64, 1e300))


def test_finite_weights_whose_sum_overflows_are_kept():
    from model_loader.weights import ParamsBuilder
    builder = ParamsBuilder(gpt2, parse_config(json.dumps(GOOD_CONFIG), ARCHITECTURES))
    huge = np.full(64, 3e38, np.float32)
    with np.errstate(over="ignore"):
        assert not np.isfinite(huge.sum())  # so each weight is checked
    builder.add("ln_f.bias", "F32", huge.copy())
    assert np.array_equal(builder.arrays[None]["ln_f_b"], huge)


@pytest.mark.parametrize("change, message", [
    ({"n_layer": 10**6}, "n_layer is 1000000, expected an integer from 1 to 256"),
    ({"n_embd": 2**20, "n_head": 1}, "n_embd is 1048576"),
    ({"vocab_size": 10**7}, "vocab_size is 10000000"),
    ({"n_positions": 2**20}, "n_positions is 1048576"),
    ({"n_inner": 10**6}, "n_inner is 1000000, expected an integer from 1 to 32768 or null"),
    ({"n_head": 5}, "n_embd=64 is not divisible by n_head=5"),
    ({"n_head": 0}, "n_head is 0"),
    ({"n_layer": -2}, "n_layer is -2"),
    ({"n_layer": True}, "n_layer is True"),
    ({"n_inner": False}, "n_inner is False"),
    ({"n_embd": 64.0}, "n_embd is 64.0"),
    ({"n_layer": "2"}, "n_layer is '2'"),
    ({"n_layer": [2]}, r"n_layer is \[2\]"),
    ({"n_layer": 2**70}, "n_layer is 1180591620717411303424"),
    ({"layer_norm_epsilon": "1e-5"}, "layer_norm_epsilon is '1e-5'"),
    ({"layer_norm_epsilon": -1.0}, "layer_norm_epsilon is -1.0"),
    ({"activation_function": ["gelu_new"]}, r"activation_function \['gelu_new'\] is not supported"),
    ({"activation_function": {"a": [1]}}, "activation_function a nested container is not supported"),
    ({"architectures": 5}, "architectures must be a list of names"),
    ({"architectures": [["GPT2LMHeadModel"]]}, "architectures must be a list of names"),
])
def test_absurd_configs_are_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(json.dumps({**GOOD_CONFIG, **change}), ARCHITECTURES)


@pytest.mark.parametrize("raw, message", [
    (json.dumps(GOOD_CONFIG)[:-1] + ', "n_layer": 3}', "key 'n_layer' twice"),
    (json.dumps(GOOD_CONFIG)[:-1] + ', "layer_norm_epsilon": NaN}', "NaN is not a JSON number"),
    ('{"a": ' + "[" * 200_000 + "]" * 200_000 + "}", "nested too deeply"),
    (json.dumps({**GOOD_CONFIG, "padding": "x" * MAX_CONFIG}), "too large"),
    (b"\xff\xfe{}", "not valid JSON"),
])
def test_config_json_that_is_not_plain_json_is_refused(raw, message):
    with pytest.raises(ConfigError, match=f"config.json.*{message}"):
        parse_config(raw, ARCHITECTURES)


def test_a_config_beyond_the_limits_fails_before_anything_is_made(tmp_path):
    folder = copy_of(tmp_path)
    (folder / "config.json").write_text(json.dumps({**GOOD_CONFIG, "n_layer": 10**6}))
    refused_within(ConfigError, "n_layer", lambda: load_model(folder))


def test_the_largest_config_is_accepted_and_its_size_known():
    largest = parse_config(json.dumps({**GOOD_CONFIG, **LIMITS}), ARCHITECTURES)
    assert largest.n_layer == 256 and largest.n_inner == 32768
    small = parse_config(json.dumps({**GOOD_CONFIG, "vocab_size": 50257, "n_positions": 1024, "n_embd": 768,
                                    "n_head": 12, "n_layer": 12}), ARCHITECTURES)
    assert param_count(small) == 124_439_808  # GPT-2 small, as transformers counts it
    assert weight_bytes(small) == 4 * param_count(small)


VOCAB = json.loads((TINY / "vocab.json").read_text())
MERGES = (TINY / "merges.txt").read_text()


@pytest.mark.parametrize("rank, message", [
    ("256", "gives token 'Ġt' the id '256'"),
    (None, "gives token 'Ġt' the id None"),
    (-1, "the id -1, expected an integer from 0 to 999999"),
    (2**70, "the id 1180591620717411303424"),
    (256.0, "the id 256.0"),
    (True, "the id True"),
    ([256], r"the id \[256\]"),
    (5, "gives the id 5 to both '&' and 'Ġt'"),
])
def test_malformed_token_ids_are_refused(rank, message):
    with pytest.raises(TokenizerError, match=f"vocab.json .*{message}"):
        read_vocabulary(json.dumps({**VOCAB, "Ġt": rank}), MERGES)


def test_the_end_of_text_id_may_not_be_another_tokens():
    with pytest.raises(TokenizerError, match="gives the id 5 to both '&' and '<|endoftext|>'"):
        read_vocabulary(json.dumps({**VOCAB, "<|endoftext|>": 5}), MERGES)


def test_a_vocabulary_without_a_byte_token_is_refused():
    """tiktoken would panic (a BaseException) on text with that byte."""
    vocab = {token: rank for token, rank in VOCAB.items() if token != bytes_to_unicode()[0]}
    with pytest.raises(TokenizerError, match="no token for the byte 0x00"):
        tiktoken_tokenizer(read_vocabulary(json.dumps(vocab), MERGES))


@pytest.mark.parametrize("vocab, merges, message", [
    (json.dumps(VOCAB)[:-1] + ', "Ġt": 256}', MERGES, "vocab.json has the key 'Ġt' twice"),
    ("[" * 200_000 + "]" * 200_000, MERGES, "vocab.json is nested too deeply"),
    (json.dumps(VOCAB), MERGES.encode("utf-16"), "merges.txt is not UTF-8"),
])
def test_tokenizer_files_that_cannot_be_read_are_refused(vocab, merges, message):
    with pytest.raises(TokenizerError, match=message):
        read_vocabulary(vocab, merges)


def pickled(value) -> bytes:
    """The opcodes that push `value` (a str, int, bool or tuple of them): no PROTO, no STOP."""
    return pickle.dumps(value, protocol=2)[2:-1]


def state_dict_pickle(tensors: dict) -> bytes:
    """The pickle torch.save writes for float32 tensors: {name: (storage key, storage elements,
    offset, size, stride)}."""
    rebuilds = b"".join(
        pickled(name) + b"ctorch._utils\n_rebuild_tensor_v2\n("
        + b"(" + pickled("storage") + b"ctorch\nFloatStorage\n" + pickled(key) + pickled("cpu") + pickled(n) + b"tQ"
        + pickled(offset) + pickled(size) + pickled(stride) + pickled(False) + b"ccollections\nOrderedDict\n)RtR"
        for name, (key, n, offset, size, stride) in tensors.items())
    return b"\x80\x02ccollections\nOrderedDict\n)R(" + rebuilds + b"u."


FOUR = {"0": np.float32([1, 2, 3, 4]).tobytes()}


def test_a_tensor_is_a_view_of_its_storage():
    tensors = read_torch_checkpoint(torch_zip(state_dict_pickle(
        {"t": ("0", 4, 0, (2, 2), (1, 2)), "tail": ("0", 4, 1, (3,), (1,))}), FOUR))
    assert tensors["t"][0] == "F32" and tensors["t"][1].tolist() == [[1, 3], [2, 4]]
    assert tensors["tail"][1].tolist() == [2, 3, 4]
    assert np.shares_memory(tensors["t"][1], tensors["tail"][1]) and not tensors["t"][1].flags.writeable


@pytest.mark.parametrize("tensor, message", [
    (("0", 4, 0, (10**9,), (0,)), r"size \(1000000000,\) has more elements than its storage \(4\)"),
    (("0", 4, 0, (2**31, 2**31), (0, 0)), "has more elements than its storage"),
    (("0", 4, 0, (0, 2**62, 2**62), (1, 1, 1)), "has more elements than its storage"),  # no element, absurd sizes
    (("0", 4, 0, (0, 2**70), (1, 1)), "malformed size"),
    (("0", 4, 0, (1, 2), (2**40, 1)), "runs past its storage"),
    (("0", 4, 0, (3, 2), (0, 1)), r"size \(3, 2\) has more elements than its storage"),
    (("0", 4, 0, (0,) + (4,) * 8, (1,) * 9), "malformed size"),  # more than MAX_DIMS
    (("0", 4, 2, (3,), (1,)), "runs past its storage"),
    (("0", 4, True, (2,), (1,)), "malformed size"),
    (("0", 4, 0, (True, 2), (2, 1)), "malformed size"),
    (("0", 4, 0, (2,), (1, 1)), "malformed size"),
    (("0", 4, -1, (2,), (1,)), "malformed size"),
    (("5", 4, 0, (2,), (1,)), "'archive/data/5' is missing from the archive"),
])
def test_a_tensor_beyond_its_storage_is_refused(tensor, message):
    raw = torch_zip(state_dict_pickle({"t": tensor}), FOUR)
    refused_within(CheckpointError, f"pytorch_model.bin: .*{message}", lambda: read_torch_checkpoint(raw))


def test_a_state_dict_with_a_key_that_is_not_a_name_is_refused():
    with pytest.raises(CheckpointError, match="not a state dict of tensors"):
        read_torch_checkpoint(torch_zip(state_dict_pickle({5: ("0", 4, 0, (4,), (1,))}), FOUR))


def test_a_pickle_memo_index_cannot_allocate_gigabytes():
    """LONG_BINPUT 2**26: the C unpickler would make a memo of 2**27 entries (a gigabyte)."""
    raw = torch_zip(b"\x80\x02N" + b"r" + struct.pack("<I", 2**26) + b".")
    refused_within(CheckpointError, "memo entry 67108864 after only 0", lambda: read_torch_checkpoint(raw))


@pytest.mark.parametrize("opcodes, name", [(b"\x8f", "EMPTY_SET"), (b"N2", "DUP"), (b"(N\x85l", "LIST"),
                                           (b"\x96\x00\x00\x00\x00\x00\x00\x00\x00", "BYTEARRAY8")])
def test_a_pickle_opcode_a_state_dict_does_not_need_is_refused(opcodes, name):
    """An empty set, for one, is 216 bytes made of one."""
    raw = torch_zip(b"\x80\x02" + opcodes + b".")
    refused_within(CheckpointError, f"the opcode {name}, which a state dict does not need",
                   lambda: read_torch_checkpoint(raw))


def deflated_zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return out.getvalue()


BOMB = bytes(64 * 2**20)  # 64 MB of zeros: 64 KB deflated


def test_a_zip_bomb_storage_is_refused_before_inflating():
    raw = deflated_zip({"archive/data.pkl": state_dict_pickle({"t": ("0", 4, 0, (4,), (1,))}), "archive/data/0": BOMB})
    assert len(raw) < len(BOMB) / 100
    refused_within(CheckpointError, "would expand to 67108864 bytes", lambda: read_torch_checkpoint(raw))


def test_a_zip_bomb_pickle_is_refused_before_inflating():
    raw = deflated_zip({"archive/data.pkl": b"\x80\x02N." + bytes(2 * MAX_PICKLE)})
    refused_within(CheckpointError, "data.pkl' has 2097156 bytes, more than the 1048576",
                   lambda: read_torch_checkpoint(raw))


def test_a_zip_entry_inflates_no_further_than_its_listed_size():
    """A bomb whose listed size lies (small) is cut there, and refused for its checksum."""
    raw = bytearray(deflated_zip({"archive/data.pkl": state_dict_pickle({"t": ("0", 4, 0, (4,), (1,))}),
                                  "archive/data/0": BOMB}))
    listed = struct.pack("<I", len(BOMB))
    raw[:] = raw.replace(listed, struct.pack("<I", 16))  # in the local header and the central directory
    refused_within(CheckpointError, "damaged checkpoint .*CRC", lambda: read_torch_checkpoint(bytes(raw)))


def test_compression_pytorch_never_uses_is_refused():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_BZIP2) as z:
        z.writestr("archive/data.pkl", b"\x80\x02}.")
    with pytest.raises(CheckpointError, match="compressed with method 12"):
        read_torch_checkpoint(out.getvalue())
