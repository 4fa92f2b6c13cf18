"""A reader of the safetensors format that checks everything before trusting it.

Layout: an 8-byte little-endian header length N, N bytes of JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the data;
offsets count from the end of the header.
"""
from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable

import numpy as np

DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # raw bits; widened to float32 by to_float32
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
MAX_HEADER = 100 * 1024 * 1024
Buffer = bytes | bytearray | memoryview


class SafetensorsError(ValueError):
    """The bytes are not a valid safetensors file."""


def read_header(buf: Buffer) -> tuple[dict, int]:
    """Return the parsed, checked header and the offset where the data starts."""
    n = header_length(buf, len(buf))
    return parse_header(buf[8:8 + n], len(buf) - 8 - n), 8 + n


def header_length(prefix: Buffer, size: int) -> int:
    """The header length N from the first 8 bytes of a file of `size` bytes, checked."""
    if size < 8:
        raise SafetensorsError(f"file is {size} bytes, too short for a header length")
    n = int.from_bytes(bytes(prefix[:8]), "little")
    if n > size - 8 or n > MAX_HEADER:
        raise SafetensorsError(f"header length {n} runs past the end of the file ({size} bytes)")
    return n


def parse_header(raw: Buffer, data_size: int) -> dict:
    """The header's JSON without __metadata__, checked against `data_size` bytes of data."""
    try:
        header = json.loads(bytes(raw))
    except ValueError as e:
        raise SafetensorsError(f"header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise SafetensorsError("header is not a JSON object")
    header.pop("__metadata__", None)
    check_entries(header, data_size)
    return header


def check_entries(header: dict, data_size: int) -> None:
    for name, entry in header.items():
        if not isinstance(entry, dict):
            raise SafetensorsError(f"{name}: entry is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in DTYPES:
            raise SafetensorsError(f"{name}: unknown dtype {dtype!r}")
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise SafetensorsError(f"{name}: bad shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise SafetensorsError(f"{name}: bad data_offsets {offsets!r}")
        begin, end = offsets
        if not 0 <= begin <= end <= data_size:
            raise SafetensorsError(f"{name}: data_offsets {offsets} out of range (data is {data_size} bytes)")
        if end - begin != math.prod(shape) * DTYPES[dtype].itemsize:
            raise SafetensorsError(f"{name}: {end - begin} bytes do not hold {dtype} {shape}")
    spans = data_order(header)
    for (_, end, a), (begin, _, b) in zip(spans, spans[1:]):
        if begin < end:
            raise SafetensorsError(f"tensors {a} and {b} overlap")


def data_order(header: dict) -> list[tuple[int, int, str]]:
    """(begin, end, name) of every tensor, in the order of their bytes in the file."""
    return sorted((*header[name]["data_offsets"], name) for name in header)


def read_safetensors(buf: Buffer) -> dict[str, tuple[str, np.ndarray]]:
    """Return {name: (dtype name, array)}; arrays are read-only views into `buf`."""
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
    read; bytes that belong to no tensor are skipped. `finish` checks that the whole file came."""

    def __init__(self, size: int, on_tensor: Callable[[str, str, np.ndarray], None],
                 rows: Callable[[str], slice | None] = lambda name: None):
        """rows(name): the only rows (first axis) of a tensor to read, or None for all of it;
        the other rows' bytes are skipped, and the tensor comes out with those rows only."""
        self.size, self.received, self.on_tensor, self.rows = size, 0, on_tensor, rows
        self.head: bytearray | None = bytearray()  # the header's bytes, until it is parsed
        self.header: dict = {}
        self.spans: deque[tuple[int, int, str]] = deque()  # the tensors still to come, in file order
        self.position = 0  # bytes of data (after the header) read so far
        self.current: np.ndarray | None = None  # the bytes of the tensor being read

    def feed(self, block: Buffer) -> None:
        """Take the next bytes of the file; hand out the tensors they complete."""
        view = memoryview(block).cast("B")
        self.received += len(view)
        if self.received > self.size:
            raise SafetensorsError(f"the file runs past the {self.size} bytes it was said to have")
        if self.head is not None:
            view = self.read_header(view)
        if self.head is None:
            self.read_data(view)

    def finish(self) -> None:
        """Check that the whole file came, so that every tensor was handed out."""
        if self.received < self.size:
            raise SafetensorsError(f"the file ended after {self.received} of its {self.size} bytes")

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
