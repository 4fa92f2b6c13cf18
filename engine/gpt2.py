"""GPT-2 forward pass in NumPy, float32, with a key/value cache.

Weights are stored (out, in) C-contiguous: in Pyodide (NumPy without BLAS) einsum over that
layout is 2-5x faster than matmul over Hugging Face's (in, out) layout; native NumPy hands the
same products to BLAS. Everything else is plain NumPy and identical on both platforms.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

if sys.platform == "emscripten":
    def matmul_t(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """a @ b.T over the last two axes."""
        return np.einsum("...ik,...jk->...ij", a, b)
else:
    def matmul_t(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """a @ b.T over the last two axes."""
        return a @ np.swapaxes(b, -1, -2)


@dataclass(frozen=True)
class GPT2Config:
    """The hyperparameters of a GPT-2 model."""

    n_vocab: int
    n_ctx: int
    n_embd: int
    n_head: int
    n_layer: int
    n_inner: int
    eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


@dataclass
class Block:
    """One transformer block; linear weights are (out, in)."""

    ln_1_g: np.ndarray
    ln_1_b: np.ndarray
    w_qkv: np.ndarray    # (3 * n_embd, n_embd): query, key, value stacked
    b_qkv: np.ndarray
    w_attn_proj: np.ndarray
    b_attn_proj: np.ndarray
    ln_2_g: np.ndarray
    ln_2_b: np.ndarray
    w_fc: np.ndarray     # (n_inner, n_embd)
    b_fc: np.ndarray
    w_mlp_proj: np.ndarray
    b_mlp_proj: np.ndarray


@dataclass
class Params:
    """All weights of a GPT-2: embeddings, blocks, final norm and the (usually tied) LM head."""

    wte: np.ndarray      # (n_vocab, n_embd)
    wpe: np.ndarray      # (n_ctx, n_embd)
    blocks: list[Block]
    ln_f_g: np.ndarray
    ln_f_b: np.ndarray
    lm_head: np.ndarray  # (n_vocab, n_embd); the same array as wte when tied


class KVCache:
    """Keys and values of every layer for the tokens seen so far, preallocated to n_ctx.
    Values are kept transposed, (head_dim, n_ctx) per head, so that both products of
    attention run over contiguous rows."""

    def __init__(self, config: GPT2Config):
        self.k = np.zeros((config.n_layer, config.n_head, config.n_ctx, config.head_dim), dtype=np.float32)
        self.v_t = np.zeros((config.n_layer, config.n_head, config.head_dim, config.n_ctx), dtype=np.float32)
        self.length = 0

    def append(self, layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Store the new keys/values (n_head, T, head_dim) of a layer; return all keys so far
        (n_head, S, head_dim) and all values transposed (n_head, head_dim, S)."""
        start, end = self.length, self.length + k.shape[1]
        self.k[layer, :, start:end] = k
        self.v_t[layer, :, :, start:end] = np.swapaxes(v, -1, -2)
        return self.k[layer, :, :end], self.v_t[layer, :, :, :end]


def gelu(x: np.ndarray) -> np.ndarray:
    # GPT-2's tanh approximation ("gelu_new"), 0.5 * x * (1 + tanh(u)), written as
    # x * sigmoid(2u): the same function, and exp costs a third of tanh in Pyodide.
    # x * x * x, as x**3 goes through the slow float pow.
    u = np.float32(np.sqrt(2 / np.pi)) * (x + np.float32(0.044715) * x * x * x)
    with np.errstate(over="ignore"):  # very negative x: exp(-2u) = inf, and x / inf = -0
        return x / (1 + np.exp(-2 * u))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


def layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    x = x - x.mean(axis=-1, keepdims=True)
    variance = (x * x).mean(axis=-1, keepdims=True)
    return g * x / np.sqrt(variance + np.float32(eps)) + b


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    y = matmul_t(x, w)
    y += b
    return y


def attention(q: np.ndarray, k: np.ndarray, v_t: np.ndarray) -> np.ndarray:
    """Causal attention of T new queries over S >= T keys, per head: q (h, T, d), k (h, S, d),
    values transposed (h, d, S)."""
    t, s = q.shape[1], k.shape[1]
    scores = matmul_t(q, k)
    scores *= np.float32(1 / np.sqrt(q.shape[-1]))
    if t > 1:  # query i sits at position s - t + i and may not see later keys
        future = np.arange(s)[None, :] > np.arange(s - t, s)[:, None]
        np.copyto(scores, np.float32(-np.inf), where=future)
    return matmul_t(softmax(scores), v_t)


def split_heads(x: np.ndarray, n_head: int) -> np.ndarray:
    """(T, n_embd) -> (n_head, T, head_dim)"""
    return x.reshape(x.shape[0], n_head, -1).transpose(1, 0, 2)


def merge_heads(x: np.ndarray) -> np.ndarray:
    """(n_head, T, head_dim) -> (T, n_embd)"""
    return x.transpose(1, 0, 2).reshape(x.shape[1], -1)


def mha(x: np.ndarray, block: Block, cache: KVCache, layer: int, n_head: int, queries: slice) -> np.ndarray:
    """Self-attention of the new tokens; only the rows `queries` of them are answered (the
    keys and values of all of them go to the cache)."""
    qkv = linear(x, block.w_qkv, block.b_qkv)
    n_embd = x.shape[-1]
    q, k, v = qkv[queries, :n_embd], qkv[:, n_embd:2 * n_embd], qkv[:, 2 * n_embd:]
    keys, values_t = cache.append(layer, split_heads(k, n_head), split_heads(v, n_head))
    out = attention(split_heads(q, n_head), keys, values_t)
    return linear(merge_heads(out), block.w_attn_proj, block.b_attn_proj)


def ffn(x: np.ndarray, block: Block) -> np.ndarray:
    return linear(gelu(linear(x, block.w_fc, block.b_fc)), block.w_mlp_proj, block.b_mlp_proj)


def transformer_block(x: np.ndarray, block: Block, cache: KVCache, layer: int, config: GPT2Config,
                      queries: slice = slice(None)) -> np.ndarray:
    x = x[queries] + mha(layer_norm(x, block.ln_1_g, block.ln_1_b, config.eps), block, cache, layer,
                         config.n_head, queries)
    return x + ffn(layer_norm(x, block.ln_2_g, block.ln_2_b, config.eps), block)


def forward(ids: list[int], params: Params, config: GPT2Config, cache: KVCache, last_only: bool = False) -> np.ndarray:
    """Run new tokens through the model after those already in the cache; return their final
    hidden states (T, n_embd), or only the last one's (1, n_embd): then the last block works
    on the last token alone once the keys and values of all are cached. The cache must have
    room for them."""
    start = cache.length
    if start + len(ids) > config.n_ctx:
        raise ValueError(f"{start + len(ids)} tokens do not fit the context of {config.n_ctx}")
    x = params.wte[ids] + params.wpe[start:start + len(ids)]
    for layer, block in enumerate(params.blocks[:-1]):
        x = transformer_block(x, block, cache, layer, config)
    x = transformer_block(x, params.blocks[-1], cache, config.n_layer - 1, config,
                          slice(-1, None) if last_only else slice(None))
    cache.length += len(ids)
    return layer_norm(x, params.ln_f_g, params.ln_f_b, config.eps)


def lm_head(h: np.ndarray, params: Params) -> np.ndarray:
    """Hidden states (T, n_embd) -> logits (T, n_vocab)."""
    return matmul_t(h, params.lm_head)
