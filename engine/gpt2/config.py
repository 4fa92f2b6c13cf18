"""GPT-2's hyperparameters, read from the fields of a Hugging Face config.json."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

MODEL_TYPE = "gpt2"
ARCHITECTURES = {"GPT2LMHeadModel", "GPT2Model"}
ACTIVATIONS = {"gelu_new", "gelu_pytorch_tanh"}  # both are GPT-2's tanh approximation
# Generous bounds on the sizes the engine is meant to run (GPT-2 XL: vocabulary 50257, 1024
# positions, n_embd 1600, 25 heads, 48 layers, n_inner 6400), checked before anything is made
# for a model: a config beyond them is refused, whatever memory the device has.
LIMITS = {"vocab_size": 1_000_000, "n_positions": 65_536, "n_embd": 8192, "n_head": 8192, "n_layer": 256,
          "n_inner": 4 * 8192}


@dataclass(frozen=True)
class GPT2Config:
    """The hyperparameters of a GPT-2 model."""

    model_type: ClassVar[str] = MODEL_TYPE
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


def read_config(fields: dict) -> GPT2Config:
    """The config of a GPT-2 from config.json's fields (a JSON object); a ValueError names
    everything that is wrong."""
    architectures = fields.get("architectures") or []
    if not (isinstance(architectures, list) and all(isinstance(name, str) for name in architectures)):
        raise ValueError("architectures must be a list of names")
    if architectures and not set(architectures) & ARCHITECTURES:
        raise ValueError(f"not a GPT-2 model: architectures={sorted(set(architectures))!r:.80}")
    sizes = {key: fields.get(key) for key in ("vocab_size", "n_positions", "n_embd", "n_head", "n_layer")}
    problems = [problem for key, value in sizes.items() if (problem := size_problem(key, value))]
    n_inner = fields.get("n_inner")
    if n_inner is not None and (problem := size_problem("n_inner", n_inner)):
        problems.append(problem + " or null")
    if not problems and sizes["n_embd"] % sizes["n_head"]:
        problems.append(f"n_embd={sizes['n_embd']} is not divisible by n_head={sizes['n_head']}")
    eps = fields.get("layer_norm_epsilon", 1e-5)
    if not (type(eps) is float and 0 < eps < 1):
        problems.append(f"layer_norm_epsilon is {shown(eps)}, expected a number between 0 and 1")
    activation = fields.get("activation_function", "gelu_new")
    if not (isinstance(activation, str) and activation in ACTIVATIONS):
        problems.append(f"activation_function {shown(activation)} is not supported (expected gelu_new)")
    for flag in ("scale_attn_by_inverse_layer_idx", "add_cross_attention"):
        if fields.get(flag):
            problems.append(f"{flag}=true is not supported")
    if fields.get("scale_attn_weights", True) is not True:
        problems.append("scale_attn_weights=false is not supported")
    if problems:
        raise ValueError("; ".join(problems))
    return GPT2Config(
        n_vocab=sizes["vocab_size"], n_ctx=sizes["n_positions"], n_embd=sizes["n_embd"],
        n_head=sizes["n_head"], n_layer=sizes["n_layer"], n_inner=n_inner or 4 * sizes["n_embd"], eps=eps,
    )


def size_problem(key: str, value: object) -> str | None:
    """What is wrong with one of config.json's sizes, if anything: each is an integer (not a
    boolean, not a float) from 1 to its limit."""
    if type(value) is not int or not 1 <= value <= LIMITS[key]:
        return f"{key} is {shown(value)}, expected an integer from 1 to {LIMITS[key]}"
    return None


def shown(value: object) -> str:
    """A config value for an error message, cut short; a container of containers only by its
    kind (its repr could be huge)."""
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return "a nested container" if any(isinstance(v, (dict, list)) for v in items) else f"{value!r:.60}"


def param_count(config: GPT2Config) -> int:
    """Parameters of a GPT-2 of this config, its LM head tied to the token embedding."""
    c, inner = config.n_embd, config.n_inner
    per_block = 4 * c * c + 2 * c * inner + 9 * c + inner
    return (config.n_vocab + config.n_ctx) * c + 2 * c + config.n_layer * per_block


def matrix_params(config: GPT2Config) -> int:
    """Parameters of the blocks' four weight matrices (what the WASM kernels hold)."""
    return config.n_layer * (4 * config.n_embd * config.n_embd + 2 * config.n_embd * config.n_inner)


def largest_tensor_params(config: GPT2Config) -> int:
    """Parameters of the largest single tensor of a checkpoint (read whole before it is sliced)."""
    c = config.n_embd
    return max(config.n_vocab * c, config.n_ctx * c, 3 * c * c, c * config.n_inner)


def kv_cache_bytes(config: GPT2Config) -> int:
    """Bytes of a whole KV cache (keys and values of every layer for n_ctx tokens, float32)."""
    return 2 * 4 * config.n_layer * config.n_ctx * config.n_embd


def weight_bytes(config: GPT2Config) -> int:
    """Bytes of a GPT-2's float32 weights (LM head tied to the token embedding)."""
    return 4 * param_count(config)
