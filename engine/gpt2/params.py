"""GPT-2's parameters: the arrays the forward pass uses, the table of a checkpoint's tensors
that make them (Hugging Face names, stored shapes), and what a shard keeps of each."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .config import GPT2Config


@dataclass
class Block:
    """One transformer block; linear weights are (out, in)."""

    ln_1_g: np.ndarray
    ln_1_b: np.ndarray
    w_qkv: np.ndarray    # [3*width, n_embd]: query, key, value of this shard's heads, stacked
    b_qkv: np.ndarray
    w_attn_proj: np.ndarray  # [n_embd, width]
    b_attn_proj: np.ndarray
    ln_2_g: np.ndarray
    ln_2_b: np.ndarray
    w_fc: np.ndarray     # [inner, n_embd]
    b_fc: np.ndarray
    w_mlp_proj: np.ndarray  # [n_embd, inner]
    b_mlp_proj: np.ndarray


@dataclass
class Params:
    """The weights of a GPT-2, or of one shard of it: the token embedding and the LM head hold
    the rows of vocabulary ids vocab_start..vocab_start+len(wte); wpe is None off the first shard."""

    wte: np.ndarray      # [vocab, n_embd] (or the tied LM head held by kernels)
    wpe: np.ndarray | None  # [n_ctx, n_embd]
    blocks: list[Block]
    ln_f_g: np.ndarray
    ln_f_b: np.ndarray
    lm_head: np.ndarray  # [vocab, n_embd]; the same array as wte when tied (or held by kernels)
    vocab_start: int = 0
    tied: bool = False  # the LM head is wte

    @property
    def arrays(self) -> list[np.ndarray]:
        """Every array once (a tied LM head is wte)."""
        own_head = [] if self.tied else [self.lm_head]
        tops = [a for a in (self.wte, self.wpe, self.ln_f_g, self.ln_f_b) if a is not None]
        return tops + [a for block in self.blocks for a in vars(block).values()] + own_head


class Tensor(NamedTuple):
    """A tensor of a checkpoint: the field it fills (of a Block when layer is not None), its
    shape as stored, whether it is stored (in, out) (Conv1D) and must be transposed, and
    whether a checkpoint may lack it."""

    field: str
    layer: int | None
    shape: tuple[int, ...]
    transposed: bool = False
    optional: bool = False


BLOCK_TENSORS = {  # Hugging Face name within block i (h.{i}.) -> Block field
    "ln_1.weight": "ln_1_g", "ln_1.bias": "ln_1_b", "attn.c_attn.weight": "w_qkv", "attn.c_attn.bias": "b_qkv",
    "attn.c_proj.weight": "w_attn_proj", "attn.c_proj.bias": "b_attn_proj", "ln_2.weight": "ln_2_g",
    "ln_2.bias": "ln_2_b", "mlp.c_fc.weight": "w_fc", "mlp.c_fc.bias": "b_fc", "mlp.c_proj.weight": "w_mlp_proj",
    "mlp.c_proj.bias": "b_mlp_proj",
}
TOP_TENSORS = {"wte.weight": "wte", "wpe.weight": "wpe", "ln_f.weight": "ln_f_g", "ln_f.bias": "ln_f_b",
               "lm_head.weight": "lm_head"}
MATRICES = {"w_qkv", "w_attn_proj", "w_fc", "w_mlp_proj"}  # a block's weight matrices, (out, in)
CONV1D = MATRICES  # stored (in, out) by Hugging Face's Conv1D: transposed when read
OPTIONAL = {"lm_head"}  # absent: tied to wte
PREFIX = "transformer."  # GPT2LMHeadModel's names; GPT2Model's have none
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers of old checkpoints


def stored_shapes(config: GPT2Config) -> dict[str, tuple[int, ...]]:
    """The shape of each field's tensor in a checkpoint."""
    c, inner, vocab = config.n_embd, config.n_inner, config.n_vocab
    return {"ln_1_g": (c,), "ln_1_b": (c,), "w_qkv": (c, 3 * c), "b_qkv": (3 * c,), "w_attn_proj": (c, c),
            "b_attn_proj": (c,), "ln_2_g": (c,), "ln_2_b": (c,), "w_fc": (c, inner), "b_fc": (inner,),
            "w_mlp_proj": (inner, c), "b_mlp_proj": (c,), "wte": (vocab, c), "wpe": (config.n_ctx, c),
            "ln_f_g": (c,), "ln_f_b": (c,), "lm_head": (vocab, c)}


def tensors(config: GPT2Config) -> dict[str, Tensor]:
    """Every tensor of a GPT-2 checkpoint, by name (without "transformer.")."""
    shapes = stored_shapes(config)
    spec = lambda field, layer: Tensor(field, layer, shapes[field], field in CONV1D, field in OPTIONAL)  # noqa: E731
    table = {f"h.{i}.{name}": spec(field, i) for i in range(config.n_layer) for name, field in BLOCK_TENSORS.items()}
    return table | {name: spec(field, None) for name, field in TOP_TENSORS.items()}


def every_row(matrix) -> np.ndarray:
    """A matrix as a NumPy array: itself, or all its rows read back from where it is held."""
    return matrix if isinstance(matrix, np.ndarray) else matrix[np.arange(len(matrix))]


