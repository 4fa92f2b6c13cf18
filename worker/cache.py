"""The model cache in IndexedDB: a thin async layer over worker/idb.js that speaks in the
terms of worker/chunk_store.py. When IndexedDB cannot be opened, or a write fails (quota),
the cache turns itself off and says why; downloads then carry on from memory."""
from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import asdict

import js
from pyodide.ffi import JsException, to_js

from model_loader.hub import RemoteFile
from pyscript.js_modules import idb
from worker.chunk_store import (FileKey, chunk_count, chunk_lengths, chunk_span, entry_problem, matches,
                                resumable_bytes, summarize)



READ_AHEAD = 2  # cached chunks read and hashed (by idb.js's chunk reader, a thread of its own) ahead of the one in use


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
        self.used: dict[tuple, None] = {}  # the chunks read or written, in order: (*key, index) (remember_reads)

    @classmethod
    async def open(cls) -> Cache:
        try:
            db = await idb.open()
        except JsException as e:
            return cls(off=f"the browser cache (IndexedDB) is not available: {reason(e)}")
        idb.startChunkReader()
        return cls(db)

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

    async def stored_chunk_sizes(self, key: FileKey, size: int) -> list[int | None]:
        """The length each chunk of the file must have, where one is stored (None where it is
        missing), from the chunks' keys alone: their bytes are checked as they are read."""
        found = await self.guard(lambda: idb.chunkIndexes(self.db, js_key(key)))
        stored = set(from_js(found) if found is not None else [])
        return [length if index in stored else None for index, length in enumerate(chunk_lengths(size))]

    async def good_entry(self, key: FileKey, remote: RemoteFile) -> dict | None:
        """The manifest of a complete entry of the listed file with all its chunks; an entry
        that is broken or no longer the listed file is deleted."""
        manifest = await self.manifest(key)
        if manifest is None or not manifest.get("complete") and matches(manifest, remote):
            return None  # nothing, or a partial download of this very file (resumable)
        if entry_problem(manifest, remote, await self.stored_chunk_sizes(key, remote.size)) is None:
            return manifest
        await self.delete(key)
        return None

    async def resumable(self, key: FileKey, remote: RemoteFile) -> int:
        """How many leading bytes of a partial entry of the listed file a download may reuse."""
        manifest = await self.manifest(key)
        if manifest is None:
            return 0
        return resumable_bytes(manifest, remote, await self.stored_chunk_sizes(key, remote.size))

    def get_chunk(self, key: FileKey, index: int):
        """Start reading stored chunk `index` (a JS promise of {data, sha256}); await it with guard."""
        self.used[(*key, index)] = None
        return idb.getChunk(self.db, js_key(key), index)

    async def read_chunk(self, key: FileKey, index: int, size: int, reading=None) -> tuple[object, str] | None:
        """Stored chunk `index` of a file of `size` bytes, as (JS Uint8Array, its sha256); None
        if it is missing or not as long as it must be. `reading`: get_chunk's promise for it."""
        start, stop = chunk_span(index, size)
        found = await self.guard(lambda: self.get_chunk(key, index) if reading is None else reading)
        if found is None or found.data is None or found.data.byteLength != stop - start:
            return None
        return js.Uint8Array.new(found.data), found.sha256

    async def chunks(self, key: FileKey, manifest: dict, repair, on_bytes) -> AsyncIterator[tuple[int, object]]:
        """A complete file's chunks as (offset, JS Uint8Array), each checked against its recorded
        sha256 (the next READ_AHEAD are read and hashed meanwhile); a chunk that is missing or
        changed is replaced by `await repair(index)`. on_bytes(received, size, "cache") after each."""
        size, count = manifest["size"], chunk_count(manifest["size"])
        reading = deque(self.get_chunk(key, i) for i in range(min(READ_AHEAD, count)) if self.usable)
        for index in range(count):
            start, stop = chunk_span(index, size)
            found = await self.read_chunk(key, index, size, reading.popleft() if reading else None)
            if self.usable and index + READ_AHEAD < count:
                reading.append(self.get_chunk(key, index + READ_AHEAD))
            yield start, found[0] if found and found[1] == manifest["chunks"][index] else await repair(index)
            on_bytes(stop, size, "cache")

    async def write_manifest(self, key: FileKey, manifest: dict) -> None:
        await self.guard(lambda: idb.put(self.db, "files", js_key(key), json.dumps(manifest)))

    async def write_chunk(self, key: FileKey, index: int, data) -> str | None:
        """Store one chunk (data: a view into the file's buffer, or a JS Uint8Array); its sha256,
        or None if the cache failed."""
        self.used[(*key, index)] = None
        return await self.guard(lambda: idb.putChunk(self.db, js_key(key), index, to_js(data)))

    async def remember_reads(self, endpoint: str, repo: str, revision: str) -> None:
        """Keep which chunks this load used, in order, for the page's chunk reader to read ahead
        on the next visit that loads this model (client/parallel.js readAhead)."""
        model = to_js({"endpoint": endpoint, "repo": repo, "revision": revision}, dict_converter=js.Object.fromEntries)
        await self.guard(lambda: idb.rememberReads(self.db, model, to_js([list(chunk) for chunk in self.used])))

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

    async def listing(self, endpoint: str, repo: str, commit: str) -> dict[str, RemoteFile] | None:
        """The Hub's listing of a commit's files, as kept when it was first fetched."""
        kept = from_js(await self.guard(lambda: idb.get(self.db, "refs", js_key((endpoint, repo, commit, "tree")))))
        return {f["name"]: RemoteFile(**f) for f in json.loads(kept)} if isinstance(kept, str) else None

    async def set_listing(self, endpoint: str, repo: str, commit: str, files: dict[str, RemoteFile]) -> None:
        value = json.dumps([asdict(f) for f in files.values()])
        await self.guard(lambda: idb.put(self.db, "refs", js_key((endpoint, repo, commit, "tree")), value))

    async def models(self) -> list[dict]:
        """Cached models for the cache manager (see chunk_store.summarize)."""
        found = await self.guard(lambda: idb.entries(self.db, "files", js_key(())))
        rows = from_js(found) if found is not None else []
        return summarize([(tuple(key), json.loads(value)) for key, value in rows])
