"""Benchmark (not a test): the workers' peak memory and the time to load a GPT-2 in the real
page, from the network and then from the browser cache, and its decode speed.

    python bench/bench_load.py [--model bench/models/gpt2-random] [--workers 1] [--weights float32]

(for other sizes: tools/make_random_checkpoint.py bench/models/gpt2-large-random --n-layer 36
--n-embd 1280 --n-head 20, then --model bench/models/gpt2-large-random).

Serves the random 124M checkpoint (made by tools/make_random_checkpoint.py if missing) from a
local Hub, opens the page in headless Chromium and loads it: once downloading (into
IndexedDB, through the form), then (--warm-visits, 3) in new pages of the same browser context
opened as a link to the model opens them (?model=): warm starts from the cache, the page's chunk
reader reading the cache ahead while the model worker starts, each also reusing what the browser
kept of the runtime (its service worker's copy, and V8's compiled code of it, which the browser
keeps only after a few visits). Times are from the page's navigation to its status lines. The context has a
profile on disk, as a visitor's browser does (an off-the-record context's storage quota is too
small for GPT-2 large). The WebAssembly
memories (Pyodide's heap and the kernels', summed: worker.heap_bytes) only grow, so their size
after a load is the peak of that load (per worker: with --workers N the model is split, and each
worker should hold about its slice). After the last load from the cache, 32 greedy tokens are
timed (window.modelWorker, as bench_browser.py). Then, in the same context, times the runtime alone
(bench/boot/: PyScript's worker with Pyodide and NumPy, nothing of the app), a warm start's
floor. Prints the figures and writes
bench/out/load-<model>-<workers>-<weights>.json.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_browser import TIME_GENERATION  # noqa: E402
from bench_native import DEFAULT_MODEL, cpu_model, ensure_checkpoint  # noqa: E402
from tools.browser import launch_profile  # noqa: E402
from tools.hub_server import HubServer  # noqa: E402
from tools.serve import AppServer  # noqa: E402

REPO = "bench/gpt2-random"
TIMEOUT_MS = 600_000


def float32_weights(folder: Path) -> int:
    """Bytes of the checkpoint's weights as float32 (an F32 safetensors file, minus its header)."""
    data = (folder / "model.safetensors").read_bytes()[:8]
    return (folder / "model.safetensors").stat().st_size - 8 - int.from_bytes(data, "little")


def decode_speed(page) -> float:
    """Tokens/s of 32 greedy tokens after a short prompt, through the page's model."""
    settings = json.dumps({"temperature": 0, "max_new_tokens": 33, "repetition_penalty": 1.0})
    run = page.evaluate(TIME_GENERATION, ["The old lighthouse keeper", settings, 32])
    return run["decode_tokens"] / run["decode_ms"] * 1e3


STATUS_MARKS = """document.addEventListener('DOMContentLoaded', () => {
    const status = document.getElementById('status');
    window.statusMarks = {};
    new MutationObserver(() => {
        for (const mark of ['Runtime ready', 'Loading', 'Ready']) {
            if (status.textContent.startsWith(mark)) window.statusMarks[mark] ??= performance.now();
        }
    }).observe(status, {childList: true, characterData: true, subtree: true});
})"""


def load_once(context, app_url: str, decode: bool, linked: bool) -> dict:
    """Open the page and load the model: `linked`, as a link to it does (?model=, the page loads it
    as it opens, reading the cache ahead while the worker starts); else through the form as soon
    as the runtime is ready, with the heap before. Returns the heap after (and before), the status
    and the times from opening the page to "Runtime ready" and to Ready."""
    page = context.new_page()
    page.goto(app_url + (f"&{urlencode({'model': REPO})}" if linked else ""))
    heap = "() => window.modelWorker.boot().then(() => Promise.all(window.modelWorker.workers.map(w => w.sync.heap_bytes())))"
    before = None
    if not linked:
        page.wait_for_function("() => 'Runtime ready' in window.statusMarks", timeout=TIMEOUT_MS)
        before = page.evaluate(heap)
        page.click("#load")
    page.wait_for_function("() => /^(Ready|Could not)/.test(document.getElementById('status').textContent)",
                           timeout=TIMEOUT_MS)
    status = page.text_content("#status")
    marks = page.evaluate("window.statusMarks")
    readers = [w.evaluate("self.served ?? {ahead: 0, asked: 0}") for w in page.workers
               if w.url.endswith("/worker/chunk_reader.js")]
    after = page.evaluate(heap)
    speed = decode_speed(page) if decode and status.startswith("Ready") else None
    page.close()
    if not status.startswith("Ready"):
        raise SystemExit(status)
    return {"status": status, "heap_before_mb": max(before) / 1e6 if before else None,
            "peak_heap_mb": max(after) / 1e6, "peak_heap_per_worker_mb": [h / 1e6 for h in after],
            "seconds": float(re.search(r"in ([\d.]+) s", status).group(1)), "decode_tok_s": speed,
            "open_to_ready_seconds": marks["Ready"] / 1e3,
            "open_to_runtime_seconds": marks.get("Runtime ready", marks["Loading"]) / 1e3,  # linked: it loads at once
            "chunks_read_ahead": sum(served["ahead"] for served in readers),
            "chunks_read_when_asked": sum(served["asked"] for served in readers)}


