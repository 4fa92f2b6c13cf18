"""Downloading and caching weights in a real browser, against the local hub with faults, in
both of its modes: "direct" (every file answered by the hub, every header readable) and "real"
(as huggingface.co answers a browser: weights by a 302 to a CDN on another origin whose ETag is
not the sha256 and whose Content-Range is hidden). Refusals, cut, short and mislabelled bodies
resumed with Range requests, corrupted bytes and HTML pages refused, slow responses, the
IndexedDB cache (revisit without weight requests, tampered chunks and manifests, quota,
unavailable, cleared during a download, two tabs), the cache manager, local files and memory
across loads.

Each test loads its own repository id (a copy of a fixture under a new name), so tests that
share a page never find each other's files in the cache."""
from __future__ import annotations

import json
import re
import shutil
from urllib.parse import urlsplit

import pytest

from support import MODEL_NAMES, MODELS, fixture_model, gpt2_layout_repo
from tests.e2e.conftest import (FINAL_STATUS as FINAL_STATUS_JS, AppPage, app_url, checked, load_model as load,
                                 shared_page)
from tools.hub_server import CHUNK_SIZE, HubServer, fake_commit

TINY = MODELS / "tiny"
WEIGHTS = "model.safetensors"
TINY_SIZE = (TINY / WEIGHTS).stat().st_size
NEEDED = {"config.json", "vocab.json", "merges.txt", WEIGHTS}


@pytest.fixture(scope="module", params=["direct", "real"])
def hub(request, tmp_path_factory):
    """This module's own hub, in each mode in turn (its tests run once per mode, but those marked
    REAL_HUB_ONLY)."""
    repos = {f"test/{name}": {"main": MODELS / name} for name in MODEL_NAMES}
    repos["test/gpt2-layout"] = {"main": gpt2_layout_repo(tmp_path_factory.mktemp("gpt2-layout"))}
    with HubServer(repos, real=request.param == "real", page_size=3) as server:
        yield server


# What happens once the bytes are in the browser (the cache, storage, local files, memory) is the
# same whichever way the hub served them: those tests run against the real Hub's layout only.
REAL_HUB_ONLY = pytest.mark.parametrize("hub", ["real"], indirect=True)


@pytest.fixture(scope="module")
def repos(hub, tmp_path_factory):
    """Serve extra repositories: copies of tiny by name, and broken ones."""
    root = tmp_path_factory.mktemp("repos")

    def broken(name: str, drop: tuple[str, ...] = (), config: dict | None = None) -> str:
        folder = root / name
        shutil.copytree(TINY, folder)
        for file in drop:
            (folder / file).unlink()
        if config is not None:
            (folder / "config.json").write_text(json.dumps({**json.loads((TINY / "config.json").read_text()), **config}))
        hub.add_repo(f"test/{name}", folder)
        return f"test/{name}"

    return broken


@pytest.fixture
def tiny(hub, request):
    """A fresh repository id serving the tiny model, named after the test."""
    repo = "test/tiny-" + re.sub(r"[^\w.-]", "-", request.node.originalname.removeprefix("test_")[:50])
    hub.add_repo(repo, TINY)
    yield repo
    hub.clear_faults()


@pytest.fixture(scope="module")
def panel(browser, app_server, hub):
    """One booted page, shared by the tests that only load models into it."""
    yield from shared_page(browser, app_url(app_server, endpoint=hub.url, temperature=0, max_new_tokens=20),
                           "Runtime ready")


@pytest.fixture
def app(panel, hub):
    hub.clear_requests()
    panel.show_model_form()
    yield from checked(panel)


def weight_gets(hub, repo: str, name: str = WEIGHTS) -> list:
    """The GETs that carried (or were to carry) a file's bytes: in the real mode, the CDN's."""
    return [r for r in hub.requests if r.repo == repo and r.file == name and r.method == "GET" and r.status != 302]


def files_fetched(hub, repo: str) -> set[str]:
    return {r.file for r in hub.requests if r.repo == repo and r.file and not r.file.startswith("api:")}


