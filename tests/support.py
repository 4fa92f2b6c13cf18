"""Paths and cached loaders for the committed fixtures, shared by the CPython and browser tests."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
MODELS = FIXTURES / "models"
MODEL_NAMES = sorted(p.name for p in MODELS.iterdir())
# Text the tokenizer must split exactly as tiktoken does, in CPython and in the browser.
CORPUS = [
    "Hello world", "The quick brown fox jumps over the lazy dog.",
    "def f(x):\n    return x ** 2  # square\n\n\nprint(f(3))",
    "1234567890 3.14159 1,000,000 2024-11-25", "many     spaces\t\ttabs\n\n\n\nnewlines   ",
    "emoji 😀🎉👩‍👩‍👧 and flags 🇫🇷", "中文字符和日本語のテキスト、한국어", "café naïve Ångström résumé",
    "it's we'll they've I'd you're", "<|endoftext|> in the middle <|endoftext|>", "", " ", "\n",
]
GPT2_JSON = ROOT / "vendor" / "tiktoken" / "encoders" / "gpt2.json"


@functools.cache
def fixture_model(name: str):
    from browser_llm import load_model
    return load_model(MODELS / name)


def quantize(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 weights by the rule kernels/README.md states, in float32: scale = max|w_row| / 127,
    q = round-half-even(w / scale) clamped to [-127, 127]; a row whose scale is 0 gets q = 0."""
    scale = np.abs(w).max(axis=1) / np.float32(127)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(scale[:, None] > 0, np.rint(w / scale[:, None]), 0)
    return np.clip(q, -127, 127).astype(np.int8), scale.astype(np.float32)


X_BLOCK = 64  # kernels/matmul.c: x's values per block of the int8 GEMV
STEP_LANES = np.arange(16) % 8 // 2  # of 16 weights, which of the GEMV's four i32 lanes sums each


def int8_gemv(x: np.ndarray, q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The int8 kernel's product for one row of x, as kernels/README.md states it: x in blocks of
    64 values, each as int16s v = rint(x * m), m = 32767 / max|x| over the block, inv = max|x| /
    32767 (float32; v = 0 and inv = 0 for a block of zeros or so small that m overflows); per
    block the sums of v * q, exact, in four lanes (of each 16 weights lane i takes 2i, 2i+1,
    8+2i and 9+2i; the block's tail, lane 0), each rounded to float32, times inv, added into four
    float32 sums; those added as (s0 + s2) + (s1 + s3), times the row's scale. NaN for x holding
    inf or NaN."""
    if not np.isfinite(x).all():
        return np.full(len(q), np.nan, dtype=np.float32)
    sums = np.zeros((len(q), 4), dtype=np.float32)
    for start in range(0, len(x), X_BLOCK):
        block = x[start:start + X_BLOCK]
        amax = np.abs(block).max()
        with np.errstate(divide="ignore", over="ignore"):
            m = np.float32(32767) / amax
        zero = amax == 0 or not np.isfinite(m)
        inv = np.float32(0) if zero else amax / np.float32(32767)
        v = np.zeros(len(block), np.int64) if zero else np.rint(block * m).astype(np.int64)
        full = len(block) // 16 * 16
        lane = np.concatenate([np.tile(STEP_LANES, full // 16), np.zeros(len(block) - full, np.int64)])
        products = q[:, start:start + len(block)].astype(np.int64) * v
        lanes = np.stack([products[:, lane == i].sum(axis=1) for i in range(4)], axis=1)
        sums = sums + lanes.astype(np.float32) * inv
    return ((sums[:, 0] + sums[:, 2]) + (sums[:, 1] + sums[:, 3])) * scale


def int8_gemv_rounding(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """How far int8_gemv's x as int16s may take the product from x's own: |v * inv - x| <= inv / 2
    per value, times |w| (float64). [n] and [m, n] -> [m]"""
    half_steps = np.concatenate([np.full(len(block), np.abs(block).max() / 32767 / 2)
                                 for block in np.split(x.astype(np.float64), range(X_BLOCK, len(x), X_BLOCK))])
    return np.abs(w).astype(np.float64) @ half_steps


@functools.cache
def int8_fixture_model(name: str):
    """The fixture with the weights the page's int8 path multiplies by (the blocks' matrices and
    the LM head, quantized by `quantize` and multiplied back), run by the CPython engine."""
    from engine import Model
    from engine.gpt2 import map_matrices

    def dequantized(w: np.ndarray) -> np.ndarray:
        q, scale = quantize(w)
        return q.astype(np.float32) * scale[:, None]

    model = fixture_model(name)
    return Model(model.config, map_matrices(model.params, dequantized, head=True), model.tokenizer)


@functools.cache
def reference(name: str) -> dict[str, np.ndarray]:
    return dict(np.load(FIXTURES / "reference" / f"{name}.npz"))


# Files of openai-community/gpt2 that a GPT-2 loader must not fetch (besides its own four).
GPT2_REPO_EXTRAS = ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "64-8bits.tflite", "rust_model.ot",
                    "tokenizer.json", "generation_config.json", "README.md", "onnx/decoder_model.onnx")


def gpt2_layout_repo(folder: Path) -> Path:
    """The tiny fixture laid out as openai-community/gpt2 is: tensor names without
    "transformer.", the old causal-mask buffers h.N.attn.bias, and many files in other formats
    (filled with junk: a loader that fetches one of them is wrong anyway). Same weights as tiny."""
    from safetensors.numpy import load_file, save_file

    tiny = MODELS / "tiny"
    folder.mkdir(parents=True, exist_ok=True)
    config = json.loads((tiny / "config.json").read_text())
    tensors = {name.removeprefix("transformer."): array for name, array in load_file(tiny / "model.safetensors").items()}
    n = config["n_positions"]
    for layer in range(config["n_layer"]):
        tensors[f"h.{layer}.attn.bias"] = np.tril(np.ones((n, n), np.float32)).reshape(1, 1, n, n)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    for name in ("config.json", "vocab.json", "merges.txt"):
        (folder / name).write_bytes((tiny / name).read_bytes())
    for name in GPT2_REPO_EXTRAS:
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(b"not for a GPT-2 loader in the browser " * 50)
    return folder
