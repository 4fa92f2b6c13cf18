"""How a downloaded file is laid out in the browser's cache, as pure logic (no browser APIs),
so CPython can test it; worker/cache.py does the IndexedDB reads and writes.

A file is one manifest record under its key (endpoint, repo, commit, name) and its bytes as
chunks of CHUNK_SIZE under (endpoint, repo, commit, name, index): one IndexedDB value must stay
below ~127 MiB. The manifest holds what the Hub's listing says of the file (size and digest).
It says "complete" only once the whole file hashed to that digest, and then also holds the
sha256 of each chunk, which is checked whenever the chunk is read back. Anything else is a
partial entry, never served; an entry that no longer matches the listing is dropped."""
from __future__ import annotations

from collections.abc import Sequence

from model_loader.hub import RemoteFile

CHUNK_SIZE = 32 * 2**20
FileKey = tuple[str, str, str, str]


def file_key(endpoint: str, repo: str, commit: str, name: str) -> FileKey:
    """The cache key of one file of a repository at a commit."""
    return endpoint.rstrip("/"), repo, commit, name


def chunk_count(size: int) -> int:
    return -(-size // CHUNK_SIZE)


def chunk_span(index: int, size: int) -> tuple[int, int]:
    """The [start, end) byte range of chunk `index` of a file of `size` bytes."""
    start = index * CHUNK_SIZE
    return start, min(start + CHUNK_SIZE, size)


def chunk_lengths(size: int) -> list[int]:
    """The byte length of each chunk of a file of `size` bytes."""
    return [end - start for start, end in (chunk_span(i, size) for i in range(chunk_count(size)))]


def full_chunks(received: int) -> int:
    """How many chunks the first `received` bytes fill completely."""
    return received // CHUNK_SIZE


def partial_manifest(remote: RemoteFile) -> dict:
    """The record written when a download starts: enough to resume it after a reload."""
    return {"size": remote.size, "digest": remote.digest, "chunk_size": CHUNK_SIZE, "complete": False}


def complete_manifest(remote: RemoteFile, chunk_digests: Sequence[str]) -> dict:
    """The record of a file whose bytes hashed to the listing's digest, with each chunk's sha256."""
    return {**partial_manifest(remote), "complete": True, "chunks": list(chunk_digests)}


def matches(manifest: object, remote: RemoteFile) -> bool:
    """Whether a stored entry is of the file the listing names (same size and digest, same layout)."""
    return (isinstance(manifest, dict) and manifest.get("size") == remote.size
            and manifest.get("digest") == remote.digest and manifest.get("chunk_size") == CHUNK_SIZE)


def entry_problem(manifest: dict | None, remote: RemoteFile, chunk_sizes: Sequence[int | None]) -> str | None:
    """Why a stored entry cannot be served (None: it is good). chunk_sizes holds the byte
    length of each stored chunk in order, None for a missing one."""
    if not isinstance(manifest, dict) or not manifest.get("complete"):
        return "partial"
    if not matches(manifest, remote):
        return "not the file the Hub lists"
    digests = manifest.get("chunks")
    if not isinstance(digests, list) or len(digests) != chunk_count(remote.size):
        return "no chunk digests"
    if list(chunk_sizes) != chunk_lengths(remote.size):
        return "missing or truncated chunks"
    return None


def resumable_bytes(manifest: dict | None, remote: RemoteFile, chunk_sizes: Sequence[int | None]) -> int:
    """How many leading bytes of a partial entry of the listed file a download can reuse: its
    whole chunks, in order (the file's hash at the end checks them)."""
    if not isinstance(manifest, dict) or manifest.get("complete") or not matches(manifest, remote):
        return 0
    good = 0
    for stored, expected in zip(chunk_sizes, chunk_lengths(remote.size)):
        if stored != CHUNK_SIZE or expected != CHUNK_SIZE:
            break
        good += 1
    return good * CHUNK_SIZE


def summarize(entries: Sequence[tuple[FileKey, dict]]) -> list[dict]:
    """The cache manager's view: one row per model (endpoint, repo, commit) with its files,
    the bytes of complete files and whether any entry is still partial."""
    models: dict[tuple[str, str, str], dict] = {}
    for (endpoint, repo, revision, name), manifest in entries:
        row = models.setdefault((endpoint, repo, revision), {
            "endpoint": endpoint, "repo": repo, "revision": revision, "files": [], "bytes": 0, "partial": False})
        row["files"].append(name)
        if manifest.get("complete"):
            row["bytes"] += manifest.get("size", 0)
        else:
            row["partial"] = True
    return sorted(models.values(), key=lambda row: (row["repo"], row["revision"], row["endpoint"]))
