"""A model split over several workers (client/parallel.js, worker/shard.py, engine/parallel.py):
the same tokens as one worker and as the CPython engine."""
from __future__ import annotations

import json

import pytest

from conftest import load_model
from support import fixture_model
from tools.make_random_checkpoint import make_checkpoint
from worker.chunk_store import CHUNK_SIZE
from engine import GenerationSettings
from engine.generation import Session, generate
from engine.parallel import make_shards

PROMPT = "The old lighthouse keeper"


def wait_done(page, timeout: float = 120) -> str:
    page.wait_for_function("() => /^(Done|Error)/.test(document.getElementById('status').textContent)",
                           timeout=timeout * 1000)
    assert page.text_content("#status") == "Done."
    return page.text_content("#output")


def sharded_example(open_plain, hub, name: str, workers: int):
    """examples/parallel/ on `workers` workers without isolation (the shards exchange through the
    page), checked to write the single-worker greedy reply, as shards in CPython do."""
    model = fixture_model(name)
    settings = GenerationSettings(temperature=0, max_new_tokens=30)
    single = list(model.generate(PROMPT, settings))
    shards = make_shards(model.params, model.config, workers)
    sharded = list(generate(Session(shards), model.tokenizer, PROMPT, settings))
    assert [s.token_id for s in sharded] == [s.token_id for s in single]
    app = open_plain("examples/parallel/", model=f"test/{name}", endpoint=hub.url, prompt=PROMPT,
                     workers=workers, max_new_tokens=30)
    assert wait_done(app.page) == "".join(s.text for s in single)
    info = app.page.evaluate("window.parallelModel.info")
    assert info["workers"] == workers and len(info["shard_bytes"]) == workers and info["shared"] is False
    return app


def test_sharded_page_writes_the_single_worker_greedy_reply(open_plain, hub):
    """(Three shards: the chat page's worker-count test; through SharedArrayBuffers:
    test_cross_origin_isolated_…)"""
    sharded_example(open_plain, hub, "tiny", 2)


def test_sharded_steps_equal_cpython_token_by_token(open_plain, hub):
    """odd-heads' 3 heads split 2 + 1: greedy, then sampled with a seed, step by step. The model
    runs a reply ahead of the page: tokens wait for whoever takes them (steps: all that are ready);
    settle(ms) ends early once the reply's last token is in (a page showing tokens every ms shows
    the last ones at once), and at once when there is no reply."""
    app = sharded_example(open_plain, hub, "odd-heads", 2)
    settings = dict(temperature=0.9, top_k=50, top_p=0.9, repetition_penalty=1.2, seed=11, max_new_tokens=60)
    steps = app.page.evaluate("""async settings => {
        const m = window.parallelModel, out = [], sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
        const settles = () => Promise.race([m.settle(600000).then(() => "settled"), sleep(30000).then(() => "waited")]);
        await m.start(JSON.stringify({ prompt: "Once upon a time", settings: { temperature: 0, max_new_tokens: 20 } }));
        await sleep(1000);
        const ahead = m.buffered, batch = JSON.parse(await m.steps());
        const settled = await settles();
        batch.push(...(batch.at(-1).finish ? [] : JSON.parse(await m.steps())));
        await m.stop();
        const idle = await settles();
        const info = JSON.parse(await m.start(JSON.stringify({ prompt: "Once upon a time", settings })));
        for (;;) { const s = JSON.parse(await m.step()); out.push(s); if (s.finish) break; }
        return { ahead, batch, settled, idle, info, out, tokens: JSON.parse(await m.tokenize("Once upon a time")) };
    }""", settings)
    model = fixture_model("odd-heads")
    greedy = [s.token_id for s in model.generate("Once upon a time", temperature=0, max_new_tokens=20)]
    assert steps["ahead"] >= 5
    assert [s["token_id"] for s in steps["batch"]] == greedy and steps["batch"][-1]["finish"]
    assert steps["settled"] == steps["idle"] == "settled"
    expected = list(model.generate("Once upon a time", **settings))
    assert steps["info"]["prompt_tokens"] == len(steps["tokens"]) == len(model.tokenizer.encode("Once upon a time"))
    assert [(s["token_id"], s["text"], s["finish"]) for s in steps["out"]] == \
        [(s.token_id, s.text, s.finish) for s in expected]


ISOLATED_REPLIES = """async settings => {
    const m = window.parallelModel, prompt = "Once upon a time";
    await m.start(JSON.stringify({ prompt, settings: { temperature: 0, max_new_tokens: 100 } }));
    const first = [];
    for (let i = 0; i < 3; i++) first.push(JSON.parse(await m.step()).token_id);
    const until = performance.now() + 1500;
    while (performance.now() < until) {}  // the page's thread busy: the shards go on without it
    await new Promise(resolve => setTimeout(resolve, 100));
    const buffered = m.buffered;
    await m.stop();
    const afterStop = await m.step().then(() => "a token", e => e.message);
    await m.start(JSON.stringify({ prompt, settings }));
    const sampled = [];
    for (;;) { const s = JSON.parse(await m.step()); sampled.push(s); if (s.finish) break; }
    return { first, buffered, afterStop, sampled };
}"""