def test_unknown_repo_gated_repo_and_missing_weights_say_why(app, hub, tiny, repos):
    assert "repository not found" in load(app, "test/does-not-exist")
    hub.set_fault(tiny, "config.json", status=403, times=1)
    assert "config.json: access denied, the repository is gated or private (HTTP 403)" in load(app, tiny)
    hub.set_fault(tiny, WEIGHTS, status=404, times=1)
    assert f"{WEIGHTS}: not found on the Hub (HTTP 404)" in load(app, tiny)
    assert "no weights" in load(app, repos("no-weights", drop=(WEIGHTS,)))
    assert load(app, tiny).startswith("Ready: " + tiny)  # usable afterwards


def test_an_unreadable_api_answer_says_so_and_a_failing_one_falls_back_to_the_cached_commit(app, hub, tiny, repos):
    hub.set_fault(tiny, "api:tree", html=True, times=1)
    assert "the Hub's answer is not JSON" in load(app, tiny)
    never_loaded = repos("api-down")
    hub.set_fault(never_loaded, "api:revision", status=500)
    status = load(app, never_loaded)
    assert "HTTP 500" in status and "not in the browser cache" in status, status
    hub.set_fault(tiny, "api:revision", status=500)
    assert load(app, tiny).startswith("Ready")  # the commit main had when last resolved, as offline


def test_only_the_files_a_gpt2_needs_are_fetched_from_a_repo_laid_out_as_openai_gpt2(app, hub):
    status = load(app, "test/gpt2-layout")
    assert status.startswith("Ready"), status
    assert files_fetched(hub, "test/gpt2-layout") == NEEDED
    prompt = "The old lighthouse keeper"
    app.send(prompt)  # the same weights as tiny, under the names openai-community/gpt2 uses
    assert app.wait_reply_done() == "".join(s.text for s in fixture_model("tiny").generate(prompt, temperature=0, max_new_tokens=20))


def test_an_older_repo_with_only_pytorch_model_bin_loads(app, hub):
    assert load(app, "test/bin").startswith("Ready")
    assert files_fetched(hub, "test/bin") == NEEDED - {WEIGHTS} | {"pytorch_model.bin"}


def test_a_cut_download_resumes_from_the_bytes_received(app, hub, tiny):
    hub.set_fault(tiny, WEIGHTS, cut_after=200_000, delay=0.02, times=1)  # delay: let bytes arrive before the reset
    assert load(app, tiny).startswith("Ready")
    first, second = weight_gets(hub, tiny)
    assert first.range is None and first.bytes_sent == 200_000
    received = int(second.range.removeprefix("bytes=").removesuffix("-"))
    assert 0 < received <= 200_000 and second.status == 206
    assert second.bytes_sent == TINY_SIZE - received  # only the missing range


def test_a_failed_download_resumes_when_loaded_again(app, hub, tiny):
    hub.set_fault(tiny, WEIGHTS, cut_after=100_000, delay=0.02)  # each attempt gets <= 100 kB more: not enough
    status = load(app, tiny)
    assert status.startswith("Could not") and "press Load model to resume" in status, status
    attempts = weight_gets(hub, tiny)
    assert len(attempts) == 4 and attempts[0].range is None
    hub.clear_faults()
    hub.clear_requests()
    assert load(app, tiny).startswith("Ready")
    (resumed,) = weight_gets(hub, tiny)
    received = int(resumed.range.removeprefix("bytes=").removesuffix("-"))
    assert 100_000 < received <= 4 * 100_000 and resumed.bytes_sent == TINY_SIZE - received


@REAL_HUB_ONLY
def test_a_reload_mid_download_resumes_from_the_first_missing_chunk(app, hub, tmp_path_factory):
    """The lead writes each 32 MiB chunk to IndexedDB as it arrives: a page reloaded in the middle
    of a 2-chunk download asks, on the next load, only for the bytes after the first chunk."""
    from tools.make_random_checkpoint import make_checkpoint
    from worker.chunk_store import CHUNK_SIZE as CACHE_CHUNK
    folder = make_checkpoint(tmp_path_factory.mktemp("two-chunks"), n_layer=2, n_embd=256, n_head=4, n_ctx=256)
    size = (folder / WEIGHTS).stat().st_size
    assert CACHE_CHUNK < 0.6 * size < size < 2 * CACHE_CHUNK
    hub.add_repo("test/two-chunks", folder)
    hub.set_fault("test/two-chunks", WEIGHTS, delay=0.004)  # ~4 s for the whole file
    app.page.fill("#model", "test/two-chunks")
    app.page.click("#load")
    app.page.wait_for_function(f"""() => {{ const m = /^Downloading {WEIGHTS}.*?\\((\\d+) %\\)/.exec(
        document.getElementById('status').textContent); return m && Number(m[1]) >= 60; }}""", timeout=60_000)
    app.page.reload()
    app.wait_status("Runtime ready")
    hub.clear_faults()
    hub.clear_requests()
    assert load(app, "test/two-chunks").startswith("Ready")
    (resumed,) = weight_gets(hub, "test/two-chunks")
    assert resumed.status == 206 and resumed.range == f"bytes={CACHE_CHUNK}-" and resumed.bytes_sent == size - CACHE_CHUNK


