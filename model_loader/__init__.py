"""Bytes to a model: Hugging Face GPT-2 checkpoints (safetensors, sharded, pytorch_model.bin)
and their tokenizer files, from a folder or the Hub."""
from __future__ import annotations

from pathlib import Path

from engine import Model

from .checkpoint import MissingFileError, assemble_model, files_to_fetch
from .fetch import DEFAULT_CACHE, download_repo
from .hub import DEFAULT_ENDPOINT

__all__ = ["MissingFileError", "assemble_model", "files_to_fetch", "load_folder", "load_model"]


def load_folder(folder: Path) -> Model:
    """Load a checkpoint from a local folder in Hugging Face layout."""
    folder = Path(folder)
    have: dict = {}
    while names := files_to_fetch(have):
        for name in names:
            path = folder / name
            have[name] = map_file(path) if path.is_file() else None
    return assemble_model(have)


def map_file(path: Path) -> bytes:
    """The file's bytes, memory-mapped so that weights are not copied on the way in."""
    import mmap  # CPython only; the browser hands over fetched buffers instead

    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if path.stat().st_size else b""


def load_model(source: str | Path, revision: str = "main", endpoint: str = DEFAULT_ENDPOINT,
               cache_dir: Path = DEFAULT_CACHE) -> Model:
    """Load from a local folder, or download a Hub repository id (cached) and load it."""
    if Path(source).is_dir():
        return load_folder(Path(source))
    return load_folder(download_repo(str(source), revision, endpoint, cache_dir))
