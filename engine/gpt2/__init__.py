"""GPT-2 (Radford et al., 2019) behind one seam: its config (config.py), its parameters and how
a checkpoint's tensors and a shard make them (params.py), and its forward pass (forward.py).
engine/architectures.py registers it under config.json's model_type "gpt2"; another
architecture would be another folder offering the same names."""
from .config import (LIMITS, MODEL_TYPE, GPT2Config, kv_cache_bytes, largest_tensor_params, matrix_params,
                     param_count, read_config, weight_bytes)
from .forward import KVCache, forward_pass
from .params import (IGNORED_SUFFIXES, PREFIX, Block, Params, ShardSlicer, make_params, map_matrices, max_shards,
                     shard_heads, slice_params, tensors)

__all__ = ["IGNORED_SUFFIXES", "LIMITS", "MODEL_TYPE", "PREFIX", "Block", "GPT2Config", "KVCache", "Params",
           "ShardSlicer", "forward_pass", "kv_cache_bytes", "largest_tensor_params", "make_params", "map_matrices",
           "matrix_params", "max_shards", "param_count", "read_config", "shard_heads", "slice_params", "tensors",
           "weight_bytes"]
