"""A local stand-in for the Hugging Face Hub, for tests and benchmarks.

Serves ``GET``/``HEAD`` ``/{org}/{name}/resolve/{revision}/{path}`` from local folders
with the Hub's headers (ETag, X-Linked-Etag/Size, X-Repo-Commit, X-Error-Code), CORS,
byte ranges, a request log and fault injection, and the JSON API that browser clients use:
``/api/models/{repo}/revision/{revision}`` (the commit) and ``/api/models/{repo}/tree/{revision}``
(the files with sizes and hashes, paged with a ``Link`` header).

Two modes. *Direct* answers every file itself, every header readable. *Real* (``real=True``,
``--real``) answers as huggingface.co answers a browser (../shared/HUB.md): LFS files (the
weights) get a 302 to a CDN on a second origin (another port); the 302 alone carries
X-Linked-Etag/Size; the CDN's ETag is 64 hex characters that are not the file's sha256, its
Content-Range is not exposed to scripts, and it refuses CORS preflights.

Also holds the small HTTP base (:class:`BackgroundServer`, :class:`BaseHandler`,
:func:`parse_range`) that ``tools/serve.py`` reuses.

Command line::

    python -m tools.hub_server --port 8765 --repo test/tiny=tests/fixtures/models/tiny [--real]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mimetypes
import re
import socket
import struct
import threading
import time
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Iterator, Self
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

CHUNK_SIZE = 64 * 1024
POLL_INTERVAL = 0.05  # seconds; bounds how long stop() waits
LFS_SUFFIXES = frozenset({".safetensors", ".bin", ".h5", ".msgpack", ".tflite", ".ot", ".onnx"})
TEXT_TYPES = frozenset({"application/json", "application/xml", "image/svg+xml"})
TYPE_OVERRIDES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".toml": "text/plain",
    ".py": "text/plain",
    ".md": "text/plain",
}
EXPOSED_HEADERS = (
    "Content-Length, Content-Range, Content-Type, ETag, X-Linked-Etag, X-Linked-Size, "
    "X-Repo-Commit, X-Error-Code, X-Error-Message, Accept-Ranges, Link"
)
CDN_EXPOSED_HEADERS = "ETag"  # as a CDN that exposes neither Content-Range nor the Hub's headers
PREFLIGHT_HEADERS = "Range, Authorization, Content-Type, If-None-Match, If-Range"
CONTROL_PREFIX = "/__"
FAULT_ERROR_CODES = {401: "RepoNotFound", 403: "GatedRepo", 404: "EntryNotFound"}
API_FILES = ("api:revision", "api:tree")  # fault targets for the JSON API of a repo
HTML_PAGE = b"<!doctype html><html><head><title>Hugging Face</title></head><body>Something went wrong</body></html>"
LFS_POINTER_SIZE = 135


# --------------------------------------------------------------------------- shared HTTP base


class RangeNotSatisfiable(ValueError):
    """The Range header cannot be satisfied for the file size (answer 416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Return the inclusive ``(first, last)`` byte positions of a single ``bytes=`` range.

    ``None`` means "serve the whole file": no header, or one we ignore (malformed,
    multi-range, ``last < first``), as RFC 9110 allows. Raises RangeNotSatisfiable.
    """
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header or "")
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:  # suffix range: the last n bytes
        if int(last) == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(size - int(last), 0), size - 1
    if last and int(last) < int(first):
        return None
    if int(first) >= size:
        raise RangeNotSatisfiable(header)
    return int(first), min(int(last), size - 1) if last else size - 1


def content_type(path: Path) -> str:
    """MIME type for a file name, with ``charset=utf-8`` for text types."""
    suffix = path.suffix.lower()
    kind = TYPE_OVERRIDES.get(suffix) or mimetypes.guess_type(path.name)[0]
    kind = kind or "application/octet-stream"
    if kind.startswith("text/") or kind in TEXT_TYPES:
        return f"{kind}; charset=utf-8"
    return kind


def read_chunks(path: Path, start: int, length: int) -> Iterator[bytes]:
    """Yield ``length`` bytes of ``path`` from ``start`` in CHUNK_SIZE pieces."""
    with path.open("rb") as file:
        file.seek(start)
        while length > 0:
            chunk = file.read(min(CHUNK_SIZE, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


class BaseHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 handler with quiet logging, per-class extra headers and ranged file sending."""

    protocol_version = "HTTP/1.1"
    server: Any  # ThreadingHTTPServer with an ``owner`` attribute (the BackgroundServer)

    @property
    def owner(self) -> Any:
        """The BackgroundServer this handler serves."""
        return self.server.owner

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.owner.verbose:
            super().log_message(format, *args)

    def common_headers(self) -> dict[str, str]:
        """Headers added to every response."""
        return {}

    def send_head(self, status: int, headers: dict[str, str]) -> None:
        """Send the status line, common headers and ``headers``."""
        self.send_response(status)
        for name, value in {**self.common_headers(), **headers}.items():
            self.send_header(name, value)
        self.end_headers()

    def send_bytes(self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
        """Send a small in-memory response (no body for HEAD)."""
        self.send_head(status, {**(headers or {}), "Content-Type": kind, "Content-Length": str(len(body))})
        if self.command != "HEAD":
            self.write_body([body])

    def send_file(self, path: Path, headers: dict[str, str]) -> int | None:
        """Send ``path`` honouring Range (200/206/416); return the body length, None on 416."""
        size = path.stat().st_size
        try:
            span = parse_range(self.headers.get("Range"), size)
        except RangeNotSatisfiable:
            self.send_head(416, {"Content-Range": f"bytes */{size}", "Content-Length": "0"})
            return None
        first, last = span or (0, size - 1)
        length = last - first + 1
        head = {**headers, "Accept-Ranges": "bytes", "Content-Length": str(length)}
        if span:
            head["Content-Range"] = f"bytes {first}-{last}/{size}"
        self.send_head(206 if span else 200, head)
        if self.command == "GET":
            self.write_body(self.body_chunks(path, first, length))
        return length

    def body_chunks(self, path: Path, start: int, length: int) -> Iterable[bytes]:
        """The body pieces to send for a file span (a hook for fault injection)."""
        return read_chunks(path, start, length)

    def before_write(self, chunk: bytes) -> None:
        """Hook called before each body chunk is written."""

    def write_body(self, chunks: Iterable[bytes]) -> None:
        """Write body chunks; a client hanging up just ends the connection."""
        try:
            for chunk in chunks:
                self.before_write(chunk)
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class BackgroundServer:
    """A ThreadingHTTPServer (daemon threads) that runs on a background thread."""

    def __init__(self, handler: type[BaseHandler], host: str = "127.0.0.1", port: int = 0) -> None:
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.verbose = False
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8765``."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        """Serve on a daemon thread; returns self."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(POLL_INTERVAL,),
                                        name=self.url, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_until_interrupted(*servers: BackgroundServer) -> None:
    """Start ``servers`` and block until Ctrl-C, then stop them."""
    for server in servers:
        server.start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        for server in servers:
            server.stop()


# --------------------------------------------------------------------------- hub model


class HubError(Exception):
    """An error answer of the Hub: status, X-Error-Code (or None) and a label."""

    def __init__(self, status: int, code: str | None, label: str) -> None:
        super().__init__(label)
        self.status, self.code, self.label = status, code, label


@dataclass
class Fault:
    """How to break matching GET responses; ``times=None`` means every time."""

    status: int | None = None
    cut_after: int | None = None
    short: int | None = None
    flip: int | None = None
    delay: float = 0.0
    etag: str | None = None
    html: bool = False
    wrong_length: int | None = None
    no_length: bool = False
    times: int | None = None

    def __post_init__(self) -> None:
        if self.status is not None and HTTPStatus(self.status) < 400:  # HTTPStatus rejects unknown codes
            raise ValueError("status must be a 4xx or 5xx code")
        if self.cut_after is not None and self.short is not None:
            raise ValueError("cut_after and short are exclusive")
        body_faults = (self.cut_after, self.short, self.flip, self.etag, self.wrong_length)
        if self.status is not None and (self.html or self.no_length or any(f is not None for f in body_faults)):
            raise ValueError("status only combines with delay and times")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be >= 1")
        if any(v is not None and v < 0 for v in (self.cut_after, self.short, self.flip, self.delay)):
            raise ValueError("cut_after, short, flip and delay must be >= 0")

    @property
    def breaks_body(self) -> bool:
        """Whether it acts on the answer's body (else on its status)."""
        return self.status is None

    @property
    def limit(self) -> int | None:
        """Body bytes to send before stopping (cut_after or short)."""
        return self.cut_after if self.cut_after is not None else self.short

    def truncates(self, length: int) -> bool:
        """Whether a body of ``length`` bytes is cut short by this fault."""
        return self.limit is not None and self.limit < length

    def shape(self, chunks: Iterable[bytes], offset: int) -> Iterator[bytes]:
        """Apply delay, flip (a file offset) and the byte limit to body chunks from ``offset``."""
        remaining = self.limit
        for chunk in chunks:
            if remaining is not None:
                if remaining <= 0:
                    return
                chunk = chunk[:remaining]
                remaining -= len(chunk)
            if self.delay:
                time.sleep(self.delay)
            if self.flip is not None and offset <= self.flip < offset + len(chunk):
                flipped = bytearray(chunk)
                flipped[self.flip - offset] ^= 0xFF
                chunk = bytes(flipped)
            offset += len(chunk)
            yield chunk


@dataclass
class RequestRecord:
    """One logged request; status and bytes_sent are updated while it is served."""

    method: str
    path: str
    repo: str | None
    revision: str | None
    file: str | None
    range: str | None
    status: int | None = None
    bytes_sent: int = 0
    time: float = 0.0
    host: str = "hub"  # or "cdn": the real mode's second origin


def parse_resolve_path(raw_path: str) -> tuple[str, str, str] | None:
    """Split ``/{org}/{name}/resolve/{rev}/{file}`` (or ``/{name}/resolve/...``) into parts."""
    segments = [unquote(s) for s in urlsplit(raw_path).path.lstrip("/").split("/")]
    for n in (2, 1):
        if len(segments) > n + 2 and segments[n] == "resolve" and all(segments[: n + 3]):
            return "/".join(segments[:n]), segments[n + 1], "/".join(segments[n + 2 :])
    return None


def fake_commit(repo_id: str, revision: str) -> str:
    """A stable 40-hex commit id for a repo revision."""
    return hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()


def compute_etag(path: Path) -> str:
    """Quoted sha256 for LFS files, quoted git blob sha1 for the others (hashed in chunks)."""
    with path.open("rb") as file:
        if path.suffix in LFS_SUFFIXES:
            digest = hashlib.file_digest(file, "sha256")
        else:
            header = b"blob %d\0" % path.stat().st_size
            digest = hashlib.file_digest(file, lambda: hashlib.sha1(header))
    return f'"{digest.hexdigest()}"'


class HubServer(BackgroundServer):
    """A local Hub serving ``repos`` ({repo_id: {revision: folder}}) with faults and a log.
    ``real=True``: LFS files are sent from a CDN on a second origin (see the module's doc);
    ``page_size``: entries per page of a tree listing."""

    def __init__(self, repos: dict[str, dict[str, Path]] | None = None, host: str = "127.0.0.1", port: int = 0,
                 real: bool = False, page_size: int = 1000) -> None:
        super().__init__(HubHandler, host, port)
        self.cdn = CdnServer(self, host) if real else None
        self.page_size = page_size
        self._lock = threading.Lock()
        self._hash_lock = threading.Lock()
        self._repos: dict[str, dict[str, Path]] = {}
        self._etags: dict[tuple[Path, int, int], str] = {}
        self._faults: dict[tuple[str, str], Fault] = {}
        self._requests: list[RequestRecord] = []
        for repo_id, revisions in (repos or {}).items():
            for revision, folder in revisions.items():
                self.add_repo(repo_id, folder, revision)

    def start(self) -> Self:
        if self.cdn is not None:
            self.cdn.start()
        return super().start()

    def stop(self) -> None:
        super().stop()
        if self.cdn is not None:
            self.cdn.stop()

    def add_repo(self, repo_id: str, folder: Path | str, revision: str = "main") -> None:
        """Serve ``folder`` as ``repo_id`` at ``revision``."""
        with self._lock:
            self._repos.setdefault(repo_id, {})[revision] = Path(folder)

    # -- files

    def revision_folder(self, repo_id: str, revision: str) -> tuple[Path, str]:
        """Return (folder, commit) of a repo revision (a name or its commit), or raise HubError like the Hub."""
        with self._lock:
            revisions = dict(self._repos.get(repo_id) or {})
        if not revisions:
            raise HubError(401, "RepoNotFound", "Repository Not Found")
        by_commit = {fake_commit(repo_id, rev): rev for rev in revisions}
        revision = by_commit.get(revision, revision)
        if revision not in revisions:
            raise HubError(404, "RevisionNotFound", "Revision Not Found")
        return revisions[revision], fake_commit(repo_id, revision)

    def locate(self, repo_id: str, revision: str, file: str) -> tuple[Path, str]:
        """Return (path, commit) of a repo file, or raise HubError like the Hub."""
        folder, commit = self.revision_folder(repo_id, revision)
        relative = PurePosixPath(file)
        path = folder.joinpath(*relative.parts)
        if relative.is_absolute() or ".." in relative.parts or not path.is_file():
            raise HubError(404, "EntryNotFound", "Entry Not Found")
        return path, commit

    def etag(self, path: Path) -> str:
        """The file's ETag, computed once per (path, size, mtime)."""
        stat = path.stat()
        key = (path.resolve(), stat.st_size, stat.st_mtime_ns)
        with self._hash_lock:
            if key not in self._etags:
                self._etags[key] = compute_etag(path)
            return self._etags[key]

    def file_headers(self, path: Path, commit: str, etag: str | None = None) -> dict[str, str]:
        """Hub response headers for a file; ``etag`` overrides the real one."""
        etag = etag or self.etag(path)
        headers = {"Content-Type": content_type(path), "ETag": etag, "X-Repo-Commit": commit}
        if path.suffix in LFS_SUFFIXES:
            headers.update({"X-Linked-Etag": etag, "X-Linked-Size": str(path.stat().st_size)})
        return headers

    def tree(self, folder: Path) -> list[dict[str, Any]]:
        """The API's listing of a folder's top level: files with size and git oid, LFS files
        with their sha256 too, and folders."""
        entries = []
        for path in sorted(folder.iterdir()):
            if path.is_dir():
                entries.append({"type": "directory", "path": path.name, "oid": fake_commit(path.name, "tree"),
                                "size": 0})
                continue
            size, digest = path.stat().st_size, self.etag(path).strip('"')
            entry = {"type": "file", "path": path.name, "size": size, "oid": digest[:40]}
            if path.suffix in LFS_SUFFIXES:  # a git sha1 of the pointer file, not of the content
                entry.update(oid=hashlib.sha1(digest.encode()).hexdigest(),
                             lfs={"oid": digest, "size": size, "pointerSize": LFS_POINTER_SIZE})
            entries.append(entry)
        return entries

    # -- faults

    def set_fault(self, repo_id: str, file: str, **fault: Any) -> None:
        """Break GET requests for ``repo_id``/``file`` (replacing an earlier fault for it);
        ``file`` may be one of API_FILES for the JSON API.

        Kinds: status, cut_after, short, flip, delay, etag, html, wrong_length, no_length; ``times=n``
        limits it to the next n requests.
        """
        new = Fault(**fault)
        with self._lock:
            self._faults[(repo_id, file)] = new

    def clear_faults(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def take_fault(self, repo_id: str, file: str, body: bool | None = None) -> Fault | None:
        """The fault for one GET request, counting it against ``times``; with ``body`` given,
        only a fault that acts on the body (True) or on the status (False)."""
        with self._lock:
            fault = self._faults.get((repo_id, file))
            if fault is None or (body is not None and fault.breaks_body != body):
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times == 0:
                    del self._faults[(repo_id, file)]
            return fault

    # -- request log

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log (control endpoints excluded)."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Empty the request log."""
        with self._lock:
            self._requests.clear()

    def log(self, record: RequestRecord) -> None:
        """Append a record to the request log."""
        with self._lock:
            self._requests.append(record)


class CdnServer(BackgroundServer):
    """The real mode's CDN: a second origin that sends the hub's LFS files."""

    def __init__(self, hub: HubServer, host: str) -> None:
        super().__init__(CdnHandler, host)
        self.hub = hub
        self.verbose = False

    def link(self, repo: str, commit: str, file: str, path: Path) -> str:
        """Where the hub redirects a download (signed-looking, like the real CDN's links)."""
        query = urlencode({"repo": repo, "commit": commit, "file": file, "X-Amz-Signature": "0" * 64})
        return f"{self.url}/xet/{self.hub.etag(path).strip(chr(34))}?{query}"


# --------------------------------------------------------------------------- hub HTTP


class HubHandler(BaseHandler):
    """Request handler of HubServer."""

    owner: HubServer  # type: ignore[assignment]
    record: RequestRecord | None = None
    fault: Fault | None = None

    @property
    def hub(self) -> HubServer:
        return self.owner

    def parse_request(self) -> bool:
        self.record, self.fault = None, None  # a kept-alive connection reuses the handler
        return super().parse_request()

    def common_headers(self) -> dict[str, str]:
        return {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": EXPOSED_HEADERS}

    def send_response(self, code: int, message: str | None = None) -> None:
        if self.record is not None:
            self.record.status = code
        super().send_response(code, message)

    def before_write(self, chunk: bytes) -> None:
        if self.record is not None:
            self.record.bytes_sent += len(chunk)

    def body_chunks(self, path: Path, start: int, length: int) -> Iterable[bytes]:
        chunks = super().body_chunks(path, start, length)
        return chunks if self.fault is None else self.fault.shape(chunks, start)

    def send_head(self, status: int, headers: dict[str, str]) -> None:
        if self.fault is not None and "Content-Length" in headers:
            if self.fault.wrong_length is not None:
                headers = {**headers, "Content-Length": str(int(headers["Content-Length"]) + self.fault.wrong_length)}
                self.close_connection = True  # the body no longer ends where the header says
            elif self.fault.no_length:
                headers = {k: v for k, v in headers.items() if k != "Content-Length"}
                self.close_connection = True  # the body ends when the connection does
        super().send_head(status, headers)

    def open_record(self, repo: str | None, revision: str | None, file: str | None, host: str = "hub") -> None:
        """Start this request's record in the hub's log (its status and bytes follow as it is served)."""
        self.record = RequestRecord(self.command, self.path, repo, revision, file, self.headers.get("Range"),
                                    time=time.time(), host=host)
        self.hub.log(self.record)

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        """Send a JSON response."""
        self.send_bytes(status, json.dumps(payload).encode(), "application/json; charset=utf-8", headers)

    def send_hub_error(self, error: HubError) -> None:
        """Answer like the Hub: JSON ``{"error": ...}`` plus X-Error-Code/X-Error-Message."""
        message = f"{error.label} for url: {self.hub.url}{self.path}."
        headers = {"X-Error-Message": message}
        if error.code:
            headers["X-Error-Code"] = error.code
        self.send_json(error.status, {"error": message}, headers)

    def send_status_fault(self) -> None:
        time.sleep(self.fault.delay)
        phrase = HTTPStatus(self.fault.status).phrase
        self.send_hub_error(HubError(self.fault.status, FAULT_ERROR_CODES.get(self.fault.status), phrase))

    def send_html_page(self) -> None:
        """A 200 with an HTML page instead of the file (a captive portal, a proxy's error page)."""
        self.send_bytes(200, HTML_PAGE, "text/html; charset=utf-8")

    def abort(self) -> None:
        """Reset the connection (RST) without a clean close."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    # -- methods

    def do_GET(self) -> None:
        if self.is_control():
            self.control()
        elif urlsplit(self.path).path.startswith("/api/"):
            self.serve_api()
        else:
            self.serve_hub_request()

    do_HEAD = do_GET

    def do_POST(self) -> None:
        self.control()

    do_DELETE = do_POST

    def do_OPTIONS(self) -> None:
        if not self.is_control():
            self.start_record()
        allowed = self.headers.get("Access-Control-Request-Headers") or PREFLIGHT_HEADERS
        self.send_head(204, {
            "Access-Control-Allow-Methods": "GET, HEAD, POST, DELETE, OPTIONS",
            "Access-Control-Allow-Headers": allowed,
            "Access-Control-Max-Age": "86400",
            "Content-Length": "0",
        })

    # -- control endpoints (not logged)

    def is_control(self) -> bool:
        """Whether the request is for a control endpoint (``/__...``)."""
        return urlsplit(self.path).path.startswith(CONTROL_PREFIX)

    def control(self) -> None:
        """POST/DELETE ``/__faults``, GET/DELETE ``/__requests``."""
        route = (self.command, urlsplit(self.path).path)
        if route == ("POST", "/__faults"):
            return self.post_fault()
        if route == ("GET", "/__requests"):
            return self.send_json(200, [asdict(r) for r in self.hub.requests])
        if route == ("DELETE", "/__faults"):
            self.hub.clear_faults()
        elif route == ("DELETE", "/__requests"):
            self.hub.clear_requests()
        else:
            return self.send_json(404, {"error": "Not Found"})
        self.send_json(200, {"ok": True})

    def post_fault(self) -> None:
        """Set a fault from a JSON body ``{"repo": ..., "file": ..., <kinds>}``."""
        try:
            spec = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            self.hub.set_fault(spec.pop("repo"), spec.pop("file"), **spec)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            return self.send_json(400, {"error": f"bad fault: {error!r}"})
        self.send_json(200, {"ok": True})

    # -- the JSON API

    def serve_api(self) -> None:
        """``/api/models/{repo}/revision/{rev}`` and ``/api/models/{repo}/tree/{rev}[?cursor=n]``."""
        target = parse_api_path(self.path)
        self.open_record(*(target or (None, None, None)))
        if target is None:
            return self.send_json(404, {"error": "Not Found"})
        repo, revision, route = target
        self.fault = self.hub.take_fault(repo, route) if self.command == "GET" else None
        if self.fault is not None and self.fault.status is not None:
            return self.send_status_fault()
        if self.fault is not None and self.fault.html:
            return self.send_html_page()
        try:
            folder, commit = self.hub.revision_folder(repo, revision)
        except HubError as error:
            return self.send_hub_error(error)
        if route == "api:revision":
            siblings = [{"rfilename": e["path"]} for e in self.hub.tree(folder) if e["type"] == "file"]
            return self.send_json(200, {"id": repo, "sha": commit, "siblings": siblings, "private": False,
                                        "gated": False})
        self.send_tree_page(repo, revision, self.hub.tree(folder))

    def send_tree_page(self, repo: str, revision: str, entries: list[dict[str, Any]]) -> None:
        cursor = int((parse_qs(urlsplit(self.path).query).get("cursor") or ["0"])[0])
        end = cursor + self.hub.page_size
        headers = {}
        if end < len(entries):
            next_page = f"{self.hub.url}/api/models/{repo}/tree/{quote(revision, safe='')}?cursor={end}"
            headers["Link"] = f'<{next_page}>; rel="next"'
        self.send_json(200, entries[cursor:end], headers)

    # -- resolve

    def start_record(self) -> tuple[str, str, str] | None:
        """Log this request; return its (repo, revision, file) if it is a resolve URL."""
        target = parse_resolve_path(self.path)
        repo, revision, file = target or (None, None, None)
        self.open_record(repo, revision, file)
        return target

    def serve_hub_request(self) -> None:
        """Serve a resolve URL, applying a matching fault to GET requests; in the real mode
        LFS files are redirected to the CDN, which applies the faults that break bodies."""
        target = self.start_record()
        if target is None:
            return self.send_json(404, {"error": "Not Found"})
        try:
            path, commit = self.hub.locate(*target)
        except HubError as error:
            return self.send_hub_error(error)
        repo, _, file = target
        redirect = self.hub.cdn is not None and path.suffix in LFS_SUFFIXES
        if self.command == "GET":
            self.fault = self.hub.take_fault(repo, file, body=False if redirect else None)
        if self.fault is not None and self.fault.status is not None:
            return self.send_status_fault()
        if redirect:
            return self.send_head(302, {**self.hub.file_headers(path, commit), "Content-Length": "0",
                                        "Location": self.hub.cdn.link(repo, commit, file, path)})
        self.send_content(path, self.hub.file_headers(path, commit, self.fault.etag if self.fault else None))

    def send_content(self, path: Path, headers: dict[str, str]) -> None:
        """Send a file, broken as the request's fault says."""
        if self.fault is not None and self.fault.html:
            return self.send_html_page()
        length = self.send_file(path, headers)
        if self.fault is not None and length is not None and self.fault.truncates(length):
            if self.fault.cut_after is not None:
                self.abort()
            else:
                self.close_connection = True


class CdnHandler(HubHandler):
    """Request handler of CdnServer: LFS files by the hub's signed links; no preflight passes."""

    owner: CdnServer  # type: ignore[assignment]

    @property
    def hub(self) -> HubServer:
        return self.owner.hub

    def common_headers(self) -> dict[str, str]:
        return {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": CDN_EXPOSED_HEADERS}

    def do_GET(self) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        repo, commit, file = (query.get(k) for k in ("repo", "commit", "file"))
        self.open_record(repo, commit, file, host="cdn")
        try:
            path, _ = self.hub.locate(repo or "", commit or "", file or "")
        except HubError:
            return self.send_bytes(403, b"<Error><Code>AccessDenied</Code></Error>", "application/xml")
        if self.command == "GET":
            self.fault = self.hub.take_fault(repo, file, body=True)
        digest = self.hub.etag(path).strip('"')
        cdn_etag = f'"{hashlib.sha256(digest.encode()).hexdigest()}"'  # 64 hex, and not the file's sha256
        self.send_content(path, {"Content-Type": "application/octet-stream", "ETag": cdn_etag})

    do_HEAD = do_GET

    def do_OPTIONS(self) -> None:
        """The CDN refuses CORS preflights (no CORS headers on the answer)."""
        self.open_record(None, None, None, host="cdn")
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()


def parse_api_path(raw_path: str) -> tuple[str, str, str] | None:
    """``/api/models/{repo}/{revision|tree}/{rev}`` as (repo, rev, "api:revision" or "api:tree")."""
    segments = [unquote(s) for s in urlsplit(raw_path).path.split("/")]
    if segments[:3] != ["", "api", "models"]:
        return None
    for n in (2, 1):
        rest = segments[3 + n:]
        if len(rest) == 2 and rest[0] in ("revision", "tree") and all(segments[3:3 + n]) and rest[1]:
            return "/".join(segments[3:3 + n]), rest[1], f"api:{rest[0]}"
    return None


# --------------------------------------------------------------------------- command line


def parse_repo_spec(spec: str) -> tuple[str, str, Path]:
    """Parse ``org/name[@revision]=DIR`` into (repo_id, revision, folder)."""
    name, sep, folder = spec.partition("=")
    repo_id, _, revision = name.partition("@")
    if not sep or not repo_id or not folder:
        raise argparse.ArgumentTypeError(f"expected org/name[@rev]=DIR, got {spec!r}")
    if not Path(folder).is_dir():
        raise argparse.ArgumentTypeError(f"not a directory: {folder}")
    return repo_id, revision or "main", Path(folder)


def build_hub(specs: Iterable[tuple[str, str, Path]], host: str = "127.0.0.1", port: int = 0,
              real: bool = False) -> HubServer:
    """A HubServer serving parsed ``--repo`` specs."""
    hub = HubServer(host=host, port=port, real=real)
    for repo_id, revision, folder in specs:
        hub.add_repo(repo_id, folder, revision)
    return hub


def main(argv: list[str] | None = None) -> None:
    """Run a HubServer until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--repo", type=parse_repo_spec, action="append", default=[], metavar="ORG/NAME[@REV]=DIR")
    parser.add_argument("--real", action="store_true", help="send LFS files from a CDN origin, as huggingface.co does")
    args = parser.parse_args(argv)
    hub = build_hub(args.repo, args.host, args.port, args.real)
    hub.verbose = True
    print(f"Hub endpoint: {hub.url}", flush=True)
    for repo_id, revision, folder in args.repo:
        print(f"  {hub.url}/{repo_id}/resolve/{revision}/  <- {folder}", flush=True)
    serve_until_interrupted(hub)


if __name__ == "__main__":
    main()
