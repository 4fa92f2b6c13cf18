"""Fetch a checkpoint's files in the worker, by the Hub rules of model_loader/hub.py: the revision
resolved to its commit and the files listed by the JSON API (both kept in the browser cache), then
each file the checkpoint needs from the cache, else streamed from `resolve/{commit}/{name}` into
one buffer, hashed as it arrives, stored chunk by chunk, retried with backoff and resumed with a
Range request, and marked complete in the cache only once it hashes to the listing's digest.
A download, or a read of the cache, stops when its files are deleted from the cache meanwhile."""
from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import js
from pyodide.ffi import JsException, to_js

from model_loader.checkpoint import files_to_fetch, is_weights
from model_loader.hub import (DEFAULT_ENDPOINT, RETRY_DELAYS, HubError, IntegrityError, RemoteFile, TransientError,
                              file_url, is_commit, is_transient, next_page, parse_commit, parse_tree, refusal,
                              resumed_from, revision_url, tree_url)
from pyscript.js_modules import idb
from worker.cache import Cache
from worker.chunk_store import (FileKey, chunk_count, chunk_span, complete_manifest, file_key, full_chunks,
                                partial_manifest)

OnBytes = Callable[[int, int, str], None]  # (received, total, where: "cache" or the host sending them)
READ_BLOCK = 4 * 2**20  # bytes of a JS piece of a weight file copied into the worker's memory at a time


class Cancelled(HubError):
    """The files being fetched or read were deleted from the browser cache meanwhile."""


@dataclass(eq=False)
class Job:
    """A download or a read of one cached file, stopped when its entry is deleted."""

    key: FileKey
    cancelled: bool = False

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled(f"{self.key[3]}: stopped, its files were deleted from the browser cache")


JOBS: set[Job] = set()


@contextmanager
def running(job: Job) -> Iterator[Job]:
    """The job, in JOBS (where cancel_jobs finds it) while the block runs."""
    JOBS.add(job)
    try:
        yield job
    finally:
        JOBS.discard(job)


def cancel_jobs(prefix: tuple[str, ...]) -> None:
    """Stop the downloads and cache reads of every file under a key prefix (() for all), and
    forget their partial downloads; call it before deleting them from the cache."""
    for job in JOBS:
        if job.key[:len(prefix)] == prefix:
            job.cancelled = True
    for key in [key for key in PARTIALS if key[:len(prefix)] == prefix]:
        del PARTIALS[key]


# -- HTTP


async def request(url: str, headers: dict | None = None):
    """The browser's fetch (a simple GET: no preflight), never served from its HTTP cache."""
    init = {"method": "GET", "cache": "no-store", "headers": headers or {}}
    try:
        return await js.fetch(url, to_js(init, dict_converter=js.Object.fromEntries))
    except JsException as e:  # a TypeError from fetch: offline, DNS, CORS
        raise TransientError(f"cannot reach {urlsplit(url).netloc}: {e}") from None


def checked(response, what: str):
    """The response if it is a success; else the Hub's refusal (TransientError if worth retrying)."""
    if not response.ok:
        error = TransientError if is_transient(response.status) else HubError
        raise error(refusal(response.status, response.headers.get("X-Error-Code"), what))
    return response


async def retried(attempt, *args):
    """await attempt(*args), tried again after each of RETRY_DELAYS while it fails transiently."""
    for delay in RETRY_DELAYS:
        try:
            return await attempt(*args)
        except TransientError:
            await asyncio.sleep(delay)
    return await attempt(*args)


async def api_get(url: str, what: str) -> tuple[str, str | None]:
    """The text and Link header of a JSON API answer."""
    response = checked(await request(url), what)
    return await response.text(), response.headers.get("Link")


# -- the commit and its files


async def resolve_revision(endpoint: str, repo: str, revision: str, cache: Cache) -> str:
    """The commit a revision names (an API call, so a moved branch is never served stale from
    the cache); offline, the commit it named when last resolved."""
    if is_commit(revision):
        return revision
    what = f"{repo}@{revision}"
    try:
        commit = parse_commit((await retried(api_get, revision_url(endpoint, repo, revision), what))[0], what)
    except TransientError as e:
        if commit := await cache.ref(endpoint, repo, revision):
            return commit
        raise HubError(f"{e}, and {what} is not in the browser cache") from None
    await cache.set_ref(endpoint, repo, revision, commit)
    return commit


async def list_files(endpoint: str, repo: str, commit: str, cache: Cache) -> dict[str, RemoteFile]:
    """The commit's top-level files with their sizes and hashes: from the cache, else from the
    API (every page), then kept (a commit never changes)."""
    if (kept := await cache.listing(endpoint, repo, commit)) is not None:
        return kept
    what, files, url = f"{repo}: the file listing", {}, tree_url(endpoint, repo, commit)
    while url:
        text, link = await retried(api_get, url, what)
        files.update((f.name, f) for f in parse_tree(text, what))
        url = next_page(link)
    await cache.set_listing(endpoint, repo, commit, files)
    return files


# -- one file, downloaded


