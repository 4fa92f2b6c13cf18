"""How a downloaded file is laid out in the browser's cache, as pure logic (no browser APIs),
so CPython can test it; worker/cache.py does the IndexedDB reads and writes.

A file is one manifest record under its key (endpoint, repo, revision, name) and its bytes as
chunks of CHUNK_SIZE under (endpoint, repo, revision, name, index): one IndexedDB value must
stay below ~127 MiB. The manifest says "complete" only once the file's size, and its sha256
when the hub announced one, were checked; anything else is a partial entry, never served."""
from __future__ import annotations

import re
import time
from collections.abc import Sequence

CHUNK_SIZE = 32 * 2**20
FileKey = tuple[str, str, str, str]
COMMIT = re.compile(r"[0-9a-f]{40}")
SHA256_ETAG = re.compile(r'(?:W/)?"?([0-9a-f]{64})"?')


class IntegrityError(ValueError):
    """Downloaded bytes are not the file the hub announced."""


def file_key(endpoint: str, repo: str, revision: str, name: str) -> FileKey:
    """The cache key of one file of a repository at a revision (a commit id when known)."""
    return endpoint.rstrip("/"), repo, revision, name


def is_commit(revision: str) -> bool:
    """Whether a revision names a commit (immutable) rather than a branch or tag (moving)."""
    return COMMIT.fullmatch(revision) is not None


def sha256_from_etag(etag: str | None) -> str | None:
    """The sha256 the Hub gives LFS files as their (X-Linked-)ETag; None for git blob ids."""
    match = SHA256_ETAG.fullmatch(etag or "")
    return match.group(1) if match else None


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


def partial_manifest(size: int, etag: str | None) -> dict:
    """The record written when a download starts: enough to resume it after a reload."""
    return {"size": size, "etag": etag, "sha256": sha256_from_etag(etag), "chunk_size": CHUNK_SIZE,
            "complete": False, "absent": False}


def complete_manifest(manifest: dict) -> dict:
    return {**manifest, "complete": True, "stored": time.time()}


def absent_manifest() -> dict:
    """The record of a file the repository does not have (the hub answered 404)."""
    return {"size": 0, "etag": None, "sha256": None, "chunk_size": CHUNK_SIZE, "complete": True,
            "absent": True, "stored": time.time()}


def check_download(name: str, received: int, size: int, digest: str, expected: str | None) -> None:
    """Raise IntegrityError unless the download has the announced size and sha256."""
    if received != size:
        raise IntegrityError(f"{name}: received {received} bytes but the hub announced {size}")
    if expected is not None and digest != expected:
        raise IntegrityError(f"{name}: the sha256 of the download ({digest[:12]}…) is not the hub's "
                             f"({expected[:12]}…); the bytes were corrupted on the way")


def entry_problem(manifest: dict | None, chunk_sizes: Sequence[int | None]) -> str | None:
    """Why a stored entry cannot be served (None: it is good). chunk_sizes holds the byte
    length of each stored chunk in order, None for a missing one."""
    if not isinstance(manifest, dict) or not manifest.get("complete"):
        return "partial"
    if manifest.get("absent"):
        return None
    size = manifest.get("size")
    if not isinstance(size, int) or size < 0 or manifest.get("chunk_size") != CHUNK_SIZE:
        return "unknown layout"
    if list(chunk_sizes) != chunk_lengths(size):
        return "missing or truncated chunks"
    return None


def resumable_bytes(manifest: dict | None, chunk_sizes: Sequence[int | None]) -> int:
    """How many leading bytes of a partial entry a download can reuse: its whole chunks, in
    order (the download checks that the hub still announces the manifest's etag)."""
    if not isinstance(manifest, dict) or manifest.get("complete"):
        return 0
    if manifest.get("chunk_size") != CHUNK_SIZE or not isinstance(manifest.get("size"), int):
        return 0
    good = 0
    for stored, expected in zip(chunk_sizes, chunk_lengths(manifest["size"])):
        if stored != CHUNK_SIZE or expected != CHUNK_SIZE:
            break
        good += 1
    return good * CHUNK_SIZE


def summarize(entries: Sequence[tuple[FileKey, dict]]) -> list[dict]:
    """The cache manager's view: one row per model (endpoint, repo, revision) with its files,
    the bytes of complete files and whether any entry is still partial."""
    models: dict[tuple[str, str, str], dict] = {}
    for (endpoint, repo, revision, name), manifest in entries:
        row = models.setdefault((endpoint, repo, revision), {
            "endpoint": endpoint, "repo": repo, "revision": revision, "files": [], "bytes": 0, "partial": False})
        if manifest.get("absent"):
            continue
        row["files"].append(name)
        if manifest.get("complete"):
            row["bytes"] += manifest.get("size", 0)
        else:
            row["partial"] = True
    return sorted(models.values(), key=lambda row: (row["repo"], row["revision"], row["endpoint"]))