def test_a_short_body_is_completed_with_a_range_request(app, hub, tiny):
    hub.set_fault(tiny, WEIGHTS, short=300_000, delay=0.02, times=1)
    assert load(app, tiny).startswith("Ready")
    first, second = weight_gets(hub, tiny)
    assert first.bytes_sent == 300_000 and second.range.startswith("bytes=") and second.status == 206


def test_a_flipped_byte_fails_the_sha256_and_nothing_is_cached(app, hub, tiny):
    hub.set_fault(tiny, WEIGHTS, flip=1000, times=1)
    status = load(app, tiny)
    assert status.startswith("Could not") and "sha256" in status and "corrupted" in status
    cached = [m for m in json.loads(app.worker("cache_models"))["models"] if m["repo"] == tiny]
    assert all(WEIGHTS not in m["files"] for m in cached)
    assert load(app, tiny).startswith("Ready")


def test_a_flipped_byte_in_a_small_file_fails_its_git_blob_id(app, hub, tiny):
    hub.set_fault(tiny, "vocab.json", flip=100, times=1)
    status = load(app, tiny)
    assert status.startswith("Could not") and "vocab.json" in status and "git blob sha1" in status, status
    assert load(app, tiny).startswith("Ready")


def test_an_html_page_instead_of_the_weights_is_refused(app, hub, tiny):
    hub.set_fault(tiny, WEIGHTS, html=True)
    status = load(app, tiny)
    assert status.startswith("Could not") and WEIGHTS in status, status
    hub.clear_faults()
    hub.clear_requests()
    assert load(app, tiny).startswith("Ready")  # the page's bytes kept for a resume fail the hash: once more, whole
    resumed, whole = weight_gets(hub, tiny)
    assert resumed.range is not None and whole.range is None and whole.bytes_sent == TINY_SIZE


def test_a_content_length_too_small_is_completed_with_a_range_request(app, hub, tiny):
    hub.set_fault(tiny, WEIGHTS, wrong_length=-1000, times=1)
    assert load(app, tiny).startswith("Ready")
    first, second = weight_gets(hub, tiny)
    assert first.range is None and second.range == f"bytes={TINY_SIZE - 1000}-" and second.status == 206


def test_a_content_length_too_big_is_survived_and_the_file_cached(app, hub, tiny):
    hub.set_fault(tiny, WEIGHTS, wrong_length=+1000, times=1)
    assert load(app, tiny).startswith("Ready")  # Chromium may or may not hand over the last bytes: resumed if not
    hub.clear_requests()
    assert "loaded from cache" in load(app, tiny) and weight_gets(hub, tiny) == []


def test_a_file_sent_without_content_length_is_cached(app, hub, tiny):
    hub.set_fault(tiny, WEIGHTS, no_length=True, times=1)
    assert load(app, tiny).startswith("Ready")
    hub.clear_requests()
    assert "loaded from cache" in load(app, tiny) and weight_gets(hub, tiny) == []


def test_slow_download_reports_bytes_percent_and_speed(app, hub, tiny):
    app.page.evaluate("""() => {
        window.__statuses = []; window.__files = [];
        new MutationObserver(() => {
            window.__statuses.push(document.getElementById('status').textContent);
            window.__files.push(document.getElementById('file-progress').textContent);
        }).observe(document.getElementById('model-panel'), {childList: true, subtree: true, characterData: true});
    }""")
    hub.set_fault(tiny, WEIGHTS, delay=0.1)
    assert load(app, tiny).startswith("Ready")
    downloading = [s for s in app.page.evaluate("window.__statuses") if s.startswith("Downloading " + WEIGHTS)]
    assert len(downloading) >= 3, downloading
    assert any("%" in s and "MB/s" in s and "all files" in s for s in downloading), downloading
    # Not the default Hub: the host the bytes come from is named (the CDN's, in the real mode).
    sender = (hub.cdn or hub).url
    assert all(s.startswith(f"Downloading {WEIGHTS} from {urlsplit(sender).netloc}:") for s in downloading), downloading
    assert any(WEIGHTS + ":" in f and "%" in f for f in app.page.evaluate("window.__files"))


