"""A reader of the safetensors format that checks everything before trusting it.

Layout: an 8-byte little-endian header length N, N bytes of JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the data;
offsets count from the end of the header.
"""
from __future__ import annotations

import json
import math

import numpy as np

DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # raw bits; widened to float32 by to_float32
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
MAX_HEADER = 100 * 1024 * 1024


class SafetensorsError(ValueError):
    """The bytes are not a valid safetensors file."""


def read_header(buf: bytes | memoryview) -> tuple[dict, int]:
    """Return the parsed, checked header and the offset where the data starts."""
    size = len(buf)
    if size < 8:
        raise SafetensorsError(f"file is {size} bytes, too short for a header length")
    n = int.from_bytes(bytes(buf[:8]), "little")
    if n > size - 8 or n > MAX_HEADER:
        raise SafetensorsError(f"header length {n} runs past the end of the file ({size} bytes)")
    try:
        header = json.loads(bytes(buf[8:8 + n]))
    except ValueError as e:
        raise SafetensorsError(f"header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise SafetensorsError("header is not a JSON object")
    header.pop("__metadata__", None)
    check_entries(header, size - 8 - n)
    return header, 8 + n


def check_entries(header: dict, data_size: int) -> None:
    spans = []
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
        spans.append((begin, end, name))
    spans.sort()
    for (_, end, a), (begin, _, b) in zip(spans, spans[1:]):
        if begin < end:
            raise SafetensorsError(f"tensors {a} and {b} overlap")


def read_safetensors(buf: bytes | memoryview) -> dict[str, tuple[str, np.ndarray]]:
    """Return {name: (dtype name, array)}; arrays are read-only views into `buf`."""
    header, start = read_header(buf)
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        array = np.frombuffer(buf, dtype=DTYPES[entry["dtype"]], count=math.prod(entry["shape"]),
                              offset=start + begin)
        tensors[name] = (entry["dtype"], array.reshape(entry["shape"]))
    return tensors
