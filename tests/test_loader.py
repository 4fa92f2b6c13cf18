"""Bad checkpoints give clear errors and never run code."""
from __future__ import annotations

import io
import json
import pickle
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from support import MODELS
from model_loader import MissingFileError, load_model
from model_loader.config import ConfigError, parse_config
from model_loader.safetensors import SafetensorsError, read_safetensors
from model_loader.torch_pickle import CheckpointError, read_torch_checkpoint
from model_loader.weights import WeightsError

TINY = MODELS / "tiny"


def safetensors_bytes(header: dict, data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


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
    ({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}, "not a GPT-2"),
    ({"n_head": None}, "n_head is None"),
    ({"n_head": 5}, "not divisible"),
    ({"activation_function": "relu"}, "relu"),
    ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
])
def test_configs_that_are_not_gpt2_are_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(json.dumps({**GOOD_CONFIG, **change}))


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


class Call:
    """Pickles as a call of any global: what a malicious checkpoint does."""

    def __init__(self, module: str, name: str, *args):
        self.module, self.name, self.args = module, name, args

    def __reduce__(self):
        return (Global(self.module, self.name), self.args)


class Global:
    def __init__(self, module: str, name: str):
        self.__module__, self.__qualname__, self.__name__ = module, name, name


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
