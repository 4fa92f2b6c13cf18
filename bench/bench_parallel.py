"""Tensor-parallel benchmark: the GPT-2-small-shaped random checkpoint split over 1, 2, ...
workers (examples/parallel/, client/parallel.js) in headless Chromium, runs interleaved.

    python bench/bench_parallel.py [--workers 1 2] [--shared 2] [--repeats 3] [--baseline]

Per run: a fresh browser context loads the model into N workers, then times prefill of a
128-token prompt (start + first step), decode of 128 greedy tokens, the coordinator's time in
exchanges, and the round trip of an empty call to every worker at once. --shared N also runs N
workers on a cross-origin-isolated page (the shards all-reduce through SharedArrayBuffers, one
call per token); --baseline also times the app's own single model worker (index.html). The
machine may be shared, so runs alternate between settings, medians are reported, and each
repeat measures before each run how much parallel CPU there is (two busy processes vs one: 2.0 on two free
cores, 1.0 when only one core's worth is free). Writes bench/out/parallel.json.
"""
from __future__ import annotations

import bench_native  # noqa: F401,I001  first: it pins BLAS to one thread before NumPy loads

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

from playwright.sync_api import sync_playwright

from bench_browser import NEW_TOKENS, PROMPT_TOKENS, REPO, TIME_GENERATION, log, prompt_of
from bench_native import DEFAULT_MODEL, ROOT, ensure_checkpoint
from browser_llm import load_model
from tools.browser import launch
from tools.hub_server import HubServer
from tools.serve import AppServer

READY_TIMEOUT_S = 600
TIME_PARALLEL = """
async ([prompt, settings, steps]) => {
  const m = window.parallelModel;
  const rtt = async n => { const t = performance.now();
    for (let i = 0; i < n; i++) await Promise.all(m.workers.map(w => w.sync.heap_bytes()));
    return (performance.now() - t) / n; };
  const roundTripMs = await rtt(50);
  const t0 = performance.now();
  const info = JSON.parse(await m.start(JSON.stringify({ prompt, settings: JSON.parse(settings) })));
  let token = JSON.parse(await m.step());
  const t1 = performance.now();
  const before = { ...m.timings };
  await Promise.all(m.workers.map(w => w.sync.shard_busy()));
  let n = 0;
  while (n < steps && !token.finish) { token = JSON.parse(await m.step()); n += 1; }
  const t2 = performance.now();
  const busy = (await Promise.all(m.workers.map(w => w.sync.shard_busy()))).map(JSON.parse);
  await m.stop();
  return { prompt_tokens: info.prompt_tokens, prefill_ms: t1 - t0, decode_tokens: n, decode_ms: t2 - t1,
           finish: token.finish, heap_bytes: await m.heap_bytes(), round_trip_ms: roundTripMs,
           exchanges_per_step: (m.timings.exchanges - before.exchanges) / n,
           exchange_ms_per_step: (m.timings.exchangeMs - before.exchangeMs) / n,
           busy_ms_per_step: busy.map(b => b.seconds * 1e3 / n),
           wait_ms_per_step: busy.map(b => (b.wait ?? 0) * 1e3 / n),
           shard_mb: m.info.shard_bytes.map(b => b / 2 ** 20) };
}
"""


SPIN = "import time\nt=time.perf_counter()+1.5\nn=0\nwhile time.perf_counter()<t:\n  n+=1\nprint(n)"


def cpu_parallelism() -> float:
    """Throughput of two CPU-bound processes at once over one alone."""
    def spin(k: int) -> int:
        procs = [subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True) for _ in range(k)]
        return sum(int(p.communicate()[0]) for p in procs)
    return spin(2) / spin(1)