@REAL_HUB_ONLY
def test_a_config_that_is_not_gpt2_missing_tokenizer_files_and_a_too_big_model_say_why(app, repos):
    assert "model_type='llama' is not a model this engine runs" in load(app, repos("llama", config={"model_type": "llama"}))
    assert "vocab.json is missing" in load(app, repos("no-vocab", drop=("vocab.json",)))
    # GPT-2 XL's shapes with one head: it cannot be split, and its 5.9 GB of block matrices do not
    # fit one worker's 4 GiB (worker/memory.py)
    huge = repos("huge", config={"n_embd": 1600, "n_layer": 48, "n_head": 1, "vocab_size": 50257, "n_positions": 1024})
    status = load(app, huge)
    assert f"{huge} is too big for this device: even split over 1 worker(s)" in status, status
    assert load(app, repos("fine")).startswith("Ready")


@REAL_HUB_ONLY
def test_second_visit_loads_from_the_cache_without_weight_requests(browser, app_server, hub, tiny):
    context = browser.new_context()
    try:
        app = AppPage(context.new_page(), app_url(app_server, endpoint=hub.url, temperature=0, max_new_tokens=20))
        app.wait_status("Runtime ready")
        assert "downloaded" in load(app, tiny)
        app.send("The old lighthouse keeper")
        first_reply = app.wait_reply_done()
        app.page.reload()
        app.wait_status("Runtime ready")
        hub.clear_requests()
        status = load(app, tiny)
        assert "loaded from cache in" in status, status
        assert [(r.method, r.file) for r in hub.requests if r.repo == tiny] == [("GET", "api:revision")]
        app.send("The old lighthouse keeper")
        assert app.wait_reply_done() == first_reply
        assert app.errors == [] and app.foreign_requests() == []
    finally:
        context.close()


@REAL_HUB_ONLY
def test_cache_manager_lists_deletes_and_clears(app, hub, tiny, repos):
    other = repos("kept")
    for repo in (tiny, other):
        assert load(app, repo).startswith("Ready")
    app.page.click("#cache-manager summary")
    row = app.page.locator("#cached-models li", has_text=tiny)
    row.wait_for()
    assert "MB" in row.text_content() and "4 files" in row.text_content()
    assert "used of" in app.page.text_content("#storage")
    app.page.get_by_role("button", name=f"Delete {tiny} from the cache").click()
    row.wait_for(state="detached")
    assert app.page.locator("#cached-models li", has_text=other).count() == 1
    hub.clear_requests()
    assert "downloaded" in load(app, tiny)  # really gone: fetched again
    app.page.click("#clear-cache")
    app.page.wait_for_function("() => document.getElementById('cached-models').textContent.includes('No model is cached')")
    assert json.loads(app.worker("cache_models"))["models"] == []


@REAL_HUB_ONLY
def test_local_files_load_without_any_request(app, hub):
    hub.clear_requests()
    app.load_outcome(lambda: app.page.set_input_files("#local-files", [TINY / n for n in
                                                                    ("config.json", WEIGHTS, "vocab.json", "merges.txt")]))
    assert app.status().startswith("Ready: local files") and "from your disk" in app.status()
    assert hub.requests == []
    app.send("The old lighthouse keeper")
    assert app.wait_reply_done()


@REAL_HUB_ONLY
def test_dropped_files_load_and_missing_ones_are_named(app):
    drop = """async names => {
        const transfer = new DataTransfer();
        for (const name of names) transfer.items.add(new File([await (await fetch(`tests/fixtures/models/tiny/${name}`)).blob()], name));
        document.getElementById('drop-zone').dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }"""
    app.page.evaluate(drop, ["config.json", WEIGHTS])
    app.page.wait_for_function("() => document.getElementById('status').textContent.includes('please also choose')")
    assert "vocab.json, merges.txt" in app.status()
    status = app.load_outcome(lambda: app.page.evaluate(drop, ["config.json", WEIGHTS, "vocab.json", "merges.txt"]))
    assert status.startswith("Ready: local files")


