"""Checkpoint tensors (Hugging Face names, any file format) -> the engine's float32 Params."""
from __future__ import annotations

from collections.abc import Callable

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


def check_finite(name: str, array: np.ndarray) -> None:
    """Refuse NaN and infinite weights. Their sum in float64 (which float32 values cannot make
    overflow) is finite only if they all are, and takes no memory, unlike np.isfinite."""
    with np.errstate(invalid="ignore"):  # inf - inf is NaN: refused all the same
        total = array.sum(dtype=np.float64)
    if not np.isfinite(total):
        raise WeightsError(f"tensor {name} has NaN or infinite values")


def transposed_in_place(array: np.ndarray) -> np.ndarray:
    """The transpose of a 2-D array, written over the array's own memory (a buffer the caller
    gave away, e.g. a download), so a checkpoint's float32 weights are not copied whole."""
    transposed = np.ascontiguousarray(array.T)
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


BLOCK_TENSORS = {  # Hugging Face name within block i (h.{i}.) -> Block field
    "ln_1.weight": "ln_1_g", "ln_1.bias": "ln_1_b", "attn.c_attn.weight": "w_qkv", "attn.c_attn.bias": "b_qkv",
    "attn.c_proj.weight": "w_attn_proj", "attn.c_proj.bias": "b_attn_proj", "ln_2.weight": "ln_2_g",
    "ln_2.bias": "ln_2_b", "mlp.c_fc.weight": "w_fc", "mlp.c_fc.bias": "b_fc", "mlp.c_proj.weight": "w_mlp_proj",
    "mlp.c_proj.bias": "b_mlp_proj",
}
TOP_TENSORS = {"wte.weight": "wte", "wpe.weight": "wpe", "ln_f.weight": "ln_f_g", "ln_f.bias": "ln_f_b",
               "lm_head.weight": "lm_head"}
CONV1D = {"w_qkv", "w_attn_proj", "w_fc", "w_mlp_proj"}  # stored (in, out); the engine wants (out, in)
OPTIONAL = {"lm_head.weight"}  # absent: tied to wte
Keep = Callable[[str, np.ndarray], np.ndarray | None]


def stored_shapes(config: GPT2Config) -> dict[str, tuple[int, ...]]:
    """The shape of each field's tensor in a checkpoint."""
    c, inner, vocab = config.n_embd, config.n_inner, config.n_vocab
    return {"ln_1_g": (c,), "ln_1_b": (c,), "w_qkv": (c, 3 * c), "b_qkv": (3 * c,), "w_attn_proj": (c, c),
            "b_attn_proj": (c,), "ln_2_g": (c,), "ln_2_b": (c,), "w_fc": (c, inner), "b_fc": (inner,),
            "w_mlp_proj": (inner, c), "b_mlp_proj": (c,), "wte": (vocab, c), "wpe": (config.n_ctx, c),
            "ln_f_g": (c,), "ln_f_b": (c,), "lm_head": (vocab, c)}


def tensor_table(config: GPT2Config) -> dict[str, tuple[str, int | None]]:
    """Every tensor of the checkpoint (names without "transformer.") -> (field, layer or None)."""
    table = {f"h.{i}.{name}": (field, i) for i in range(config.n_layer) for name, field in BLOCK_TENSORS.items()}
    return table | {name: (field, None) for name, field in TOP_TENSORS.items()}


class ParamsBuilder:
    """Builds Params from checkpoint tensors handed over one at a time, in any order. Each is
    checked, made float32 in the engine's layout, then passed to keep(field, array), which
    returns what to keep of it (a shard's slice, say; None: nothing), so the whole tensor can
    be freed at once."""

    def __init__(self, config: GPT2Config, keep: Keep | None = None):
        self.config, self.keep = config, keep or (lambda field, array: array)
        self.table, self.shapes = tensor_table(config), stored_shapes(config)
        self.arrays: dict[int | None, dict[str, np.ndarray | None]] = {i: {} for i in [None, *range(config.n_layer)]}

    def rows(self, name: str) -> slice | None:
        """The rows of a tensor that keep wants, when it only wants some rows of it (keep.rows):
        a reader may then read only those and hand them to `add` (SafetensorsStream's rows)."""
        rows, entry = getattr(self.keep, "rows", None), self.table.get(name.removeprefix("transformer."))
        return rows(entry[0]) if rows and entry else None

    def add(self, name: str, dtype_name: str, array: np.ndarray) -> None:
        """Take one tensor of the checkpoint (only self.rows(name) of it, when that is not None);
        the caller may free it when this returns."""
        rows = self.rows(name)
        name = name.removeprefix("transformer.")
        if name.endswith(IGNORED_SUFFIXES):
            return
        if name not in self.table:
            raise WeightsError(f"unexpected tensor {name} (not a GPT-2 of this config?)")
        field, layer = self.table[name]
        if field in self.arrays[layer]:
            raise WeightsError(f"tensor {name} appears twice")
        shape = self.shapes[field]
        if rows is not None:
            shape = (len(range(*rows.indices(shape[0]))), *shape[1:])
        if array.shape != shape:
            raise WeightsError(f"tensor {name} has shape {tuple(array.shape)}, expected {shape}")
        with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, refused below
            array = engine_array(dtype_name, array, field in CONV1D)
        check_finite(name, array)
        self.arrays[layer][field] = self.keep(field, array) if rows is None else (array if array.size else None)

    def finish(self) -> Params:
        """The Params, once every tensor came."""
        for name, (field, layer) in self.table.items():
            if field not in self.arrays[layer] and name not in OPTIONAL:
                raise WeightsError(f"tensor {name} is missing")
        top, blocks = self.arrays[None], [Block(**self.arrays[i]) for i in range(self.config.n_layer)]
        return Params(wte=top["wte"], wpe=top["wpe"], blocks=blocks, ln_f_g=top["ln_f_g"], ln_f_b=top["ln_f_b"],
                      lm_head=tied_or_own(top.get("lm_head"), top["wte"]))


def build_params(tensors: dict[str, tuple[str, np.ndarray]], config: GPT2Config) -> Params:
    """Check every tensor against the config and lay the weights out for the engine."""
    builder = ParamsBuilder(config)
    for name, (dtype_name, array) in tensors.items():
        builder.add(name, dtype_name, array)
    return builder.finish()


def tied_or_own(lm_head: np.ndarray | None, wte: np.ndarray) -> np.ndarray:
    """GPT-2 ties the LM head to the token embedding: one array when it has none or they are equal."""
    return wte if lm_head is None or np.array_equal(lm_head, wte) else lm_head
