"""The app works offline after one visit: the service worker (sw.js) keeps the page, its code and
the runtime it used (vendor/ or the pinned CDN), the model worker keeps the weights in IndexedDB.
Offline here means everything: the context is offline and every request that still leaves the
browser (the service worker's included) is aborted."""
from __future__ import annotations

import re

import pytest

from support import ROOT, fixture_model
from test_runtime import serve_cdn_from_vendor

PROMPT = "Hello world"
SETTINGS = dict(temperature=0, max_new_tokens=12)
CACHED = """async () => {
    const out = {};
    for (const name of await caches.keys()) out[name] = (await (await caches.open(name)).keys()).map(r => r.url);
    return out;
}"""


def expected_reply() -> str:
    return "".join(s.text for s in fixture_model("tiny").generate(PROMPT, **SETTINGS))


def go_offline(context) -> None:
    """No network at all: Chromium's offline mode, and every request that still leaves the
    browser (a service worker's own fetches are routed too) fails as offline."""
    context.set_offline(True)
    context.route("**/*", lambda route: route.abort("internetdisconnected"))


@pytest.mark.parametrize("build", ["vendor", "cdn"])
def test_after_one_visit_the_app_boots_loads_and_replies_offline(open_app, hub, build):
    cdn = build == "cdn"
    app = open_app(setup=serve_cdn_from_vendor if cdn else None,
                   allowed_hosts=("127.0.0.1", "cdn.jsdelivr.net") if cdn else ("127.0.0.1",),
                   model="test/tiny", endpoint=hub.url, **SETTINGS, **({"runtime": "cdn"} if cdn else {}))
    page, context = app.page, app.page.context
    app.wait_status("Ready")
    app.send(PROMPT)
    assert app.wait_reply_done() == expected_reply()
    assert page.evaluate("navigator.serviceWorker.controller !== null")
    offline = page.locator("#offline")
    assert offline.is_hidden()

    cached = page.evaluate(CACHED)
    urls = [url for keys in cached.values() for url in keys]
    assert not any(hub.url in url or "/resolve/" in url for url in urls)  # weights: IndexedDB only
    assert any(url.endswith("/app/main.py") for url in urls) and any(url.endswith("/pyscript.toml") for url in urls)
    runtime = "https://cdn.jsdelivr.net/" if cdn else "/vendor/"
    for name in ("core.js", "micropython.wasm", "pyodide.asm.wasm", "python_stdlib.zip", "tiktoken_bg.wasm"):
        assert any(runtime in url and url.endswith(name) for url in urls), name
    assert any(runtime in url and re.search(r"/numpy-[^/]+\.whl$", url) for url in urls)

    go_offline(context)
    page.wait_for_function("!navigator.onLine")
    assert offline.is_visible()  # the offline event shows the notice at once

    answered = []
    page.on("response", lambda response: answered.append((response.url, response.from_service_worker)))
    hub.clear_requests()
    page.reload()
    status = app.wait_status("Ready")
    assert "loaded from cache" in status
    assert offline.is_visible()  # shown from the start when the page opens offline
    shot = ROOT / "test-results" / f"offline-{build}.png"
    shot.parent.mkdir(exist_ok=True)
    page.locator("header").screenshot(path=str(shot))
    app.send(PROMPT)
    assert app.wait_reply_done() == expected_reply()
    assert hub.requests == []
    from_network = [url for url, by_worker in answered if not by_worker and not url.startswith(("data:", "blob:"))]
    assert from_network == []
    assert any(url.endswith("/app/main.py") for url, _ in answered)

    context.unroute("**/*")
    context.set_offline(False)
    page.wait_for_function("navigator.onLine")
    assert offline.is_hidden()


def test_the_service_worker_leaves_range_requests_and_other_origins_alone(open_app, hub):
    app = open_app()
    app.wait_status("Runtime ready")
    page = app.page
    seen = {}
    page.on("response", lambda response: seen.setdefault(response.url, (response.status, response.from_service_worker)))
    url = page.evaluate("new URL('tools/runtime.lock.json', location.href).href")
    status = page.evaluate("async url => (await fetch(url, {headers: {Range: 'bytes=0-9'}})).status", url)
    assert status == 206 and seen[url] == (206, False)
    seen.clear()
    assert page.evaluate("async url => (await fetch(url)).status", url) == 200 and seen[url] == (200, True)
    # A runtime file is answered as it was kept, not rebuilt with the isolation headers a page
    # and a worker get: V8 keeps its compiled code of a .wasm only beside the kept copy.
    wasm = page.evaluate("new URL('vendor/pyodide/pyodide.asm.wasm', location.href).href")
    coep = page.evaluate("async url => (await fetch(url)).headers.get('Cross-Origin-Embedder-Policy')", wasm)
    assert coep is None and seen[wasm] == (200, True)
    hub_url = f"{hub.url}/test/tiny/resolve/main/config.json"
    assert page.evaluate("async url => (await fetch(url)).status", hub_url) == 200 and seen[hub_url] == (200, False)
    assert not any(hub.url in url for urls in page.evaluate(CACHED).values() for url in urls)


def test_the_service_worker_pins_the_runtime_of_runtime_js():
    """sw.js keeps the runtime cache-first under a name made of its pins: they must be the ones
    client/runtime.js loads, or a bump would be served from the old copy."""
    pins = re.compile(r'"(https://cdn\.jsdelivr\.net/[^"]+/)"')
    assert set(pins.findall((ROOT / "sw.js").read_text())) == set(pins.findall((ROOT / "client" / "runtime.js").read_text()))
    assert len(set(pins.findall((ROOT / "sw.js").read_text()))) == 4
