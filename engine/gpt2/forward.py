"""GPT-2's forward pass in NumPy, float32, with a key/value cache, written once for one worker
and for a model split over several (tensor parallelism).

A worker holds a shard of the weights (Params: all of them, or a range of the attention heads,
of the MLP's hidden units and of the vocabulary; see params.py). The pass is a generator: it
yields this shard's partial sums and is sent their totals over every shard (the all-reduce):
the embeddings, then per layer the attention output and the MLP output, last the logits (each
shard's vocabulary in its own columns). On one worker the total is the partial itself; the
drivers (one worker, shards in one process, shards in workers) are in engine/parallel.py.

Weights are stored (out, in) C-contiguous: in Pyodide (NumPy without BLAS) einsum over that
layout is 2-5x faster than matmul over Hugging Face's (in, out) layout; native NumPy hands the
same products to BLAS. In the browser the weight matrices are usually held by WebAssembly SIMD
kernels instead (worker/kernels.py's HeldWeight): `project` takes either, and `embeddings` reads
the rows of a tied LM head held there.
"""
from __future__ import annotations

import sys
from collections.abc import Generator, Sequence

import numpy as np

from .config import GPT2Config
from .params import Block, Params

MAX_ITERATION = 2**31 - 1  # einsum counts its iterations in an intp: 32 bits in Pyodide
GELU_A = np.float32(-2 * np.sqrt(2 / np.pi))  # gelu's -2u = x * (GELU_A + GELU_B * x * x)
GELU_B = np.float32(-2 * np.sqrt(2 / np.pi) * 0.044715)


