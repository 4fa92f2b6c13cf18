"""Checkpoint tensors (Hugging Face names, any file format) -> a model family's float32 params,
by the tensor table of its module (engine/gpt2: tensors, make_params)."""
from __future__ import annotations

from types import ModuleType
from typing import Protocol

import numpy as np


class WeightsError(ValueError):
    """The tensors do not make the GPT-2 that config.json describes."""


def to_float32(dtype_name: str, array: np.ndarray) -> np.ndarray:
    """Widen F32/F16/BF16 (and F64) to a float32 array."""
    if dtype_name == "BF16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    if dtype_name in ("F32", "F16", "F64"):
        return array.astype(np.float32)
    raise WeightsError(f"weights of dtype {dtype_name} are not supported")


def check_finite(name: str, array: np.ndarray) -> None:
    """Refuse NaN and infinite weights. Their sum is finite only if they all are (NaN and inf
    carry through a sum; inf - inf is NaN), and takes no memory; only a sum that overflowed
    float32 is checked weight by weight."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(array.sum()) or np.isfinite(array).all():
            return
    raise WeightsError(f"tensor {name} has NaN or infinite values")


TRANSPOSE_ROWS = 8  # rows transposed at a time: NumPy's strided copy is bound by cache misses


def transposed_in_place(array: np.ndarray) -> np.ndarray:
    """The transpose of a 2-D array, written over the array's own memory (a buffer the caller
    gave away, e.g. a download), so a checkpoint's float32 weights are not copied whole."""
    transposed = np.empty(array.shape[::-1], dtype=array.dtype)
    for start in range(0, array.shape[0], TRANSPOSE_ROWS):  # twice as fast in Pyodide as one copy
        transposed[:, start:start + TRANSPOSE_ROWS] = array[start:start + TRANSPOSE_ROWS].T
    flat = array.reshape(-1)
    flat[:] = transposed.reshape(-1)
    return flat.reshape(transposed.shape)


def engine_array(dtype_name: str, array: np.ndarray, transpose: bool) -> np.ndarray:
    """A checkpoint tensor as a C-contiguous float32 array, transposed if asked. Writable float32
    tensors (in a buffer handed over, like a download) are used in place, transposed over
    themselves where needed; others are copied."""
    if dtype_name == "F32" and array.flags.writeable and array.flags.aligned and array.flags.c_contiguous:
        return transposed_in_place(array) if transpose else array
    return np.ascontiguousarray(to_float32(dtype_name, array.T if transpose else array))


class Keep(Protocol):
    """What a reader keeps of each tensor (an architecture's ShardSlicer keeps a shard's parts)."""

    def __call__(self, field: str, array: np.ndarray) -> np.ndarray | None: ...

    def rows(self, field: str) -> slice | None: ...

    def held(self, field: str, part: np.ndarray) -> object: ...


class ParamsBuilder:
    """Builds params from checkpoint tensors handed over one at a time, in any order. Each is
    checked against the family's table, made float32 in the engine's layout, then passed to
    keep(field, array), which returns what to keep of it (a shard's slice, say; None: nothing),
    so the whole tensor can be freed at once."""

    def __init__(self, architecture: ModuleType, config, keep: Keep | None = None):
        self.architecture, self.config, self.keep = architecture, config, keep
        self.table = architecture.tensors(config)
        self.arrays: dict[int | None, dict[str, np.ndarray | None]] = {i: {} for i in [None, *range(config.n_layer)]}

    def rows(self, name: str) -> slice | None:
        """The rows of a tensor that keep wants, when it only wants some rows of it: a reader
        may then read only those and hand them to `add` (SafetensorsStream's rows)."""
        entry = self.table.get(name.removeprefix(self.architecture.PREFIX))
        return self.keep.rows(entry.field) if self.keep and entry else None

    def add(self, name: str, dtype_name: str, array: np.ndarray) -> None:
        """Take one tensor of the checkpoint (only self.rows(name) of it, when that is not None);
        the caller may free it when this returns."""
        rows = self.rows(name)
        name = name.removeprefix(self.architecture.PREFIX)
        if name.endswith(self.architecture.IGNORED_SUFFIXES):
            return
        if name not in self.table:
            raise WeightsError(f"unexpected tensor {name} (not a {self.config.model_type} of this config?)")
        field, layer, shape, transposed, _ = self.table[name]
        if field in self.arrays[layer]:
            raise WeightsError(f"tensor {name} appears twice")
        if rows is not None:
            shape = (len(range(*rows.indices(shape[0]))), *shape[1:])
        if array.shape != shape:
            raise WeightsError(f"tensor {name} has shape {tuple(array.shape)}, expected {shape}")
        with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, refused below
            array = engine_array(dtype_name, array, transposed)
        check_finite(name, array)
        if rows is not None:
            self.arrays[layer][field] = self.keep.held(field, array) if array.size else None
        else:
            self.arrays[layer][field] = self.keep(field, array) if self.keep else array

    def finish(self):
        """The params, once every tensor came."""
        for name, tensor in self.table.items():
            if tensor.field not in self.arrays[tensor.layer] and not tensor.optional:
                raise WeightsError(f"tensor {name} is missing")
        blocks = [self.arrays[i] for i in range(self.config.n_layer)]
        return self.architecture.make_params(self.config, blocks, self.arrays[None], self.keep)


def build_params(architecture: ModuleType, tensors: dict[str, tuple[str, np.ndarray]], config):
    """Check every tensor against the config and lay the weights out for the engine."""
    builder = ParamsBuilder(architecture, config)
    for name, (dtype_name, array) in tensors.items():
        builder.add(name, dtype_name, array)
    return builder.finish()
