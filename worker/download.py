"""Downloads in the worker: the browser's fetch (its failures worth retrying told apart), one file
streamed (hashed as it arrives, stored in the cache chunk by chunk, retried with backoff and
resumed with a Range request, marked complete only once it hashes to the listing's digest), and
one cached chunk fetched again. A file read back from the cache afterwards is downloaded rolling:
only the chunk in progress is in memory, each one dropped once stored, so no worker ever holds a
whole weight file; a file wanted whole (or with the cache off) goes into one buffer. Each download, and each read of a cached file
(checkpoint_files.py), runs as a Job that stops when its files are deleted from the cache
meanwhile (cancel_jobs)."""
from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import js
from pyodide.ffi import JsException, JsProxy, to_js

from model_loader.hub import (RETRY_DELAYS, HubError, IntegrityError, RemoteFile, TransientError, is_transient,
                              refusal, resumed_from)
from worker.cache import Cache
from worker.chunk_store import (CHUNK_SIZE, FileKey, chunk_count, chunk_span, complete_manifest, full_chunks,
                                partial_manifest)

OnBytes = Callable[[int, int, str], None]  # (received, total, where: "cache" or the host sending them)


class Cancelled(HubError):
    """A download or cache read was stopped: its files were deleted from the browser cache
    meanwhile, or the load was cancelled."""


DELETED = "stopped, its files were deleted from the browser cache"
CANCELLED = "loading was cancelled; what was downloaded is kept for the next load"


@dataclass(eq=False)
class Job:
    """A download or a read of one cached file, stopped when its entry is deleted."""

    key: FileKey
    stopped: str | None = None  # why, once stopped

    def check(self) -> None:
        if self.stopped:
            raise Cancelled(f"{self.key[3]}: {self.stopped}")


JOBS: set[Job] = set()
LOAD = {"cancelled": False}  # set by cancel_load, until the next load begins


@contextmanager
def running(job: Job) -> Iterator[Job]:
    """The job, in JOBS (where cancel_jobs finds it) while the block runs."""
    if LOAD["cancelled"]:
        job.stopped = CANCELLED
    JOBS.add(job)
    try:
        yield job
    finally:
        JOBS.discard(job)


def cancel_jobs(prefix: tuple[str, ...], why: str = DELETED) -> None:
    """Stop the downloads and cache reads of every file under a key prefix (() for all), within
    a chunk. Unless the load was only cancelled, forget their partial downloads too: call it
    before deleting them from the cache."""
    for job in JOBS:
        if job.key[:len(prefix)] == prefix:
            job.stopped = why
    if why != CANCELLED:
        for key in [key for key in PARTIALS if key[:len(prefix)] == prefix]:
            del PARTIALS[key]


def cancel_load() -> None:
    """Stop the load in progress within a chunk, keeping its partial downloads for the next."""
    LOAD["cancelled"] = True
    cancel_jobs((), CANCELLED)


def begin_load() -> None:
    LOAD["cancelled"] = False


# -- HTTP


async def request(url: str, headers: dict | None = None) -> JsProxy:
    """The browser's fetch (a simple GET: no preflight), never served from its HTTP cache."""
    init = {"method": "GET", "cache": "no-store", "headers": headers or {}}
    try:
        return await js.fetch(url, to_js(init, dict_converter=js.Object.fromEntries))
    except JsException as e:  # a TypeError from fetch: offline, DNS, CORS
        raise TransientError(f"cannot reach {urlsplit(url).netloc}: {e}") from None


def checked(response: JsProxy, what: str) -> JsProxy:
    """The response if it is a success; else the Hub's refusal (TransientError if worth retrying)."""
    if not response.ok:
        error = TransientError if is_transient(response.status) else HubError
        raise error(refusal(response.status, response.headers.get("X-Error-Code"), what))
    return response


async def retried(attempt: Callable[..., Awaitable], *args):
    """await attempt(*args), tried again after each of RETRY_DELAYS while it fails transiently."""
    for delay in RETRY_DELAYS:
        try:
            return await attempt(*args)
        except TransientError:
            await asyncio.sleep(delay)
    return await attempt(*args)


# -- one file, downloaded