@REAL_HUB_ONLY
def test_ten_loads_do_not_grow_the_worker(app, tiny):
    assert load(app, tiny).startswith("Ready")
    heap = app.worker("heap_bytes")
    for _ in range(9):
        assert load(app, tiny).startswith("Ready")
    assert app.worker("heap_bytes") == heap


def fresh_app(browser, app_server, hub, quota: int | None = None) -> AppPage:
    """A page in a new browser context (its own IndexedDB), with a storage quota if given
    (set before the page touches storage: later overrides do not apply)."""
    page = browser.new_context().new_page()
    if quota is not None:
        page.context.new_cdp_session(page).send("Storage.overrideQuotaForOrigin",
                                                {"origin": app_server.url, "quotaSize": quota})
    app = AppPage(page, app_url(app_server, endpoint=hub.url))
    app.wait_status("Runtime ready")
    return app


@REAL_HUB_ONLY
def test_quota_exceeded_runs_from_memory_and_keeps_nothing(browser, app_server, hub, tiny):
    app = fresh_app(browser, app_server, hub, quota=100_000)
    try:
        status = load(app, tiny)
        assert status.startswith("Ready") and "not cached: " in status and "storage is full" in status, status
        assert all(m["bytes"] == 0 for m in json.loads(app.worker("cache_models"))["models"])
        assert app.page.evaluate("window.modelWorker.info.workers") == 1  # not split: no cache to share
        assert app.errors == []
    finally:
        app.page.context.new_cdp_session(app.page).send("Storage.overrideQuotaForOrigin", {"origin": app_server.url})
        app.page.context.close()


@REAL_HUB_ONLY
def test_indexeddb_unavailable_runs_from_memory(browser, app_server, hub, tiny):
    app = fresh_app(browser, app_server, hub)
    try:  # a newer version of the database makes opening ours fail, as a broken IndexedDB would
        app.page.evaluate("() => new Promise(r => { const q = indexedDB.open('browser-llm', 99); q.onsuccess = () => { q.result.close(); r(); }; })")
        status = load(app, tiny)
        assert status.startswith("Ready") and "not cached: the browser cache (IndexedDB) is not available" in status, status
        assert app.page.evaluate("window.modelWorker.info.workers") == 1  # not split: no cache to share
        assert app.errors == []
    finally:
        app.page.context.close()


TAMPER = """async ([store, key, change]) => {
    const db = await new Promise((resolve, reject) => {
        const q = indexedDB.open('browser-llm'); q.onsuccess = () => resolve(q.result); q.onerror = reject; });
    const tx = db.transaction(store, 'readwrite');
    const request = tx.objectStore(store).get(key);
    await new Promise(resolve => request.onsuccess = resolve);
    let value = request.result;
    if (store === 'chunks') { const bytes = new Uint8Array(value); bytes[change] ^= 0xff; value = bytes.buffer; }
    else value = JSON.stringify({...JSON.parse(value), ...change});
    tx.objectStore(store).put(value, key);
    await new Promise(resolve => tx.oncomplete = resolve);
    db.close();
}"""


def cache_key(hub, repo: str, name: str = WEIGHTS) -> list:
    return [hub.url, repo, fake_commit(repo, "main"), name]


COUNT_REPLIES = """() => { self.replies = 0; const post = self.postMessage.bind(self);
    self.postMessage = (...args) => { self.replies += 1; return post(...args); }; }"""


@REAL_HUB_ONLY
def test_cached_chunks_are_read_and_hashed_by_the_chunk_reader_or_here_once_it_fails(app, hub, tiny):
    """A load from the cache reads and hashes its chunks in the chunk reader (worker/idb.js:
    a worker of each model worker's own, so that its thread only uses them); when the reader
    fails, the chunks it owed and later ones are read on the model worker's thread."""
    assert load(app, tiny).startswith("Ready")
    readers = [w for w in app.page.workers if w.url.endswith("/worker/chunk_reader.js")]
    assert len(readers) == app.page.evaluate("window.modelWorker.info.workers"), [w.url for w in app.page.workers]
    for reader in readers:
        reader.evaluate(COUNT_REPLIES)
    assert "loaded from cache" in load(app, tiny)
    assert all(reader.evaluate("self.replies") >= 1 for reader in readers)
    for reader in readers:
        reader.evaluate("() => { self.onmessage = () => { throw new Error('the chunk reader broke'); }; }")
    assert "loaded from cache" in load(app, tiny) and len(weight_gets(hub, tiny)) == 1  # the first load's


