"""The engine: GPT-2 weights and token ids in, next tokens out. Pure NumPy; runs in CPython
and in Pyodide."""
from .generation import Step
from .gpt2 import GPT2Config, Params
from .model import Model
from .sampling import GenerationSettings

__all__ = ["GPT2Config", "GenerationSettings", "Model", "Params", "Step"]