@dataclass(eq=False)
class PartialDownload(Job):
    """A file being downloaded: what arrived so far, kept across attempts and loads. Rolling,
    `buffer` holds only the chunk in progress, which starts at byte `base` of the file; else
    the whole file (base 0)."""

    remote: RemoteFile = None
    rolling: bool = False
    buffer: bytearray = None
    base: int = 0
    received: int = 0
    stored: int = 0  # leading chunks in the cache
    digests: list[str] = field(default_factory=list)  # their sha256
    hasher: object = None
    resumed: bool = False  # holds bytes from before the current request

    def restart(self) -> None:
        self.received = self.stored = self.base = 0
        self.digests, self.hasher, self.resumed = [], self.remote.hasher(), False

    def hold_whole(self, why: str) -> None:
        """Keep the whole file in memory from now on (the cache failed while rolling: `why`): the
        bytes in the buffer stay if no chunk was dropped yet, else the download starts over."""
        if self.remote.size > sys.maxsize:
            raise HubError(f"{self.key[3]}: {why}, and its {self.remote.size / 1e9:.1f} GB cannot be held in "
                           "memory instead")
        chunk, n = self.buffer, self.received - self.base
        self.rolling, self.buffer = False, bytearray(self.remote.size)
        if self.base:  # a chunk was dropped already
            self.restart()
            raise TransientError(f"{self.key[3]}: the browser cache failed; downloading it again into memory")
        self.buffer[:n] = memoryview(chunk)[:n]


PARTIALS: dict[FileKey, PartialDownload] = {}


def keep_partials_of(model: tuple[str, ...]) -> None:
    """Free the partial downloads of other models (model: endpoint, repo, commit; or ())."""
    for key in [key for key in PARTIALS if not model or key[:3] != model]:
        del PARTIALS[key]


async def resume_or_start(key: FileKey, remote: RemoteFile, cache: Cache, rolling: bool) -> PartialDownload:
    """The partial download of this file kept in memory, else one that goes on from the whole
    chunks of it in the cache (read back to be hashed; rolling, not kept), else a new one."""
    partial = PARTIALS.get(key)
    if partial is not None and partial.remote == remote and partial.rolling == rolling:
        partial.stopped = None  # a cancelled load goes on where it stopped
        return partial
    size = min(remote.size, CHUNK_SIZE) if rolling else remote.size
    partial = PARTIALS[key] = PartialDownload(key, remote=remote, rolling=rolling, buffer=bytearray(size))
    partial.restart()
    good = full_chunks(await cache.resumable(key, remote))
    for index in range(good):
        found = await cache.read_chunk(key, index, remote.size)
        if found is None:
            partial.restart()
            break
        start, end = chunk_span(index, remote.size)
        if rolling:
            partial.hasher.update(found[0].to_bytes())
        else:
            found[0].assign_to(memoryview(partial.buffer)[start:end])
            partial.hasher.update(memoryview(partial.buffer)[start:end])
        partial.digests.append(found[1])
        partial.received, partial.stored = end, index + 1
        partial.base = end if rolling else 0
    if not partial.received:
        await cache.delete(key)
        await cache.write_manifest(key, partial_manifest(remote))
    return partial


async def request_rest(url: str, partial: PartialDownload, cache: Cache, on_bytes: OnBytes) -> None:
    """One request for the rest of the file (all of it if nothing arrived yet)."""
    asked_from = partial.received
    response = checked(await request(url, {"Range": f"bytes={asked_from}-"} if asked_from else {}), partial.key[3])
    length = response.headers.get("Content-Length")
    try:
        start = resumed_from(response.status, asked_from, int(length) if length else None, partial.remote.size)
    except TransientError:
        partial.restart()
        raise
    if start == 0 and asked_from:
        partial.restart()  # a 200: the whole file again
    partial.resumed = start > 0
    sender = urlsplit(response.url).netloc  # after a redirect: the CDN's host
    await receive_body(response, partial, cache, lambda got: on_bytes(got, partial.remote.size, sender))


