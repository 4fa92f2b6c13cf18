"""The weight products on WebAssembly SIMD in the model worker (worker/kernels.py, kernels/):
on every fixture the page's logits are transformers' within 1e-4, with the kernels and with
NumPy's einsum, and its tokens (greedy, and sampled with a seed) are the CPython engine's; a
browser without WASM SIMD falls back to NumPy."""
from __future__ import annotations

import json

import numpy as np
import pytest

from support import MODEL_NAMES, fixture_model, reference

LOAD = "async request => JSON.parse(await window.modelWorker.load(JSON.stringify(request)))"
LOGITS = "async ids => Array.from(await window.modelWorker.logits(JSON.stringify(ids)))"
GENERATE = """async request => {
    const m = window.modelWorker, out = [];
    await m.start(JSON.stringify(request));
    for (;;) { const s = JSON.parse(await m.step()); out.push(s.token_id); if (s.finish) return out; }
}"""
SAMPLED = dict(temperature=0.9, top_k=50, top_p=0.9, repetition_penalty=1.2, seed=7, max_new_tokens=24)


@pytest.fixture(scope="module")
def one_worker(browser, app_server, hub):
    """A page of its own with one model worker, driven through window.modelWorker (the same
    functions the chat panel calls), opened with ?kernels=numpy: loads that do not name their
    kernels take the page's choice."""
    from conftest import AppPage, app_url
    context = browser.new_context()
    app = AppPage(context.new_page(), app_url(app_server, endpoint=hub.url, workers=1, kernels="numpy"))
    app.wait_status("Runtime ready")
    yield app
    assert app.errors == [] and app.foreign_requests() == []
    context.close()


def load(app, hub, name: str, **request) -> dict:
    reply = app.page.evaluate(LOAD, {"repo": f"test/{name}", "endpoint": hub.url, **request})
    assert "error" not in reply, reply
    return reply


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_kernels_and_numpy_give_transformers_logits(one_worker, hub, name):
    expected = reference(name)
    ids = expected["ids"].tolist()
    logits = {}
    for kernels in ("simd", "numpy"):
        assert load(one_worker, hub, name, kernels=kernels)["kernels"] == kernels
        logits[kernels] = np.array(one_worker.page.evaluate(LOGITS, ids), dtype=np.float32).reshape(len(ids), -1)
        np.testing.assert_allclose(logits[kernels], expected["logits"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_kernels_give_the_cpython_tokens_greedy_and_sampled(one_worker, hub, name):
    model = fixture_model(name)
    prompt = model.tokenizer.decode(reference(name)["greedy_prompt"].tolist())
    assert load(one_worker, hub, name, kernels="simd")["kernels"] == "simd"
    for settings in (dict(temperature=0, max_new_tokens=24), SAMPLED):
        page = one_worker.page.evaluate(GENERATE, {"prompt": prompt, "settings": settings})
        assert page == [s.token_id for s in model.generate(prompt, **settings)]


def test_a_browser_without_wasm_simd_runs_numpy(open_plain, hub):
    def no_simd(context):  # the kernels' own probe answers as a browser without SIMD128 would
        def patch(route):
            body = route.fetch().text().replace("return WebAssembly.validate(SIMD_PROBE);", "return false;")
            route.fulfill(body=body, headers={"content-type": "text/javascript"})
        context.route("**/kernels/matmul.js", patch)

    app = open_plain("", no_simd, endpoint=hub.url)  # no service worker between the page and the route
    app.wait_status("Runtime ready")
    assert app.page.evaluate(LOAD, {"repo": "test/tiny", "endpoint": hub.url})["kernels"] == "numpy"
    model = fixture_model("tiny")
    assert app.page.evaluate(GENERATE, {"prompt": "Hello", "settings": {"temperature": 0, "max_new_tokens": 12}}) == \
        [s.token_id for s in model.generate("Hello", temperature=0, max_new_tokens=12)]
    assert not any(url.endswith("matmul.wasm") for url in app.requests)


def test_the_page_asks_for_numpy_with_the_kernels_query(one_worker, hub):
    assert load(one_worker, hub, "tiny")["kernels"] == "numpy"
    assert load(one_worker, hub, "tiny", kernels="simd")["kernels"] == "simd"
