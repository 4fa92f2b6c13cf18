"""Damaged and hostile variants of the fixtures' files, made by seeded random mutations (so each
run tries the same cases): every reader ends in its own error type or a good load, each case
quickly and in memory bounded by its input, and the whole-file and streamed safetensors readers
agree on every file."""
from __future__ import annotations

import io
import json
import random
import struct
import time
import tracemalloc
import zipfile

import pytest

from support import MODELS, fixture_model
from engine import ARCHITECTURES, gpt2
from model_loader.checkpoint import MissingFileError, read_checkpoint
from model_loader.config import ConfigError, parse_config
from model_loader.safetensors import SafetensorsError, SafetensorsStream, read_safetensors
from model_loader.tokenizer import TokenizerError, read_vocabulary, tiktoken_tokenizer
from model_loader.torch_pickle import CheckpointError, read_torch_checkpoint
from model_loader.weights import WeightsError, build_params

SECONDS = 1.0  # for one case


def memory_bound(size: int) -> int:
    """The most a case may allocate while reading `size` bytes of files."""
    return 4 * size + 2**20


class Obj(list):
    """A JSON object as its [key, value] pairs, so that a mutation can repeat a key."""


class Raw(str):
    """JSON text written as it is (nesting too deep to build as a value)."""


def tree(value):
    """Parsed JSON as lists and Objs, for mutating."""
    if isinstance(value, dict):
        return Obj([key, tree(item)] for key, item in value.items())
    return [tree(item) for item in value] if isinstance(value, list) else value


def to_json(node) -> str:
    if isinstance(node, Raw):
        return node
    if isinstance(node, Obj):
        return "{" + ", ".join(f"{json.dumps(key)}: {to_json(value)}" for key, value in node) + "}"
    if isinstance(node, list):
        return "[" + ", ".join(map(to_json, node)) + "]"
    return json.dumps(node)


def slots(node) -> list[tuple[list, int]]:
    """Every place in the tree that holds a value: (its container, its index there)."""
    found = []
    children = [pair[1] for pair in node] if isinstance(node, Obj) else node if isinstance(node, list) else []
    for index, child in enumerate(children):
        found.append((node, index))
        found += slots(child)
    return found


WILD = [0, 1, -1, 2, 7, 255, 256, 257, 2**31, 2**32, 2**63, 2**64, 2**70, 10**30, -2**63, True, False, None,
        1.5, -0.0, 1e300, float("nan"), float("inf"), "", "x", "F32", "BF16", "-1", "gpt2", [], {}, [0],
        [-1], [2**70], [True, 0], [0, 8], ["1"], [[0]], {"a": 1}, Raw("[" * 100_000 + "]" * 100_000)]


def mutate_json(rng: random.Random, node, wild: list) -> str:
    """One to three edits of the JSON: a value replaced, a key removed, repeated or renamed."""
    for _ in range(rng.randint(1, 3)):
        places = slots(node)
        if not places:
            break
        container, index = rng.choice(places)
        edit = rng.choice(["replace", "replace", "replace", "delete", "repeat", "rename"])
        if edit == "replace" and isinstance(container, Obj):
            container[index][1] = rng.choice(wild)
        elif edit == "replace":
            container[index] = rng.choice(wild)
        elif edit == "delete":
            del container[index]
        elif edit == "repeat" and isinstance(container, Obj):
            key = container[index][0]
            container.insert(rng.randrange(len(container) + 1), [key, rng.choice([container[index][1], *wild])])
        elif edit == "rename" and isinstance(container, Obj):
            container[index][0] = rng.choice(["", "__metadata__", container[rng.randrange(len(container))][0]])
    return to_json(node)