async def receive_body(response: JsProxy, partial: PartialDownload, cache: Cache,
                       on_bytes: Callable[[int], None]) -> None:
    """Read the body into the partial's buffer, hashing it and storing each full chunk."""
    reader, size = response.body.getReader(), partial.remote.size
    while True:
        try:
            chunk = await reader.read()
        except JsException as e:
            if partial.received == size:
                break  # all there, and then the connection broke (e.g. a Content-Length too big): the hash judges
            raise TransientError(f"{partial.key[3]}: the connection broke at {partial.received} bytes: {e}") from None
        if partial.stopped:
            reader.cancel()  # the connection closes: no more bytes come
            partial.check()
        if chunk.done:
            break
        n = chunk.value.length
        if partial.received + n > size:
            partial.restart()
            raise IntegrityError(f"{partial.key[3]}: the download is longer than the {size} bytes the Hub lists")
        taken = 0
        while taken < n:  # rolling, a piece may end one chunk and begin the next
            at = partial.received - partial.base
            take = min(n - taken, len(partial.buffer) - at)
            view = memoryview(partial.buffer)[at:at + take]
            chunk.value.subarray(taken, taken + take).assign_to(view)
            partial.hasher.update(view)
            del view
            partial.received += take
            taken += take
            await store_chunks(partial, cache, full_chunks(partial.received))
        on_bytes(partial.received)
    if partial.received < size:
        raise TransientError(f"{partial.key[3]}: the connection closed at {partial.received} of {size} bytes")


async def store_chunks(partial: PartialDownload, cache: Cache, upto: int) -> None:
    """Write the chunks [partial.stored, upto) to the cache; rolling, the buffer is then free for
    the next chunk (and if the cache fails, the download holds the whole file instead)."""
    while partial.stored < upto and cache.usable:
        start, end = chunk_span(partial.stored, partial.remote.size)
        partial.check()
        digest = await cache.write_chunk(partial.key, partial.stored,
                                         memoryview(partial.buffer)[start - partial.base:end - partial.base])
        if digest is None:
            break  # the cache failed and is off now
        partial.digests.append(digest)
        partial.stored += 1
        partial.base = end if partial.rolling else 0
    if partial.rolling and not cache.usable:
        partial.hold_whole(cache.off)


async def finish_download(partial: PartialDownload, cache: Cache) -> bytearray | None:
    """Check the whole file against the listing, then mark the cached copy complete; on a
    mismatch drop it all. The file's bytes, or None when it was downloaded rolling into the cache."""
    PARTIALS.pop(partial.key, None)
    try:
        partial.remote.check(partial.received, partial.hasher.hexdigest())
    except IntegrityError:
        await cache.delete(partial.key)
        raise
    await store_chunks(partial, cache, chunk_count(partial.remote.size))
    partial.check()
    await cache.write_manifest(partial.key, complete_manifest(partial.remote, partial.digests))
    if not cache.usable:
        await cache.delete(partial.key)
    return None if partial.rolling else partial.buffer


async def download(url: str, key: FileKey, remote: RemoteFile, cache: Cache, on_bytes: OnBytes,
                   whole: bool = True) -> bytearray | None:
    """The file, downloaded (resumed where a partial download of it stopped) and checked: its
    bytes; or, not `whole` and into a usable cache, rolling: None, and the cache has it."""
    partial = await resume_or_start(key, remote, cache, rolling=not whole and cache.usable)
    with running(partial):
        for delay in (0, *RETRY_DELAYS):
            await asyncio.sleep(delay)
            partial.check()
            try:
                await request_rest(url, partial, cache, on_bytes)
                return await finish_download(partial, cache)
            except TransientError as e:
                failure = str(e)
            except IntegrityError as e:
                if not partial.resumed:
                    raise
                failure = str(e)  # resumed on top of bytes that were not the file's: once more, whole
                partial.restart()
                PARTIALS[key] = partial
                await cache.write_manifest(key, partial_manifest(remote))
    raise HubError(f"{remote.name}: the download failed at {partial.received} of {remote.size} bytes after "
                   f"{1 + len(RETRY_DELAYS)} attempts ({failure}); press Load model to resume")


async def refetch_chunk(url: str, key: FileKey, remote: RemoteFile, manifest: dict, index: int,
                        cache: Cache) -> JsProxy:
    """Chunk `index` of a cached file whose stored copy is missing or changed, downloaded again
    (a Range request; a 200 is read up to the chunk), checked against its recorded sha256 and
    stored again; as a JS Uint8Array."""
    start, end = chunk_span(index, remote.size)
    response = checked(await request(url, {"Range": f"bytes={start}-{end - 1}"}), remote.name)
    data = (await response.arrayBuffer()).to_bytes()
    data = data if response.status == 206 else data[start:end]
    if hashlib.sha256(data).hexdigest() != manifest["chunks"][index]:
        raise IntegrityError(f"{remote.name}: its cached copy changed and a new download of the part did not match")
    chunk = to_js(data)
    await cache.write_chunk(key, index, chunk)
    return chunk
