"""Which files make a checkpoint (Hugging Face layout), and how their bytes become a config,
params and a tokenizer for the engine: `architectures` maps config.json's model_type to the
module of a model family (engine.ARCHITECTURES); the caller makes the Model.

Fetching is left to the caller (a folder, an HTTP download, the browser's fetch): they ask
`files_to_fetch` what to get next until it answers nothing, then call `assemble_model`.

A safetensors checkpoint can also be read as a stream of byte blocks (chunks of a download or
of the browser's cache) straight into Params, keeping of each tensor only what `keep` keeps (a
shard's slice, say), so memory holds the kept parts, the tensor being read and one block:

    builder = ParamsBuilder(architecture, config, keep)
    stream = file_stream(builder, size)            # one stream per file of the checkpoint
    for block in blocks:                           # the browser: as each block arrives
        stream.feed(block)
    stream.finish()
    params = builder.finish()
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import NamedTuple

from .config import parse_config
from .hub import is_safe_name
from .safetensors import Buffer, SafetensorsError, SafetensorsStream, read_safetensors, shown
from .tokenizer import Tokenizer, Vocabulary, read_vocabulary, tiktoken_tokenizer
from .torch_pickle import read_torch_checkpoint
from .weights import Keep, ParamsBuilder, build_params

Architectures = Mapping[str, ModuleType]

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
    """The shard files listed by model.safetensors.index.json, in order: plain names of files
    beside it (a name with a path is refused, so nothing outside the model's folder is read)."""
    try:
        names = sorted(set(json.loads(bytes(index))["weight_map"].values()))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise MissingFileError(f"{INDEX} has no valid weight_map") from None
    if unsafe := [name for name in names if not is_safe_name(name)]:
        raise MissingFileError(f"{INDEX} names a shard outside the model's folder: {unsafe[0]!r:.80}")
    return names


def listed_weight_files(names: Iterable[str]) -> list[str]:
    """Of a repository's file names, those that hold the weights files_to_fetch would fetch:
    model.safetensors, else the .safetensors shards beside an index, else pytorch_model.bin."""
    names = set(names)
    if SAFETENSORS in names:
        return [SAFETENSORS]
    if INDEX in names:
        return sorted(name for name in names if name.endswith(".safetensors"))
    return [TORCH_BIN] if TORCH_BIN in names else []


def is_weights(name: str) -> bool:
    """Whether a checkpoint file holds weights (the big ones)."""
    return name.endswith((".safetensors", ".bin"))


def weight_files(have: Mapping[str, object | None]) -> list[str]:
    """The files that hold the weights, in order: model.safetensors, the shards the index
    lists, or pytorch_model.bin."""
    if have.get(SAFETENSORS) is not None:
        return [SAFETENSORS]
    if have.get(INDEX) is not None:
        shards = shard_names(have[INDEX])
        for shard in shards:
            if have.get(shard) is None:
                raise MissingFileError(f"shard {shard} listed in {INDEX} is missing")
        return shards
    if have.get(TORCH_BIN) is not None:
        return [TORCH_BIN]
    raise MissingFileError(f"no weights: none of {SAFETENSORS}, {INDEX}, {TORCH_BIN}")


def read_tensors(have: Mapping[str, Buffer | None]) -> dict:
    """All tensors of the checkpoint: single safetensors, sharded safetensors or a .bin."""
    names = weight_files(have)
    if names == [TORCH_BIN]:
        return read_torch_checkpoint(have[TORCH_BIN], TORCH_BIN)
    tensors = {}
    for name in names:
        shard = read_safetensors(have[name], name)
        if repeated := sorted(shard.keys() & tensors.keys()):
            raise SafetensorsError(f"{name}: tensor {shown(repeated[0])} is in an earlier shard too")
        tensors.update(shard)
    return tensors


def require(have: Mapping[str, Buffer | None], name: str) -> Buffer:
    if have.get(name) is None:
        raise MissingFileError(f"{name} is missing")
    return have[name]


def read_tokenizer_files(have: Mapping[str, Buffer | None]) -> Vocabulary:
    return read_vocabulary(bytes(require(have, "vocab.json")), bytes(require(have, "merges.txt")))


class Checkpoint(NamedTuple):
    """What a checkpoint's files make: engine.Model(*checkpoint)."""

    config: object
    params: object
    tokenizer: Tokenizer


def read_checkpoint(have: Mapping[str, Buffer | None], architectures: Architectures,
                    tokenizer: Tokenizer | None = None) -> Checkpoint:
    """Read the fetched files (with tiktoken's Python package as the tokenizer unless one is
    given); every problem raises a ValueError or MissingFileError that says what is wrong."""
    config = parse_config(bytes(require(have, "config.json")), architectures)
    tokenizer = tokenizer or tiktoken_tokenizer(read_tokenizer_files(have))
    check_vocabulary(tokenizer, config)
    return Checkpoint(config, build_params(architectures[config.model_type], read_tensors(have), config), tokenizer)


def check_vocabulary(tokenizer: Tokenizer, config) -> None:
    if tokenizer.n_vocab > config.n_vocab:
        raise ValueError(f"the tokenizer has {tokenizer.n_vocab} tokens but the model only {config.n_vocab}")


def file_stream(builder: ParamsBuilder, size: int, name: str = SAFETENSORS) -> SafetensorsStream:
    """A reader of the safetensors file `name` of `size` bytes that hands its tensors to the
    builder, reading only the rows of them the builder keeps; feed it the file's blocks, then finish()."""
    return SafetensorsStream(size, builder.add, builder.rows, file=name)


def feed_file(builder: ParamsBuilder, blocks: Iterable[Buffer], size: int) -> None:
    """Read one safetensors file of `size` bytes, block by block, into the builder (call once
    per file of a sharded checkpoint)."""
    stream = file_stream(builder, size)
    for block in blocks:
        stream.feed(block)
    stream.finish()


def stream_params(architecture: ModuleType, config, blocks: Iterable[Buffer], size: int, keep: Keep | None = None):
    """The params of a safetensors file of `size` bytes given block by block, each tensor cut
    down by keep(field, array) as it arrives (see ParamsBuilder)."""
    builder = ParamsBuilder(architecture, config, keep)
    feed_file(builder, blocks, size)
    return builder.finish()
