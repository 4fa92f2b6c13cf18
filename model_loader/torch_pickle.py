"""pytorch_model.bin without torch: a restricted unpickler for PyTorch's zip checkpoint format.

A pickle can run any code it names, so only the few globals a state dict needs are accepted;
any other global is refused before anything is called.
"""
from __future__ import annotations

import collections
import io
import math
import pickle
import zipfile

import numpy as np

STORAGE_DTYPES = {
    "FloatStorage": ("F32", "<f4"), "HalfStorage": ("F16", "<f2"), "BFloat16Storage": ("BF16", "<u2"),
    "DoubleStorage": ("F64", "<f8"), "LongStorage": ("I64", "<i8"), "IntStorage": ("I32", "<i4"),
    "ShortStorage": ("I16", "<i2"), "CharStorage": ("I8", "i1"), "ByteStorage": ("U8", "u1"),
    "BoolStorage": ("BOOL", "?"),
}


class CheckpointError(ValueError):
    """The bytes are not a PyTorch checkpoint this loader accepts."""


class StorageType:
    def __init__(self, name: str):
        self.dtype_name, self.dtype = STORAGE_DTYPES[name][0], np.dtype(STORAGE_DTYPES[name][1])


class Tensor:
    """What `_rebuild_tensor_v2` returns: an array and the dtype name it was stored as."""

    def __init__(self, dtype_name: str, array: np.ndarray):
        self.dtype_name, self.array = dtype_name, array


def rebuild_tensor(storage: tuple[str, np.ndarray], offset: int, size: tuple, stride: tuple, *_) -> Tensor:
    dtype_name, data = storage
    if any(d < 0 for d in size) or any(s < 0 for s in stride) or offset < 0:
        raise CheckpointError("tensor with negative size, stride or offset")
    last = offset + sum((d - 1) * s for d, s in zip(size, stride)) if math.prod(size) else offset - 1
    if last >= len(data):
        raise CheckpointError(f"tensor of size {tuple(size)} runs past its storage ({len(data)} elements)")
    view = np.lib.stride_tricks.as_strided(data[offset:], shape=tuple(size),
                                           strides=[s * data.itemsize for s in stride])
    return Tensor(dtype_name, np.array(view))


def rebuild_parameter(tensor: Tensor, *_) -> Tensor:
    return tensor


ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
    **{("torch", name): StorageType(name) for name in STORAGE_DTYPES},
}


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, read_storage):
        super().__init__(file)
        self.read_storage = read_storage

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(f"checkpoint refers to {module}.{name}, which is not allowed "
                                  "in a state dict; refusing to load it") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"
                and isinstance(pid[1], StorageType)):
            raise CheckpointError(f"unexpected persistent id {pid!r}")
        return self.read_storage(pid[1], str(pid[2]))


def read_torch_checkpoint(buf: bytes | memoryview) -> dict[str, tuple[str, np.ndarray]]:
    """Return {name: (dtype name, array)} from a `torch.save`d state dict (zip format)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(buf))
    except zipfile.BadZipFile:
        raise CheckpointError("not a PyTorch zip checkpoint (legacy pre-1.6 files are not supported: "
                              "convert them to safetensors)") from None
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise CheckpointError("checkpoint has no single data.pkl")
        prefix = pickles[0][: -len("data.pkl")]
        if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder") != b"little":
            raise CheckpointError("big-endian checkpoints are not supported")
        storages: dict[str, tuple[str, np.ndarray]] = {}

        def read_storage(kind: StorageType, key: str) -> tuple[str, np.ndarray]:
            if key not in storages:
                try:
                    raw = archive.read(f"{prefix}data/{key}")
                except KeyError:
                    raise CheckpointError(f"storage {key} is missing from the archive") from None
                if len(raw) % kind.dtype.itemsize:
                    raise CheckpointError(f"storage {key} is not a whole number of {kind.dtype_name}")
                storages[key] = (kind.dtype_name, np.frombuffer(raw, dtype=kind.dtype))
            return storages[key]

        try:
            state = RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), read_storage).load()
        except CheckpointError:
            raise
        except Exception as e:  # a damaged pickle can fail in many ways; none of them runs code
            raise CheckpointError(f"damaged checkpoint pickle: {e}") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError("checkpoint is not a state dict of tensors")
    return {name: (t.dtype_name, t.array) for name, t in state.items()}
