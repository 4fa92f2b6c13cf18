"""Fetch a repository's files in the worker: the cache first, else a streamed fetch into one
preallocated buffer, hashed as it arrives, retried with backoff on transient errors and resumed
with a Range request from the bytes already received (kept in memory and in the cache)."""
from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import js
from pyodide.ffi import JsException, to_js

from model_loader.checkpoint import files_to_fetch, is_weights
from worker.cache import Cache
from worker.chunk_store import (CHUNK_SIZE, FileKey, IntegrityError, absent_manifest, check_download, chunk_count,
                                chunk_span, complete_manifest, file_key, full_chunks, is_commit,
                                partial_manifest, sha256_from_etag)

RETRY_DELAYS = (0.25, 1.0, 3.0)  # seconds to wait before the 2nd, 3rd and 4th attempt
OnBytes = Callable[[int, int, bool], None]  # (received, total, from the cache)


class DownloadError(OSError):
    """The hub refused or failed a download; the message says which and why."""


class Transient(Exception):
    """One attempt failed in a way worth retrying (network, 5xx, a cut body)."""


@dataclass
class Partial:
    """A file being downloaded: what arrived so far, kept across attempts and loads."""

    buffer: bytearray
    size: int
    etag: str | None
    received: int = 0
    stored: int = 0  # chunks already in the cache
    hasher: object = field(default_factory=hashlib.sha256)


PARTIALS: dict[FileKey, Partial] = {}


def keep_partials_of(model: tuple[str, ...]) -> None:
    """Free the partial downloads of other models (model: endpoint, repo, revision; or ())."""
    for key in [key for key in PARTIALS if not model or key[:3] != model]:
        del PARTIALS[key]


def file_url(endpoint: str, repo: str, revision: str, name: str) -> str:
    return f"{endpoint.rstrip('/')}/{repo}/resolve/{revision}/{name}"


def hub_refusal(url: str, response) -> str:
    """What a 4xx answer of the hub means, in words."""
    status, code = response.status, response.headers.get("X-Error-Code") or ""
    if status == 401 or code == "RepoNotFound":
        return f"repository not found (or private; HTTP {status})"
    if status == 403 or code == "GatedRepo":
        return f"access denied: the repository is gated or private (HTTP {status})"
    if code == "RevisionNotFound":
        return "revision not found (HTTP 404)"
    return f"{url}: HTTP {status} {code}".strip()


async def request(url: str, method: str = "GET", headers: dict | None = None):
    """The browser's fetch, never served or completed from its HTTP cache."""
    init = {"method": method, "cache": "no-store", "headers": headers or {}}
    try:
        return await js.fetch(url, to_js(init, dict_converter=js.Object.fromEntries))
    except JsException as e:  # a TypeError from fetch: offline, DNS, CORS
        raise Transient(f"cannot reach {url.split('/resolve/')[0]}: {e}") from None


def response_span(response) -> tuple[int, int | None]:
    """(first byte, file size) of a 200 or 206 response; size None if not announced."""
    if response.status == 206:
        span, _, total = (response.headers.get("Content-Range") or "").removeprefix("bytes ").partition("/")
        return int(span.partition("-")[0]), int(total)
    length = response.headers.get("X-Linked-Size") or response.headers.get("Content-Length")
    return 0, int(length) if length else None


async def restore(key: FileKey, cache: Cache) -> Partial | None:
    """A partial download kept in memory, else the whole chunks of one in the cache."""
    if key in PARTIALS:
        return PARTIALS[key]
    manifest, good = await cache.resumable(key)
    if not good:
        return None
    partial = Partial(bytearray(manifest["size"]), manifest["size"], manifest["etag"])
    view = memoryview(partial.buffer)
    if not await cache.read_into(key, partial.size, view, 0, full_chunks(good)):
        return None
    partial.hasher.update(view[:good])
    partial.received, partial.stored = good, full_chunks(good)
    PARTIALS[key] = partial
    return partial


async def start(key: FileKey, response, cache: Cache) -> Partial:
    """The Partial this response continues, or a fresh one when it starts the file over."""
    first, size = response_span(response)
    etag = response.headers.get("X-Linked-Etag") or response.headers.get("ETag")
    partial = PARTIALS.get(key)
    if partial is not None and (first, size, etag) == (partial.received, partial.size, partial.etag):
        return partial
    if first != 0:
        PARTIALS.pop(key, None)
        raise Transient("the file changed on the hub since the download began")
    partial = PARTIALS[key] = Partial(bytearray(size or 0), size, etag)
    if size is not None:
        await cache.write_manifest(key, partial_manifest(size, etag))
    return partial