@pytest.mark.parametrize("workers", [2, 3])
def test_cross_origin_isolated_shards_run_the_reply_among_themselves(open_isolated, hub, workers):
    """With COOP/COEP the shards sum through SharedArrayBuffers and run a reply's passes among
    themselves, the lead pushing its tokens: the same greedy and seeded tokens as the CPython
    engine; tokens keep coming while the page's thread is busy; a stop ends the reply and the
    next one starts from the cache the stopped one left."""
    model = fixture_model("odd-heads")
    expected = "".join(s.text for s in model.generate(PROMPT, temperature=0, max_new_tokens=30))
    app = open_isolated("examples/parallel/", model="test/odd-heads", endpoint=hub.url, prompt=PROMPT,
                        workers=workers, max_new_tokens=30)
    assert wait_done(app.page) == expected
    assert app.page.evaluate("[crossOriginIsolated, window.parallelModel.info.shared]") == [True, True]
    settings = dict(temperature=0.9, top_k=50, top_p=0.9, repetition_penalty=1.2, seed=11, max_new_tokens=40)
    out = app.page.evaluate(ISOLATED_REPLIES, settings)
    greedy = [s.token_id for s in model.generate("Once upon a time", temperature=0, max_new_tokens=3)]
    assert out["first"] == greedy
    assert out["buffered"] >= 10, out["buffered"]
    assert out["afterStop"] == "no reply in progress"
    assert [(s["token_id"], s["text"], s["finish"]) for s in out["sampled"]] == \
        [(s.token_id, s.text, s.finish) for s in model.generate("Once upon a time", **settings)]


# -- the chat page (index.html) on every core

def chat_reply(app, prompt: str) -> str:
    app.send(prompt)
    return app.wait_reply_done()


def greedy_text(name: str, prompt: str, max_new_tokens: int) -> str:
    return "".join(s.text for s in fixture_model(name).generate(prompt, temperature=0, max_new_tokens=max_new_tokens))


def test_chat_page_uses_a_worker_per_core_by_default(chat):
    """The shared page opens without ?workers=: as many workers as the browser reports cores."""
    cores = chat.page.evaluate("navigator.hardwareConcurrency")
    info = chat.page.evaluate("window.modelWorker.info")
    assert info["workers"] == min(cores, 8, 4)  # the tiny model has 4 heads: at most 4 shards
    assert chat.page.input_value("#workers") == str(min(cores, 8))


def test_chat_page_replies_the_same_on_two_workers_through_the_service_workers_isolation(open_path, hub):
    """With the app's service worker a page on a plain static host is cross-origin isolated from
    the second visit on (sw.js): the workers share memory, and the reply is one worker's."""
    app = open_path("", model="test/odd-heads", endpoint=hub.url, temperature=0, max_new_tokens=30, workers=2)
    app.wait_status("Ready")  # the first visit installs the service worker
    app.page.reload()
    assert "split over 2 workers" in app.wait_status("Ready")
    assert chat_reply(app, PROMPT) == greedy_text("odd-heads", PROMPT, 30)
    assert app.page.evaluate("[crossOriginIsolated, window.modelWorker.info.shared]") == [True, True]


def test_chat_page_worker_count_can_be_changed_before_a_load(open_plain, hub):
    """Without isolation (no COOP/COEP, no service worker) the workers exchange through the page.
    The Workers field applies to the next load (odd-heads has 3 heads: up to 3 shards); on 1, 2
    or 3 workers, the same replies as the CPython engine."""
    app = open_plain("", model="test/odd-heads", endpoint=hub.url, temperature=0, max_new_tokens=20, workers=2)
    assert "split over 2 workers" in app.wait_status("Ready")
    assert chat_reply(app, PROMPT) == greedy_text("odd-heads", PROMPT, 20)
    assert app.page.evaluate("[crossOriginIsolated, window.modelWorker.info.shared]") == [False, False]
    assert "in each of 2 workers" in app.page.text_content("#stats")
    load = app.page.get_by_role("button", name="Load model")
    app.show_model_form(advanced=True)
    app.page.fill("#workers", "3")
    assert "split over 3 workers" in app.load_outcome(load.click)
    assert chat_reply(app, "Hello") == greedy_text("odd-heads", "Hello", 20)
    app.show_model_form()
    app.page.fill("#workers", "1")
    assert "split" not in app.load_outcome(load.click)
    assert app.page.evaluate("window.modelWorker.workers.length") == 1  # the others ended
    assert chat_reply(app, PROMPT) == greedy_text("odd-heads", PROMPT, 20)
    assert "each" not in app.page.text_content("#stats")


