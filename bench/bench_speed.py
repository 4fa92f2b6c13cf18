"""Speed as the chat shows it, per kernel (WASM SIMD float32 or int8 weights, or NumPy) and
worker count, with the native engine as the anchor of the same run.

    python bench/bench_speed.py [--model bench/models/gpt2-random] [--workers 1 2]
                                [--kernels simd simd-int8 numpy] [--prompt-tokens 128] [--new-tokens 64]
                                [--isolated] [--repeats 1]

For each kernels x workers: a fresh page (?kernels=, ?weights=, ?workers=) loads the GPT-2-small-shaped
random checkpoint from a local Hub, then, in completion mode and greedy,
- through the chat UI, twice (a new chat each time; during the first reply V8 still compiles the
  hot code of Pyodide and MicroPython): sends a prompt of --prompt-tokens tokens and times, in the
  page (a MutationObserver), the first token of the reply (what the visitor waits for: the
  prompt's forward pass and the first step) and every later one (decode tokens/s as the visitor
  sees them); and reads the tokens/s the stats line shows;
- through window.modelWorker directly (as bench_browser.py): prefill and decode tokens/s of the
  worker(s) alone; the chat's decode rate over it is the cost of the page's loop.
--isolated serves the app cross-origin isolated (COOP/COEP, as the app's service worker does from
a visitor's second visit on), so split models exchange through SharedArrayBuffers.
--repeats N runs every page N times, in turns (each kernels x workers once, then again), and the
table gives the medians: on a machine whose speed drifts between runs, one run of each can mislead.
CPython's engine (one BLAS thread) runs the same prompt in the same run. Prints a table with
the CPU model and writes bench/out/speed.json.
"""
from __future__ import annotations

import bench_native  # noqa: I001  first: it pins BLAS to one thread before NumPy loads

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from urllib.parse import urlencode

from playwright.sync_api import sync_playwright

from bench_browser import TIME_GENERATION, prompt_of, wait_ready
from bench_native import DEFAULT_MODEL, ROOT, cpu_model, load_timed, measure
from tools.browser import REPLY_DONE, launch
from tools.hub_server import HubServer
from tools.serve import AppServer

REPO = "bench/gpt2-random"
TIMEOUT_MS = 600_000

# In the page: click Send; resolve with the ms from the click to each token of the reply in the DOM.
SEND_AND_TIME_TOKENS = """
() => new Promise(resolve => {
  const log = document.getElementById('log');
  const before = log.querySelectorAll('article.assistant').length;
  const t0 = performance.now(), times = [];
  const observer = new MutationObserver(() => {
    const reply = log.querySelectorAll('article.assistant')[before];
    if (!reply) return;
    const n = reply.querySelectorAll('.text span').length;
    while (times.length < n) times.push(performance.now() - t0);
    if (reply.getAttribute('aria-busy') === 'false') { observer.disconnect(); resolve(times); }
  });
  observer.observe(log, { childList: true, subtree: true, attributes: true });
  document.getElementById('send').click();
})
"""


def chat_reply(page, prompt: str) -> tuple[list[float], str]:
    """A new chat in completion mode: the prompt sent, the ms from the click to each token of the
    reply in the page, and the stats line after it."""
    page.click("#new-chat")
    page.select_option("#mode", "completion")
    page.fill("#message", prompt)
    times = page.evaluate(SEND_AND_TIME_TOKENS)
    page.wait_for_function(REPLY_DONE)
    return times, page.text_content("#stats")


def decode_rate(times: list[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0]) * 1e3


