"""The engine: a model's weights and token ids in, next tokens out. Pure NumPy; runs in
CPython and in Pyodide. Model families (GPT-2: engine/gpt2/) are registered by model_type in
engine/architectures.py."""
from .architectures import ARCHITECTURES, architecture_of
from .generation import Step
from .gpt2 import GPT2Config, Params
from .model import Model
from .parallel import Shard
from .sampling import GenerationSettings

__all__ = ["ARCHITECTURES", "GPT2Config", "GenerationSettings", "Model", "Params", "Shard", "Step",
           "architecture_of"]
