"""Which files make a GPT-2 checkpoint, and how their bytes become a Model.

Fetching is left to the caller (a folder, an HTTP download, the browser's fetch): they ask
`files_to_fetch` what to get next until it answers nothing, then call `assemble_model`.
"""
from __future__ import annotations

import json
from collections.abc import Mapping

from engine import Model

from .config import parse_config
from .safetensors import read_safetensors
from .tokenizer import Tokenizer, Vocabulary, read_vocabulary, tiktoken_tokenizer
from .torch_pickle import read_torch_checkpoint
from .weights import build_params

Buffer = bytes | bytearray | memoryview
TOKENIZER_FILES = ("vocab.json", "merges.txt")
SAFETENSORS, INDEX, TORCH_BIN = "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"


class MissingFileError(FileNotFoundError):
    """The repository lacks a file a GPT-2 checkpoint needs."""


def files_to_fetch(have: Mapping[str, Buffer | None]) -> list[str]:
    """The next files to fetch given those fetched so far (None: not in the repository);
    [] when nothing more is needed. config.json comes alone first so a wrong model fails fast."""
    if "config.json" not in have:
        return ["config.json"]
    wanted = [*TOKENIZER_FILES, SAFETENSORS]
    if have.get(SAFETENSORS) is None and SAFETENSORS in have:
        wanted.append(INDEX)
        if INDEX in have:
            wanted += shard_names(have[INDEX]) if have[INDEX] is not None else [TORCH_BIN]
    return [name for name in wanted if name not in have]


def shard_names(index: Buffer) -> list[str]:
    """The shard files listed by model.safetensors.index.json, in order."""
    try:
        weight_map = json.loads(bytes(index))["weight_map"]
        return sorted(set(weight_map.values()))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise MissingFileError(f"{INDEX} has no valid weight_map") from None


def read_tensors(have: Mapping[str, Buffer | None]) -> dict:
    """All tensors of the checkpoint: single safetensors, sharded safetensors or a .bin."""
    if have.get(SAFETENSORS) is not None:
        return read_safetensors(have[SAFETENSORS])
    if have.get(INDEX) is not None:
        tensors = {}
        for shard in shard_names(have[INDEX]):
            if have.get(shard) is None:
                raise MissingFileError(f"shard {shard} listed in {INDEX} is missing")
            tensors.update(read_safetensors(have[shard]))
        return tensors
    if have.get(TORCH_BIN) is not None:
        return read_torch_checkpoint(have[TORCH_BIN])
    raise MissingFileError(f"no weights: none of {SAFETENSORS}, {INDEX}, {TORCH_BIN}")


def require(have: Mapping[str, Buffer | None], name: str) -> Buffer:
    if have.get(name) is None:
        raise MissingFileError(f"{name} is missing")
    return have[name]


def read_tokenizer_files(have: Mapping[str, Buffer | None]) -> Vocabulary:
    return read_vocabulary(bytes(require(have, "vocab.json")), bytes(require(have, "merges.txt")))


def assemble_model(have: Mapping[str, Buffer | None], tokenizer: Tokenizer | None = None) -> Model:
    """Build a Model from the fetched files (with tiktoken's Python package as the tokenizer
    unless one is given); every problem raises a ValueError or MissingFileError that says
    what is wrong."""
    config = parse_config(bytes(require(have, "config.json")))
    tokenizer = tokenizer or tiktoken_tokenizer(read_tokenizer_files(have))
    if tokenizer.n_vocab > config.n_vocab:
        raise ValueError(f"the tokenizer has {tokenizer.n_vocab} tokens but the model only {config.n_vocab}")
    return Model(config, build_params(read_tensors(have), config), tokenizer)
