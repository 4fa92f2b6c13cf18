"""Tensor parallelism: one GPT-2 split over several workers, with the same tokens as one.

Each shard owns a contiguous range of the attention heads (their rows of W_qkv, their columns
of W_attn_proj), of the MLP's hidden units (rows of w_fc, columns of w_mlp_proj) and of the
vocabulary (rows of the token embedding and of the LM head); layer norms and the two output
biases are small and every shard holds them. Every shard keeps its own copy of the residual
stream and of the keys/values of its heads.

A coordinator moves float32 arrays between the shards, and does nothing but add them up:

    partials = [shard.feed(ids, position, last_only) for shard in shards]
    for _ in range(2 * n_layer + 1):
        partials = [shard.exchange(all_reduce(partials)) for shard in shards]
    logits = np.concatenate(partials, axis=-1)

The first partials are token + position embeddings (each row comes from the one shard that
owns its token, so the sum is exact); then, per layer, the attention output's and the MLP
output's partial products (the all-reduces); last, each shard's slice of the logits.
`all_reduce` sums in shard order, in float32, exactly as app/parallel.js does, so CPython
predicts the browser's sums bit for bit. The generation loop is engine.generation's `Decoder`:
it says which ids to feed where and turns the logits that come back into Steps.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np

from .generation import Decoder, Step, TokenizerLike
from .gpt2 import (Block, GPT2Config, KVCache, Params, attention, gelu, layer_norm, linear, matmul_t, merge_heads,
                   split_heads)
from .sampling import GenerationSettings


def split_range(n: int, parts: int, index: int) -> slice:
    """The index-th of `parts` contiguous, near-equal ranges of range(n); the first ones are
    one longer when n does not divide evenly."""
    size, extra = divmod(n, parts)
    start = index * size + min(index, extra)
    return slice(start, start + size + (index < extra))


def all_reduce(partials: Sequence[np.ndarray]) -> np.ndarray:
    """The sum of the shards' partial arrays, in shard order, in float32."""
    total = np.array(partials[0], dtype=np.float32)
    for partial in partials[1:]:
        total += partial
    return total


class ShardSlicer:
    """What shard `index` of n_shards keeps of each parameter: the rows of W_qkv and b_qkv of
    its heads' q, k, v, their columns of w_attn_proj, its hidden units' rows of w_fc and b_fc
    and columns of w_mlp_proj, its vocabulary rows of wte and lm_head, wpe on shard 0 only;
    the rest whole. Called as keep(field, array), for model_loader.weights.ParamsBuilder."""

    def __init__(self, config: GPT2Config, index: int, n_shards: int):
        if not 1 <= n_shards <= config.n_head:
            raise ValueError(f"{n_shards} shards for {config.n_head} heads: use 1 to {config.n_head}")
        c, d = config.n_embd, config.head_dim
        self.index = index
        self.heads = split_range(config.n_head, n_shards, index)
        self.vocab = split_range(config.n_vocab, n_shards, index)
        cols = slice(self.heads.start * d, self.heads.stop * d)
        qkv = np.r_[cols, c + cols.start:c + cols.stop, 2 * c + cols.start:2 * c + cols.stop]
        inner = split_range(config.n_inner, n_shards, index)
        self.parts = {"w_qkv": qkv, "b_qkv": qkv, "w_attn_proj": (slice(None), cols), "w_fc": inner, "b_fc": inner,
                      "w_mlp_proj": (slice(None), inner), "wte": self.vocab, "lm_head": self.vocab}

    def rows(self, field: str) -> slice | None:
        """The rows of a stored tensor this shard keeps, for the fields it keeps rows of (its
        vocabulary of wte and lm_head; none of wpe off shard 0), so a reader can skip the rest."""
        if field == "wpe":
            return slice(0, 0) if self.index else None
        return self.vocab if field in ("wte", "lm_head") else None

    def __call__(self, field: str, array: np.ndarray) -> np.ndarray | None:
        """This shard's part of a parameter (a Block field, or wte, wpe, ln_f_g, ln_f_b, lm_head),
        as a C-contiguous copy that holds no reference to `array`; None for wpe off shard 0."""
        if field == "wpe" and self.index:
            return None
        return array[self.parts.get(field, ...)].copy()


def slice_params(params: Params, config: GPT2Config, index: int, n_shards: int) -> Params:
    """Shard `index` of n_shards's parts of the whole params (see ShardSlicer): copies, so the
    whole Params can be freed afterwards. A tied LM head stays the same array as wte."""
    keep = ShardSlicer(config, index, n_shards)
    wte = keep("wte", params.wte)
    return Params(wte=wte, wpe=keep("wpe", params.wpe),
                  blocks=[Block(**{field: keep(field, a) for field, a in vars(b).items()}) for b in params.blocks],
                  ln_f_g=keep("ln_f_g", params.ln_f_g), ln_f_b=keep("ln_f_b", params.ln_f_b),
                  lm_head=wte if params.lm_head is params.wte else keep("lm_head", params.lm_head))


