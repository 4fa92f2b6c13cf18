"""The model cache in IndexedDB: a thin async layer over worker/idb.js that speaks in the
terms of worker/chunk_store.py. When IndexedDB cannot be opened, or a write fails (quota),
the cache turns itself off and says why; downloads then carry on from memory."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator

import js
from pyodide.ffi import JsException, to_js

from pyscript.js_modules import idb
from worker.chunk_store import FileKey, chunk_count, chunk_lengths, chunk_span, entry_problem, resumable_bytes, summarize


READ_BLOCK = 4 * 2**20  # bytes of a cached file copied into the worker's memory at a time


def js_key(parts) -> object:
    return to_js(list(parts))


def from_js(value):
    return value.to_py() if hasattr(value, "to_py") else value


def reason(error: Exception) -> str:
    """A short reason for a failed IndexedDB call ("QuotaExceededError: …" → "storage is full")."""
    text = str(error).removeprefix("Error: ")
    return "storage is full (quota exceeded)" if "QuotaExceeded" in text else text


class Cache:
    """One open cache database, or a disabled one that remembers why it is off."""

    def __init__(self, db=None, off: str | None = None):
        self.db, self.off = db, off

    @classmethod
    async def open(cls) -> Cache:
        try:
            return cls(await idb.open())
        except JsException as e:
            return cls(off=f"the browser cache (IndexedDB) is not available: {reason(e)}")

    @property
    def usable(self) -> bool:
        return self.db is not None and self.off is None

    async def guard(self, call):
        """Await call() (one IndexedDB call); on failure switch the cache off and return None."""
        if not self.usable:
            return None
        try:
            return await call()
        except JsException as e:
            self.off = f"the browser cache failed: {reason(e)}"
            return None

    async def manifest(self, key: FileKey) -> dict | None:
        if not self.usable:
            return None
        value = await self.guard(lambda: idb.get(self.db, "files", js_key(key)))
        return json.loads(value) if isinstance(value, str) else None

    async def chunk_sizes(self, key: FileKey, size: int) -> list[int | None]:
        sizes = await self.guard(lambda: idb.chunkSizes(self.db, js_key(key), chunk_count(size)))
        return from_js(sizes) if sizes is not None else []

    async def stored_chunk_sizes(self, key: FileKey, size: int) -> list[int | None]:
        """The length each chunk of a complete file must have, where one is stored (None where
        it is missing), from the chunks' keys: their bytes are checked as they are read."""
        found = await self.guard(lambda: idb.chunkIndexes(self.db, js_key(key)))
        stored = set(from_js(found) if found is not None else [])
        return [length if index in stored else None for index, length in enumerate(chunk_lengths(size))]

    async def good_entry(self, key: FileKey) -> dict | None:
        """The manifest of a complete entry with all its chunks; a broken one is deleted."""
        manifest = await self.manifest(key)
        if manifest is None:
            return None
        sizes = await self.stored_chunk_sizes(key, manifest["size"]) if isinstance(manifest.get("size"), int) else []
        if manifest.get("complete") and entry_problem(manifest, sizes) is None:
            return manifest
        if manifest.get("complete"):
            await self.delete(key)
        return None

    async def resumable(self, key: FileKey) -> tuple[dict | None, int]:
        """A partial entry's manifest and how many of its leading bytes a download may reuse."""
        manifest = await self.manifest(key)
        if manifest is None or manifest.get("complete") or not isinstance(manifest.get("size"), int):
            return None, 0
        return manifest, resumable_bytes(manifest, await self.chunk_sizes(key, manifest["size"]))

    async def read_into(self, key: FileKey, size: int, buffer: memoryview, first: int = 0, end: int | None = None) -> bool:
        """Copy the stored chunks [first, end) into buffer (the whole file); False if one went missing."""
        for index in range(first, chunk_count(size) if end is None else end):
            start, stop = chunk_span(index, size)
            chunk = await self.chunk(key, index, size)
            if chunk is None:
                return False
            chunk.assign_to(buffer[start:stop])
        return True

    async def chunk(self, key: FileKey, index: int, size: int):
        """Stored chunk `index` of a file of `size` bytes, as a JS Uint8Array; None if it is
        missing or not as long as it must be."""
        start, stop = chunk_span(index, size)
        data = await self.guard(lambda: idb.get(self.db, "chunks", js_key((*key, index))))
        return js.Uint8Array.new(data) if data is not None and data.byteLength == stop - start else None

    async def chunks(self, key: FileKey, size: int, on_bytes) -> AsyncIterator[memoryview]:
        """The stored file's bytes in blocks of READ_BLOCK (one view, reused for the next block:
        a chunk is copied into the worker's memory a block at a time); on_bytes(received, size,
        True) after each chunk. Raises OSError if a chunk went missing."""
        buffer = memoryview(bytearray(min(READ_BLOCK, size)))
        for index in range(chunk_count(size)):
            start, stop = chunk_span(index, size)
            chunk = await self.chunk(key, index, size)
            if chunk is None:
                await self.delete(key)
                raise OSError(f"{key[3]}: the browser cache lost part of it; press Load model to fetch it again")
            for at in range(0, stop - start, READ_BLOCK):
                n = min(READ_BLOCK, stop - start - at)
                chunk.subarray(at, at + n).assign_to(buffer[:n])
                yield buffer[:n]
            on_bytes(stop, size, True)

    async def write_manifest(self, key: FileKey, manifest: dict) -> None:
        await self.guard(lambda: idb.put(self.db, "files", js_key(key), json.dumps(manifest)))

    async def write_chunk(self, key: FileKey, index: int, data: memoryview) -> None:
        """Store one chunk (data is a view into the file's buffer)."""
        await self.guard(lambda: idb.putChunk(self.db, js_key(key), index, to_js(data)))

    async def delete(self, prefix: tuple[str, ...]) -> None:
        """Delete every record under a key prefix: a file, a model (endpoint, repo, revision) or ()."""
        if self.db is not None:
            try:
                await idb.remove(self.db, js_key(prefix))
            except JsException:
                pass  # nothing more to do: a partial entry is never served anyway

    async def ref(self, endpoint: str, repo: str, revision: str) -> str | None:
        """The commit a moving revision pointed to when it was last resolved online."""
        return from_js(await self.guard(lambda: idb.get(self.db, "refs", js_key((endpoint, repo, revision)))))

    async def set_ref(self, endpoint: str, repo: str, revision: str, commit: str) -> None:
        await self.guard(lambda: idb.put(self.db, "refs", js_key((endpoint, repo, revision)), commit))

    async def models(self) -> list[dict]:
        """Cached models for the cache manager (see chunk_store.summarize)."""
        found = await self.guard(lambda: idb.entries(self.db, "files", js_key(())))
        rows = from_js(found) if found is not None else []
        return summarize([(tuple(key), json.loads(value)) for key, value in rows])
