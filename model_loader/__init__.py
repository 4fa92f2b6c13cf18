"""Bytes to arrays and a tokenizer: Hugging Face checkpoints (safetensors, sharded,
pytorch_model.bin) and their tokenizer files, from a folder or the Hub. The model family's
module (engine.ARCHITECTURES, by model_type) says which tensors make its params."""
from __future__ import annotations

from pathlib import Path

from .checkpoint import Architectures, Checkpoint, MissingFileError, files_to_fetch, read_checkpoint

__all__ = ["Checkpoint", "MissingFileError", "files_to_fetch", "read_checkpoint", "read_folder"]


def read_folder(folder: Path, architectures: Architectures) -> Checkpoint:
    """Read a checkpoint from a local folder in Hugging Face layout."""
    folder = Path(folder)
    have: dict = {}
    while names := files_to_fetch(have):
        for name in names:
            path = folder / name
            have[name] = map_file(path) if path.is_file() else None
    return read_checkpoint(have, architectures)


def map_file(path: Path) -> bytes:
    """The file's bytes, memory-mapped so that weights are not copied on the way in."""
    import mmap  # CPython only; the browser hands over fetched buffers instead

    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if path.stat().st_size else b""
