"""Browser benchmark: the real page in headless Chromium against the same engine in CPython.

    python bench/bench_browser.py [--model bench/models/gpt2-random] [--repeats 3] [--workers 1]
                                  [--isolated | --no-service-worker]

Serves index.html (tools/serve.py) and the GPT-2-small-shaped random checkpoint from a local
Hub (tools/hub_server.py), opens the page in a fresh browser context per repeat and times:
page open -> "Ready" (cold, from the network), the model-load part the page reports, a second
visit if the page then loads from its cache, prefill of a 128-token prompt, decode of 128
greedy tokens and the largest worker heap, with the model on --workers workers (the page's
?workers=; split over several, client/parallel.js). The page is cross-origin isolated (the workers
share memory) through its service worker from the second load on (sw.js), or by the server's
headers with --isolated; --no-service-worker keeps it out, so the page is not isolated. The
table says whether the timed page was. Prefill and decode call the page's model from JS, as its main
thread does. Each repeat also runs the engine natively on one
thread (bench_native.measure), so the browser/native ratios -- the headline, since absolute
times drift on a shared machine -- compare runs made minutes apart. Prints a table of medians
and writes bench/out/browser-<workers>.json.
"""
from __future__ import annotations

import bench_native  # noqa: I001  first: it pins BLAS to one thread before NumPy loads

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

from playwright.sync_api import sync_playwright

from bench_native import DEFAULT_MODEL, ROOT, load_timed, measure
from tools.browser import launch
from tools.hub_server import HubServer
from tools.serve import AppServer

REPO = "bench/gpt2-random"
PROMPT_TOKENS = NEW_TOKENS = 128
READY_TIMEOUT_S = 300

# Runs in the page: prefill (start + the first step, as bench_native times it) and NEW_TOKENS
# decode steps through the page's model (`window.modelWorker`: the model worker's functions, on
# one worker or split over several, client/parallel.js), then the largest worker heap.
TIME_GENERATION = """
async ([prompt, settings, steps]) => {
  const w = window.modelWorker;
  const t0 = performance.now();
  const info = JSON.parse(await w.start(JSON.stringify({ prompt, settings: JSON.parse(settings) })));
  let token = JSON.parse(await w.step());
  const t1 = performance.now();
  let n = 0;
  while (n < steps && !token.finish) {
    token = JSON.parse(await w.step());
    n += 1;
  }
  const t2 = performance.now();
  await w.stop();
  return { prompt_tokens: info.prompt_tokens, prefill_ms: t1 - t0, decode_tokens: n,
           decode_ms: t2 - t1, finish: token.finish, heap_bytes: await w.heap_bytes(),
           isolated: crossOriginIsolated, shared: w.info.shared };
}
"""


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def prompt_of(tokenizer, n_tokens: int, lead: str = "") -> str:
    """A text that the GPT-2 tokenizer turns into exactly n_tokens tokens (starting with `lead`)."""
    words = ("the quick brown fox jumps over a lazy dog while seven wizards quietly hex "
             "jolly zebras near my old barn").split()
    text = lead
    while len(tokenizer.encode(text)) < n_tokens:
        text += " " + words[len(text) % len(words)]
    while len(tokenizer.encode(text)) > n_tokens:
        text = text[:-1]
    assert len(tokenizer.encode(text)) == n_tokens
    return text


def wait_ready(page) -> str:
    """Wait for #status to say Ready; return its text."""
    page.wait_for_function("() => /^(Ready|Could not)/.test(document.querySelector('#status')?.textContent)",
                           timeout=READY_TIMEOUT_S * 1000, polling=50)
    status = page.text_content("#status")
    if not status.startswith("Ready"):
        raise RuntimeError(status)
    return status


def open_until_ready(page, url: str) -> dict:
    """Open (or reopen) the page; seconds to Ready, and the load seconds the page reports."""
    start = time.perf_counter()
    page.goto(url)
    status = wait_ready(page)
    loaded = re.search(r"loaded (?:from cache )?in ([\d.]+) s", status)
    return {"ready_s": time.perf_counter() - start, "load_s": float(loaded[1]) if loaded else None,
            "from_cache": "from cache" in status, "status": status}


def browser_repeat(browser, url: str, prompt: str, settings: str, try_warm: bool, service_workers: str) -> dict:
    """One fresh browser context (empty HTTP cache and IndexedDB): cold load, generation,
    and optionally a second visit to see whether the page loads from its cache."""
    context = browser.new_context(service_workers=service_workers)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("crash", lambda _: errors.append("the page crashed"))
    page.set_default_timeout(READY_TIMEOUT_S * 1000)
    try:
        cold = open_until_ready(page, url)
        log(f"  cold: {cold['status']}")
        run = page.evaluate(TIME_GENERATION, [prompt, settings, NEW_TOKENS])
        log(f"  prefill {run['prefill_ms']:.0f} ms, {run['decode_tokens']} tokens in {run['decode_ms']:.0f} ms")
        warm = open_until_ready(page, url) if try_warm else None
        if warm:
            log(f"  second visit: {warm['status']}")
    finally:
        context.close()
    if errors:
        raise RuntimeError(f"page errors: {errors}")
    if run["decode_tokens"] < NEW_TOKENS:
        raise RuntimeError(f"generation ended after {run['decode_tokens']} tokens ({run['finish']}): pick another prompt")
    return {
        "ready_cold_s": cold["ready_s"], "load_cold_s": cold["load_s"],
        "ready_warm_s": warm["ready_s"] if warm and warm["from_cache"] else None,
        "load_warm_s": warm["load_s"] if warm and warm["from_cache"] else None,
        "prompt_tokens": run["prompt_tokens"], "prefill_ms": run["prefill_ms"],
        "decode_tok_s": run["decode_tokens"] / run["decode_ms"] * 1e3,
        "step_ms": run["decode_ms"] / run["decode_tokens"], "heap_mb": run["heap_bytes"] / 2**20,
        "isolated": run["isolated"],
    }


