"""A weight file read piece by piece (from the cache's chunks, a response's body, or memory), as
blocks of bounded size, so a shard is built tensor by tensor, or whole."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

READ_BLOCK = 4 * 2**20  # bytes of a JS piece of a weight file copied into the worker's memory at a time


@dataclass
class WeightStream:
    """A weight file to read piece by piece: the cache's chunks, a response's body, or memory (a
    download just made). `pieces()` yields (offset, a JS Uint8Array or a memoryview) and may be
    iterated once, through blocks() or whole()."""

    size: int
    pieces: Callable[[], AsyncIterator[tuple[int, object]]]
    data: bytearray | None = None  # the whole file, when it is in memory anyway

    async def blocks(self) -> AsyncIterator[memoryview]:
        """The file in blocks of at most READ_BLOCK bytes of the worker's memory (a JS piece is
        copied in a block at a time, into one reused buffer)."""
        buffer = None
        async for _, piece in self.pieces():
            if isinstance(piece, memoryview):
                yield piece
                continue
            buffer = buffer or memoryview(bytearray(min(READ_BLOCK, self.size)))
            for at in range(0, piece.length, READ_BLOCK):
                n = min(READ_BLOCK, piece.length - at)
                piece.subarray(at, at + n).assign_to(buffer[:n])
                yield buffer[:n]

    async def whole(self) -> bytearray:
        """The whole file in memory (each piece copied once, into place)."""
        if self.data is None:
            self.data = bytearray(self.size)
            async for at, piece in self.pieces():
                if isinstance(piece, memoryview):
                    self.data[at:at + len(piece)] = piece
                else:
                    piece.assign_to(memoryview(self.data)[at:at + piece.length])
        return self.data


def from_memory(data: bytearray) -> WeightStream:
    """A file already in memory as a stream (of READ_BLOCK views into it)."""
    async def pieces() -> AsyncIterator[tuple[int, memoryview]]:
        for start in range(0, len(data), READ_BLOCK):
            yield start, memoryview(data)[start:start + READ_BLOCK]

    return WeightStream(len(data), pieces, data)
