"""Tests of the local Hub (tools/hub_server.py) and the app server (tools/serve.py)."""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from email.message import Message
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from tools.hub_server import HubServer, RangeNotSatisfiable, fake_commit, parse_range, parse_repo_spec
from tools.serve import AppServer

ROOT = Path(__file__).resolve().parents[1]
REPO = "test/tiny"
WEIGHTS = bytes(range(256)) * 800  # 200 KiB: four 64 KiB chunks
CONFIG = b'{"n_layer": 2, "n_embd": 8}\n'


# --------------------------------------------------------------------------- helpers


def request(url: str, method: str = "GET", headers: dict[str, str] | None = None,
            body: bytes | None = None) -> tuple[int, Message, bytes]:
    """One request on a fresh connection: (status, headers, body)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


@contextmanager
def open_response(url: str) -> Iterator[http.client.HTTPResponse]:
    """Start a GET and yield the response with its body still unread."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        conn.request("GET", parts.path)
        with conn.getresponse() as response:
            yield response
    finally:
        conn.close()


def post_json(url: str, payload: object) -> tuple[int, Message, bytes]:
    """POST a JSON payload."""
    return request(url, "POST", {"Content-Type": "application/json"}, json.dumps(payload).encode())


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def repo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny")
    (folder / "model.safetensors").write_bytes(WEIGHTS)
    (folder / "config.json").write_bytes(CONFIG)
    (folder / "empty.txt").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def hub_server(repo_dir: Path) -> HubServer:
    with HubServer({REPO: {"main": repo_dir}}) as server:
        yield server


@pytest.fixture()
def hub(hub_server: HubServer) -> HubServer:
    """The shared hub with no faults and an empty log."""
    hub_server.clear_faults()
    hub_server.clear_requests()
    return hub_server


def file_url(hub: HubServer, name: str, repo: str = REPO, revision: str = "main") -> str:
    return f"{hub.url}/{repo}/resolve/{revision}/{name}"


# --------------------------------------------------------------------------- files and headers


def test_get_lfs_file_has_sha256_etag(hub: HubServer) -> None:
    status, headers, body = request(file_url(hub, "model.safetensors"))
    sha256 = hashlib.sha256(WEIGHTS).hexdigest()
    assert (status, body) == (200, WEIGHTS)
    assert headers["Content-Length"] == str(len(WEIGHTS))
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["ETag"] == headers["X-Linked-Etag"] == f'"{sha256}"'
    assert headers["X-Linked-Size"] == str(len(WEIGHTS))
    assert headers["X-Repo-Commit"] == fake_commit(REPO, "main")
    assert re.fullmatch(r"[0-9a-f]{40}", headers["X-Repo-Commit"])


def test_get_json_has_git_blob_etag(hub: HubServer) -> None:
    status, headers, body = request(file_url(hub, "config.json"))
    blob_sha1 = hashlib.sha1(b"blob %d\0" % len(CONFIG) + CONFIG).hexdigest()
    assert (status, body) == (200, CONFIG)
    assert headers["ETag"] == f'"{blob_sha1}"'
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert "X-Linked-Etag" not in headers


def test_head_sends_headers_only(hub: HubServer) -> None:
    status, headers, body = request(file_url(hub, "model.safetensors"), "HEAD")
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == str(len(WEIGHTS))
    assert headers["X-Linked-Size"] == str(len(WEIGHTS))


def test_empty_file(hub: HubServer) -> None:
    status, headers, body = request(file_url(hub, "empty.txt"))
    assert (status, headers["Content-Length"], body) == (200, "0", b"")


def test_commit_hash_works_as_revision(hub: HubServer) -> None:
    status, _, body = request(file_url(hub, "config.json", revision=fake_commit(REPO, "main")))
    assert (status, body) == (200, CONFIG)