@dataclass(eq=False)
class Partial(Job):
    """A file being downloaded: what arrived so far, kept across attempts and loads."""

    remote: RemoteFile = None
    buffer: bytearray = None
    received: int = 0
    stored: int = 0  # leading chunks in the cache
    digests: list[str] = field(default_factory=list)  # their sha256
    hasher: object = None
    resumed: bool = False  # holds bytes from before the current request

    def restart(self) -> None:
        self.received = self.stored = 0
        self.digests, self.hasher, self.resumed = [], self.remote.hasher(), False


PARTIALS: dict[FileKey, Partial] = {}


def keep_partials_of(model: tuple[str, ...]) -> None:
    """Free the partial downloads of other models (model: endpoint, repo, commit; or ())."""
    for key in [key for key in PARTIALS if not model or key[:3] != model]:
        del PARTIALS[key]


async def restore(key: FileKey, remote: RemoteFile, cache: Cache) -> Partial:
    """The partial download of this file kept in memory, else one that goes on from the whole
    chunks of it in the cache, else a new one."""
    partial = PARTIALS.get(key)
    if partial is not None and partial.remote == remote:
        return partial
    partial = PARTIALS[key] = Partial(key, remote=remote, buffer=bytearray(remote.size))
    partial.restart()
    good = full_chunks(await cache.resumable(key, remote))
    for index in range(good):
        found = await cache.read_chunk(key, index, remote.size)
        if found is None:
            partial.restart()
            break
        start, end = chunk_span(index, remote.size)
        found[0].assign_to(memoryview(partial.buffer)[start:end])
        partial.hasher.update(memoryview(partial.buffer)[start:end])
        partial.digests.append(found[1])
        partial.received, partial.stored = end, index + 1
    if not partial.received:
        await cache.delete(key)
        await cache.write_manifest(key, partial_manifest(remote))
    return partial


async def attempt(url: str, partial: Partial, cache: Cache, on_bytes: OnBytes) -> None:
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
    await stream(response, partial, cache, lambda got: on_bytes(got, partial.remote.size, sender))


async def stream(response, partial: Partial, cache: Cache, on_bytes: Callable[[int], None]) -> None:
    """Read the body into the partial's buffer, hashing it and storing each full chunk."""
    reader, size = response.body.getReader(), partial.remote.size
    while True:
        try:
            chunk = await reader.read()
        except JsException as e:
            if partial.received == size:
                break  # all there, and then the connection broke (e.g. a Content-Length too big): the hash judges
            raise TransientError(f"{partial.key[3]}: the connection broke at {partial.received} bytes: {e}") from None
        partial.check()
        if chunk.done:
            break
        n = chunk.value.length
        if partial.received + n > size:
            partial.restart()
            raise IntegrityError(f"{partial.key[3]}: the download is longer than the {size} bytes the Hub lists")
        view = memoryview(partial.buffer)[partial.received:partial.received + n]
        chunk.value.assign_to(view)
        partial.hasher.update(view)
        del view
        partial.received += n
        await store_chunks(partial, cache, full_chunks(partial.received))
        on_bytes(partial.received)
    if partial.received < size:
        raise TransientError(f"{partial.key[3]}: the connection closed at {partial.received} of {size} bytes")


async def store_chunks(partial: Partial, cache: Cache, upto: int) -> None:
    """Write the chunks [partial.stored, upto) to the cache."""
    while partial.stored < upto and cache.usable:
        start, end = chunk_span(partial.stored, partial.remote.size)
        partial.check()
        digest = await cache.write_chunk(partial.key, partial.stored, memoryview(partial.buffer)[start:end])
        partial.digests.append(digest)
        partial.stored += 1


async def finish(partial: Partial, cache: Cache) -> bytearray:
    """Check the whole file against the listing, then mark the cached copy complete; on a
    mismatch drop it all."""
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
    return partial.buffer


async def download(url: str, key: FileKey, remote: RemoteFile, cache: Cache, on_bytes: OnBytes) -> bytearray:
    """The file, downloaded (resumed where a partial download of it stopped) and checked."""
    partial = await restore(key, remote, cache)
    with running(partial):
        for delay in (0, *RETRY_DELAYS):
            await asyncio.sleep(delay)
            partial.check()
            try:
                await attempt(url, partial, cache, on_bytes)
                return await finish(partial, cache)
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


async def refetch_chunk(url: str, key: FileKey, remote: RemoteFile, manifest: dict, index: int, cache: Cache):
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


# -- a checkpoint's files


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


async def memory_pieces(data: bytearray) -> AsyncIterator[tuple[int, memoryview]]:
    for start in range(0, len(data), READ_BLOCK):
        yield start, memoryview(data)[start:start + READ_BLOCK]


async def body_pieces(response, size: int, on_bytes: OnBytes) -> AsyncIterator[tuple[int, object]]:
    reader, received = response.body.getReader(), 0
    while not (chunk := await reader.read()).done:
        yield received, chunk.value
        received += chunk.value.length
        on_bytes(received, size, "disk")


