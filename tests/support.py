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


def int8_gemv(x: np.ndarray, q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The int8 kernel's product for one row of x, as kernels/README.md states it: x as integers
    v = rint(x * mult), mult = 2^29 / max|x| in float32; the sums of v * q exact; each divided by
    mult in float64, rounded to float32, times its row's scale. 0 for x all zeros or max|x| <
    2^-98, NaN for x holding inf or NaN."""
    amax = np.abs(x).max()
    if not np.isfinite(amax):
        return np.full(len(q), np.nan, dtype=np.float32)
    with np.errstate(divide="ignore", over="ignore"):
        mult = np.float32(2 ** 29) / amax
    if amax == 0 or not np.isfinite(mult):
        return np.zeros(len(q), dtype=np.float32)
    sums = q.astype(np.int64) @ np.rint(x * mult).astype(np.int64)
    return (sums.astype(np.float64) / np.float64(mult)).astype(np.float32) * scale


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