async def stream(response, partial: Partial, key: FileKey, cache: Cache, on_bytes: OnBytes) -> None:
    """Read the body into the partial's buffer, hashing it and storing each full chunk."""
    reader = response.body.getReader()
    while True:
        try:
            chunk = await reader.read()
        except JsException as e:
            raise Transient(f"the connection broke at {partial.received} bytes: {e}") from None
        if chunk.done:
            break
        n = chunk.value.length
        if partial.size is None or partial.received + n > len(partial.buffer):
            partial.size = None  # more than announced (e.g. a compressed body): size unknown
            partial.buffer.extend(bytes(partial.received + n - len(partial.buffer)))
        view = memoryview(partial.buffer)[partial.received:partial.received + n]
        chunk.value.assign_to(view)
        partial.hasher.update(view)
        del view
        partial.received += n
        await store_chunks(key, partial, cache, full_chunks(partial.received))
        on_bytes(partial.received, partial.size or partial.received, False)
    if partial.size is not None and partial.received < partial.size:
        raise Transient(f"the connection closed at {partial.received} of {partial.size} bytes")


async def store_chunks(key: FileKey, partial: Partial, cache: Cache, upto: int) -> None:
    """Write the chunks [partial.stored, upto) to the cache."""
    if partial.size is None:
        return
    while partial.stored < upto and cache.usable:
        start, end = chunk_span(partial.stored, partial.size)
        await cache.write_chunk(key, partial.stored, memoryview(partial.buffer)[start:end])
        partial.stored += 1


async def finish(key: FileKey, partial: Partial, cache: Cache) -> bytearray:
    """Check size and sha256, then mark the cached copy complete; on a mismatch drop it all."""
    PARTIALS.pop(key, None)
    size = partial.size if partial.size is not None else partial.received
    try:
        check_download(key[3], partial.received, size, partial.hasher.hexdigest(), sha256_from_etag(partial.etag))
    except IntegrityError:
        await cache.delete(key)
        raise
    if partial.size is not None:
        await store_chunks(key, partial, cache, chunk_count(size))
        await cache.write_manifest(key, complete_manifest(partial_manifest(size, partial.etag)))
    if not cache.usable:
        await cache.delete(key)
    return partial.buffer


async def download(url: str, key: FileKey, cache: Cache, on_bytes: OnBytes) -> bytearray | None:
    """One attempt; None if the repository lacks the file (HTTP 404)."""
    partial = await restore(key, cache)
    resume = {"Range": f"bytes={partial.received}-"} if partial and partial.received else {}
    response = await request(url, headers=resume)
    if response.status == 404:
        return None
    if response.status == 416:
        PARTIALS.pop(key, None)
        raise Transient("the hub has fewer bytes than were kept; starting over")
    if response.status >= 500 or response.status in (408, 429):
        raise Transient(f"HTTP {response.status}")
    if not response.ok:
        raise DownloadError(hub_refusal(url, response))
    partial = await start(key, response, cache)
    await stream(response, partial, key, cache, on_bytes)
    return await finish(key, partial, cache)


async def cached(key: FileKey, cache: Cache) -> tuple[bool, bytearray | None]:
    """(True, bytes or None if absent) when the cache holds a good copy, else (False, None)."""
    manifest = await cache.good_entry(key)
    if manifest is None:
        return False, None
    if manifest["absent"]:
        return True, None
    buffer = bytearray(manifest["size"])
    if await cache.read_into(key, manifest["size"], memoryview(buffer)):
        return True, buffer
    await cache.delete(key)
    return False, None


async def fetch_file(url: str | None, key: FileKey, cache: Cache, on_bytes: OnBytes) -> bytearray | None:
    """A file from the cache, else downloaded with retries; None if the source lacks it."""
    if url is None:
        return None
    hit, data = await cached(key, cache)
    if hit:
        if data is not None:
            on_bytes(len(data), len(data), True)
        return data
    failure = ""
    for delay in (0, *RETRY_DELAYS):
        await asyncio.sleep(delay)
        try:
            return await download(url, key, cache, on_bytes)
        except Transient as e:
            failure = str(e)
    kept = PARTIALS.get(key)
    progress = f" at {kept.received} of {kept.size} bytes" if kept and kept.size else ""
    raise DownloadError(f"{key[3]}: the download failed{progress} after {1 + len(RETRY_DELAYS)} attempts "
                        f"({failure}); press Load model to resume")


async def resolve_revision(endpoint: str, repo: str, revision: str, cache: Cache) -> str:
    """The commit to download and cache for a revision. A commit id is used as is; a branch
    or tag is resolved with a HEAD of config.json (X-Repo-Commit), so a moved branch is never
    served stale from the cache; offline, the commit it had when last resolved."""
    if is_commit(revision):
        return revision
    try:
        response = await request(file_url(endpoint, repo, revision, "config.json"), "HEAD")
        if response.status >= 500:
            raise Transient(f"HTTP {response.status}")
    except Transient as e:
        if commit := await cache.ref(endpoint, repo, revision):
            return commit
        raise DownloadError(f"{e}, and {repo}@{revision} is not in the browser cache") from None
    if response.status == 404 and (response.headers.get("X-Error-Code") or "EntryNotFound") == "EntryNotFound":
        raise DownloadError(f"{repo} has no config.json at revision {revision}")
    if not response.ok:
        raise DownloadError(hub_refusal(response.url, response))
    commit = response.headers.get("X-Repo-Commit") or ""
    if not is_commit(commit):
        return revision  # the endpoint does not say: cache under the revision's name
    await cache.set_ref(endpoint, repo, revision, commit)
    return commit


