"""Fetch a repository's files in the worker with the browser's fetch, reporting progress."""
from __future__ import annotations

from collections.abc import Callable

import js
from pyodide.ffi import to_js

from model_loader.checkpoint import files_to_fetch


class DownloadError(OSError):
    """The hub refused or failed a download; the message says which and why."""


STATUS_REASONS = {401: "not found, private or gated (HTTP 401)", 403: "gated or forbidden (HTTP 403)"}


def file_url(endpoint: str, repo: str, revision: str, name: str) -> str:
    return f"{endpoint.rstrip('/')}/{repo}/resolve/{revision}/{name}"


async def fetch_bytes(url: str, on_bytes: Callable[[int, int], None]) -> bytearray | None:
    """The body of url in one buffer; None on 404. on_bytes(received, total) as it streams."""
    try:
        response = await js.fetch(url, to_js({"cache": "no-store"}, dict_converter=js.Object.fromEntries))
    except Exception as e:  # a TypeError from fetch: offline, DNS, CORS
        raise DownloadError(f"cannot reach {url}: {e}") from None
    if response.status == 404:
        return None
    if not response.ok:
        raise DownloadError(f"{url}: {STATUS_REASONS.get(response.status, f'HTTP {response.status}')}")
    total = int(response.headers.get("Content-Length") or 0)
    buffer = bytearray(total)
    received = 0
    reader = response.body.getReader()
    while True:
        chunk = await reader.read()
        if chunk.done:
            break
        n = chunk.value.length
        if received + n > len(buffer):
            buffer.extend(bytes(received + n - len(buffer)))
        chunk.value.assign_to(memoryview(buffer)[received:received + n])
        received += n
        on_bytes(received, total)
    if total and received != total:
        raise DownloadError(f"{url}: the download stopped at {received} of {total} bytes")
    return buffer


async def fetch_checkpoint(endpoint: str, repo: str, revision: str,
                           on_file: Callable[[str, int, int], None],
                           on_config: Callable[[bytes], None]) -> dict[str, bytearray | None]:
    """All files of a GPT-2 checkpoint; on_config runs as soon as config.json arrives so a
    wrong model fails before the big download."""
    have: dict[str, bytearray | None] = {}
    while names := files_to_fetch(have):
        for name in names:
            have[name] = await fetch_bytes(file_url(endpoint, repo, revision, name),
                                           lambda got, total: on_file(name, got, total))
            if name == "config.json":
                if have[name] is None:
                    raise DownloadError(f"{repo} has no config.json at revision {revision}")
                on_config(bytes(have[name]))
    return have