def runtime_alone(context, url: str) -> float:
    """Seconds from opening bench/boot/ (PyScript's worker with Pyodide and NumPy, started as the
    app starts its model worker, and nothing of the app) to its worker's answer: a warm start's
    floor. Opened twice in the context, the second time timed."""
    for _ in range(2):
        page = context.new_page()
        opened = time.monotonic()
        page.goto(url)
        page.wait_for_function("() => document.getElementById('status').textContent === 'Ready'", timeout=TIMEOUT_MS)
        page.close()
    return time.monotonic() - opened


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--weights", choices=["float32", "int8"], default="float32")
    parser.add_argument("--warm-visits", type=int, default=3,
                        help="visits after the download, each a warm start from the cache (default 3)")
    args = parser.parse_args()
    ensure_checkpoint(args.model)
    weights_mb = float32_weights(args.model) / 1e6
    with AppServer(ROOT) as app, HubServer({REPO: {"main": args.model}}) as hub, sync_playwright() as p:
        context = launch_profile(p, tempfile.mkdtemp(prefix="bench-load-"))
        context.add_init_script(f"document.addEventListener('DOMContentLoaded', () => "
                                f"document.getElementById('model').value = {json.dumps(REPO)})")
        context.add_init_script(STATUS_MARKS)
        page_url = f"{app.url}/?{urlencode({'endpoint': hub.url, 'workers': args.workers, 'weights': args.weights})}"
        visits = ["network"] + [f"cache {n}" for n in range(1, args.warm_visits + 1)]
        runs = {name: load_once(context, page_url, name == visits[-1], name != "network") for name in visits}
        alone = runtime_alone(context, f"{app.url}/bench/boot/")
        context.close()
    result = {"cpu": cpu_model(), "model": args.model.name, "float32_weights_mb": weights_mb, "workers": args.workers,
              "weights": args.weights, **runs, "runtime_alone_seconds": alone,
              "peak_ratio": {k: r["peak_heap_mb"] / weights_mb for k, r in runs.items()}}
    out = ROOT / "bench" / "out" / f"load-{args.model.name}-{args.workers}-{args.weights}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.model.name}, {args.weights} weights, {args.workers} worker(s); float32 weights: {weights_mb:.1f} MB;"
          f" CPU: {cpu_model()}")
    for name, run in runs.items():
        per_worker = ", ".join(f"{h:.0f}" for h in run["peak_heap_per_worker_mb"])
        print(f"{name:8} peak heap {run['peak_heap_mb']:7.1f} MB ({run['peak_heap_mb'] / weights_mb:.2f}x the weights;"
              + (f" {run['heap_before_mb']:.1f} MB before loading;" if run["heap_before_mb"] else "")
              + f" per worker: {per_worker} MB), load {run['seconds']:.1f} s,"
              f" page open to Runtime ready {run['open_to_runtime_seconds']:.1f} s, to Ready {run['open_to_ready_seconds']:.1f} s"
              + (f", decode {run['decode_tok_s']:.1f} tok/s" if run["decode_tok_s"] else "")
              + f", chunks read ahead {run['chunks_read_ahead']} (when asked {run['chunks_read_when_asked']})"
              + f" -- {run['status']}")
    warm = [run["open_to_ready_seconds"] for name, run in runs.items() if name != "network"]
    print(f"warm start, page open to Ready: {', '.join(f'{t:.1f}' for t in warm)} s"
          f" (median {statistics.median(warm):.1f} s)")
    print(f"the runtime alone (bench/boot/: PyScript's worker, Pyodide, NumPy), warm: page open to its answer {alone:.1f} s")


if __name__ == "__main__":
    main()
