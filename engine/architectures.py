"""The model families the engine runs, by config.json's model_type. Each is a folder offering
the same names (engine/gpt2/__init__.py lists them): read_config, tensors, make_params,
ShardSlicer, max_shards, shard_heads, slice_params, KVCache, forward_pass, weight_bytes."""
from __future__ import annotations

from types import ModuleType

from . import gpt2

ARCHITECTURES: dict[str, ModuleType] = {gpt2.MODEL_TYPE: gpt2}


def architecture_of(config) -> ModuleType:
    """The module of a config's model family."""
    return ARCHITECTURES[config.model_type]
