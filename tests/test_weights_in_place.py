"""Weights from a writable buffer (the browser's download) are used in place, not copied."""
from __future__ import annotations

import numpy as np

from engine import ARCHITECTURES, gpt2
from model_loader.config import parse_config
from model_loader.safetensors import read_safetensors
from model_loader.weights import build_params
from support import MODELS


def params_from(buffer):
    config = parse_config((MODELS / "tiny" / "config.json").read_bytes(), ARCHITECTURES)
    return build_params(gpt2, read_safetensors(buffer), config)


def test_a_writable_float32_buffer_becomes_the_weights_without_copies():
    raw = (MODELS / "tiny" / "model.safetensors").read_bytes()
    buffer = bytearray(raw)
    copied, in_place = params_from(raw), params_from(buffer)
    pairs = [(copied.wte, in_place.wte), (copied.wpe, in_place.wpe)]
    pairs += [(getattr(a, f), getattr(b, f)) for a, b in zip(copied.blocks, in_place.blocks) for f in vars(a)]
    for expected, got in pairs:
        assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
        assert np.shares_memory(got, np.frombuffer(buffer, np.uint8))
    assert not np.shares_memory(copied.wte, np.frombuffer(raw, np.uint8))  # read-only bytes are copied
