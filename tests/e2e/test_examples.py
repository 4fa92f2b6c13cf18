"""The developer API: browser-llm.js and the Python API (worker/api.py), through the pages in
examples/ and through browser-llm.js called directly, against the local hub."""
from __future__ import annotations

import pytest

from support import CORPUS, MODELS, fixture_model

EXAMPLES = ["examples/js/", "examples/pyscript/"]
LONG_PROMPT = "Once upon a time there was"  # the tiny model writes all 40 tokens


def greedy(prompt: str, **settings) -> list[str]:
    """The CPython engine's pieces of text for a prompt, greedy, 40 tokens."""
    return [s.text for s in fixture_model("tiny").generate(prompt, temperature=0, max_new_tokens=40, **settings)]


@pytest.fixture(scope="module")
def js_page(browser, app_server, hub):
    """examples/js/ once, its own reply done: the page the tests of browser-llm.js called
    directly import it into (each of their models starts and ends its own workers)."""
    from conftest import app_url, shared_page
    yield from shared_page(browser, app_url(app_server, "examples/js/", model="test/tiny", endpoint=hub.url,
                                            max_new_tokens=3), "Done.")


@pytest.fixture
def js_example(js_page):
    from conftest import checked
    yield from checked(js_page)


def wait_done(page, status: str, timeout: float = 90) -> str:
    page.wait_for_function(f"() => document.getElementById('status').textContent === {status!r}",
                           timeout=timeout * 1000)
    return page.text_content("#output")


@pytest.mark.parametrize("path", EXAMPLES)
def test_example_streams_the_cpython_greedy_reply(open_path, hub, path):
    prompt = "The old lighthouse keeper"
    app = open_path(path, model="test/tiny", endpoint=hub.url, prompt=prompt)
    app.page.evaluate("""() => { window.__lengths = [];
        new MutationObserver(() => window.__lengths.push(document.getElementById('output').textContent.length))
          .observe(document.getElementById('output'), {childList: true, characterData: true, subtree: true}); }""")
    expected = "".join(greedy(prompt))
    assert wait_done(app.page, "Done.") == expected
    assert len(set(app.page.evaluate("window.__lengths"))) >= 5  # streamed, not written at once
    assert app.page.get_by_role("button", name="Stop").is_disabled()


@pytest.mark.parametrize("path", EXAMPLES)
def test_example_stop_ends_the_stream_within_a_token(open_path, hub, path):
    app = open_path(path, model="test/tiny", endpoint=hub.url, prompt=LONG_PROMPT)
    app.page.evaluate("""() => new MutationObserver((_, observer) => {
        if (document.getElementById('output').textContent) { document.getElementById('stop').click(); observer.disconnect(); }
    }).observe(document.getElementById('output'), {childList: true, characterData: true, subtree: true})""")
    stopped = wait_done(app.page, "Stopped.")
    pieces = greedy(LONG_PROMPT)
    first = next(i for i, piece in enumerate(pieces) if piece)
    assert stopped in ("".join(pieces[:first + 1]), "".join(pieces[:first + 2]))


def test_browser_llm_js_loads_by_folder_url_and_by_files_and_samples_like_cpython(js_example, hub):
    """(On one worker each: the split is test_browser_llm_js_splits_over_the_workers_asked_for_….)"""
    app = js_example
    settings = dict(temperature=0.9, top_k=50, top_p=0.9, repetition_penalty=1.2, seed=11, max_new_tokens=30)
    result = app.page.evaluate("""async ({folder, texts}) => {
        const { loadModel } = await import("/browser-llm.js");
        const events = [];
        const byUrl = await loadModel(folder, { workers: 1, onProgress: e => events.push(e.kind) });
        const tokens = [];
        for await (const token of byUrl.generate("Once upon a time", { temperature: 0.9, topK: 50, topP: 0.9,
            repetitionPenalty: 1.2, seed: 11, maxNewTokens: 30 })) tokens.push(token);
        await byUrl.dispose();

        const names = ["config.json", "model.safetensors", "vocab.json", "merges.txt"];
        const files = await Promise.all(names.map(async name =>
            new File([await (await fetch(folder + name)).blob()], name)));
        const byFiles = await loadModel(files, { workers: 1 });
        const ids = [];
        for (const text of texts) ids.push(await byFiles.tokenize(text));
        const first = [];
        for await (const token of byFiles.generate("Hello", { temperature: 0, maxNewTokens: 10 })) {
            first.push(token.text);
            break;  // leaving the loop ends the reply; the next one starts cleanly
        }
        let again = "";
        for await (const token of byFiles.generate("Hello", { temperature: 0, maxNewTokens: 10 })) again += token.text;
        const repo = byFiles.info.repo;
        await byFiles.dispose();
        return { tokens, events, ids, first, again, repo };
    }""", {"folder": f"{hub.url}/test/tiny/resolve/main/", "texts": CORPUS})
    steps = list(fixture_model("tiny").generate("Once upon a time", **settings))
    assert "".join(t["text"] for t in result["tokens"]) == "".join(s.text for s in steps)
    assert [t["tokenId"] for t in result["tokens"]] == [s.token_id for s in steps]
    assert [t["prob"] for t in result["tokens"]] == pytest.approx([s.prob for s in steps], abs=1e-5)
    assert result["tokens"][-1]["finish"] == steps[-1].finish == "length"
    assert isinstance(result["tokens"][0]["top"][0]["text"], str)
    assert "progress" in result["events"]
    tokenizer = fixture_model("tiny").tokenizer
    assert result["ids"] == [tokenizer.encode(text) for text in CORPUS]
    pieces = [s.text for s in fixture_model("tiny").generate("Hello", temperature=0, max_new_tokens=10)]
    assert result["first"] == pieces[:1] and result["again"] == "".join(pieces)
    assert result["repo"] == "local files"


