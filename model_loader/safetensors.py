"""A reader of the safetensors format that checks everything before trusting it.

Layout: an 8-byte little-endian header length N, N bytes of JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the data;
offsets count from the end of the header.

Every problem raises SafetensorsError naming the file; nothing is allocated for a tensor before
its entry is checked against the file's size. Also here: the strict JSON reading that the other
readers of a checkpoint's files share (json_object, shown).
"""
from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # raw bits; widened to float32 by to_float32
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
# Parsing JSON takes up to 25 times its size; the largest GPT-2 parse_config accepts (256
# layers, with the old attn.bias buffers) has a header of 0.4 MB.
MAX_HEADER = 1024 * 1024
MAX_DIMS = 8  # GPT-2's tensors have at most 4
FILE = "safetensors file"  # what errors call a file whose name the reader was not told
Buffer = bytes | bytearray | memoryview


class SafetensorsError(ValueError):
    """The bytes are not a valid safetensors file."""


class RepeatedKey(Exception):
    """A JSON object names the same key twice."""


def json_object(raw: bytes | str, what: str, error: type[ValueError], limit: int) -> dict:
    """The JSON object in `raw` (at most `limit` bytes), read strictly: no NaN or Infinity, and
    no key given twice (json.loads would keep the last one silently). Any problem raises
    `error`, its message naming `what`."""
    if len(raw) > limit:
        raise error(f"{what} is too large: {len(raw)} bytes, at most {limit} expected")
    try:
        value = json.loads(raw, object_pairs_hook=unique_keys, parse_constant=refuse_constant)
    except RepeatedKey as e:
        raise error(f"{what} has the key {shown(e.args[0])} twice") from None
    except RecursionError:
        raise error(f"{what} is nested too deeply") from None
    except ValueError as e:
        raise error(f"{what} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise error(f"{what} is not a JSON object")
    return value


def unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object's pairs as a dict; RepeatedKey if a key comes twice."""
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise RepeatedKey(key)
        seen.add(key)
    return dict(pairs)


def refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def shown(value: object) -> str:
    """A JSON value for an error message, cut short; a nested container only by its kind (its
    repr could be huge, or nested too deeply to make)."""
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    if any(isinstance(item, (dict, list)) for item in items):
        return "a nested " + ("object" if isinstance(value, dict) else "array")
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_sizes(values: object) -> bool:
    """Whether a JSON value is a list of non-negative integers (not booleans)."""
    return type(values) is list and all(type(v) is int and v >= 0 for v in values)


def bounding_count(shape: list[int] | tuple[int, ...]) -> int:
    """The element count of a shape, counting its zero sizes as ones: at most the count of
    elements there are, for the shape of an empty tensor too (which numpy could not make if
    its other sizes were absurd)."""
    return math.prod(max(d, 1) for d in shape)


@contextmanager
def naming(file: str) -> Iterator[None]:
    """Prefix the file's name to the SafetensorsError raised inside."""
    try:
        yield
    except SafetensorsError as e:
        raise SafetensorsError(f"{file}: {e}") from None


def read_header(buf: Buffer) -> tuple[dict, int]:
    """Return the parsed, checked header and the offset where the data starts."""
    n = header_length(buf, len(buf))
    return parse_header(buf[8:8 + n], len(buf) - 8 - n), 8 + n


def header_length(prefix: Buffer, size: int) -> int:
    """The header length N from the first 8 bytes of a file of `size` bytes, checked."""
    if size < 8:
        raise SafetensorsError(f"file is {size} bytes, too short for a header length")
    n = int.from_bytes(bytes(prefix[:8]), "little")
    if n > size - 8:
        raise SafetensorsError(f"header length {n} runs past the end of the file ({size} bytes)")
    if n > MAX_HEADER:
        raise SafetensorsError(f"header length {n} is more than a GPT-2's header needs (at most {MAX_HEADER})")
    return n


def parse_header(raw: Buffer, data_size: int) -> dict:
    """The header's JSON without __metadata__, checked against `data_size` bytes of data."""
    header = json_object(bytes(raw), "header", SafetensorsError, MAX_HEADER)
    header.pop("__metadata__", None)
    for name, entry in header.items():
        check_entry(shown(name), entry, data_size)
    spans = data_order(header)
    for (_, end, a), (begin, _, b) in zip(spans, spans[1:]):
        if begin < end:
            raise SafetensorsError(f"tensors {shown(a)} and {shown(b)} overlap")
    return header


def check_entry(name: str, entry: object, data_size: int) -> None:
    """A tensor's entry: a known dtype, at most MAX_DIMS sizes, and offsets that hold exactly
    its bytes within the data."""
    if not isinstance(entry, dict):
        raise SafetensorsError(f"{name}: entry is {shown(entry)}, not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not (isinstance(dtype, str) and dtype in DTYPES):
        raise SafetensorsError(f"{name}: unknown dtype {shown(dtype)}")
    if not (is_sizes(shape) and len(shape) <= MAX_DIMS):
        raise SafetensorsError(f"{name}: bad shape {shown(shape)}")
    if not (type(offsets) is list and len(offsets) == 2 and all(type(o) is int for o in offsets)):
        raise SafetensorsError(f"{name}: bad data_offsets {shown(offsets)}")
    begin, end = offsets
    if not 0 <= begin <= end <= data_size:
        raise SafetensorsError(f"{name}: data_offsets {offsets} out of range (data is {data_size} bytes)")
    itemsize = DTYPES[dtype].itemsize
    if end - begin != math.prod(shape) * itemsize:
        raise SafetensorsError(f"{name}: {end - begin} bytes do not hold {dtype} {shape}")
    if bounding_count(shape) * itemsize > data_size:
        raise SafetensorsError(f"{name}: shape {shape} is larger than the file's {data_size} bytes of data")


def data_order(header: dict) -> list[tuple[int, int, str]]:
    """(begin, end, name) of every tensor, in the order of their bytes in the file."""
    return sorted((*header[name]["data_offsets"], name) for name in header)


def read_safetensors(buf: Buffer, file: str = FILE) -> dict[str, tuple[str, np.ndarray]]:
    """Return {name: (dtype name, array)}; arrays are read-only views into `buf`. Errors name
    the file as `file`."""
    with naming(file):
        header, start = read_header(buf)
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        array = np.frombuffer(buf, dtype=DTYPES[entry["dtype"]], count=math.prod(entry["shape"]),
                              offset=start + begin)
        tensors[name] = (entry["dtype"], array.reshape(entry["shape"]))
    return tensors


class SafetensorsStream:
    """Reads a safetensors file of `size` bytes as it arrives, block by block, and hands each
    tensor to on_tensor(name, dtype name, array) as soon as its last byte came, as a writable
    array in a buffer of its own (freed before the next tensor's is made, unless on_tensor
    keeps it). Holds only the header until it is whole, then the bytes of the one tensor being
    read; bytes that belong to no tensor are skipped. `finish` checks that the whole file came.
    A tensor's buffer is made once its entry is checked against `size`, which is trusted to be
    the file's (as a download's announced length is)."""

    def __init__(self, size: int, on_tensor: Callable[[str, str, np.ndarray], None],
                 rows: Callable[[str], slice | None] = lambda name: None, file: str = FILE):
        """rows(name): the only rows (first axis) of a tensor to read, or None for all of it;
        the other rows' bytes are skipped, and the tensor comes out with those rows only.
        Errors name the file as `file`."""
        self.size, self.received, self.on_tensor, self.rows, self.file = size, 0, on_tensor, rows, file
        self.head: bytearray | None = bytearray()  # the header's bytes, until it is parsed
        self.header: dict = {}
        self.spans: deque[tuple[int, int, str]] = deque()  # the tensors still to come, in file order
        self.position = 0  # bytes of data (after the header) read so far
        self.current: np.ndarray | None = None  # the bytes of the tensor being read

    def feed(self, block: Buffer) -> None:
        """Take the next bytes of the file; hand out the tensors they complete."""
        view = memoryview(block).cast("B")
        self.received += len(view)
        with naming(self.file):
            if self.received > self.size:
                raise SafetensorsError(f"the file runs past the {self.size} bytes it was said to have")
            if self.head is not None:
                view = self.read_header(view)
            if self.head is None:
                self.read_data(view)

    def finish(self) -> None:
        """Check that the whole file came, so that every tensor was handed out."""
        with naming(self.file):
            if self.received < self.size:
                raise SafetensorsError(f"the file ended after {self.received} of its {self.size} bytes")
            if self.head is not None:  # no block came at all, as the file has no bytes
                header_length(self.head, self.size)

    def read_header(self, view: memoryview) -> memoryview:
        """Gather the header from the block, parse it once whole; return the rest of the block."""
        view = self.gather(view, 8)
        if len(self.head) < 8 and self.received < self.size:
            return view
        end = 8 + header_length(self.head, self.size)
        view = self.gather(view, end)
        if len(self.head) == end:
            self.header = parse_header(self.head[8:], self.size - end)
            self.spans = deque(self.narrowed(*span) for span in data_order(self.header))
            self.head = None
        return view

    def narrowed(self, begin: int, end: int, name: str) -> tuple[int, int, str]:
        """A tensor's span, cut down to the rows wanted of it (its shape too)."""
        rows, shape = self.rows(name), self.header[name]["shape"]
        if rows is None or not shape:
            return begin, end, name
        start, stop, _ = rows.indices(shape[0])
        row_bytes = (end - begin) // shape[0] if shape[0] else 0
        self.header[name]["shape"] = [max(stop - start, 0), *shape[1:]]
        return begin + start * row_bytes, begin + max(stop, start) * row_bytes, name

    def gather(self, view: memoryview, length: int) -> memoryview:
        """Move the block's first bytes to the header, until it holds `length` bytes."""
        n = max(length - len(self.head), 0)
        self.head += view[:n]
        return view[n:]

    def read_data(self, view: memoryview) -> None:
        """Copy the block's bytes into the tensors they belong to; hand out those completed."""
        while self.spans:
            begin, end, name = self.spans[0]
            _, view = self.advance(view, begin)  # bytes before the tensor: unused
            if self.position < begin:
                return
            if self.current is None:
                self.current = np.empty(end - begin, dtype=np.uint8)
            start = self.position - begin
            part, view = self.advance(view, end)
            self.current[start:start + len(part)] = part
            if self.position < end:
                return
            self.spans.popleft()
            entry = self.header.pop(name)
            self.on_tensor(name, entry["dtype"], self.completed(entry))

    def completed(self, entry: dict) -> np.ndarray:
        """The tensor just read, as an array (no longer held here)."""
        array, self.current = self.current, None
        return array.view(DTYPES[entry["dtype"]]).reshape(entry["shape"])

    def advance(self, view: memoryview, stop: int) -> tuple[memoryview, memoryview]:
        """Split the block at data offset `stop`: the bytes before it (now read) and the rest."""
        n = min(max(stop - self.position, 0), len(view))
        self.position += n
        return view[:n], view[n:]