HEAPS = "Promise.all(window.modelWorker.workers.map(w => w.sync.heap_bytes()))"


@pytest.mark.parametrize("files", [1, 2])
def test_each_worker_holds_its_slice_of_the_model_not_the_whole(open_app, hub, tmp_path_factory, files):
    """A 77 MB model split over 2 workers, in one weight file or two (model.safetensors.index.json).
    On a first visit the lead downloads each file rolling (only the chunk in progress in memory), so
    its memory (the WebAssembly memories only grow: their size is their peak) stays within one
    cache chunk of the other worker's. Loaded from the browser cache, each worker's memory grows by
    about half the weights (read tensor by tensor) and the tensor in passing, not by all of them."""
    folder = make_checkpoint(tmp_path_factory.mktemp("medium"), n_layer=8, n_embd=256, n_head=4, n_ctx=256,
                             shards=files)
    weights = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    assert len(list(folder.glob("*.safetensors"))) == files
    repo = f"test/medium-{files}"
    hub.add_repo(repo, folder)
    app = open_app(endpoint=hub.url, workers=2)
    app.wait_status("Runtime ready")
    app.page.evaluate("window.modelWorker.boot()")
    base = app.page.evaluate(HEAPS)
    app.page.fill("#model", repo)
    app.page.evaluate("""() => { window.__statuses = [];
        new MutationObserver(() => window.__statuses.push(document.getElementById('status').textContent))
            .observe(document.getElementById('status'), {childList: true, subtree: true, characterData: true}); }""")
    assert "split over 2 workers" in app.load_outcome(app.page.get_by_role("button", name="Load model").click, 120)
    lead, other = [after - before for before, after in zip(base, app.page.evaluate(HEAPS))]
    # never the whole file: held besides its slice, it would put the lead a whole file past the other
    assert lead < other + CHUNK_SIZE < other + weights, (lead, other, weights)
    statuses = app.page.evaluate("window.__statuses")
    downloaded = max(i for i, text in enumerate(statuses) if text.startswith("Downloading model"))
    assert any(text.startswith("Reading model") for text in statuses[downloaded:])  # then its slice
    app.page.reload()  # new workers; the model comes from the cache
    app.page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Runtime ready')")
    app.page.fill("#model", repo)
    assert "loaded from cache" in app.load_outcome(app.page.get_by_role("button", name="Load model").click, 120)
    growth = [after - before for before, after in zip(base, app.page.evaluate(HEAPS))]
    # its half, and the tensor being read (its rows of the embedding, on their way to the kernels)
    assert len(growth) == 2 and all(weights * 0.4 < g < weights for g in growth), (growth, weights)


def test_a_lowered_worker_memory_raises_the_worker_count_or_refuses_before_any_weight_request(
        open_app, hub, tmp_path_factory):
    """With ?worker_memory= between what one worker and what each of two need for the 77 MB model,
    on a one-core device: the page, whose worker count the visitor did not choose, loads it over 2
    workers; once the visitor sets Workers to 1 it is refused before any weight is requested,
    saying how many it takes."""
    from engine import gpt2
    from engine.gpt2 import read_config
    from worker.memory import HEADROOM, worker_need
    folder = make_checkpoint(tmp_path_factory.mktemp("split"), n_layer=8, n_embd=256, n_head=4, n_ctx=256)
    config = read_config(json.loads((folder / "config.json").read_text()))
    one, two = (worker_need(gpt2, config, n, kernels=True, int8=False) for n in (1, 2))
    limit = int((max(one.heap, one.kernels) + max(two.heap, two.kernels)) / 2 / HEADROOM)
    hub.add_repo("test/needs-two", folder)
    hub.add_repo("test/needs-two-again", folder)
    one_core = "Object.defineProperty(Navigator.prototype, 'hardwareConcurrency', { get: () => 1 })"
    app = open_app(setup=lambda context: context.add_init_script(one_core), endpoint=hub.url, workers=None,
                   worker_memory=limit)
    app.wait_status("Runtime ready")
    assert app.page.input_value("#workers") == "1"
    assert "split over 2 workers (it needs 2 workers here)" in load_model(app, "test/needs-two")
    assert app.page.input_value("#workers") == "2"
    app.show_model_form(advanced=True)
    app.page.fill("#workers", "1")
    hub.clear_requests()
    status = load_model(app, "test/needs-two-again")
    assert status.startswith("Could not load test/needs-two-again: test/needs-two-again needs 2 workers here"), status
    assert [r for r in hub.requests if r.file.endswith(".safetensors")] == []