def test_add_repo_with_revision(hub: HubServer, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_bytes(b"{}")
    hub.add_repo("org/other", tmp_path, revision="v1")
    status, headers, body = request(file_url(hub, "config.json", repo="org/other", revision="v1"))
    assert (status, body) == (200, b"{}")
    assert headers["X-Repo-Commit"] == fake_commit("org/other", "v1")


# --------------------------------------------------------------------------- ranges


@pytest.mark.parametrize(("header", "first", "last"), [
    ("bytes=0-9", 0, 9),
    ("bytes=100-", 100, len(WEIGHTS) - 1),
    ("bytes=-10", len(WEIGHTS) - 10, len(WEIGHTS) - 1),
    ("bytes=70000-999999999", 70000, len(WEIGHTS) - 1),
])
def test_range_requests(hub: HubServer, header: str, first: int, last: int) -> None:
    status, headers, body = request(file_url(hub, "model.safetensors"), headers={"Range": header})
    assert status == 206
    assert headers["Content-Range"] == f"bytes {first}-{last}/{len(WEIGHTS)}"
    assert headers["Content-Length"] == str(last - first + 1)
    assert body == WEIGHTS[first : last + 1]


@pytest.mark.parametrize("header", ["bytes=999999-", "bytes=-0"])
def test_unsatisfiable_range_is_416(hub: HubServer, header: str) -> None:
    status, headers, body = request(file_url(hub, "model.safetensors"), headers={"Range": header})
    assert (status, body) == (416, b"")
    assert headers["Content-Range"] == f"bytes */{len(WEIGHTS)}"


@pytest.mark.parametrize(("header", "expected"), [
    (None, None),
    ("bytes=0-0", (0, 0)),
    ("bytes=5-", (5, 9)),
    ("bytes=-20", (0, 9)),
    ("bytes=3-2", None),
    ("bytes=0-1,4-5", None),
    ("items=0-1", None),
    ("bytes=-", None),
])
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 10) == expected


def test_parse_range_unsatisfiable() -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=10-", 10)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-1", 0)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("url_path", "status", "code"), [
    ("nobody/nothing/resolve/main/config.json", 401, "RepoNotFound"),
    (f"{REPO}/resolve/v9/config.json", 404, "RevisionNotFound"),
    (f"{REPO}/resolve/main/missing.bin", 404, "EntryNotFound"),
    (f"{REPO}/resolve/main/..%2F..%2Fetc%2Fpasswd", 404, "EntryNotFound"),
])
def test_hub_errors(hub: HubServer, url_path: str, status: int, code: str) -> None:
    got, headers, body = request(f"{hub.url}/{url_path}")
    assert got == status
    assert headers["X-Error-Code"] == code
    assert headers["Content-Type"].startswith("application/json")
    assert f"for url: {hub.url}/{url_path}" in json.loads(body)["error"]
    assert headers["Access-Control-Allow-Origin"] == "*"


def test_unknown_route_is_404(hub: HubServer) -> None:
    status, headers, _ = request(f"{hub.url}/api/models/test/tiny")
    assert status == 404
    assert "X-Error-Code" not in headers


# --------------------------------------------------------------------------- CORS


def test_cors_headers(hub: HubServer) -> None:
    _, headers, _ = request(file_url(hub, "config.json"))
    exposed = {h.strip().lower() for h in headers["Access-Control-Expose-Headers"].split(",")}
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert {"content-length", "content-range", "etag", "x-linked-etag", "x-linked-size",
            "x-repo-commit", "x-error-code", "accept-ranges"} <= exposed


def test_options_preflight(hub: HubServer) -> None:
    status, headers, body = request(file_url(hub, "model.safetensors"), "OPTIONS", {
        "Origin": "http://localhost:8000",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range",
    })
    assert (status, body) == (204, b"")
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert {"GET", "HEAD"} <= {m.strip() for m in headers["Access-Control-Allow-Methods"].split(",")}
    assert "range" in headers["Access-Control-Allow-Headers"].lower()
    assert [(r.method, r.file, r.status) for r in hub.requests] == [("OPTIONS", "model.safetensors", 204)]


# --------------------------------------------------------------------------- faults


def test_fault_cut_after_aborts_connection(hub: HubServer) -> None:
    hub.set_fault(REPO, "model.safetensors", cut_after=1000)
    with open_response(file_url(hub, "model.safetensors")) as response:
        assert response.headers["Content-Length"] == str(len(WEIGHTS))
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            response.read()
    assert hub.requests[-1].bytes_sent == 1000


def test_fault_cut_once_then_resume_with_range(hub: HubServer) -> None:
    hub.set_fault(REPO, "model.safetensors", cut_after=1000, times=1)
    with open_response(file_url(hub, "model.safetensors")) as response:
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            response.read()
    status, _, rest = request(file_url(hub, "model.safetensors"), headers={"Range": "bytes=1000-"})
    assert (status, rest) == (206, WEIGHTS[1000:])


def test_fault_short_sends_fewer_bytes(hub: HubServer) -> None:
    hub.set_fault(REPO, "model.safetensors", short=70000)
    with open_response(file_url(hub, "model.safetensors")) as response:
        assert response.headers["Content-Length"] == str(len(WEIGHTS))
        with pytest.raises(http.client.IncompleteRead) as error:
            response.read()
    assert error.value.partial == WEIGHTS[:70000]