@dataclass
class HubFiles:
    """A commit's files on the Hub, through the browser cache."""

    endpoint: str
    repo: str
    commit: str
    listing: dict[str, RemoteFile]

    @property
    def host(self) -> str | None:
        """The endpoint's host, when it is not the default Hub (the page names it)."""
        return None if self.endpoint == DEFAULT_ENDPOINT else urlsplit(self.endpoint).netloc

    def lock_name(self) -> str:
        """The Web Lock held while this model's files are fetched (one tab downloads at a time)."""
        return f"browser-llm download {self.endpoint} {self.repo} {self.commit}"

    def url_key(self, name: str) -> tuple[str, FileKey]:
        where = (self.endpoint, self.repo, self.commit, name)
        return file_url(*where), file_key(*where)

    async def open_weights(self, name: str, cache: Cache, on_bytes: OnBytes) -> WeightStream | None:
        """A weight file as a stream (None if the commit lacks it): the cached copy chunk by
        chunk, each checked as it is read; else downloaded into the cache, then read back from
        it (so the download's buffer is freed before the weights are built); from memory if the
        cache is off."""
        if (remote := self.listing.get(name)) is None:
            return None
        if (stream := await self.cached(remote, cache, on_bytes)) is not None:
            return stream
        data = await download(*self.url_key(name), remote, cache, on_bytes)
        if cache.usable:
            del data
            return await self.open_weights(name, cache, on_bytes)
        return WeightStream(len(data), lambda: memory_pieces(data), data)

    async def fetch(self, name: str, cache: Cache, on_bytes: OnBytes) -> bytearray | None:
        """A file whole (None if the commit lacks it): the cached copy, else the download."""
        if (remote := self.listing.get(name)) is None:
            return None
        if (stream := await self.cached(remote, cache, on_bytes)) is not None:
            return await stream.whole()
        return await download(*self.url_key(name), remote, cache, on_bytes)

    async def cached(self, remote: RemoteFile, cache: Cache, on_bytes: OnBytes) -> WeightStream | None:
        """The cache's good copy of a listed file as a stream, or None."""
        url, key = self.url_key(remote.name)
        if (manifest := await cache.good_entry(key, remote)) is None:
            return None

        async def pieces() -> AsyncIterator[tuple[int, object]]:
            with running(Job(key)) as job:
                async def repair(index: int):
                    job.check()
                    return await retried(refetch_chunk, url, key, remote, manifest, index, cache)

                async for piece in cache.chunks(key, manifest, repair, on_bytes):
                    job.check()
                    yield piece

        return WeightStream(remote.size, pieces)


@dataclass
class LocalFiles:
    """Files the visitor picked, as blob: URLs made by the page (read, never uploaded or cached),
    or the files of a folder URL given to browser-llm.js (unlisted and unchecked: no Hub)."""

    urls: dict[str, str]
    host = None

    async def open_weights(self, name: str, cache: Cache, on_bytes: OnBytes) -> WeightStream | None:
        """The file as its body arrives, or whole when its size is not announced."""
        if name not in self.urls:
            return None
        response = await request(self.urls[name])
        if response.status == 404:  # a folder URL without this file
            return None
        checked(response, name)
        if (length := response.headers.get("Content-Length")) is None:
            data = bytearray((await response.arrayBuffer()).to_bytes())
            on_bytes(len(data), len(data), "disk")
            return WeightStream(len(data), lambda: memory_pieces(data), data)
        return WeightStream(int(length), lambda: body_pieces(response, int(length), on_bytes))

    async def fetch(self, name: str, cache: Cache, on_bytes: OnBytes) -> bytearray | None:
        stream = await self.open_weights(name, cache, on_bytes)
        return None if stream is None else await stream.whole()


Source = HubFiles | LocalFiles


async def hub_files(endpoint: str, repo: str, revision: str, cache: Cache) -> HubFiles:
    endpoint = endpoint.rstrip("/")
    commit = await resolve_revision(endpoint, repo, revision, cache)
    return HubFiles(endpoint, repo, commit, await list_files(endpoint, repo, commit, cache))


async def fetch_checkpoint(source: Source, cache: Cache, on_file: Callable[[str, int, int, str], None],
                           on_config: Callable[[bytes], None], streams: bool = False) -> dict[str, object | None]:
    """All files of a GPT-2 checkpoint (the weights as WeightStreams if `streams`); on_config
    runs as soon as config.json arrives so a wrong model fails before the big download."""
    have: dict[str, object | None] = {}
    while names := files_to_fetch(have):
        for name in names:
            fetch = source.open_weights if streams and is_weights(name) else source.fetch
            have[name] = await fetch(name, cache, lambda got, total, where: on_file(name, got, total, where))
            if name == "config.json":
                if have[name] is None:
                    raise HubError("config.json is missing")
                on_config(bytes(have[name]))
    return have


async def hold_download_lock(source: Source, on_wait: Callable[[], None]):
    """Take the Web Lock of a Hub model's files (so two tabs never download the same file at
    once): the release function, after on_wait() if another tab holds it."""
    if not isinstance(source, HubFiles):
        return lambda: None
    release = await idb.acquire(source.lock_name(), False)
    if release is None:
        on_wait()
        release = await idb.acquire(source.lock_name(), True)
    return release
