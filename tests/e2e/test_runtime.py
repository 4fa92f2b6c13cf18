"""The runtime: the browser tokenizer equals CPython's, the page also runs from the public CDNs
(served here from vendor/ through Playwright routes, since no CDN can be reached), and a published
site, with vendor/ or without, picks its runtime with no failed request."""
from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from support import CORPUS, ROOT, fixture_model
from test_vendor_runtime import static_files
from tests.e2e.conftest import AppPage, app_url, load_model
from tools.serve import AppServer

CDN = {  # the pinned CDN prefixes index.html uses -> the vendor/ folders that mirror them
    "https://cdn.jsdelivr.net/npm/@pyscript/core@0.6.66/dist/": "pyscript",
    "https://cdn.jsdelivr.net/npm/@micropython/micropython-webassembly-pyscript@1.27.0/": "micropython",
    "https://cdn.jsdelivr.net/pyodide/v0.27.7/full/": "pyodide",
    "https://cdn.jsdelivr.net/npm/tiktoken@1.0.22/": "tiktoken",
}
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json",
         ".css": "text/css"}


@pytest.fixture(scope="module")
def full_vocab_model(tmp_path_factory, hub):
    """A tiny random model with GPT-2's whole vocabulary, so the browser tokenizer is tested on it."""
    folder = tmp_path_factory.mktemp("full-vocab")
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_random_checkpoint.py"), str(folder), "--n-layer", "1",
                    "--n-embd", "16", "--n-head", "2", "--n-ctx", "64"], check=True, capture_output=True)
    hub.add_repo("test/full-vocab", folder)
    return folder


def test_browser_tokenizer_equals_cpython_and_tiktoken(runtime_page, full_vocab_model, gpt2_tokenizer, tiktoken_gpt2):
    app = runtime_page
    assert load_model(app, "test/full-vocab").startswith("Ready: test/full-vocab")
    for text in CORPUS:
        ids = json.loads(app.worker("tokenize", text))
        assert ids == gpt2_tokenizer.encode(text) == tiktoken_gpt2.encode_ordinary(text), text


def serve_cdn_from_vendor(context, tampered: str | None = None) -> None:
    """Answer the pinned CDN's URLs from vendor/ (with `tampered`, a vendor path, changed)."""
    def fulfil(route):
        url = route.request.url
        prefix = next((p for p in CDN if url.startswith(p)), None)
        path = ROOT / "vendor" / CDN[prefix] / url[len(prefix):].split("?")[0] if prefix else None
        if path is None or not path.is_file():
            route.fulfill(status=404, body="not on the CDN", headers={"Access-Control-Allow-Origin": "*"})
            return
        body = path.read_bytes() + (TAMPERING if path == ROOT / "vendor" / str(tampered) else b"")
        route.fulfill(status=200, body=body, headers={
            "Content-Type": TYPES.get(path.suffix, "application/octet-stream"), "Access-Control-Allow-Origin": "*"})

    context.route("https://cdn.jsdelivr.net/**", fulfil)
    context.route("**/vendor/**", lambda route: route.fulfill(status=404, body="no vendor/ on this host"))


TAMPERING = b"\n;globalThis.__tampered = true;\n"


def test_a_cdn_runtime_file_that_is_not_the_pinned_one_never_runs(open_app, hub):
    """The service worker checks each CDN runtime file against tools/runtime.lock.json."""
    answers = []
    app = open_app(setup=lambda context: serve_cdn_from_vendor(context, "micropython/micropython.mjs"),
                   allowed_hosts=("127.0.0.1", "cdn.jsdelivr.net"), runtime="cdn", endpoint=hub.url)
    app.page.on("response", lambda response: answers.append((response.url, response.status)))
    app.page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    app.page.reload()  # every request of this load goes through the service worker
    app.page.wait_for_timeout(5000)
    assert ("https://cdn.jsdelivr.net/npm/@micropython/micropython-webassembly-pyscript@1.27.0/micropython.mjs", 502) \
        in answers, answers
    assert app.page.evaluate("globalThis.__tampered") is None and not app.status().startswith("Runtime ready")
    app.errors.clear()  # the refused module is reported on the console, as it should be


def test_page_runs_from_the_pinned_cdn(open_app, hub):
    app = open_app(setup=serve_cdn_from_vendor, allowed_hosts=("127.0.0.1", "cdn.jsdelivr.net"),
                   runtime="cdn", model="test/tiny", endpoint=hub.url, temperature=0, max_new_tokens=12)
    app.wait_status("Ready")
    app.send("Hello world")
    expected = "".join(s.text for s in fixture_model("tiny").generate("Hello world", temperature=0, max_new_tokens=12))
    assert app.wait_reply_done() == expected
    runtime_hosts = {url.split("/")[2] for url in app.requests if "/vendor/" not in url and not url.startswith("data:")}
    assert "cdn.jsdelivr.net" in runtime_hosts
    assert not any("/vendor/" in url for url in app.requests)


