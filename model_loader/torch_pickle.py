"""pytorch_model.bin without torch: a restricted unpickler for PyTorch's zip checkpoint format.

A pickle can run any code it names, so only the few globals a state dict needs are accepted;
any other global is refused before anything is called. Nothing the file says about sizes is
trusted before it is checked: its entries may not expand past the archive's own size, the
pickle's memo may not outgrow the pickle, and a tensor may not have more elements than its
storage (it is a view of it, not a copy).
"""
from __future__ import annotations

import collections
import io
import pickle
import pickletools
import zipfile
from typing import NamedTuple

import numpy as np

from .safetensors import MAX_DIMS, bounding_count, shown

STORAGE_DTYPES = {
    "FloatStorage": ("F32", "<f4"), "HalfStorage": ("F16", "<f2"), "BFloat16Storage": ("BF16", "<u2"),
    "DoubleStorage": ("F64", "<f8"), "LongStorage": ("I64", "<i8"), "IntStorage": ("I32", "<i4"),
    "ShortStorage": ("I16", "<i2"), "CharStorage": ("I8", "i1"), "ByteStorage": ("U8", "u1"),
    "BoolStorage": ("BOOL", "?"),
}
MAX_PICKLE = 1024 * 1024  # bytes; a state dict's pickle takes about 100 a tensor (GPT-2 XL's: 60 KB)
# The opcodes torch.save's pickler writes for a state dict (protocol 2, or 4), and no others:
# not sets (216 bytes an opcode), buffers, extensions or the object-making ones.
STATE_DICT_OPCODES = {
    "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "NONE", "NEWTRUE", "NEWFALSE", "BININT", "BININT1",
    "BININT2", "LONG1", "BINFLOAT", "BINUNICODE", "SHORT_BINUNICODE", "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2",
    "TUPLE3", "EMPTY_LIST", "APPEND", "APPENDS", "EMPTY_DICT", "SETITEM", "SETITEMS", "GLOBAL", "STACK_GLOBAL",
    "REDUCE", "BUILD", "BINPERSID", "BINGET", "LONG_BINGET", "BINPUT", "LONG_BINPUT", "MEMOIZE",
}
MEMO_PUTS = {"BINPUT", "LONG_BINPUT"}
UNCOMPRESSED_OR_DEFLATED = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}  # PyTorch writes the first only


class CheckpointError(ValueError):
    """The bytes are not a PyTorch checkpoint this loader accepts."""


# Immutable, so that a pickle's BUILD opcode cannot change them.
class StorageType(NamedTuple):
    """torch.FloatStorage and the like: the type of the storages a persistent id names."""

    dtype_name: str
    dtype: np.dtype


class Storage(NamedTuple):
    """A storage read from the archive."""

    dtype_name: str
    data: np.ndarray


class Tensor(NamedTuple):
    """What `_rebuild_tensor_v2` returns: a read-only view of a storage, and its dtype name."""

    dtype_name: str
    array: np.ndarray


def storage_type(name: str) -> StorageType:
    dtype_name, dtype = STORAGE_DTYPES[name]
    return StorageType(dtype_name, np.dtype(dtype))


def is_index(value: object) -> bool:
    """Whether a pickled value is an integer (not a boolean) that numpy can take as a size."""
    return type(value) is int and 0 <= value < 2**63


def rebuild_tensor(storage: Storage, offset: int, size: tuple, stride: tuple, *_) -> Tensor:
    """A tensor as a view of its storage, checked to lie within it and to have no more elements
    than it (an empty one's sizes counted as ones): a real state dict's never has, and a stride
    of 0 could make a huge tensor of one element."""
    if not isinstance(storage, Storage):
        raise CheckpointError("a tensor's storage is not one of the archive's")
    sequences = isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list))
    if not (sequences and len(size) == len(stride) <= MAX_DIMS and all(map(is_index, [offset, *size, *stride]))):
        raise CheckpointError("a tensor has a malformed size, stride or offset")
    data = storage.data
    if bounding_count(size) > len(data):
        raise CheckpointError(f"a tensor of size {tuple(size)} has more elements than its storage ({len(data)})")
    last = offset + sum((d - 1) * s for d, s in zip(size, stride)) if all(size) else offset - 1
    if last >= len(data) or any(s > len(data) for s in stride):
        raise CheckpointError(f"a tensor of size {tuple(size)} runs past its storage ({len(data)} elements)")
    view = np.lib.stride_tricks.as_strided(data[offset:], shape=tuple(size),
                                           strides=[s * data.itemsize for s in stride])
    return Tensor(storage.dtype_name, view)


def rebuild_parameter(tensor: Tensor, *_) -> Tensor:
    return tensor