def test_a_changed_chunk_in_the_cache_is_fetched_again_never_served(app, hub, tiny):
    prompt = "The old lighthouse keeper"
    assert load(app, tiny).startswith("Ready")
    app.send(prompt)
    reply = app.wait_reply_done()
    app.page.evaluate(TAMPER, ["chunks", [*cache_key(hub, tiny), 0], 5000])
    hub.clear_requests()
    assert load(app, tiny).startswith("Ready")
    refetched = weight_gets(hub, tiny)  # only the changed chunk (here: the whole small file), by each worker that read it
    workers = app.page.evaluate("window.modelWorker.info.workers")
    assert 1 <= len(refetched) <= workers, refetched
    assert all(r.range == f"bytes=0-{TINY_SIZE - 1}" and r.bytes_sent == TINY_SIZE for r in refetched)
    app.send(prompt)
    assert app.wait_reply_done() == reply
    hub.clear_requests()
    assert "loaded from cache" in load(app, tiny) and weight_gets(hub, tiny) == []  # stored again, good


def test_a_cached_entry_that_no_longer_matches_the_listing_is_dropped_and_fetched_again(app, hub, tiny):
    assert load(app, tiny).startswith("Ready")
    app.page.evaluate(TAMPER, ["files", cache_key(hub, tiny), {"digest": "0" * 64}])
    hub.clear_requests()
    assert load(app, tiny).startswith("Ready")
    (fetched,) = weight_gets(hub, tiny)
    assert fetched.range is None and fetched.bytes_sent == TINY_SIZE


def watch_statuses(app: AppPage) -> None:
    app.page.evaluate("""() => { window.__statuses = [];
        new MutationObserver(() => window.__statuses.push(document.getElementById('status').textContent))
            .observe(document.getElementById('status'), {childList: true, subtree: true, characterData: true}); }""")


def test_clear_all_during_a_download_stops_it_and_leaves_nothing(app, hub, tiny):
    hub.set_fault(tiny, WEIGHTS, delay=0.3)
    app.page.evaluate("() => { document.getElementById('cache-manager').open = true; }")
    app.page.fill("#model", tiny)
    app.page.evaluate(FINAL_STATUS_JS)
    app.page.click("#load")
    app.page.wait_for_function(f"() => document.getElementById('status').textContent.startsWith('Downloading {WEIGHTS}')")
    app.page.click("#clear-cache")
    status = app.page.wait_for_function("() => window.__final", timeout=60_000).json_value()
    assert status.startswith("Could not") and "deleted from the browser cache" in status, status
    (cut,) = weight_gets(hub, tiny)
    assert cut.bytes_sent < TINY_SIZE  # stopped before the end
    assert json.loads(app.worker("cache_models"))["models"] == []
    hub.clear_faults()
    hub.clear_requests()
    assert load(app, tiny).startswith("Ready")
    (again,) = weight_gets(hub, tiny)
    assert again.range is None  # nothing half-kept to resume from
    app.page.evaluate("() => { document.getElementById('cache-manager').open = false; }")


@REAL_HUB_ONLY
def test_two_tabs_loading_the_same_model_download_it_once(app, hub, tiny):
    other = AppPage(app.page.context.new_page(), app.page.url)  # the same browser profile: one cache
    try:
        other.wait_status("Runtime ready")
        hub.set_fault(tiny, WEIGHTS, delay=0.2)
        watch_statuses(other)
        for page in (app, other):
            page.page.evaluate(FINAL_STATUS_JS)
            page.page.fill("#model", tiny)
        app.page.click("#load")
        app.page.wait_for_function(f"() => document.getElementById('status').textContent.startsWith('Downloading {WEIGHTS}')")
        other.page.click("#load")
        outcomes = [page.page.wait_for_function("() => window.__final", timeout=60_000).json_value() for page in (app, other)]
        assert all(o.startswith("Ready") for o in outcomes), outcomes
        assert any(s.startswith("Waiting for another tab") for s in other.page.evaluate("window.__statuses"))
        assert "loaded from cache" in outcomes[1]
        assert len(weight_gets(hub, tiny)) == 1  # one download, for both tabs
        assert other.errors == []
    finally:
        other.page.close()