def run(browser, url: str, ready: str, script: str, prompt: str, settings: str) -> dict:
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(READY_TIMEOUT_S * 1000)
    try:
        start = time.perf_counter()
        page.goto(url)
        page.wait_for_function(ready, timeout=READY_TIMEOUT_S * 1000, polling=100)
        ready_s = time.perf_counter() - start
        result = page.evaluate(script, [prompt, settings, NEW_TOKENS])
    finally:
        context.close()
    if errors:
        raise RuntimeError(f"page errors: {errors}")
    return result | {"ready_s": ready_s, "decode_tok_s": result["decode_tokens"] / result["decode_ms"] * 1e3,
                     "step_ms": result["decode_ms"] / result["decode_tokens"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--shared", type=int, nargs="*", default=[],
                        help="worker counts to run on a cross-origin-isolated page (SharedArrayBuffer all-reduce)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", action="store_true", help="also time the app's single model worker")
    args = parser.parse_args()
    ensure_checkpoint(args.model)
    prompt = prompt_of(load_model(args.model).tokenizer, PROMPT_TOKENS)
    settings = json.dumps({"temperature": 0, "repetition_penalty": 1, "max_new_tokens": NEW_TOKENS + 1})
    settings_list = (["app"] if args.baseline else []) + [str(n) for n in args.workers] + \
        [f"{n}-shared" for n in args.shared]
    runs: dict[str, list[dict]] = {s: [] for s in settings_list}
    cpus = []
    with AppServer(ROOT) as app, AppServer(ROOT, isolated=True) as isolated, \
            HubServer({REPO: {"main": args.model}}) as hub, sync_playwright() as p:
        browser = launch(p)
        for i in range(args.repeats):
            for s in settings_list:
                cpus.append(cpu_parallelism())
                if s == "app":
                    url = f"{app.url}/?" + urlencode({"model": REPO, "endpoint": hub.url})
                    ready = "() => /^(Ready|Could not)/.test(document.querySelector('#status')?.textContent)"
                    r = run(browser, url, ready, TIME_GENERATION, prompt, settings)
                    r |= {"decode_tok_s": r["decode_tokens"] / r["decode_ms"] * 1e3}
                else:
                    server = isolated if s.endswith("-shared") else app
                    url = f"{server.url}/examples/parallel/?" + urlencode(
                        {"model": REPO, "endpoint": hub.url, "workers": s.split("-")[0]})
                    r = run(browser, url, "() => /^Ready/.test(document.getElementById('status').textContent)",
                            TIME_PARALLEL, prompt, settings)
                runs[s].append(r | {"cpu_parallelism": cpus[-1]})
                log(f"repeat {i + 1}, {s} worker(s), CPU parallelism {cpus[-1]:.2f}: ready {r['ready_s']:.1f} s, prefill {r['prefill_ms']:.0f} ms, "
                    f"decode {r['decode_tok_s']:.2f} tok/s ({r['step_ms']:.1f} ms/step"
                    + (f", exchanges {r['exchange_ms_per_step']:.1f} ms/step, round trip {r['round_trip_ms']:.2f} ms, "
                       f"busy per shard {[round(b, 1) for b in r['busy_ms_per_step']]} ms/step, "
                       f"barrier waits {[round(b, 1) for b in r['wait_ms_per_step']]} ms/step"
                       if "round_trip_ms" in r else "") + ")")
        browser.close()
    keys = ["ready_s", "prefill_ms", "decode_tok_s", "step_ms", "exchange_ms_per_step", "round_trip_ms", "heap_bytes"]
    summary = {s: {k: statistics.median(r[k] for r in rs) for k in keys if k in rs[0]} for s, rs in runs.items()}
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "parallel.json").write_text(json.dumps({"summary": summary, "runs": runs, "cpu_parallelism": cpus},
                                                  indent=2))
    print(f"\nCPU parallelism during the runs (2 = two free cores): {[round(c, 2) for c in cpus]}")
    print(f"\n| GPT-2 124M random, medians of {args.repeats} | prefill {PROMPT_TOKENS} (ms) | decode (tok/s) "
          "| ms/step | of which exchanges | empty round trip (ms) | heap/worker (MB) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for s, m in summary.items():
        label = "app, 1 model worker" if s == "app" else \
            f"{s.split('-')[0]} worker(s), " + ("SharedArrayBuffer" if s.endswith("shared") else "messages")
        print(f"| {label} | {m['prefill_ms']:.0f} | {m['decode_tok_s']:.2f} | {m['step_ms']:.1f} | "
              f"{m.get('exchange_ms_per_step', float('nan')):.1f} | {m.get('round_trip_ms', float('nan')):.2f} | "
              f"{m['heap_bytes'] / 2**20:.0f} |")


if __name__ == "__main__":
    main()