def allowed_globals() -> dict[tuple[str, str], object]:
    """The only globals a state dict may name, made anew for each load: a pickle's BUILD opcode
    can change an object it names, and that must never reach another load."""
    return {
        ("collections", "OrderedDict"): collections.OrderedDict,  # a built-in class: BUILD cannot change it
        ("torch._utils", "_rebuild_tensor_v2"): lambda *args: rebuild_tensor(*args),
        ("torch._utils", "_rebuild_parameter"): lambda *args: rebuild_parameter(*args),
        **{("torch", name): storage_type(name) for name in STORAGE_DTYPES},
    }


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, read_storage):
        super().__init__(file)
        self.read_storage = read_storage
        self.allowed = allowed_globals()

    def find_class(self, module: str, name: str):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise CheckpointError(f"checkpoint refers to {module:.100}.{name:.100}, which is not allowed "
                                  "in a state dict; refusing to load it") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"
                and isinstance(pid[1], StorageType) and isinstance(pid[2], str)):
            raise CheckpointError(f"unexpected persistent id (a {type(pid).__name__})")
        return self.read_storage(pid[1], pid[2])


def check_pickle(pickled: bytes) -> None:
    """Walk the pickle's opcodes without running them: each must be whole and one a state dict
    needs, and each memo index at most the count of those stored before it, as a pickler writes
    them (the unpickler sizes its memo by the largest index: a 5-byte opcode could make it take
    gigabytes)."""
    puts = 0
    for opcode, arg, _ in pickletools.genops(pickled):
        if opcode.name not in STATE_DICT_OPCODES:
            raise CheckpointError(f"the pickle uses the opcode {opcode.name}, which a state dict does not need")
        if opcode.name in MEMO_PUTS:
            if arg > puts:
                raise CheckpointError(f"the pickle stores memo entry {shown(arg)} after only {puts}")
            puts += 1


class Archive:
    """A checkpoint's zip, whose entries are read whole, each once, and only while all those read
    fit in the archive's own size: PyTorch stores them uncompressed, so an entry that inflates
    past it is a zip bomb."""

    def __init__(self, archive: zipfile.ZipFile, size: int):
        self.archive, self.size, self.budget = archive, size, size

    def read(self, name: str, limit: int | None = None) -> bytes:
        """The entry's bytes, refused if they would be more than `limit`, or than the archive can
        hold besides the entries read before."""
        try:
            info = self.archive.getinfo(name)
        except KeyError:
            raise CheckpointError(f"{shown(name)} is missing from the archive") from None
        if info.compress_type not in UNCOMPRESSED_OR_DEFLATED:
            raise CheckpointError(f"{shown(name)} is compressed with method {info.compress_type}, "
                                  "which PyTorch does not use")
        if limit is not None and info.file_size > limit:
            raise CheckpointError(f"{shown(name)} has {info.file_size} bytes, more than the {limit} it may have")
        if info.file_size > self.budget:
            raise CheckpointError(f"{shown(name)} would expand to {info.file_size} bytes, more than the "
                                  f"{self.size}-byte archive can hold with the entries read before it")
        self.budget -= info.file_size
        with self.archive.open(info) as entry:
            return entry.read(info.file_size)  # never more, whatever the compressed data holds


def read_torch_checkpoint(buf: bytes | memoryview,
                          file: str = "pytorch_model.bin") -> dict[str, tuple[str, np.ndarray]]:
    """Return {name: (dtype name, array)} from a `torch.save`d state dict (zip format); arrays
    are read-only views of the storages. Errors name the file as `file`."""
    try:
        state = load_state(buf)
    except CheckpointError as e:
        raise CheckpointError(f"{file}: {e}") from None
    except Exception as e:  # zipfile, zlib and pickle fail in many ways on damaged bytes; none of them runs code
        raise CheckpointError(f"{file}: damaged checkpoint ({type(e).__name__}: {e!s:.200})") from None
    if not (isinstance(state, dict) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items())):
        raise CheckpointError(f"{file}: the checkpoint is not a state dict of tensors")
    return dict(state)


def load_state(buf: bytes | memoryview) -> object:
    """What the archive's data.pkl holds, its storages read from the archive."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(buf))
    except zipfile.BadZipFile:
        raise CheckpointError("not a PyTorch zip checkpoint (legacy pre-1.6 files are not supported: "
                              "convert them to safetensors)") from None
    with archive:
        entries = Archive(archive, len(buf))
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise CheckpointError("checkpoint has no single data.pkl")
        prefix = pickles[0][: -len("data.pkl")]
        if f"{prefix}byteorder" in names and entries.read(f"{prefix}byteorder", limit=16) != b"little":
            raise CheckpointError("big-endian checkpoints are not supported")
        storages: dict[str, Storage] = {}

        def read_storage(kind: StorageType, key: str) -> Storage:
            if key not in storages:
                raw = entries.read(f"{prefix}data/{key}")
                if len(raw) % kind.dtype.itemsize:
                    raise CheckpointError(f"storage {shown(key)} is not a whole number of {kind.dtype_name}")
                storages[key] = Storage(kind.dtype_name, np.frombuffer(raw, dtype=kind.dtype))
            return storages[key]

        pickled = entries.read(pickles[0], limit=MAX_PICKLE)
        check_pickle(pickled)
        return RestrictedUnpickler(io.BytesIO(pickled), read_storage).load()
