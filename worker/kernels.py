"""The weight products on WebAssembly SIMD: at load, a model's weight matrices move from NumPy
into the kernel module's own memory (kernels/, through worker/kernels.js), a second address
space beside Pyodide's heap, and the forward pass multiplies by them there. NumPy's einsum
stays the reference and the fallback: ?kernels=numpy, or a browser without WASM SIMD."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pyscript.js_modules import kernels as wasm_kernels

CHOICES = ("simd", "numpy")


class HeldWeight:
    """A weight matrix [n_out, n_in] held in the kernels' memory, which the forward pass
    multiplies by (engine/gpt2/forward.py's project)."""

    def __init__(self, kernels, matrix: np.ndarray):
        self.kernels, self.shape = kernels, matrix.shape
        self.handle = kernels.addWeight(np.ascontiguousarray(matrix, dtype=np.float32))

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def nbytes(self) -> int:
        return 4 * self.size

    def matmul_t(self, x: np.ndarray) -> np.ndarray:
        """x @ w.T: [n_seq, n_in] -> [n_seq, n_out]"""
        y = np.empty((x.shape[0], self.shape[0]), dtype=np.float32)
        self.kernels.matmulInto(np.ascontiguousarray(x, dtype=np.float32), self.handle, y)
        return y


async def weight_holder(choice: str) -> Callable[[object], object] | None:
    """For choice "simd" where the browser has WASM SIMD: a function that moves a weight matrix
    into the memory of a new instance of the kernels (one per model) and returns its HeldWeight
    (a HeldWeight given stays as it is). None for NumPy: "numpy", or no WASM SIMD."""
    if choice not in CHOICES:
        raise ValueError(f"kernels must be one of {', '.join(CHOICES)}, not {choice!r}")
    if choice == "numpy" or not wasm_kernels.simdSupported():
        return None
    kernels = await wasm_kernels.create()
    return lambda matrix: matrix if isinstance(matrix, HeldWeight) else HeldWeight(kernels, matrix)


def kernels_of(params) -> str:
    """Which kernels multiply by the params' weights: "simd" or "numpy"."""
    return "simd" if any(isinstance(a, HeldWeight) for a in params.arrays) else "numpy"


def kernels_bytes(params) -> int:
    """Bytes of the memory of the kernels that hold the params' weights (0 for NumPy's)."""
    held = next((a for a in params.arrays if isinstance(a, HeldWeight)), None)
    return int(held.kernels.bytes) if held else 0
