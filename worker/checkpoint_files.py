"""A checkpoint's files in the worker, and which of them a GPT-2 needs (fetch_checkpoint): a Hub
commit's (listed by hub_api.py), each read from the browser cache, else downloaded into it
(download.py) under a Web Lock so that two tabs never download the same model at once; or the
visitor's own files, read as they are: never listed, checked or cached."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from model_loader.checkpoint import files_to_fetch, is_weights
from model_loader.hub import DEFAULT_ENDPOINT, HubError, RemoteFile, file_url
from pyscript.js_modules import idb
from worker.cache import Cache
from worker.chunk_store import FileKey, file_key
from worker.download import Job, OnBytes, checked, download, refetch_chunk, request, retried, running
from worker.hub_api import list_files, resolve_revision
from worker.weight_stream import WeightStream, from_memory


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
        chunk, each checked as it is read; else downloaded rolling into the cache (never whole in
        memory), then read back from it; from memory if the cache is off."""
        if (remote := self.listing.get(name)) is None:
            return None
        if (stream := await self.cached(remote, cache, on_bytes)) is not None:
            return stream
        data = await download(*self.url_key(name), remote, cache, on_bytes, whole=False)
        if data is None:  # downloaded rolling into the cache
            return await self.open_weights(name, cache, on_bytes)
        return from_memory(data)

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
            return from_memory(data)
        size = int(length)

        async def pieces() -> AsyncIterator[tuple[int, object]]:
            reader, received = response.body.getReader(), 0
            while not (chunk := await reader.read()).done:
                yield received, chunk.value
                received += chunk.value.length
                on_bytes(received, size, "disk")

        return WeightStream(size, pieces)

    async def fetch(self, name: str, cache: Cache, on_bytes: OnBytes) -> bytearray | None:
        stream = await self.open_weights(name, cache, on_bytes)
        return None if stream is None else await stream.whole()


Source = HubFiles | LocalFiles


async def hub_files(endpoint: str, repo: str, revision: str, cache: Cache) -> HubFiles:
    """A Hub model's files: its revision resolved to a commit, and that commit's listing."""
    endpoint = endpoint.rstrip("/")
    commit = await resolve_revision(endpoint, repo, revision, cache)
    return HubFiles(endpoint, repo, commit, await list_files(endpoint, repo, commit, cache))


# -- a checkpoint


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


async def hold_download_lock(source: Source, on_wait: Callable[[], None]) -> Callable[[], None]:
    """Take the Web Lock of a Hub model's files (so two tabs never download the same file at
    once): the release function, after on_wait() if another tab holds it."""
    if not isinstance(source, HubFiles):
        return lambda: None
    release = await idb.acquire(source.lock_name(), False)
    if release is None:
        on_wait()
        release = await idb.acquire(source.lock_name(), True)
    return release