def mutate_bytes(rng: random.Random, data: bytes, start: int = 0, end: int | None = None) -> bytes:
    """One to three byte-level damages within data[start:end]: bit flips, bytes overwritten with
    telling values, a cut, a slice removed or repeated."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        stop = min(end or len(data), len(data))
        if stop <= start:
            break
        at = rng.randrange(start, stop)
        edit = rng.choice(["flip", "flip", "overwrite", "overwrite", "cut", "remove", "repeat"])
        if edit == "flip":
            data[at] ^= 1 << rng.randrange(8)
        elif edit == "overwrite":
            value = rng.choice([b"\x00", b"\xff", b"\x7f", b"\x80", b"-1", b"\xff" * 8, b"\x00" * 4, b"9" * 12])
            data[at:at + len(value)] = value
        elif edit == "cut":
            del data[at:]
        elif edit == "remove":
            del data[at:at + rng.randint(1, 64)]
        else:
            data[at:at] = data[at:at + rng.randint(1, 64)]
    return bytes(data)


def bounded(work, size: int):
    """work(), checked to take less than SECONDS and memory_bound(size)."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        return work()
    finally:
        elapsed, peak = time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert elapsed < SECONDS, f"took {elapsed:.2f} s"
        assert peak < memory_bound(size), f"allocated {peak} bytes for {size} bytes of input"


def outcome(work, *allowed: type[Exception]):
    """work()'s result, or None when it raises one of the allowed errors; any other exception
    (tiktoken's Rust panics derive from BaseException) fails the case."""
    try:
        return work()
    except allowed:
        return None
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        raise AssertionError(f"{type(e).__module__}.{type(e).__name__}: {e!s:.300}") from e


def run_cases(seed: int, count: int, case) -> None:
    """case(rng) for `count` seeded random generators; a failure names its seed and case."""
    for n in range(count):
        rng = random.Random(seed * 1_000_003 + n)
        try:
            case(rng)
        except AssertionError as e:
            raise AssertionError(f"seed {seed}, case {n}: {e}") from e


# --- safetensors: the whole-file and streamed readers, then the weights

TINY = (MODELS / "tiny" / "model.safetensors").read_bytes()
TINY_HEADER_END = 8 + struct.unpack("<Q", TINY[:8])[0]
TINY_CONFIG = fixture_model("tiny").config
TENSOR_WILD = [*WILD, "I64", "BOOL", "Q7", [64], [64, 64], [0, 0], [1, 2**40], [0, 2**40, 2**40], [2**62, 2**62]]


def read_stream(raw: bytes, block: int) -> dict:
    tensors = {}
    stream = SafetensorsStream(len(raw), lambda name, dtype, array: tensors.update({name: (dtype, array)}))
    for at in range(0, len(raw), block):
        stream.feed(memoryview(raw)[at:at + block])
    stream.finish()
    return tensors


def check_safetensors(rng: random.Random, raw: bytes) -> None:
    def read():
        whole = outcome(lambda: read_safetensors(raw), SafetensorsError)
        streamed = outcome(lambda: read_stream(raw, rng.choice([777, 4096, 65536, len(raw) or 1])), SafetensorsError)
        assert (whole is None) == (streamed is None), f"whole read {'refused' if whole is None else 'accepted'} it"
        if whole is not None:
            assert sorted(whole) == sorted(streamed)
            for name, (dtype, array) in whole.items():
                assert streamed[name][0] == dtype and streamed[name][1].shape == array.shape
                assert streamed[name][1].tobytes() == array.tobytes(), name
            outcome(lambda: build_params(gpt2, whole, TINY_CONFIG), WeightsError)

    bounded(read, len(raw))


def header_edit(rng: random.Random) -> None:
    header = tree(json.loads(TINY[8:TINY_HEADER_END]))
    text = mutate_json(rng, header, TENSOR_WILD).encode()
    length = len(text) if rng.random() < 0.9 else rng.choice([0, 1, len(text) - 1, len(text) + 1, 2**64 - 1])
    check_safetensors(rng, struct.pack("<Q", length) + text + TINY[TINY_HEADER_END:])


def byte_damage(rng: random.Random) -> None:
    in_header = rng.random() < 0.7
    start, end = (0, TINY_HEADER_END) if in_header else (TINY_HEADER_END, len(TINY))
    check_safetensors(rng, mutate_bytes(rng, TINY, start, end))


@pytest.mark.parametrize("seed", [1, 2])
def test_safetensors_header_edits(seed):
    run_cases(seed, 150, header_edit)


@pytest.mark.parametrize("seed", [1, 2])
def test_safetensors_byte_damage(seed):
    run_cases(seed, 100, byte_damage)


# --- a sharded checkpoint's index

SHARDED = {path.name: path.read_bytes() for path in (MODELS / "sharded").iterdir()}
INDEX = "model.safetensors.index.json"
SHARDED_TOKENIZER = fixture_model("sharded").tokenizer
INDEX_WILD = [*WILD, "config.json", "vocab.json", "model-00001-of-00003.safetensors", "../x.safetensors"]


