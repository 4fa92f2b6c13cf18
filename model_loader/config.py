"""config.json of a Hugging Face repository -> the config of a model family the caller runs
(its module in `architectures`, by model_type: engine.ARCHITECTURES), refusing anything else."""
from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType

from .safetensors import json_object, shown

MAX_CONFIG = 1024 * 1024  # bytes; a GPT-2's config.json has about one thousand


class ConfigError(ValueError):
    """config.json does not describe a model the engine can run."""


def parse_config(raw: bytes | str, architectures: Mapping[str, ModuleType]):
    """Read and check config.json (the family's read_config checks its fields); the error
    names everything that is wrong."""
    fields = json_object(raw, "config.json", ConfigError, MAX_CONFIG)
    model_type = fields.get("model_type")
    if not isinstance(model_type, str) or model_type not in architectures:
        raise ConfigError(f"config.json: model_type={shown(model_type)} is not a model this engine runs "
                          f"({', '.join(architectures)})")
    try:
        return architectures[model_type].read_config(fields)
    except ValueError as e:
        raise ConfigError(f"config.json: {e}") from None