def test_status_walks_through_boot_and_load(open_app, hub):
    app = open_app(model="test/tiny", endpoint=hub.url)
    seen = app.page.evaluate("""() => new Promise(resolve => {
        const seen = [document.getElementById('status').textContent];
        new MutationObserver(() => {
            const text = document.getElementById('status').textContent;
            seen.push(text);
            if (text.startsWith('Ready')) resolve(seen);
        }).observe(document.getElementById('status'), {childList: true, characterData: true, subtree: true});
    })""")
    assert any(s.startswith("Starting") for s in seen)
    assert any(s.startswith("Loading") or s.startswith("Downloading") for s in seen)
    assert seen[-1].startswith("Ready: test/tiny")


def test_the_harness_sees_a_failed_request(open_app):
    """Chromium reports a failed load (e.g. a 404) as a console error, which fails every browser test."""
    app = open_app()
    app.page.evaluate("fetch('no-such-file.js')")
    deadline = time.monotonic() + 10
    while not any("Failed to load resource" in error and "404" in error for error in app.errors):
        assert time.monotonic() < deadline, app.errors
        app.page.wait_for_timeout(100)
    app.errors.clear()


def checkout(folder: Path) -> Path:
    """The repository's files in `folder`, as a clone has them (tracked and new files, nothing
    ignored: no vendor/)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for name in listed:
        if name and (ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    return folder


def workflow_script(step: str) -> str:
    """The shell script (`run: |`) of one step of the Pages workflow."""
    lines = (ROOT / ".github" / "workflows" / "pages.yml").read_text().splitlines()
    start = lines.index(f"      - name: {step}")
    run = next(i for i in range(start, len(lines)) if lines[i].strip() == "run: |")
    indent = len(lines[run]) - len(lines[run].lstrip())
    body = itertools.takewhile(lambda line: not line.strip() or len(line) - len(line.lstrip()) > indent, lines[run + 1:])
    return textwrap.dedent("\n".join(body))


def publish_with_vendor(folder: Path) -> Path:
    """The site .github/workflows/pages.yml publishes: its "Collect the site" step run on a checkout
    whose vendor/ is filled."""
    shutil.copytree(ROOT / "vendor", checkout(folder) / "vendor")
    subprocess.run(["bash", "-euo", "pipefail", "-c", workflow_script("Collect the site")], cwd=folder, check=True)
    return folder / "_site"


@contextlib.contextmanager
def published_site(build: str, folder: Path):
    """A server for the site as published with vendor/ (by the Pages workflow, on a plain static
    server), or from the branch (the repository as it is, without vendor/, on a server that
    drops names starting with "_" as Pages' Jekyll step does unless there is a .nojekyll)."""
    if build == "with vendor":
        with static_files(publish_with_vendor(folder)) as base:
            yield SimpleNamespace(url=base.rstrip("/"))
    else:
        assert (ROOT / ".nojekyll").is_file()
        with AppServer(checkout(folder), jekyll=True) as server:
            yield server


@pytest.mark.parametrize("build", ["with vendor", "from the branch"])
def test_a_published_site_chooses_its_runtime_without_a_failed_request(browser, hub, tmp_path, build):
    """Published with vendor/ the page uses it and no CDN; published without, it uses the pinned CDN
    and asks nothing of vendor/. Either way no request fails (a failed one is a console error)."""
    cdn = build == "from the branch"
    with published_site(build, tmp_path) as server:
        context = browser.new_context()
        if cdn:
            serve_cdn_from_vendor(context)
        try:
            failed = []
            page = context.new_page()
            page.on("response", lambda response: response.status >= 400 and failed.append((response.url, response.status)))
            page.on("requestfailed", lambda request: failed.append((request.url, request.failure)))
            app = AppPage(page, app_url(server, model="test/tiny", endpoint=hub.url, temperature=0, max_new_tokens=12),
                          ("127.0.0.1", "cdn.jsdelivr.net") if cdn else ("127.0.0.1",))
            app.wait_status("Ready")
            app.send("Hello world")
            assert app.wait_reply_done()
            assert failed == [] and app.errors == [] and app.foreign_requests() == []
            assert app.page.evaluate("globalThis.RUNTIME.local") is not cdn
            assert any("/vendor/" in url for url in app.requests) is not cdn
            assert any(url.startswith("https://cdn.jsdelivr.net/") for url in app.requests) is cdn
        finally:
            context.close()