def test_fault_flip_changes_one_byte(hub: HubServer) -> None:
    hub.set_fault(REPO, "model.safetensors", flip=70000)
    status, headers, body = request(file_url(hub, "model.safetensors"))
    diffs = [i for i, (a, b) in enumerate(zip(body, WEIGHTS)) if a != b]
    assert (status, len(body), diffs) == (200, len(WEIGHTS), [70000])
    assert body[70000] == WEIGHTS[70000] ^ 0xFF
    assert headers["ETag"] == f'"{hashlib.sha256(WEIGHTS).hexdigest()}"'


def test_fault_flip_uses_file_offsets_in_ranges(hub: HubServer) -> None:
    hub.set_fault(REPO, "model.safetensors", flip=105)
    _, _, body = request(file_url(hub, "model.safetensors"), headers={"Range": "bytes=100-109"})
    assert [i for i, (a, b) in enumerate(zip(body, WEIGHTS[100:110])) if a != b] == [5]


def test_fault_status_once_then_normal(hub: HubServer) -> None:
    hub.set_fault(REPO, "config.json", status=503, times=1)
    status, headers, body = request(file_url(hub, "config.json"))
    assert status == 503
    assert "error" in json.loads(body)
    assert "X-Error-Code" not in headers
    assert request(file_url(hub, "config.json"))[::2] == (200, CONFIG)


@pytest.mark.parametrize(("status", "code"), [(401, "RepoNotFound"), (403, "GatedRepo"), (404, "EntryNotFound")])
def test_fault_status_has_hub_error_code(hub: HubServer, status: int, code: str) -> None:
    hub.set_fault(REPO, "config.json", status=status)
    got, headers, _ = request(file_url(hub, "config.json"))
    assert (got, headers["X-Error-Code"]) == (status, code)


def test_fault_delay_slows_each_chunk(hub: HubServer) -> None:
    hub.set_fault(REPO, "model.safetensors", delay=0.05)
    started = time.monotonic()
    status, _, body = request(file_url(hub, "model.safetensors"))
    assert (status, body) == (200, WEIGHTS)
    assert time.monotonic() - started >= 4 * 0.05  # four 64 KiB chunks


def test_fault_etag_override(hub: HubServer) -> None:
    hub.set_fault(REPO, "model.safetensors", etag='"deadbeef"')
    _, headers, body = request(file_url(hub, "model.safetensors"))
    assert headers["ETag"] == headers["X-Linked-Etag"] == '"deadbeef"'
    assert body == WEIGHTS


def test_faults_only_affect_get_and_their_file(hub: HubServer) -> None:
    hub.set_fault(REPO, "model.safetensors", status=500)
    assert request(file_url(hub, "model.safetensors"), "HEAD")[0] == 200
    assert request(file_url(hub, "config.json"))[0] == 200
    assert request(file_url(hub, "model.safetensors"))[0] == 500
    hub.clear_faults()
    assert request(file_url(hub, "model.safetensors"))[0] == 200


@pytest.mark.parametrize("fault", [
    {"status": 200}, {"status": 599}, {"cut_after": 1, "short": 1}, {"status": 500, "flip": 0},
    {"times": 0}, {"flip": -1}, {"bogus": 1},
])
def test_invalid_faults_are_rejected(hub: HubServer, fault: dict) -> None:
    with pytest.raises((ValueError, TypeError)):
        hub.set_fault(REPO, "config.json", **fault)


# --------------------------------------------------------------------------- the JSON API


def git_blob_sha1(data: bytes) -> str:
    return subprocess.run(["git", "hash-object", "--stdin"], input=data, capture_output=True, check=True).stdout.decode().strip()


def test_api_revision_names_the_commit(hub: HubServer) -> None:
    status, headers, body = request(f"{hub.url}/api/models/{REPO}/revision/main")
    answer = json.loads(body)
    assert (status, answer["sha"], headers["Access-Control-Allow-Origin"]) == (200, fake_commit(REPO, "main"), "*")
    assert {s["rfilename"] for s in answer["siblings"]} == {"model.safetensors", "config.json", "empty.txt"}
    assert json.loads(request(f"{hub.url}/api/models/{REPO}/revision/{answer['sha']}")[2])["sha"] == answer["sha"]