class Shard:
    """One worker's part of the model and its state between two exchanges."""

    def __init__(self, params: Params, config: GPT2Config, index: int, n_shards: int, *, sliced: bool = False):
        """Shard `index` of n_shards of the whole `params`; or, when `sliced`, of params that
        already are that shard's parts (slice_params, or a checkpoint read with ShardSlicer)."""
        slicer = ShardSlicer(config, index, n_shards)
        parts = params if sliced else slice_params(params, config, index, n_shards)
        self.config, self.index, self.n_shards = config, index, n_shards
        self.blocks, self.wte, self.lm_head, self.wpe = parts.blocks, parts.wte, parts.lm_head, parts.wpe
        self.ln_f_g, self.ln_f_b, self.vocab = parts.ln_f_g, parts.ln_f_b, slicer.vocab
        self.n_head = slicer.heads.stop - slicer.heads.start
        local = replace(config, n_head=self.n_head, n_embd=self.n_head * config.head_dim)
        self.cache = KVCache(local)
        self.x: np.ndarray | None = None
        self.phase = -1  # exchanges done since the last feed
        self.n_new, self.last_only = 0, False

    @property
    def nbytes(self) -> int:
        arrays = [self.wte, self.ln_f_g, self.ln_f_b, self.cache.k, self.cache.v_t]
        arrays += [a for b in self.blocks for a in vars(b).values()]
        arrays += [a for a in (self.wpe, None if self.lm_head is self.wte else self.lm_head) if a is not None]
        return sum(a.nbytes for a in arrays)

    def feed(self, ids: Sequence[int], position: int, last_only: bool = True) -> np.ndarray:
        """Start a forward pass of new tokens written at `position` of the cache (earlier
        entries are kept, later ones forgotten); return this shard's part of their embeddings
        (T, n_embd): the rows of the tokens it owns, plus the positions on shard 0."""
        if position + len(ids) > self.config.n_ctx:
            raise ValueError(f"{position + len(ids)} tokens do not fit the context of {self.config.n_ctx}")
        self.cache.length, self.n_new, self.last_only, self.phase = position, len(ids), last_only, 0
        ids = np.asarray(ids, dtype=np.int64)
        mine = (ids >= self.vocab.start) & (ids < self.vocab.stop)
        x = np.zeros((len(ids), self.config.n_embd), dtype=np.float32)
        x[mine] = self.wte[ids[mine] - self.vocab.start]
        if self.wpe is not None:
            x += self.wpe[position:position + len(ids)]
        return x

    def exchange(self, total: np.ndarray) -> np.ndarray:
        """Take the sum of every shard's last partials; return the next partials: attention
        output, MLP output, ..., then after the last layer this shard's logits (T, its vocab)."""
        config, phase = self.config, self.phase
        total = np.asarray(total, dtype=np.float32).reshape(-1, config.n_embd)
        layer, half = divmod(phase - 1, 2)
        if phase == 0:
            self.x = total
        elif half == 0:
            block = self.blocks[layer]
            total += block.b_attn_proj
            self.x = self.x[self.queries(layer)] + total
        else:
            total += self.blocks[layer].b_mlp_proj
            self.x = self.x + total
        self.phase += 1
        if phase == 2 * config.n_layer:
            self.cache.length += self.n_new
            self.phase = -1
            return matmul_t(layer_norm(self.x, self.ln_f_g, self.ln_f_b, config.eps), self.lm_head)
        layer, half = divmod(phase, 2)
        block = self.blocks[layer]
        if half == 0:
            return self.attention_partial(block, layer)
        h = linear(layer_norm(self.x, block.ln_2_g, block.ln_2_b, config.eps), block.w_fc, block.b_fc)
        return matmul_t(gelu(h), block.w_mlp_proj)

    def queries(self, layer: int) -> slice:
        """The rows answered by a layer: the last one only in the last layer of a last_only pass."""
        return slice(-1, None) if self.last_only and layer == self.config.n_layer - 1 else slice(None)

    def attention_partial(self, block: Block, layer: int) -> np.ndarray:
        """This shard's heads: their keys/values go to the cache; returns their part of the
        output projection (T', n_embd), without the bias."""
        x = layer_norm(self.x, block.ln_1_g, block.ln_1_b, self.config.eps)
        qkv = linear(x, block.w_qkv, block.b_qkv)
        width = qkv.shape[-1] // 3
        q, k, v = qkv[self.queries(layer), :width], qkv[:, width:2 * width], qkv[:, 2 * width:]
        keys, values_t = self.cache.append(layer, split_heads(k, self.n_head), split_heads(v, self.n_head))
        out = attention(split_heads(q, self.n_head), keys, values_t)
        return matmul_t(merge_heads(out), block.w_attn_proj)


def run_shards(shards: Sequence[Shard], ids: Sequence[int], position: int, last_only: bool = True) -> np.ndarray:
    """The coordinator, in process: one forward pass; the logits (T or 1, n_vocab)."""
    partials = [shard.feed(ids, position, last_only) for shard in shards]
    for _ in range(2 * shards[0].config.n_layer + 1):
        total = all_reduce(partials)
        partials = [shard.exchange(total.copy()) for shard in shards]
    return np.concatenate(partials, axis=-1)


def generate_sharded(shards: Sequence[Shard], tokenizer: TokenizerLike, prompt: str | list[int],
                     settings: GenerationSettings) -> Iterator[Step]:
    """generate() over in-process shards (what the browser does across workers)."""
    decoder = Decoder(shards[0].config, tokenizer, prompt, settings)
    while decoder.feed is not None:
        ids, position = decoder.feed
        yield decoder.next(run_shards(shards, ids, position)[-1])


def make_shards(params: Params, config: GPT2Config, n_shards: int) -> list[Shard]:
    return [Shard(params, config, i, n_shards) for i in range(n_shards)]


__all__ = ["Shard", "ShardSlicer", "all_reduce", "generate_sharded", "make_shards", "run_shards",
           "slice_params", "split_range"]