def test_cancel_stops_the_download_within_a_chunk_and_the_next_load_goes_on_from_it(app, hub, tiny):
    hub.set_fault(tiny, WEIGHTS, delay=0.3)  # 11 chunks of 64 KiB, one every 0.3 s: time to cancel halfway
    app.page.fill("#model", tiny)
    app.page.click("#load")
    app.page.wait_for_function(f"() => document.getElementById('status').textContent.startsWith('Downloading {WEIGHTS}')")
    cancel = app.page.get_by_role("button", name="Cancel")
    cancel.click()
    app.page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Cancelled')",
                               timeout=10_000)
    assert cancel.is_hidden() and app.page.is_enabled("#load")
    sent = lambda: sum(r.bytes_sent for r in weight_gets(hub, tiny))  # noqa: E731
    app.page.wait_for_timeout(1500)  # what the socket had taken before the connection closed
    stopped = sent()
    app.page.wait_for_timeout(900)  # three of the server's chunk intervals: nothing more
    assert sent() == stopped < TINY_SIZE - 2 * CHUNK_SIZE
    hub.clear_faults()
    hub.clear_requests()
    assert load(app, tiny).startswith("Ready")
    (resumed,) = weight_gets(hub, tiny)
    received = int(resumed.range.removeprefix("bytes=").removesuffix("-"))
    assert resumed.status == 206 and 0 < received <= stopped and resumed.bytes_sent == TINY_SIZE - received


REMEMBERED_READS = """async ([key, reads]) => {
    const db = await new Promise((resolve, reject) => {
        const q = indexedDB.open('browser-llm'); q.onsuccess = () => resolve(q.result); q.onerror = reject; });
    const tx = db.transaction('refs', 'readwrite');
    const request = tx.objectStore('refs').get(key);
    await new Promise(resolve => request.onsuccess = resolve);
    if (reads !== null) tx.objectStore('refs').put(JSON.stringify(reads), key);
    await new Promise(resolve => tx.oncomplete = resolve);
    db.close();
    return request.result ? JSON.parse(request.result) : null;
}"""


@REAL_HUB_ONLY
def test_a_visit_that_names_a_cached_model_reads_its_chunks_ahead_while_the_worker_starts(open_app, hub, tiny):
    """With ?model=, the page starts the lead's chunk reader as it opens (client/parallel.js
    readAhead), which reads ahead the chunks the last load of that model used (remembered in the
    cache), and the model worker asks it for them instead of starting a reader of its own. Reads
    remembered for chunks no longer there are given up: every chunk is then read as it is asked,
    and a model deleted from the cache is downloaded once, its new chunks read, not the gone ones."""
    first = open_app(model=tiny, endpoint=hub.url)
    assert "downloaded" in first.wait_status("Ready")
    model_key = [hub.url, tiny, "main", "reads"]
    reads = first.page.evaluate(REMEMBERED_READS, [model_key, None])
    assert [*cache_key(hub, tiny), 0] in reads and len({tuple(chunk) for chunk in reads}) == len(reads)

    def warm_visit(outcome: str = "loaded from cache") -> dict:
        app = AppPage(first.page.context.new_page(), first.page.url)
        assert outcome in app.wait_status("Ready")
        readers = [w for w in app.page.workers if w.url.endswith("/worker/chunk_reader.js")]
        assert len(readers) == 1, [w.url for w in app.page.workers]  # the page's: the worker started none
        served = readers[0].evaluate("self.served")
        app.send("Hello")
        app.wait_reply_done()
        assert app.errors == [] and app.foreign_requests() == []
        app.page.close()
        return served

    hub.clear_requests()
    assert warm_visit() == {"ahead": len(reads), "asked": 0}
    first.page.evaluate(REMEMBERED_READS, [model_key, [[hub.url, tiny, "0" * 40, WEIGHTS, 0]]])
    assert warm_visit() == {"ahead": 0, "asked": len(reads)}
    assert weight_gets(hub, tiny) == []
    first.page.evaluate(REMEMBERED_READS, [model_key, reads])
    first.worker("cache_delete", json.dumps({"endpoint": hub.url, "repo": tiny, "revision": fake_commit(tiny, "main")}))
    assert warm_visit("downloaded")["ahead"] == 0
    assert len(weight_gets(hub, tiny)) == 1  # not fetched again as if the chunk read ahead were still gone