def test_api_tree_lists_sizes_git_blob_ids_and_lfs_sha256(hub: HubServer) -> None:
    status, _, body = request(f"{hub.url}/api/models/{REPO}/tree/main")
    entries = {e["path"]: e for e in json.loads(body)}
    assert status == 200 and set(entries) == {"model.safetensors", "config.json", "empty.txt"}
    assert entries["config.json"]["oid"] == git_blob_sha1(CONFIG) and entries["config.json"]["size"] == len(CONFIG)
    assert entries["empty.txt"]["oid"] == git_blob_sha1(b"")
    assert entries["model.safetensors"]["lfs"] == {"oid": hashlib.sha256(WEIGHTS).hexdigest(), "size": len(WEIGHTS),
                                                   "pointerSize": 135}


def test_api_tree_pages_with_a_link_header(repo_dir: Path) -> None:
    with HubServer({REPO: {"main": repo_dir}}, page_size=2) as hub:
        url, names = f"{hub.url}/api/models/{REPO}/tree/main", []
        while url:
            _, headers, body = request(url)
            names += [e["path"] for e in json.loads(body)]
            url = (re.match(r'<([^>]+)>; rel="next"', headers.get("Link") or "") or [None, None])[1]
        assert sorted(names) == ["config.json", "empty.txt", "model.safetensors"]
        assert "Link" in request(f"{hub.url}/api/models/{REPO}/tree/main")[1]["Access-Control-Expose-Headers"]


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/api/models/nobody/nothing/revision/main", 401, "RepoNotFound"),
    (f"/api/models/{REPO}/revision/v9", 404, "RevisionNotFound"),
    (f"/api/models/{REPO}/tree/v9", 404, "RevisionNotFound"),
])
def test_api_errors(hub: HubServer, path: str, status: int, code: str) -> None:
    got, headers, _ = request(hub.url + path)
    assert (got, headers["X-Error-Code"]) == (status, code)


def test_api_faults(hub: HubServer) -> None:
    hub.set_fault(REPO, "api:revision", status=500, times=1)
    assert request(f"{hub.url}/api/models/{REPO}/revision/main")[0] == 500
    hub.set_fault(REPO, "api:tree", html=True, times=1)
    status, headers, body = request(f"{hub.url}/api/models/{REPO}/tree/main")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and body.startswith(b"<!doctype html>")
    assert json.loads(request(f"{hub.url}/api/models/{REPO}/tree/main")[2])


# --------------------------------------------------------------------------- the real mode: a CDN on another origin


@pytest.fixture(scope="module")
def real_hub(repo_dir: Path) -> HubServer:
    with HubServer({REPO: {"main": repo_dir}}, real=True) as server:
        yield server


def test_real_mode_redirects_weights_to_another_origin_with_the_hash_on_the_redirect_only(real_hub: HubServer) -> None:
    status, headers, body = request(file_url(real_hub, "model.safetensors"))
    sha256 = hashlib.sha256(WEIGHTS).hexdigest()
    location = headers["Location"]
    assert status == 302 and body == b"" and urlsplit(location).port != urlsplit(real_hub.url).port
    assert (headers["X-Linked-Etag"], headers["X-Linked-Size"]) == (f'"{sha256}"', str(len(WEIGHTS)))
    status, cdn, body = request(location, headers={"Range": "bytes=100-"})
    assert (status, body) == (206, WEIGHTS[100:]) and cdn["Content-Range"] == f"bytes 100-{len(WEIGHTS) - 1}/{len(WEIGHTS)}"
    assert re.fullmatch(r'"[0-9a-f]{64}"', cdn["ETag"]) and sha256 not in cdn["ETag"]  # looks like one; is not
    assert "X-Linked-Etag" not in cdn and cdn["Access-Control-Allow-Origin"] == "*"
    exposed = cdn["Access-Control-Expose-Headers"]
    assert "Content-Range" not in exposed and "Accept-Ranges" not in exposed


def test_real_mode_serves_small_files_itself(real_hub: HubServer) -> None:
    status, headers, body = request(file_url(real_hub, "config.json"))
    assert (status, body, headers["ETag"]) == (200, CONFIG, f'"{git_blob_sha1(CONFIG)}"')


def test_real_mode_cdn_refuses_preflights(real_hub: HubServer) -> None:
    location = request(file_url(real_hub, "model.safetensors"))[1]["Location"]
    status, headers, _ = request(location, "OPTIONS", {"Access-Control-Request-Method": "GET",
                                                       "Access-Control-Request-Headers": "x-custom"})
    assert status == 403 and "Access-Control-Allow-Origin" not in headers