def median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarize(browser_runs: list[dict], native_runs: list[dict]) -> dict:
    result = {f"browser_{k}": median(browser_runs, k) for k in browser_runs[0]}
    result |= {f"native_{k}": median(native_runs, k) for k in native_runs[0]}
    result["prefill_ratio"] = result["browser_prefill_ms"] / result["native_prefill_ms"]
    result["decode_ratio"] = result["browser_decode_tok_s"] / result["native_decode_tok_s"]
    return result


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def print_table(r: dict, repeats: int, workers: int, isolated: bool) -> None:
    rows = [
        ("time to Ready, cold (page open -> Ready)", "s", fmt(r["browser_ready_cold_s"]), ""),
        ("  of which model load (page's 'loaded in')", "s", fmt(r["browser_load_cold_s"]), fmt(r["native_load_s"])),
        ("time to Ready, warm (loaded from cache)", "s", fmt(r["browser_ready_warm_s"]), ""),
        (f"prefill, {PROMPT_TOKENS} tokens", "ms", fmt(r["browser_prefill_ms"], 0), fmt(r["native_prefill_ms"], 0)),
        (f"decode, {NEW_TOKENS} tokens greedy", "tok/s", fmt(r["browser_decode_tok_s"]), fmt(r["native_decode_tok_s"])),
        ("  per step", "ms", fmt(r["browser_step_ms"]), fmt(1e3 / r["native_decode_tok_s"])),
        ("largest worker heap after decode", "MB", fmt(r["browser_heap_mb"], 0), ""),
        ("prefill time browser/native", "x", fmt(r["prefill_ratio"], 2), ""),
        ("decode speed browser/native", "x", fmt(r["decode_ratio"], 2), ""),
    ]
    page = f"Chromium, {workers} worker{'s' if workers > 1 else ''}, " + ("isolated" if isolated else "not isolated")
    print(f"\n| GPT-2 124M random, medians of {repeats} | unit | {page} | CPython 1 thread |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--isolated", action="store_true", help="serve with COOP/COEP (SharedArrayBuffer)")
    parser.add_argument("--no-service-worker", action="store_true", help="block the app's service worker")
    args = parser.parse_args()
    model, native_load_s = load_timed(args.model)
    prompt = prompt_of(model.tokenizer, PROMPT_TOKENS)
    settings = json.dumps({"temperature": 0, "repetition_penalty": 1, "max_new_tokens": NEW_TOKENS + 1})

    browser_runs, native_runs = [], []
    with AppServer(ROOT, isolated=args.isolated) as app, HubServer({REPO: {"main": args.model}}) as hub, sync_playwright() as p:
        browser = launch(p)
        url = f"{app.url}/?" + urlencode({"model": REPO, "endpoint": hub.url, "temperature": 0,
                                          "max_new_tokens": NEW_TOKENS + 1, "workers": args.workers})
        for i in range(args.repeats):
            # A second visit costs a full download while the page has no cache: look once.
            try_warm = i == 0 or any(r["ready_warm_s"] is not None for r in browser_runs)
            browser_runs.append(browser_repeat(browser, url, prompt, settings, try_warm,
                                              "block" if args.no_service_worker else "allow"))
            native_runs.append(measure(model, PROMPT_TOKENS, NEW_TOKENS) | {"load_s": native_load_s})
            b, n = browser_runs[-1], native_runs[-1]
            log(f"repeat {i + 1}: ready {b['ready_cold_s']:.1f} s, prefill {b['prefill_ms']:.0f} ms "
                f"(native {n['prefill_ms']:.0f}), decode {b['decode_tok_s']:.1f} tok/s (native {n['decode_tok_s']:.1f})")
        browser.close()

    result = summarize(browser_runs, native_runs) | {
        "model": str(args.model), "repeats": args.repeats, "workers": args.workers,
        "isolated": all(r["isolated"] for r in browser_runs), "prompt_tokens": PROMPT_TOKENS, "new_tokens": NEW_TOKENS,
        "browser_runs": browser_runs, "native_runs": native_runs,
    }
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    mode = "headers" if args.isolated else "no-sw" if args.no_service_worker else "sw"
    (out / f"browser-{args.workers}-{mode}.json").write_text(json.dumps(result, indent=2))
    print_table(result, args.repeats, args.workers, result["isolated"])


if __name__ == "__main__":
    main()
