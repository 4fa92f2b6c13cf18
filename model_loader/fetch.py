"""Fetch a Hub repository's GPT-2 files into a local folder (CPython), with the Hub rules of
model_loader/hub.py: the revision resolved to its commit and the files listed by the API, only
the files a checkpoint needs fetched, each resumed after a cut, retried with the same delays as
in the browser, and checked against the listing's hash before it is kept.

Layout: {cache}/{host}/{repo}/{commit}/{file} (complete, checked files only), {commit}.tree.json
beside it (the listing) and refs/{revision} (the commit a branch or tag last pointed to)."""
from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict
from pathlib import Path
from urllib.parse import quote, urlsplit

from .checkpoint import files_to_fetch
from .hub import (DEFAULT_ENDPOINT, RETRY_DELAYS, HubError, RemoteFile, TransientError, check_repo_id, file_url,
                  is_commit, is_transient, next_page, parse_commit, parse_tree, refusal, resumed_from, revision_url,
                  tree_url)

DEFAULT_CACHE = Path(os.environ.get("BROWSER_LLM_CACHE", Path.home() / ".cache" / "browser-llm"))
BLOCK = 1 << 20
TIMEOUT_S = 60


def open_url(url: str, what: str, headers: dict | None = None):
    """An open HTTP answer (redirects followed); HubError for a refusal, TransientError for a
    failure worth retrying."""
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        error = TransientError if is_transient(e.code) else HubError
        raise error(refusal(e.code, e.headers.get("X-Error-Code"), what)) from None
    except (urllib.error.URLError, OSError) as e:
        raise TransientError(f"{what}: cannot reach {urlsplit(url).netloc}: {e}") from None


def retried(attempt, *args):
    """attempt(*args), tried again after each of RETRY_DELAYS while it fails transiently."""
    for delay in RETRY_DELAYS:
        try:
            return attempt(*args)
        except TransientError as e:
            print(f"{e}; trying again in {delay} s", file=sys.stderr)
            time.sleep(delay)
    return attempt(*args)


def read_api(url: str, what: str) -> tuple[bytes, str | None]:
    with open_url(url, what) as answer:
        return answer.read(), answer.headers.get("Link")


def resolve_commit(endpoint: str, repo: str, revision: str, folder: Path) -> str:
    """The commit a revision names; offline, the one it named when last resolved."""
    if is_commit(revision):
        return revision
    ref = folder / "refs" / quote(revision, safe="")
    try:
        commit = parse_commit(retried(read_api, revision_url(endpoint, repo, revision), f"{repo}@{revision}")[0],
                              f"{repo}@{revision}")
    except TransientError:
        if ref.is_file():
            return ref.read_text()
        raise
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit)
    return commit


def listing(endpoint: str, repo: str, commit: str, folder: Path) -> dict[str, RemoteFile]:
    """The commit's top-level files, from the API (every page), kept beside the files."""
    kept = folder / f"{commit}.tree.json"
    if kept.is_file():
        return {f["name"]: RemoteFile(**f) for f in json.loads(kept.read_text())}
    files, url = [], tree_url(endpoint, repo, commit)
    while url:
        body, link = retried(read_api, url, f"{repo}: the file listing")
        files += parse_tree(body, f"{repo}: the file listing")
        url = next_page(link)
    kept.write_text(json.dumps([asdict(f) for f in files]))
    return {f.name: f for f in files}


def download_file(url: str, remote: RemoteFile, target: Path) -> None:
    """One attempt at fetching a file into target, resuming its .part file with a Range request;
    the .part becomes target only once it hashes to the listing's digest."""
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.is_file() and part.stat().st_size < remote.size else 0
    with open_url(url, remote.name, {"Range": f"bytes={have}-"} if have else None) as answer:
        length = answer.headers.get("Content-Length")
        try:
            start = resumed_from(answer.status, have, int(length) if length else None, remote.size)
        except TransientError:
            part.unlink(missing_ok=True)
            raise
        hasher = remote.hasher()
        with open(part, "r+b" if start else "wb") as out:
            if start:
                hasher.update(out.read(start))
            while block := read_block(answer, remote.name):
                out.write(block)
                hasher.update(block)
    received = part.stat().st_size
    if received < remote.size:
        raise TransientError(f"{remote.name}: the connection closed at {received} of {remote.size} bytes")
    try:
        remote.check(received, hasher.hexdigest())
    except HubError:
        part.unlink()
        raise
    part.replace(target)


def read_block(answer, name: str) -> bytes:
    try:
        return answer.read1(BLOCK)
    except (OSError, ValueError) as e:  # a reset connection, or an IncompleteRead
        raise TransientError(f"{name}: the connection broke: {e}") from None


def download_repo(repo: str, revision: str = "main", endpoint: str = DEFAULT_ENDPOINT,
                  cache_dir: Path = DEFAULT_CACHE) -> Path:
    """Make sure the cache holds the repository's GPT-2 files, checked; return their folder."""
    check_repo_id(repo)
    root = Path(cache_dir) / quote(urlsplit(endpoint).netloc or endpoint, safe="") / repo
    commit = resolve_commit(endpoint, repo, revision, root)
    folder = root / commit
    folder.mkdir(parents=True, exist_ok=True)
    files = listing(endpoint, repo, commit, root)
    have: dict[str, bytes | None] = {}
    while names := files_to_fetch(have):
        for name in names:
            remote, target = files.get(name), folder / name
            if remote is None:
                have[name] = None
                continue
            if not (target.is_file() and target.stat().st_size == remote.size):
                print(f"downloading {name} ({remote.size / 1e6:.1f} MB) …", file=sys.stderr)
                retried(download_file, file_url(endpoint, repo, commit, name), remote, target)
            have[name] = target.read_bytes() if name.endswith(".json") else b""
    return folder