def index_edit(rng: random.Random) -> None:
    raw = mutate_json(rng, tree(json.loads(SHARDED[INDEX])), INDEX_WILD).encode()
    have = {**SHARDED, INDEX: raw}
    bounded(lambda: outcome(lambda: read_checkpoint(have, ARCHITECTURES, SHARDED_TOKENIZER), MissingFileError, WeightsError,
                            SafetensorsError), sum(map(len, have.values())))


def test_index_edits():
    run_cases(3, 100, index_edit)


# --- config.json

CONFIG = (MODELS / "tiny" / "config.json").read_bytes()
CONFIG_WILD = [*WILD, 64, 4, 65, 1024, 10**6, 2**20, "gelu_new", "relu", ["GPT2LMHeadModel"], 1e-5]
TINY_TENSORS = read_safetensors(TINY)


def config_edit(rng: random.Random) -> None:
    raw = (mutate_json(rng, tree(json.loads(CONFIG)), CONFIG_WILD).encode() if rng.random() < 0.8
           else mutate_bytes(rng, CONFIG))
    config = bounded(lambda: outcome(lambda: parse_config(raw, ARCHITECTURES), ConfigError), len(raw))
    if config is not None:
        outcome(lambda: build_params(gpt2, TINY_TENSORS, config), WeightsError)


def test_config_edits():
    run_cases(4, 200, config_edit)


# --- vocab.json and merges.txt, then tiktoken on them

VOCAB, MERGES = (MODELS / "tiny" / "vocab.json").read_bytes(), (MODELS / "tiny" / "merges.txt").read_bytes()
VOCAB_WILD = [*WILD, 5, 1023, 1024, 50256, 4294967295, 4294967296, "Ġt", "<|endoftext|>"]
SAMPLE = "Hello world, \x00\xff é 中文 😀 <|endoftext|>"


def tokenizer_files(rng: random.Random) -> tuple[bytes, bytes]:
    if rng.random() < 0.5:
        return mutate_json(rng, tree(json.loads(VOCAB)), VOCAB_WILD).encode(), MERGES
    lines = MERGES.split(b"\n")
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(lines))
        lines[at] = rng.choice([b"", b"x y", b"a", b"a b c", lines[rng.randrange(len(lines))], lines[at][::-1],
                                mutate_bytes(rng, lines[at])])
    return VOCAB, b"\n".join(lines)


def tokenizer_edit(rng: random.Random) -> None:
    vocab, merges = tokenizer_files(rng)

    def read():
        vocabulary = outcome(lambda: read_vocabulary(vocab, merges), TokenizerError)
        if vocabulary is not None:
            tokenizer = outcome(lambda: tiktoken_tokenizer(vocabulary), TokenizerError)
            if tokenizer is not None:
                assert tokenizer.decode(tokenizer.encode(SAMPLE)) == SAMPLE

    bounded(read, len(vocab) + len(merges))


def test_tokenizer_file_edits():
    run_cases(5, 150, tokenizer_edit)


# --- pytorch_model.bin: its pickle, and the zip around it

BIN = (MODELS / "bin" / "pytorch_model.bin").read_bytes()
BIN_CONFIG = fixture_model("bin").config
with zipfile.ZipFile(io.BytesIO(BIN)) as archive:
    BIN_ENTRIES = {info.filename: archive.read(info) for info in archive.infolist()}
PICKLE = next(name for name in BIN_ENTRIES if name.endswith("data.pkl"))


def zipped(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def bin_edit(rng: random.Random) -> None:
    if rng.random() < 0.6:
        raw = zipped({**BIN_ENTRIES, PICKLE: mutate_bytes(rng, BIN_ENTRIES[PICKLE])})
    else:  # the zip's own structures: the central directory at the end, or anywhere
        raw = mutate_bytes(rng, BIN, len(BIN) - 4096 if rng.random() < 0.7 else 0)

    def read():
        tensors = outcome(lambda: read_torch_checkpoint(raw), CheckpointError)
        if tensors is not None:
            outcome(lambda: build_params(gpt2, tensors, BIN_CONFIG), WeightsError)

    bounded(read, len(raw))


def test_pytorch_bin_edits():
    run_cases(6, 250, bin_edit)
