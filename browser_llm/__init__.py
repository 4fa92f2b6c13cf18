"""Browser LLM's engine as a Python library, and its command line (`browser-llm`, or
`python -m browser_llm`):

    from browser_llm import load_model
    model = load_model("openai-community/gpt2")          # a Hub repository id, or a folder
    for step in model.generate("Alan Turing was", max_new_tokens=20):
        print(step.text, end="")

Installed (`pip install .`), the engine and the model loader are its subpackages
browser_llm.engine and browser_llm.model_loader. In a checkout they are the repository's
top-level engine/ and model_loader/ (which the page's worker imports as they are): then the
same names are made to point at them.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

if not (Path(__file__).parent / "engine").is_dir():  # a checkout
    for _part in ("engine", "model_loader"):
        sys.modules[f"{__name__}.{_part}"] = importlib.import_module(_part)

from .engine import ARCHITECTURES, GenerationSettings, Model, Step  # noqa: E402
from .model_loader import read_folder  # noqa: E402
from .model_loader.fetch import DEFAULT_CACHE, download_repo  # noqa: E402
from .model_loader.hub import DEFAULT_ENDPOINT  # noqa: E402

__all__ = ["GenerationSettings", "Model", "Step", "load_folder", "load_model"]


def load_folder(folder: Path) -> Model:
    """Load a checkpoint from a local folder in Hugging Face layout."""
    return Model(*read_folder(Path(folder), ARCHITECTURES))


def load_model(source: str | Path, revision: str = "main", endpoint: str = DEFAULT_ENDPOINT,
               cache_dir: Path = DEFAULT_CACHE) -> Model:
    """Load from a local folder, or download a Hub repository id (cached) and load it."""
    if Path(source).is_dir():
        return load_folder(Path(source))
    return load_folder(download_repo(str(source), revision, endpoint, cache_dir))
