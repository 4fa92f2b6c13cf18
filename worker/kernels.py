"""The weight products and attention on WebAssembly SIMD: at load, a model's weight matrices
move from NumPy into the kernel module's own memory (kernels/, through worker/kernels.js), a
second address space beside Pyodide's heap, and the forward pass multiplies by them there; its
KV cache is made there too, and attention's two products run over it. NumPy stays the reference
and the fallback: ?kernels=numpy, or a browser without WASM SIMD."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyodide_js
from pyscript.js_modules import kernels as wasm_kernels

CHOICES = ("simd", "numpy")
WEIGHTS = ("float32", "int8")


class HeldWeight:
    """A weight matrix [n_out, n_in] held in the kernels' memory, which the forward pass
    multiplies by (engine/gpt2/forward.py's project)."""

    def __init__(self, kernels, matrix: np.ndarray, int8: bool):
        self.kernels, self.shape, self.int8 = kernels, matrix.shape, int8
        self.handle = kernels.addWeight(np.ascontiguousarray(matrix, dtype=np.float32), int8)

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def nbytes(self) -> int:
        """Bytes it takes in the kernels' memory (int8: one per weight, and a scale per row)."""
        return self.size + 4 * self.shape[0] if self.int8 else 4 * self.size

    def matmul_t(self, x: np.ndarray) -> np.ndarray:
        """x @ w.T: [n_seq, n_in] -> [n_seq, n_out]"""
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.empty((x.shape[0], self.shape[0]), dtype=np.float32)
        self.kernels.matmulAt(x.ctypes.data, x.shape[0], self.handle, y.ctypes.data)
        return y

    def __getitem__(self, ids: np.ndarray) -> np.ndarray:
        """Rows of a float32 matrix, as NumPy's w[ids] (the token embedding of a tied LM head
        held here): [n] -> [n, n_in]"""
        rows = np.empty((len(ids), self.shape[1]), dtype=np.float32)
        if len(rows):
            self.kernels.rowsInto(self.handle, np.ascontiguousarray(ids, dtype=np.int32), rows)
        return rows

    def __len__(self) -> int:
        return self.shape[0]


class HeldKVCache:
    """Keys and values of every layer, for the heads of one shard, in the kernels' memory, and
    attention's two products over them there: engine/gpt2/forward.py's KVCache, whose methods it
    offers, on WebAssembly SIMD. Keys and values are kept as rows, [n_head, n_ctx, head_dim]
    per layer."""

    def __init__(self, kernels, config, n_head: int):
        self.kernels, self.n_head, self.head_dim, self.length = kernels, n_head, config.head_dim, 0
        self.handle = kernels.addCache(config.n_layer, n_head, config.n_ctx, config.head_dim)
        self.nbytes = 2 * 4 * config.n_layer * n_head * config.n_ctx * config.head_dim

    def append(self, layer: int, k: np.ndarray, v: np.ndarray) -> int:
        """Store a layer's new keys and values [n_head, n_seq, head_dim] after its first `length`;
        return how many the layer holds now."""
        k, v = np.ascontiguousarray(k, dtype=np.float32), np.ascontiguousarray(v, dtype=np.float32)
        self.kernels.storeAt(self.handle, layer, self.length, k.ctypes.data, v.ctypes.data, k.shape[1])
        return self.length + k.shape[1]

    def scores(self, layer: int, q: np.ndarray, n_past: int) -> np.ndarray:
        """q [n_head, n_seq, head_dim] -> [n_head, n_seq, n_past]"""
        q = np.ascontiguousarray(q, dtype=np.float32)
        s = np.empty((self.n_head, q.shape[1], n_past), dtype=np.float32)
        self.kernels.scoresAt(self.handle, layer, q.ctypes.data, q.shape[1], n_past, s.ctypes.data)
        return s

    def mix(self, layer: int, p: np.ndarray) -> np.ndarray:
        """p [n_head, n_seq, n_past] -> [n_head, n_seq, head_dim]"""
        p = np.ascontiguousarray(p, dtype=np.float32)
        o = np.empty((self.n_head, p.shape[1], self.head_dim), dtype=np.float32)
        self.kernels.mixAt(self.handle, layer, p.ctypes.data, p.shape[1], p.shape[2], o.ctypes.data)
        return o


class Holder:
    """Moves weight matrices into one instance of the kernels (one per model), as float32 or as
    int8 with a scale per row (kernels/README.md); a HeldWeight given stays as it is."""

    def __init__(self, kernels, int8: bool):
        self.kernels, self.int8 = kernels, int8

    def __call__(self, matrix):
        return matrix if isinstance(matrix, HeldWeight) else HeldWeight(self.kernels, matrix, self.int8)

    def cache(self, config, n_head: int) -> HeldKVCache:
        """A KV cache for n_head heads of a model of this config, in the same kernels' memory."""
        return HeldKVCache(self.kernels, config, n_head)


async def weight_holder(kernels: str, weights: str) -> Holder | None:
    """A Holder for kernels "simd" where the browser has WASM SIMD; None for NumPy's einsum
    ("numpy", or no WASM SIMD), which multiplies by float32 weights whatever `weights` asks."""
    if kernels not in CHOICES or weights not in WEIGHTS:
        raise ValueError(f"kernels must be one of {', '.join(CHOICES)} and weights one of {', '.join(WEIGHTS)}, "
                         f"not {kernels!r} and {weights!r}")
    if not uses_kernels(kernels):
        return None
    return Holder(await wasm_kernels.create(pyodide_js._module), weights == "int8")


def uses_kernels(kernels: str) -> bool:
    """Whether weights asked to be held by `kernels` will be: "simd" where the browser has WASM SIMD."""
    return kernels == "simd" and bool(wasm_kernels.simdSupported())


def hold_params(params, architecture, hold: Holder | None):
    """params with the blocks' matrices and the LM head held by `hold`. In float32 a tied token
    embedding is the held head itself (its rows read back from the kernels: the matrix is held
    once, and leaves NumPy's heap); in int8 the head is a quarter-size copy beside the float32
    embedding (whose rows must stay exact)."""
    return architecture.map_matrices(params, hold, head=hold is not None, tied_embedding=holds_embedding(hold))


def holds_embedding(hold: Holder | None) -> bool:
    """Whether the token embedding goes to the kernels with `hold` (float32: as the tied LM
    head, its rows read back), or stays in NumPy (int8, whose head only approximates it)."""
    return hold is not None and not hold.int8


def held_weight(params) -> HeldWeight | None:
    """One of the params' weights held by the kernels (they share one instance), or None."""
    return next((a for a in params.arrays if isinstance(a, HeldWeight)), None)


def kernels_of(params) -> tuple[str, str]:
    """What multiplies by the params' weights, and the weights' type: ("simd", "float32" or
    "int8"), or ("numpy", "float32")."""
    held = held_weight(params)
    return ("simd", "int8" if held.int8 else "float32") if held else ("numpy", "float32")


def kernels_bytes(params) -> int:
    """Bytes of the memory of the kernels that hold the params' weights (0 for NumPy's)."""
    held = held_weight(params)
    return int(held.kernels.bytes) if held else 0