def test_real_mode_faults_break_bodies_on_the_cdn_and_statuses_on_the_hub(real_hub: HubServer) -> None:
    real_hub.clear_requests()
    real_hub.set_fault(REPO, "model.safetensors", flip=5, times=1)
    location = request(file_url(real_hub, "model.safetensors"))[1]["Location"]
    assert request(location)[2][5] == WEIGHTS[5] ^ 0xFF
    real_hub.set_fault(REPO, "model.safetensors", status=403, times=1)
    assert request(file_url(real_hub, "model.safetensors"))[0] == 403
    assert [(r.host, r.status) for r in real_hub.requests] == [("hub", 302), ("cdn", 200), ("hub", 403)]
    real_hub.clear_faults()


def test_fault_html_and_wrong_length(hub: HubServer) -> None:
    hub.set_fault(REPO, "model.safetensors", html=True, times=1)
    status, headers, body = request(file_url(hub, "model.safetensors"))
    assert status == 200 and body.startswith(b"<!doctype html>")
    hub.set_fault(REPO, "config.json", wrong_length=-5, times=1)
    with open_response(file_url(hub, "config.json")) as response:
        assert response.headers["Content-Length"] == str(len(CONFIG) - 5)
        assert response.read() == CONFIG[:-5]
    hub.set_fault(REPO, "config.json", no_length=True, times=1)
    with open_response(file_url(hub, "config.json")) as response:
        assert "Content-Length" not in response.headers and response.read() == CONFIG


# --------------------------------------------------------------------------- request log


def test_request_log(hub: HubServer) -> None:
    request(file_url(hub, "model.safetensors"), headers={"Range": "bytes=0-99"})
    request(file_url(hub, "config.json"), "HEAD")
    request(f"{hub.url}/nobody/nothing/resolve/main/x")
    first, second, third = hub.requests
    assert (first.method, first.repo, first.revision, first.file) == ("GET", REPO, "main", "model.safetensors")
    assert (first.range, first.status, first.bytes_sent) == ("bytes=0-99", 206, 100)
    assert (second.method, second.range, second.status, second.bytes_sent) == ("HEAD", None, 200, 0)
    assert (third.repo, third.status) == ("nobody/nothing", 401)
    assert first.time <= second.time <= third.time
    hub.clear_requests()
    assert hub.requests == []


# --------------------------------------------------------------------------- HTTP control


def test_http_control_endpoints(hub: HubServer) -> None:
    assert post_json(f"{hub.url}/__faults", {"repo": REPO, "file": "config.json", "status": 503, "times": 1})[0] == 200
    assert request(file_url(hub, "config.json"))[0] == 503
    assert request(file_url(hub, "config.json"))[0] == 200

    assert post_json(f"{hub.url}/__faults", {"repo": REPO, "file": "config.json", "status": 500})[0] == 200
    assert request(f"{hub.url}/__faults", "DELETE")[0] == 200
    assert request(file_url(hub, "config.json"))[0] == 200

    status, headers, body = request(f"{hub.url}/__requests")
    log = json.loads(body)
    assert (status, headers["Access-Control-Allow-Origin"]) == (200, "*")
    assert [(r["file"], r["status"]) for r in log] == [("config.json", 503), ("config.json", 200), ("config.json", 200)]
    assert request(f"{hub.url}/__requests", "DELETE")[0] == 200
    assert hub.requests == []


def test_http_control_is_not_logged(hub: HubServer) -> None:
    assert request(f"{hub.url}/__faults", "OPTIONS", {"Access-Control-Request-Method": "POST"})[0] == 204
    assert request(f"{hub.url}/__nothing")[0] == 404
    assert request(f"{hub.url}/__requests")[0] == 200
    assert hub.requests == []


@pytest.mark.parametrize("body", [b'{"file": "x"}', b'{"repo": "a/b", "file": "x", "nope": 1}', b"[1, 2]", b"{"])
def test_http_control_rejects_bad_faults(hub: HubServer, body: bytes) -> None:
    status, _, body = request(f"{hub.url}/__faults", "POST", {"Content-Type": "application/json"}, body)
    assert status == 400
    assert "error" in json.loads(body)


