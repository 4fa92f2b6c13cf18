"""Checkpoint tensors (Hugging Face names, any file format) -> the engine's float32 Params."""
from __future__ import annotations

import numpy as np

from engine import GPT2Config, Params
from engine.gpt2 import Block

IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers of old checkpoints


class WeightsError(ValueError):
    """The tensors do not make the GPT-2 that config.json describes."""


def to_float32(dtype_name: str, array: np.ndarray) -> np.ndarray:
    """Widen F32/F16/BF16 (and F64) to a float32 array."""
    if dtype_name == "BF16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    if dtype_name in ("F32", "F16", "F64"):
        return array.astype(np.float32)
    raise WeightsError(f"weights of dtype {dtype_name} are not supported")


def transposed_in_place(array: np.ndarray) -> np.ndarray:
    """The transpose of a 2-D array, written over the array's own memory (a buffer the caller
    gave away, e.g. a download), so a checkpoint's float32 weights are not copied whole."""
    transposed = np.ascontiguousarray(array.T)
    flat = array.reshape(-1)
    flat[:] = transposed.reshape(-1)
    return flat.reshape(transposed.shape)


class TensorTaker:
    """Hands out each named tensor once, as float32 of the expected shape, then forgets it.
    Writable float32 tensors (views into a buffer handed over, like a download) are used in
    place, transposed over themselves where needed; others are copied."""

    def __init__(self, tensors: dict[str, tuple[str, np.ndarray]]):
        self.tensors = {name.removeprefix("transformer."): value for name, value in tensors.items()
                        if not name.endswith(IGNORED_SUFFIXES)}

    def take(self, name: str, shape: tuple[int, ...], transpose: bool = False) -> np.ndarray:
        if name not in self.tensors:
            raise WeightsError(f"tensor {name} is missing")
        dtype_name, array = self.tensors.pop(name)
        if array.shape != shape:
            raise WeightsError(f"tensor {name} has shape {tuple(array.shape)}, expected {shape}")
        if dtype_name == "F32" and array.flags.writeable and array.flags.aligned and array.flags.c_contiguous:
            return transposed_in_place(array) if transpose else array
        out = to_float32(dtype_name, array.T if transpose else array)
        return np.ascontiguousarray(out)

    def conv1d(self, name: str, n_in: int, n_out: int) -> np.ndarray:
        """Hugging Face stores GPT-2's linear weights (in, out); the engine wants (out, in)."""
        return self.take(name, (n_in, n_out), transpose=True)


def build_params(tensors: dict[str, tuple[str, np.ndarray]], config: GPT2Config) -> Params:
    """Check every tensor against the config and lay the weights out for the engine."""
    t = TensorTaker(tensors)
    c, inner = config.n_embd, config.n_inner
    blocks = []
    for i in range(config.n_layer):
        p = f"h.{i}."
        blocks.append(Block(
            ln_1_g=t.take(p + "ln_1.weight", (c,)), ln_1_b=t.take(p + "ln_1.bias", (c,)),
            w_qkv=t.conv1d(p + "attn.c_attn.weight", c, 3 * c), b_qkv=t.take(p + "attn.c_attn.bias", (3 * c,)),
            w_attn_proj=t.conv1d(p + "attn.c_proj.weight", c, c), b_attn_proj=t.take(p + "attn.c_proj.bias", (c,)),
            ln_2_g=t.take(p + "ln_2.weight", (c,)), ln_2_b=t.take(p + "ln_2.bias", (c,)),
            w_fc=t.conv1d(p + "mlp.c_fc.weight", c, inner), b_fc=t.take(p + "mlp.c_fc.bias", (inner,)),
            w_mlp_proj=t.conv1d(p + "mlp.c_proj.weight", inner, c), b_mlp_proj=t.take(p + "mlp.c_proj.bias", (c,)),
        ))
    wte = t.take("wte.weight", (config.n_vocab, c))
    params = Params(
        wte=wte, wpe=t.take("wpe.weight", (config.n_ctx, c)), blocks=blocks,
        ln_f_g=t.take("ln_f.weight", (c,)), ln_f_b=t.take("ln_f.bias", (c,)),
        lm_head=wte if "lm_head.weight" not in t.tensors else tied_or_own(t.take("lm_head.weight", (config.n_vocab, c)), wte),
    )
    if t.tensors:
        raise WeightsError(f"unexpected tensors (not a GPT-2 of this config?): {sorted(t.tensors)[:5]}")
    return params


def tied_or_own(lm_head: np.ndarray, wte: np.ndarray) -> np.ndarray:
    """GPT-2 ties the LM head to the token embedding: keep one copy when they are equal."""
    return wte if np.array_equal(lm_head, wte) else lm_head