def make_params(config: GPT2Config, blocks: list[dict], top: dict, keep: object = None) -> Params:
    """Params from the arrays of each block's fields and of the other fields, as kept by
    `keep` (a ShardSlicer: a shard's parts). The LM head is tied to wte when absent or equal to it."""
    wte, lm_head = top["wte"], top.get("lm_head")
    vocab_start = keep.vocab.start if isinstance(keep, ShardSlicer) else 0
    tied = lm_head is None or lm_head is wte or np.array_equal(lm_head, every_row(wte))
    return Params(wte=wte, wpe=top["wpe"], blocks=[Block(**arrays) for arrays in blocks], ln_f_g=top["ln_f_g"],
                  ln_f_b=top["ln_f_b"], lm_head=wte if tied else lm_head, vocab_start=vocab_start, tied=tied)


def map_matrices(params: Params, hold: Callable[[np.ndarray], object] | None, head: bool = False,
                 tied_embedding: bool = False) -> Params:
    """The params with each block's weight matrices, and with `head` the LM head's, replaced by
    hold(matrix): one held by WASM kernels, say (no hold: the params as they are). The token
    embedding stays a NumPy array, unless `tied_embedding` and the head is tied: then wte is the
    held head too (what hold returns must then give rows as w[ids] does, and len(w))."""
    if hold is None:
        return params
    blocks = [Block(**{field: hold(a) if field in MATRICES else a for field, a in vars(block).items()})
              for block in params.blocks]
    lm_head = hold(params.lm_head) if head else params.lm_head
    wte = lm_head if head and tied_embedding and params.tied else params.wte
    return Params(wte=wte, wpe=params.wpe, blocks=blocks, ln_f_g=params.ln_f_g, ln_f_b=params.ln_f_b,
                  lm_head=lm_head, vocab_start=params.vocab_start, tied=params.tied)


def split_range(n: int, parts: int, index: int) -> slice:
    """The index-th of `parts` contiguous, near-equal ranges of range(n); the first ones are
    one longer when n does not divide evenly."""
    size, extra = divmod(n, parts)
    start = index * size + min(index, extra)
    return slice(start, start + size + (index < extra))


def max_shards(config: GPT2Config) -> int:
    """A shard holds at least one attention head."""
    return config.n_head


class ShardSlicer:
    """What shard `index` of n_shards keeps of each parameter: the rows of W_qkv and b_qkv of
    its heads' q, k, v, their columns of w_attn_proj, its hidden units' rows of w_fc and b_fc
    and columns of w_mlp_proj, its vocabulary rows of wte and lm_head, wpe on shard 0 only;
    the rest whole (layer norms, the output biases). Called as keep(field, array). With `hold`,
    the block matrices (and with hold_embedding its rows of wte) are handed to hold(part) as
    they come (map_matrices' hold), so the shard's NumPy copies of them never exist all at once."""

    def __init__(self, config: GPT2Config, index: int, n_shards: int,
                 hold: Callable[[np.ndarray], object] | None = None, hold_embedding: bool = False):
        if not 1 <= n_shards <= max_shards(config):
            raise ValueError(f"{n_shards} shards for {config.n_head} heads: use 1 to {config.n_head}")
        c, d = config.n_embd, config.head_dim
        self.index, self.hold = index, hold
        self.held_fields = (MATRICES | ({"wte"} if hold_embedding else set())) if hold else set()
        self.heads = split_range(config.n_head, n_shards, index)
        self.vocab = split_range(config.n_vocab, n_shards, index)
        cols = slice(self.heads.start * d, self.heads.stop * d)
        qkv = np.r_[cols, c + cols.start:c + cols.stop, 2 * c + cols.start:2 * c + cols.stop]
        inner = split_range(config.n_inner, n_shards, index)
        parts = {"w_qkv": qkv, "b_qkv": qkv, "w_attn_proj": (slice(None), cols), "w_fc": inner, "b_fc": inner,
                 "w_mlp_proj": (slice(None), inner), "wte": self.vocab, "lm_head": self.vocab}
        self.parts = parts if n_shards > 1 else {}  # one shard keeps everything whole: no index copies

    def rows(self, field: str) -> slice | None:
        """The rows of a stored tensor this shard keeps, for the fields it keeps rows of (its
        vocabulary of wte and lm_head; none of wpe off shard 0), so a reader can skip the rest."""
        if field == "wpe":
            return slice(0, 0) if self.index else None
        return self.vocab if field in ("wte", "lm_head") else None

    def __call__(self, field: str, array: np.ndarray) -> object:
        """This shard's part of a parameter, as a C-contiguous copy that holds no reference to
        `array` (or what hold made of it, a copy of its own); None for wpe off shard 0."""
        if field == "wpe" and self.index:
            return None
        part = array[self.parts.get(field, ...)]
        return self.held(field, part if field in self.held_fields else part.copy())  # hold copies

    def held(self, field: str, part: np.ndarray) -> object:
        """This shard's part of a parameter (cut already, by __call__ or by a reader of its rows)
        as the shard keeps it: what hold made of it, for the fields held."""
        return self.hold(part) if field in self.held_fields else part


def slice_params(params: Params, config: GPT2Config, index: int, n_shards: int) -> Params:
    """Shard `index` of n_shards's parts of the whole params: copies, so the whole Params can
    be freed afterwards. A tied LM head stays the same array as wte."""
    keep = ShardSlicer(config, index, n_shards)
    top = {field: keep(field, getattr(params, field)) for field in ("wte", "wpe", "ln_f_g", "ln_f_b")}
    top["lm_head"] = top["wte"] if params.tied else keep("lm_head", params.lm_head)
    blocks = [{field: keep(field, a) for field, a in vars(block).items()} for block in params.blocks]
    return make_params(config, blocks, top, keep)


def shard_heads(params: Params, config: GPT2Config) -> int:
    """How many attention heads the params hold."""
    return params.blocks[0].w_qkv.shape[0] // (3 * config.head_dim) if params.blocks else config.n_head