def chat_run(browser, app_url: str, prompts: tuple[str, str, str], new_tokens: int) -> dict:
    """One fresh page: the chat's own figures for a first reply (V8 still compiles the hot code
    of Pyodide and MicroPython during it) and a second one, then the worker's alone for a third
    prompt (each another text: nothing of it is in the KV cache)."""
    first_prompt, second_prompt, other = prompts
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(app_url)
        wait_ready(page)
        first, _ = chat_reply(page, first_prompt)
        second, stats = chat_reply(page, second_prompt)
        settings = json.dumps({"temperature": 0, "max_new_tokens": new_tokens + 1, "repetition_penalty": 1.0})
        worker = page.evaluate(TIME_GENERATION, [other, settings, new_tokens])
        info = page.evaluate("({...window.modelWorker.info, isolated: crossOriginIsolated})")
    finally:
        context.close()
    shown = re.search(r"([\d.]+) tokens/s", stats)
    ran = info["kernels"] + ("-int8" if info["weights"] == "int8" else "") + (", isolated" if info["isolated"] else "")
    return {"kernels": ran, "first_token_ms": first[0], "chat_decode_tok_s": decode_rate(first),
            "second_first_token_ms": second[0], "second_chat_decode_tok_s": decode_rate(second),
            "stats_tok_s": float(shown[1]) if shown else None,
            "worker_prefill_ms": worker["prefill_ms"],
            "worker_decode_tok_s": worker["decode_tokens"] / worker["decode_ms"] * 1e3}


def medians(runs: list[dict]) -> dict:
    """The median of each figure over runs of one page (its `kernels` as the first run says)."""
    figures = {key for key, value in runs[0].items() if isinstance(value, (int, float))}
    return {**runs[0], **{key: statistics.median(run[key] for run in runs if run[key] is not None) for key in figures}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--kernels", nargs="+", default=["simd", "simd-int8", "numpy"])
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--isolated", action="store_true", help="serve with COOP/COEP (SharedArrayBuffer)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each page, in turns; the table gives medians")
    args = parser.parse_args()
    model, _ = load_timed(args.model)
    prompts = tuple(prompt_of(model.tokenizer, args.prompt_tokens, start) for start in ("The", "A", "Once"))
    native = measure(model, args.prompt_tokens, args.new_tokens)
    runs: dict[str, list[dict]] = {}
    with AppServer(ROOT, isolated=args.isolated) as app, HubServer({REPO: {"main": args.model}}) as hub, sync_playwright() as playwright:
        browser = launch(playwright)
        for _ in range(args.repeats):
            for kernels in args.kernels:
                for workers in args.workers:
                    url = f"{app.url}/?" + urlencode({"model": REPO, "endpoint": hub.url, "temperature": 0,
                                                      "max_new_tokens": args.new_tokens, "repetition_penalty": 1.0,
                                                      "workers": workers, "kernels": kernels.removesuffix("-int8"),
                                                      "weights": "int8" if kernels.endswith("-int8") else "float32"})
                    run = chat_run(browser, url, prompts, args.new_tokens)
                    runs.setdefault(f"{kernels}, {workers} worker(s)", []).append(run)
                    print(f"  {kernels}, {workers} worker(s): {run}", file=sys.stderr, flush=True)
        browser.close()
    rows = {name: medians(page_runs) for name, page_runs in runs.items()}
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps({"cpu": cpu_model(), "native": native, "pages": rows, "runs": runs},
                                               indent=2))
    each = "one run each" if args.repeats == 1 else f"medians of {args.repeats} runs each"
    print(f"\nCPU: {cpu_model()}. GPT-2 124M random, greedy, prompt {args.prompt_tokens} tokens, "
          f"{args.new_tokens} new; {each}; pages {'' if args.isolated else 'not '}cross-origin isolated")
    print("| page (kernels, workers) | chat, 1st reply: first token ms, decode tok/s | chat, 2nd reply: first token ms, "
          "decode tok/s (stats line) | worker alone: prefill ms, decode tok/s | 2nd reply / worker |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, r in rows.items():
        print(f"| {name}{'' if r['kernels'].split(',')[0] == name.split(',')[0] else ' (ran ' + r['kernels'] + ')'} "
              f"| {r['first_token_ms']:.0f}, {r['chat_decode_tok_s']:.1f} "
              f"| {r['second_first_token_ms']:.0f}, {r['second_chat_decode_tok_s']:.1f} ({r['stats_tok_s']}) "
              f"| {r['worker_prefill_ms']:.0f}, {r['worker_decode_tok_s']:.1f} "
              f"| {r['second_chat_decode_tok_s'] / r['worker_decode_tok_s']:.2f} |")
    print(f"| CPython, NumPy + BLAS, 1 thread | | | {native['prefill_ms']:.0f}, {native['decode_tok_s']:.1f} | |")


if __name__ == "__main__":
    main()
