"""The Hugging Face Hub as this project talks to it, for the browser worker and the command line
alike: its URLs, what its JSON API answers (a revision's commit; a commit's files with their sizes
and hashes), what a refusal means, what is retried and after how long, how a cut download is
resumed, and how every downloaded file is checked. No I/O here: worker/download.py fetches in
the browser, model_loader/fetch.py in CPython.

Metadata comes from the API only, never from a download's headers: the Hub answers a weight file
with a 302 to a CDN on another origin whose headers a page cannot read (see ../shared/HUB.md)."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from urllib.parse import quote

DEFAULT_ENDPOINT = "https://huggingface.co"
# The only other hosts weights come from: the Hub redirects its LFS files to these CDNs.
CDN_HOSTS = ("cas-bridge.xethub.hf.co", "cdn-lfs.hf.co", "cdn-lfs-us-1.hf.co")
RETRY_DELAYS = (0.25, 1.0, 3.0)  # seconds to wait before the 2nd, 3rd and 4th attempt
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
COMMIT = re.compile(r"[0-9a-f]{40}")
SHA256 = re.compile(r"[0-9a-f]{64}")
UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f]")
NEXT_PAGE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class HubError(OSError):
    """The Hub refused a request or answered something unusable; the message says why."""


class TransientError(HubError):
    """A failure worth another attempt: the network, a 5xx, 408 or 429, a cut body."""


class IntegrityError(HubError):
    """Downloaded bytes are not the file the Hub lists."""


def check_repo_id(repo: str) -> str:
    """The repository id, or HubError if it cannot be one (e.g. 'openai-community/gpt2')."""
    if not REPO_ID.fullmatch(repo) or ".." in repo:
        raise HubError(f"{repo!r} is not a Hub repository id like 'openai-community/gpt2'")
    return repo


def is_commit(revision: str) -> bool:
    """Whether a revision names a commit (immutable) rather than a branch or tag (moving)."""
    return COMMIT.fullmatch(revision) is not None


def is_safe_name(name: str) -> bool:
    """Whether a file name is a plain name inside its folder (no path, no '..', no control
    characters): only such names are ever fetched or written."""
    return isinstance(name, str) and 0 < len(name) <= 255 and name not in (".", "..") and not UNSAFE_NAME.search(name)


def file_url(endpoint: str, repo: str, revision: str, name: str) -> str:
    return f"{endpoint.rstrip('/')}/{repo}/resolve/{quote(revision, safe='')}/{quote(name)}"


def revision_url(endpoint: str, repo: str, revision: str) -> str:
    """The API answer {"sha": commit, ...} for a branch, tag or commit."""
    return f"{endpoint.rstrip('/')}/api/models/{repo}/revision/{quote(revision, safe='')}"


def tree_url(endpoint: str, repo: str, commit: str) -> str:
    """The API listing of the files at the top of a commit (paged: see next_page)."""
    return f"{endpoint.rstrip('/')}/api/models/{repo}/tree/{commit}"


def is_transient(status: int) -> bool:
    """Whether an HTTP status is worth another attempt."""
    return status >= 500 or status in (408, 429)


def refusal(status: int, code: str | None, what: str) -> str:
    """What an error answer of the Hub means, in words (`what`: the repo or file asked for)."""
    if status == 403 or code == "GatedRepo":
        return f"{what}: access denied, the repository is gated or private (HTTP {status})"
    if status == 401 or code == "RepoNotFound":
        return f"{what}: repository not found (or private; HTTP {status})"
    if code == "RevisionNotFound":
        return f"{what}: revision not found (HTTP {status})"
    if status == 404:
        return f"{what}: not found on the Hub (HTTP 404)"
    return f"{what}: HTTP {status} {code or ''}".strip()


def read_json(body: bytes | str, what: str):
    """Parsed JSON, or HubError naming `what` (an HTML error page, a cut answer, absurd nesting)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise HubError(f"{what}: the Hub's answer is not JSON") from None


def parse_commit(body: bytes | str, what: str) -> str:
    """The commit id in an API revision answer."""
    answer = read_json(body, what)
    commit = answer.get("sha") if isinstance(answer, dict) else None
    if not isinstance(commit, str) or not is_commit(commit):
        raise HubError(f"{what}: the Hub's answer names no commit")
    return commit


@dataclass(frozen=True)
class RemoteFile:
    """One file of a commit as the API lists it: LFS files (the weights) with their sha256,
    the others with their git blob sha1."""

    name: str
    size: int
    sha256: str | None = None
    blob_sha1: str | None = None

    def hasher(self):
        """A hashlib object that, fed the file's bytes, ends with `digest` if they are right."""
        return hashlib.sha256() if self.sha256 else hashlib.sha1(b"blob %d\0" % self.size)

    @property
    def digest(self) -> str | None:
        return self.sha256 or self.blob_sha1

    def check(self, received: int, digest: str) -> None:
        """Raise IntegrityError unless `received` bytes hashing to `digest` are this file."""
        if received != self.size:
            raise IntegrityError(f"{self.name}: received {received} bytes but the Hub lists {self.size}")
        if digest != self.digest:
            kind = "sha256" if self.sha256 else "git blob sha1"
            raise IntegrityError(f"{self.name}: the {kind} of the download ({digest[:12]}…) is not the Hub's "
                                 f"({self.digest[:12]}…); the bytes were corrupted on the way")


def parse_tree(body: bytes | str, what: str) -> list[RemoteFile]:
    """The files of one page of an API tree listing. Folders and files whose names could leave
    the model's folder are left out; an entry that is not as the API documents is refused."""
    entries = read_json(body, what)
    if not isinstance(entries, list):
        raise HubError(f"{what}: the Hub's file listing is not a list")
    files = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("type") != "file" or not is_safe_name(entry.get("path")):
            continue
        files.append(listed_file(entry, what))
    return files


def listed_file(entry: dict, what: str) -> RemoteFile:
    size, oid, lfs = entry.get("size"), entry.get("oid"), entry.get("lfs")
    if lfs is not None:
        sha256 = lfs.get("oid") if isinstance(lfs, dict) else None
        if not (isinstance(sha256, str) and SHA256.fullmatch(sha256)):
            raise HubError(f"{what}: {entry['path']} is listed without a sha256")
        size = lfs.get("size", size)
        oid = None
    elif not (isinstance(oid, str) and COMMIT.fullmatch(oid)):
        raise HubError(f"{what}: {entry['path']} is listed without a git blob id")
    if type(size) is not int or size < 0:
        raise HubError(f"{what}: {entry['path']} is listed without a size")
    return RemoteFile(entry["path"], size, sha256 if lfs is not None else None, oid)


def next_page(link: str | None) -> str | None:
    """The URL of the listing's next page, from its Link header (None on the last page)."""
    match = NEXT_PAGE.search(link or "")
    return match.group(1) if match else None


def resumed_from(status: int, asked_from: int, length: int | None, size: int) -> int:
    """Where the body of an answer to a download that asked for its bytes from `asked_from` on
    begins: `asked_from` for a 206 of the rest of the file, 0 for a 200 (the whole file, so
    start over). Content-Range is not read (a CDN may hide it); a 206 whose length is readable
    and not the rest's, or any other status, is a TransientError: start over."""
    if status == 200:
        return 0
    if status == 206 and asked_from and (length is None or length == size - asked_from):
        return asked_from
    raise TransientError(f"HTTP {status} to a request from byte {asked_from}"
                         + (f" with {length} bytes" if length is not None else "") + "; starting over")
