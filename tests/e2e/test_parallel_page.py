"""A model split over several workers (app/parallel.js, worker/shard.py, engine/parallel.py):
the same tokens as one worker and as the CPython engine."""
from __future__ import annotations

from urllib.parse import urlencode

import pytest

from support import ROOT, fixture_model
from engine import GenerationSettings
from engine.parallel import generate_sharded, make_shards
from tools.serve import AppServer

PROMPT = "The old lighthouse keeper"


def wait_done(page, timeout: float = 120) -> str:
    page.wait_for_function("() => /^(Done|Error)/.test(document.getElementById('status').textContent)",
                           timeout=timeout * 1000)
    assert page.text_content("#status") == "Done."
    return page.text_content("#output")


@pytest.mark.parametrize("name,workers", [("tiny", 2), ("odd-heads", 2), ("odd-heads", 3)])
def test_sharded_page_writes_the_single_worker_greedy_reply(open_path, hub, name, workers):
    model = fixture_model(name)
    settings = GenerationSettings(temperature=0, max_new_tokens=30)
    single = list(model.generate(PROMPT, settings))
    sharded = list(generate_sharded(make_shards(model.params, model.config, workers), model.tokenizer, PROMPT, settings))
    assert [s.token_id for s in sharded] == [s.token_id for s in single]
    app = open_path("examples/parallel/", model=f"test/{name}", endpoint=hub.url, prompt=PROMPT,
                    workers=workers, max_new_tokens=30)
    assert wait_done(app.page) == "".join(s.text for s in single)
    info = app.page.evaluate("window.parallelModel.info")
    assert info["workers"] == workers and len(info["shard_bytes"]) == workers


def test_sharded_steps_equal_cpython_token_by_token(open_path, hub):
    app = open_path("examples/parallel/", model="test/odd-heads", endpoint=hub.url, prompt="Hi", workers=2,
                    max_new_tokens=2)
    wait_done(app.page)
    settings = dict(temperature=0.9, top_k=50, top_p=0.9, repetition_penalty=1.2, seed=11, max_new_tokens=60)
    steps = app.page.evaluate("""async settings => {
        const m = window.parallelModel, out = [];
        const info = JSON.parse(await m.start(JSON.stringify({ prompt: "Once upon a time", settings })));
        for (;;) { const s = JSON.parse(await m.step()); out.push(s); if (s.finish) break; }
        return { info, out, tokens: JSON.parse(await m.tokenize("Once upon a time")) };
    }""", settings)
    model = fixture_model("odd-heads")
    expected = list(model.generate("Once upon a time", **settings))
    assert steps["info"]["prompt_tokens"] == len(steps["tokens"]) == len(model.tokenizer.encode("Once upon a time"))
    assert [(s["token_id"], s["text"], s["finish"]) for s in steps["out"]] == \
        [(s.token_id, s.text, s.finish) for s in expected]


@pytest.fixture(scope="module")
def isolated_server():
    with AppServer(ROOT, isolated=True) as server:
        yield server


@pytest.mark.parametrize("workers", [2, 3])
def test_cross_origin_isolated_shards_all_reduce_among_themselves(browser, isolated_server, hub, workers):
    """With COOP/COEP the shards sum through SharedArrayBuffers: same tokens, one call per token."""
    model = fixture_model("odd-heads")
    expected = "".join(s.text for s in model.generate(PROMPT, temperature=0, max_new_tokens=30))
    context = browser.new_context()
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.goto(f"{isolated_server.url}/examples/parallel/?" + urlencode(
        {"model": "test/odd-heads", "endpoint": hub.url, "prompt": PROMPT, "workers": workers, "max_new_tokens": 30}))
    try:
        assert wait_done(page) == expected
        info = page.evaluate("[crossOriginIsolated, window.parallelModel.info.shared]")
        assert info == [True, True] and errors == []
    finally:
        context.close()