def test_browser_llm_js_aborts_and_rejects_what_it_cannot_load(js_example, hub):
    app = js_example
    result = app.page.evaluate("""async ({endpoint}) => {
        const { loadModel } = await import("/browser-llm.js");
        const model = await loadModel("test/tiny", { endpoint, workers: 1 });
        const controller = new AbortController();
        let count = 0, error = null;
        try {
            for await (const token of model.generate("Once upon a time there was", { temperature: 0, signal: controller.signal })) {
                if (++count === 3) controller.abort();
            }
        } catch (e) { error = e.name; }
        const after = [];
        for await (const token of model.generate("Hello", { temperature: 0, maxNewTokens: 5 })) after.push(token.text);
        await model.dispose();
        let refused = null;
        try { await loadModel("test/no-such-model", { endpoint, workers: 1 }); } catch (e) { refused = e.message; }
        return { count, error, after, refused };
    }""", {"endpoint": hub.url})
    assert result["count"] == 3 and result["error"] == "AbortError"
    assert result["after"] == [s.text for s in fixture_model("tiny").generate("Hello", temperature=0, max_new_tokens=5)]
    assert "test/no-such-model" in result["refused"] or "not found" in result["refused"]
    app.errors[:] = [e for e in app.errors if "404" not in e]  # the hub's answer for the missing repository
    hub.clear_requests()  # the session's hub: only this download's requests count below
    hub.set_fault("test/odd-heads", "model.safetensors", delay=0.3)  # a slow download, aborted once it runs
    try:
        aborted = app.page.evaluate("""async ({endpoint}) => {
            const { loadModel } = await import("/browser-llm.js");
            const controller = new AbortController();
            const started = performance.now();
            try {
                await loadModel("test/odd-heads", { endpoint, workers: 1, signal: controller.signal,
                    onProgress: event => { if (event.kind === "progress" && event.files["model.safetensors"]) controller.abort(); } });
            } catch (e) { return { error: e.name, ms: performance.now() - started }; }
            return { error: null };
        }""", {"endpoint": hub.url})
    finally:
        hub.clear_faults()
    size = (MODELS / "odd-heads" / "model.safetensors").stat().st_size
    assert aborted["error"] == "AbortError"
    assert sum(r.bytes_sent for r in hub.requests if r.repo == "test/odd-heads" and r.file == "model.safetensors") < size


def test_browser_llm_js_splits_over_the_workers_asked_for_with_the_same_tokens(js_example, hub):
    app = js_example
    result = app.page.evaluate("""async ({endpoint}) => {
        const { loadModel } = await import("/browser-llm.js");
        const runs = [];
        for (const workers of [1, 3]) {
            const model = await loadModel("test/odd-heads", { endpoint, workers });
            let text = "";
            for await (const token of model.generate("The old lighthouse keeper", { temperature: 0, maxNewTokens: 25 })) {
                text += token.text;
            }
            runs.push({ text, workers: model.info.workers });
            await model.dispose();
        }
        return runs;
    }""", {"endpoint": hub.url})
    expected = "".join(s.text for s in fixture_model("odd-heads").generate(
        "The old lighthouse keeper", temperature=0, max_new_tokens=25))
    assert result == [{"text": expected, "workers": 1}, {"text": expected, "workers": 3}]