@dataclass
class WeightStream:
    """A weight file to read block by block: from the cache's chunks, a response's body, or
    memory (a download just made). `blocks()` may be iterated once."""

    size: int
    blocks: Callable[[], AsyncIterator[memoryview]]
    data: bytearray | None = None  # the whole file, when it is in memory anyway

    async def whole(self) -> bytearray:
        """The whole file in memory."""
        if self.data is None:
            self.data, at = bytearray(self.size), 0
            async for block in self.blocks():
                self.data[at:at + len(block)] = block
                at += len(block)
        return self.data


async def memory_blocks(data: bytearray) -> AsyncIterator[memoryview]:
    for start in range(0, len(data), CHUNK_SIZE):
        yield memoryview(data)[start:start + CHUNK_SIZE]


async def body_blocks(response, size: int, on_bytes: OnBytes) -> AsyncIterator[memoryview]:
    reader, received = response.body.getReader(), 0
    while not (chunk := await reader.read()).done:
        received += chunk.value.length
        yield chunk.value.to_memoryview()
        on_bytes(received, size, False)


async def open_weights(url: str | None, key: FileKey, cache: Cache, on_bytes: OnBytes) -> WeightStream | None:
    """A weight file as a stream (None if the source lacks it): the cached copy chunk by chunk;
    else, with the cache off (the visitor's files), the response body as it arrives; else a
    download into the cache (fetch_file), then read back from the cache (so the download's
    buffer is freed before the weights are built); from memory if the cache failed meanwhile."""
    if url is None:
        return None
    manifest = await cache.good_entry(key)
    if manifest is not None:
        return None if manifest["absent"] else WeightStream(manifest["size"], lambda: cache.chunks(key, manifest["size"], on_bytes))
    if cache.off is not None:
        response = await request(url)
        if response.status == 404:
            return None
        if not response.ok:
            raise DownloadError(f"{key[3]}: HTTP {response.status}")
        size = response_span(response)[1]
        if size is None:
            data = bytearray((await response.arrayBuffer()).to_bytes())
            return WeightStream(len(data), lambda: memory_blocks(data), data)
        return WeightStream(size, lambda: body_blocks(response, size, on_bytes))
    data = await fetch_file(url, key, cache, on_bytes)
    if data is None:
        return None
    if cache.usable:  # downloaded into the cache: read it back from there, in blocks
        del data
        return await open_weights(url, key, cache, on_bytes)
    return WeightStream(len(data), lambda: memory_blocks(data), data)


@dataclass
class Source:
    """Where a checkpoint's files come from: URL and cache key of each file name."""

    url: Callable[[str], str | None]
    key: Callable[[str], FileKey]


def hub_source(endpoint: str, repo: str, commit: str) -> Source:
    return Source(lambda name: file_url(endpoint, repo, commit, name), lambda name: file_key(endpoint, repo, commit, name))


def local_source(urls: dict[str, str]) -> Source:
    """Files the visitor picked, as blob: URLs made by the page (read, never uploaded)."""
    return Source(urls.get, lambda name: file_key("local", "", "", name))


async def fetch_checkpoint(source: Source, cache: Cache, on_file: Callable[[str, int, int, bool], None],
                           on_config: Callable[[bytes], None], fetch_weights=None) -> dict[str, object | None]:
    """All files of a GPT-2 checkpoint; on_config runs as soon as config.json arrives so a
    wrong model fails before the big download. fetch_weights, if given, is awaited instead of
    fetch_file for the weight files (same arguments), e.g. to read them as streams."""
    have: dict[str, object | None] = {}
    while names := files_to_fetch(have):
        for name in names:
            fetch = fetch_weights if fetch_weights and is_weights(name) else fetch_file
            have[name] = await fetch(source.url(name), source.key(name), cache,
                                     lambda got, total, hit: on_file(name, got, total, hit))
            if name == "config.json":
                if have[name] is None:
                    raise DownloadError("config.json is missing")
                on_config(bytes(have[name]))
    return have


async def remember_absent(source: Source, cache: Cache, have: dict[str, bytearray | None]) -> None:
    """Once a checkpoint loaded, note the files it lacks, so a revisit does not ask for them
    (only then: a 404 that broke the load may have been a passing fault)."""
    for name, data in have.items():
        if data is None:
            await cache.write_manifest(source.key(name), absent_manifest())
