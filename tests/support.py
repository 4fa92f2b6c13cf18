"""Paths and cached loaders for the committed fixtures, shared by the CPython and browser tests."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
MODELS = FIXTURES / "models"
MODEL_NAMES = sorted(p.name for p in MODELS.iterdir())
GPT2_JSON = ROOT / "vendor" / "tiktoken" / "encoders" / "gpt2.json"


@functools.cache
def fixture_model(name: str):
    from model_loader import load_model
    return load_model(MODELS / name)


@functools.cache
def reference(name: str) -> dict[str, np.ndarray]:
    return dict(np.load(FIXTURES / "reference" / f"{name}.npz"))
