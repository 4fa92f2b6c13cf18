"""Paths and cached loaders for the committed fixtures, shared by the CPython and browser tests."""
from __future__ import annotations

import functools
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
    from model_loader import load_model
    return load_model(MODELS / name)


@functools.cache
def reference(name: str) -> dict[str, np.ndarray]:
    return dict(np.load(FIXTURES / "reference" / f"{name}.npz"))