# --------------------------------------------------------------------------- app server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    files = {
        "index.html": b"<!doctype html>", "main.js": b"", "worker.mjs": b"", "pyodide.wasm": b"\0asm",
        "pyscript.toml": b"", "app.py": b"", "README.md": b"", "data.json": b"{}", "sub/index.html": b"sub",
        ".git/config": b"secret",
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@pytest.mark.parametrize(("name", "kind"), [
    ("", "text/html; charset=utf-8"),
    ("main.js", "text/javascript; charset=utf-8"),
    ("worker.mjs", "text/javascript; charset=utf-8"),
    ("pyodide.wasm", "application/wasm"),
    ("pyscript.toml", "text/plain; charset=utf-8"),
    ("app.py", "text/plain; charset=utf-8"),
    ("README.md", "text/plain; charset=utf-8"),
    ("data.json", "application/json; charset=utf-8"),
])
def test_app_server_mime_types(site: Path, name: str, kind: str) -> None:
    with AppServer(site) as app:
        status, headers, _ = request(f"{app.url}/{name}")
    assert (status, headers["Content-Type"], headers["Cache-Control"]) == (200, kind, "no-cache")
    assert "Cross-Origin-Opener-Policy" not in headers


def test_app_server_isolation_headers(site: Path) -> None:
    with AppServer(site, isolated=True) as app:
        _, headers, body = request(f"{app.url}/sub/")
    assert body == b"sub"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert headers["Cross-Origin-Resource-Policy"] == "cross-origin"


def test_app_server_as_jekyll_drops_underscored_names_unless_nojekyll(site: Path, tmp_path: Path) -> None:
    (site / "engine").mkdir(exist_ok=True)
    (site / "engine" / "__init__.py").write_bytes(b"")
    with AppServer(site, jekyll=True) as server:
        assert request(f"{server.url}/engine/__init__.py")[0] == 404
        assert request(f"{server.url}/index.html")[0] == 200
    (site / ".nojekyll").write_bytes(b"")
    try:
        with AppServer(site, jekyll=True) as server:
            assert request(f"{server.url}/engine/__init__.py")[0] == 200
    finally:
        (site / ".nojekyll").unlink()


@pytest.mark.parametrize("path", ["missing.js", ".git/config", "sub/../.git/config", "%2e%2e/etc/passwd"])
def test_app_server_not_found(site: Path, path: str) -> None:
    with AppServer(site) as app:
        assert request(f"{app.url}/{path}")[0] == 404


def test_app_server_ranges(site: Path) -> None:
    with AppServer(site) as app:
        status, headers, body = request(f"{app.url}/pyodide.wasm", headers={"Range": "bytes=1-"})
        assert (status, headers["Content-Range"], body) == (206, "bytes 1-3/4", b"asm")
        assert request(f"{app.url}/pyodide.wasm", headers={"Range": "bytes=9-"})[0] == 416


def test_app_server_revalidates_with_etags(site: Path) -> None:
    """A browser's cached copy is confirmed with a 304 (no body) until the file changes."""
    file = site / "revalidated.wasm"
    file.write_bytes(b"\0asm")
    try:
        with AppServer(site) as app:
            url = f"{app.url}/{file.name}"
            status, headers, body = request(url)
            tag = headers["ETag"]
            assert (status, body) == (200, b"\0asm")
            status, headers, body = request(url, headers={"If-None-Match": f'"other", {tag}'})
            assert (status, headers["ETag"], headers["Cache-Control"], body) == (304, tag, "no-cache", b"")
            file.write_bytes(b"\0asm\1")
            status, headers, body = request(url, headers={"If-None-Match": tag})
            assert (status, body) == (200, b"\0asm\1") and headers["ETag"] != tag
            assert request(f"{app.url}/main.js", headers={"If-None-Match": tag})[0] == 200
    finally:
        file.unlink()


# --------------------------------------------------------------------------- command line


def test_parse_repo_spec(tmp_path: Path) -> None:
    assert parse_repo_spec(f"org/name={tmp_path}") == ("org/name", "main", tmp_path)
    assert parse_repo_spec(f"org/name@v2={tmp_path}") == ("org/name", "v2", tmp_path)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_repo_spec("org/name")


def test_serve_command_prints_working_links(repo_dir: Path) -> None:
    command = [sys.executable, str(ROOT / "tools" / "serve.py"), "--port", "0", "--cdn", "--hub-repo", f"{REPO}={repo_dir}"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            lines = [process.stdout.readline() for _ in range(3)]
            link = lines[2].split()[-1]
            hub_url = lines[1].split()[-1]
            assert link.endswith(f"/?endpoint={hub_url}&model={REPO}")
            assert request(f"{hub_url}/{REPO}/resolve/main/config.json")[::2] == (200, CONFIG)
        finally:
            process.terminate()