def einsum_t(a: np.ndarray, b: np.ndarray, max_iteration: int = MAX_ITERATION) -> np.ndarray:
    """a @ b.T over the last two axes with einsum, a 2-D `a` in blocks of rows small enough for
    its iteration count (the logits of many tokens over a large vocabulary exceed 2**31)."""
    rows = max(max_iteration // (b.shape[-2] * b.shape[-1]), 1)
    if a.ndim == 2 and len(a) > rows:
        return np.concatenate([einsum_t(a[i:i + rows], b, max_iteration) for i in range(0, len(a), rows)])
    return np.einsum("...ik,...jk->...ij", a, b)


if sys.platform == "emscripten":
    matmul_t = einsum_t
else:
    def matmul_t(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """a @ b.T over the last two axes."""
        return a @ np.swapaxes(b, -1, -2)


class KVCache:
    """Keys and values of every layer for the tokens seen so far, preallocated to n_ctx, for
    the heads of one shard, and attention's two products over them. Values are kept transposed,
    [n_head, head_dim, n_ctx], so that both products run over contiguous rows. In the browser
    the cache is usually held by the WebAssembly SIMD kernels instead (worker/kernels.py's
    HeldKVCache, which offers the same methods)."""

    def __init__(self, config: GPT2Config, n_head: int | None = None):
        n_head = config.n_head if n_head is None else n_head
        self.k = np.zeros((config.n_layer, n_head, config.n_ctx, config.head_dim), dtype=np.float32)
        self.v_t = np.zeros((config.n_layer, n_head, config.head_dim, config.n_ctx), dtype=np.float32)
        self.head_dim, self.length = config.head_dim, 0

    @property
    def nbytes(self) -> int:
        return self.k.nbytes + self.v_t.nbytes

    def append(self, layer: int, k: np.ndarray, v: np.ndarray) -> int:
        """Store a layer's new keys and values [n_head, n_seq, head_dim] after its first `length`;
        return how many the layer holds now."""
        start, end = self.length, self.length + k.shape[1]
        self.k[layer, :, start:end] = k
        self.v_t[layer, :, :, start:end] = np.swapaxes(v, -1, -2)
        return end

    def scores(self, layer: int, q: np.ndarray, n_past: int) -> np.ndarray:
        """The queries times the layer's first n_past keys, per head:
        q [n_head, n_seq, head_dim] -> [n_head, n_seq, n_past]"""
        return matmul_t(q, self.k[layer, :, :n_past])

    def mix(self, layer: int, p: np.ndarray) -> np.ndarray:
        """The attention weights times the layer's first n_past values, per head:
        p [n_head, n_seq, n_past] -> [n_head, n_seq, head_dim]"""
        return matmul_t(p, self.v_t[layer, :, :, :p.shape[-1]])


def gelu(x: np.ndarray) -> np.ndarray:
    # GPT-2's tanh approximation ("gelu_new"), 0.5 * x * (1 + tanh(u)) with u = sqrt(2 / pi) *
    # (x + 0.044715 * x**3), written as x * sigmoid(2u) = x / (1 + exp(-2u)): the same function,
    # and exp costs a third of tanh in Pyodide; -2u = x * (A + B * x * x), its constants folded
    # (half the NumPy calls of the formula as written; x * x, as x**2 goes through a slow pow).
    with np.errstate(over="ignore"):  # very negative x: exp(-2u) = inf, and x / inf = -0
        return x / (1 + np.exp(x * (GELU_A + GELU_B * (x * x))))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


def mean(x: np.ndarray) -> np.ndarray:
    # x.mean(axis=-1, keepdims=True), bit for bit, without its Python wrapper (3x slower in Pyodide)
    return np.add.reduce(x, axis=-1, keepdims=True) / x.shape[-1]


def layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    x = x - mean(x)  # a new array, scaled in place below
    x *= 1 / np.sqrt(mean(x * x) + np.float32(eps))  # one division per row, not one per value
    x *= g
    x += b
    return x


def project(x: np.ndarray, w) -> np.ndarray:
    """x @ w.T for a weight matrix w [n_out, n_in]: a NumPy array, or one held by the kernels.
    [n_seq, n_in] -> [n_seq, n_out]"""
    return matmul_t(x, w) if isinstance(w, np.ndarray) else w.matmul_t(x)


def linear(x: np.ndarray, w, b: np.ndarray) -> np.ndarray:
    y = project(x, w)
    y += b
    return y


def attention(q: np.ndarray, cache: KVCache, layer: int, n_past: int) -> np.ndarray:
    """Causal attention of n_seq new queries over the layer's first n_past >= n_seq cached keys
    and values, per head: q [n_head, n_seq, head_dim] -> [n_head, n_seq, head_dim]."""
    t = q.shape[1]
    scores = cache.scores(layer, q, n_past)  # [n_head, n_seq, n_past]
    scores *= np.float32(1 / np.sqrt(q.shape[-1]))
    if t > 1:  # query i sits at position n_past - t + i and may not see later keys
        future = np.arange(n_past)[None, :] > np.arange(n_past - t, n_past)[:, None]
        np.copyto(scores, np.float32(-np.inf), where=future)
    return cache.mix(layer, softmax(scores))


def split_heads(x: np.ndarray, head_dim: int) -> np.ndarray:
    """[n_seq, n_head*head_dim] -> [n_head, n_seq, head_dim]"""
    return x.reshape(x.shape[0], -1, head_dim).transpose(1, 0, 2)


def merge_heads(x: np.ndarray) -> np.ndarray:
    """[n_head, n_seq, head_dim] -> [n_seq, n_head*head_dim]"""
    return x.transpose(1, 0, 2).reshape(x.shape[1], -1)


def embeddings(ids: Sequence[int], position: int, params: Params) -> np.ndarray:
    """This shard's part of the input: the embedding rows of the tokens in its vocabulary, and
    the positions' if it holds them. [n_seq] -> [n_seq, n_embd]"""
    rows = np.asarray(ids, dtype=np.int64) - params.vocab_start
    mine = (rows >= 0) & (rows < len(params.wte))
    x = np.zeros((len(rows), params.wte.shape[1]), dtype=np.float32)
    x[mine] = params.wte[rows[mine]]  # a NumPy array, or a tied LM head held by the kernels
    if params.wpe is not None:
        x += params.wpe[position:position + len(rows)]
    return x


def attention_partial(x: np.ndarray, block: Block, cache: KVCache, layer: int, queries: slice) -> np.ndarray:
    """This shard's heads: the keys and values of every new token go to the cache, the rows
    `queries` are answered; their part of the output projection, without its bias.
    [n_seq, n_embd] -> [n_queries, n_embd]"""
    qkv = linear(x, block.w_qkv, block.b_qkv)  # [n_seq, n_embd] -> [n_seq, 3*width]
    width = qkv.shape[-1] // 3
    q, k, v = qkv[queries, :width], qkv[:, width:2 * width], qkv[:, 2 * width:]
    n_past = cache.append(layer, split_heads(k, cache.head_dim), split_heads(v, cache.head_dim))
    out = attention(split_heads(q, cache.head_dim), cache, layer, n_past)  # [n_head, n_queries, head_dim]
    return project(merge_heads(out), block.w_attn_proj)  # [n_queries, width] -> [n_queries, n_embd]


def mlp_partial(x: np.ndarray, block: Block) -> np.ndarray:
    """This shard's hidden units' part of the MLP, without the output bias.
    [n_seq, n_embd] -> [n_seq, inner] -> [n_seq, n_embd]"""
    return project(gelu(linear(x, block.w_fc, block.b_fc)), block.w_mlp_proj)


def logits_partial(x: np.ndarray, params: Params, config: GPT2Config) -> np.ndarray:
    """The final norm and this shard's vocabulary of the LM head, in its columns of the logits
    (zeros elsewhere). [n_seq, n_embd] -> [n_seq, n_vocab]"""
    mine = project(layer_norm(x, params.ln_f_g, params.ln_f_b, config.eps), params.lm_head)
    if mine.shape[-1] == config.n_vocab:
        return mine
    out = np.zeros((len(mine), config.n_vocab), dtype=np.float32)
    out[:, params.vocab_start:params.vocab_start + mine.shape[-1]] = mine
    return out


AllReduce = Generator[np.ndarray, np.ndarray, np.ndarray]


def forward_pass(ids: Sequence[int], position: int, params: Params, config: GPT2Config, cache: KVCache,
                 last_only: bool = False) -> AllReduce:
    """Run new tokens written at cache `position` (earlier entries are kept): yields partial
    sums, is sent their totals, returns the logits [n_seq, n_vocab] — or only the last token's,
    [1, n_vocab], with last_only: then the last block answers only the last token once the keys
    and values of all are cached."""
    if position + len(ids) > config.n_ctx:
        raise ValueError(f"{position + len(ids)} tokens do not fit the context of {config.n_ctx}")
    cache.length = position
    x = yield embeddings(ids, position, params)  # [n_seq, n_embd]
    for layer, block in enumerate(params.blocks):
        queries = slice(-1, None) if last_only and layer == config.n_layer - 1 else slice(None)
        attn = yield attention_partial(layer_norm(x, block.ln_1_g, block.ln_1_b, config.eps), block, cache, layer,
                                       queries)
        attn += block.b_attn_proj
        x = x[queries] + attn
        mlp = yield mlp_partial(layer_norm(x, block.ln_2_g, block.ln_2_b, config.eps), block)
        mlp += block.b_mlp_proj
        x = x + mlp
    cache.length += len(ids)
    return (yield logits_partial(x, params, config))
