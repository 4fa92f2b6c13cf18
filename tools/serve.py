"""Serve the Browser LLM app (the repository root, page ``index.html``) locally.

    python tools/serve.py [--port 8000] [--host 127.0.0.1] [--isolated] [--hub-repo org/name=DIR ...] [--cdn]

First fills vendor/ with the verified runtime (tools/vendor_runtime.py; a no-op when it is
already there) so the page runs with no CDN; --cdn skips that. With vendor/ filled, the page is
told to use it (client/runtime.json answers "vendor", as on a site published with vendor/).

``--isolated`` sends COOP/COEP headers (cross-origin isolation, e.g. for SharedArrayBuffer).
``--hub-repo`` also starts a local Hub (tools/hub_server.py) serving fixture models
and prints a link that points the app at it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlencode, urlsplit

if __package__ in (None, ""):  # run as a script: make the `tools` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import vendor_runtime  # noqa: E402
from tools.hub_server import (  # noqa: E402
    BackgroundServer,
    BaseHandler,
    build_hub,
    content_type,
    parse_repo_spec,
    serve_until_interrupted,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "cross-origin",
}
SITE_CHOICE = "client/runtime.json"  # where client/runtime.js reads which runtime the site has
VENDOR_CHOICE = b'{"runtime": "vendor"}\n'


class AppHandler(BaseHandler):
    """Static files with Range support, ``no-cache``, validators and optional isolation headers.

    Like GitHub Pages, each file has an ETag and a request that names it (``If-None-Match``) gets
    a 304: a browser then reuses its cached copy, and V8 the code it compiled from a cached
    ``.wasm`` (Pyodide's), which a warm start needs; ``no-cache`` still makes it ask every time.
    """

    owner: AppServer  # type: ignore[assignment]

    def common_headers(self) -> dict[str, str]:
        headers = {"Cache-Control": "no-cache"}
        if self.owner.isolated:
            headers.update(ISOLATION_HEADERS)
        return headers

    def do_GET(self) -> None:
        path = self.owner.locate(self.path)
        if path is None:
            self.send_bytes(404, b"404 Not Found\n", "text/plain; charset=utf-8")
        elif path == self.owner.vendor_choice:
            self.send_bytes(200, VENDOR_CHOICE, "application/json")
        elif (tag := self.etag(path)) in [named.strip() for named in self.headers.get("If-None-Match", "").split(",")]:
            self.send_head(304, {"ETag": tag})
        else:
            self.send_file(path, {"Content-Type": content_type(path), "ETag": tag})

    @staticmethod
    def etag(path: Path) -> str:
        """A file's validator: its modification time and size (as nginx makes them)."""
        stat = path.stat()
        return f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'

    do_HEAD = do_GET


class AppServer(BackgroundServer):
    """Serves the files under ``root``; a directory URL serves its ``index.html``. When
    ``root/vendor/`` holds the runtime, ``client/runtime.json`` says "vendor" (the page then uses it).
    With ``jekyll=True`` it serves them as GitHub Pages' Jekyll step would: names starting with
    ``_`` are dropped unless ``root`` holds a ``.nojekyll`` file."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0, isolated: bool = False,
                 jekyll: bool = False) -> None:
        super().__init__(AppHandler, host, port)
        self.root = Path(root)
        self.isolated = isolated
        self.drops_underscored = jekyll and not (self.root / ".nojekyll").is_file()
        vendored = (self.root / "vendor" / "pyscript" / "core.js").is_file()
        self.vendor_choice = self.root / SITE_CHOICE if vendored else None

    def locate(self, raw_path: str) -> Path | None:
        """The file for a request path, or None (missing, a hidden/``..`` segment, or one Jekyll drops)."""
        parts = PurePosixPath(unquote(urlsplit(raw_path).path).lstrip("/")).parts
        if any(part.startswith(".") or (self.drops_underscored and part.startswith("_")) for part in parts):
            return None
        path = self.root.joinpath(*parts)
        if path.is_dir():
            path = path / "index.html"
        return path if path.is_file() else None


def main(argv: list[str] | None = None) -> None:
    """Serve the app (and optionally a local Hub) until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--isolated", action="store_true", help="send COOP/COEP/CORP headers")
    parser.add_argument("--hub-repo", type=parse_repo_spec, action="append", default=[],
                        metavar="ORG/NAME[@REV]=DIR", help="also serve DIR as a model on a local Hub")
    parser.add_argument("--hub-port", type=int, default=0, help="port of the local Hub (default: any free)")
    parser.add_argument("--cdn", action="store_true", help="do not fill vendor/; the page then loads the pinned CDN runtime")
    args = parser.parse_args(argv)
    if not args.cdn and vendor_runtime.main([]) != 0:
        print("Could not fill vendor/ from npm and PyPI: the page will load its runtime from the public CDN.")

    app = AppServer(REPO_ROOT, args.host, args.port, args.isolated)
    servers: list[BackgroundServer] = [app]
    print(f"Browser LLM: {app.url}/", flush=True)
    if args.hub_repo:
        hub = build_hub(args.hub_repo, args.host, args.hub_port)
        servers.append(hub)
        query = urlencode({"endpoint": hub.url, "model": args.hub_repo[0][0]}, safe=":/")
        print(f"Local Hub:   {hub.url}", flush=True)
        print(f"Open:        {app.url}/?{query}", flush=True)
    for server in servers:
        server.verbose = True
    serve_until_interrupted(*servers)


if __name__ == "__main__":
    main()
