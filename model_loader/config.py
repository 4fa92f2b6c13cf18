"""config.json of a Hugging Face GPT-2 repository -> GPT2Config, refusing anything else."""
from __future__ import annotations

import json

from engine import GPT2Config

GPT2_ARCHITECTURES = {"GPT2LMHeadModel", "GPT2Model"}
GPT2_ACTIVATIONS = {"gelu_new", "gelu_pytorch_tanh"}  # both are GPT-2's tanh approximation


class ConfigError(ValueError):
    """config.json does not describe a GPT-2 this engine can run."""


def parse_config(raw: bytes | str) -> GPT2Config:
    """Read and check config.json; the error names everything that is wrong."""
    try:
        cfg = json.loads(raw)
    except ValueError as e:
        raise ConfigError(f"config.json is not valid JSON: {e}") from None
    if not isinstance(cfg, dict):
        raise ConfigError("config.json is not a JSON object")
    model_type = cfg.get("model_type")
    architectures = set(cfg.get("architectures") or [])
    if model_type != "gpt2" or (architectures and not architectures & GPT2_ARCHITECTURES):
        raise ConfigError(f"not a GPT-2 model: model_type={model_type!r}, architectures={sorted(architectures)}")
    problems = []
    sizes = {}
    for key in ("vocab_size", "n_positions", "n_embd", "n_head", "n_layer"):
        value = cfg.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f"{key} is {value!r}, expected a positive integer")
        sizes[key] = value
    n_inner = cfg.get("n_inner")
    if n_inner is not None and (not isinstance(n_inner, int) or n_inner < 1):
        problems.append(f"n_inner is {n_inner!r}, expected a positive integer or null")
    if not problems and sizes["n_embd"] % sizes["n_head"]:
        problems.append(f"n_embd={sizes['n_embd']} is not divisible by n_head={sizes['n_head']}")
    activation = cfg.get("activation_function", "gelu_new")
    if activation not in GPT2_ACTIVATIONS:
        problems.append(f"activation_function {activation!r} is not supported (expected gelu_new)")
    for flag in ("scale_attn_by_inverse_layer_idx", "add_cross_attention"):
        if cfg.get(flag):
            problems.append(f"{flag}=true is not supported")
    if cfg.get("scale_attn_weights", True) is not True:
        problems.append("scale_attn_weights=false is not supported")
    if problems:
        raise ConfigError("config.json: " + "; ".join(problems))
    return GPT2Config(
        n_vocab=sizes["vocab_size"], n_ctx=sizes["n_positions"], n_embd=sizes["n_embd"],
        n_head=sizes["n_head"], n_layer=sizes["n_layer"], n_inner=n_inner or 4 * sizes["n_embd"],
        eps=float(cfg.get("layer_norm_epsilon", 1e-5)),
    )
