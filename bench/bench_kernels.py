"""Benchmark of the WebAssembly SIMD kernels (kernels/matmul.js), float32 and int8 weights, against
NumPy's einsum, all in one Pyodide web worker in headless Chromium, on GPT-2 small's weight
products.

    python bench/bench_kernels.py [--seconds 1.5] [--json bench/out/kernels.json]

Serves the repository (tools/serve.py; fills vendor/ first, as it does) and starts one module
worker that loads Pyodide + NumPy from vendor/ and the kernels, then times y = x @ w.T for every
weight matrix of GPT-2 small (w stored (out, in), as engine/gpt2/forward.py keeps it) at 1 row
(decode: GEMV) and 128 rows (prefill: GEMM), by the float32 kernel and by the int8 kernel (the
same w quantized per row by addWeightInt8), copying x in and y out included, as a caller pays it,
and by `np.einsum("...ik,...jk->...ij", x, w)` (what the engine runs in Pyodide). Each figure is
the median of the runs made in about --seconds (at least 3). GFLOP/s counts 2 * n_seq * n_in *
n_out; GB/s is the weight matrix's bytes as held (4 a weight in float32, 1 in int8, plus its
scales) over the time (the floor of a GEMV's memory traffic). Also checks the kernels' results
against einsum's: the float32 kernel's error is rounding, the int8 kernel's is mostly the
quantization of w. Then the 48 GEMVs of 12 layers with distinct weights (cache-cold), by each.
Prints a table with the CPU model and writes it as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_native import cpu_model  # noqa: E402
from tools import vendor_runtime  # noqa: E402
from tools.browser import launch  # noqa: E402
from tools.serve import AppServer  # noqa: E402

# GPT-2 small's weight matrices: (name, n_in, n_out, how many a forward pass runs, rows of x).
# The LM head runs on one row only: a prefill asks only the last token's logits, and einsum over
# 128 x 768 x 50257 fails in wasm32 ("iterator is too large").
ROWS = (1, 128)
MATRICES = [("attn qkv", 768, 2304, 12, ROWS), ("attn out", 768, 768, 12, ROWS), ("mlp up", 768, 3072, 12, ROWS),
            ("mlp down", 3072, 768, 12, ROWS), ("lm head", 768, 50257, 1, (1,))]
PAGE = "/__bench_kernels__.html"  # answered by the benchmark itself, not a file

# Runs in the worker's Pyodide: the data, einsum's timing, and the check of the kernel's result.
PYTHON = """
import time
import numpy as np

rng = np.random.default_rng(0)

def median_ms(run, seconds):
    # timers are coarse (100 us) outside cross-origin isolation: each sample runs >= 5 ms
    batch, times, end = 1, [], time.perf_counter() + seconds
    while len(times) < 3 or time.perf_counter() < end:
        start = time.perf_counter()
        for _ in range(batch):
            run()
        elapsed = (time.perf_counter() - start) * 1000
        if elapsed < 5:
            batch *= 2
        else:
            times.append(elapsed / batch)
    return sorted(times)[len(times) // 2]

def einsum_ms(x, w, seconds):
    return median_ms(lambda: np.einsum("...ik,...jk->...ij", x, w), seconds)

def layer_stack():
    '''12 layers of distinct weights, [(x, w)] per product in pass order: 340 MB, more than a
    CPU's caches hold, as in decoding a real model (the table's rows run on cache-hot weights).'''
    return [(rng.standard_normal((1, n_in), dtype=np.float32), rng.standard_normal((n_out, n_in), dtype=np.float32))
            for _ in range(12) for n_in, n_out in ((768, 2304), (768, 768), (768, 3072), (3072, 768))]

def stack_einsum_ms(stack, seconds):
    return median_ms(lambda: [np.einsum("...ik,...jk->...ij", x, w) for x, w in stack], seconds)

def error(x, w, y_bytes):
    '''The kernel's largest error, relative to |x| @ |w|.T (the size of each sum's terms).'''
    y = np.frombuffer(y_bytes.to_bytes(), dtype=np.float32).reshape(x.shape[0], w.shape[0])
    scale = np.einsum("...ik,...jk->...ij", np.abs(x), np.abs(w))
    return float(np.max(np.abs(y - np.einsum("...ik,...jk->...ij", x, w)) / scale))
"""

WORKER = """
self.onmessage = async ({ data: { origin, python, matrices, seconds } }) => {
  try {
    const { loadKernels, simdSupported } = await import(`${origin}/kernels/matmul.js`);
    const { loadPyodide } = await import(`${origin}/vendor/pyodide/pyodide.mjs`);
    const pyodide = await loadPyodide({ indexURL: `${origin}/vendor/pyodide/` });
    await pyodide.loadPackage("numpy");
    pyodide.runPython(python);
    const kernels = await loadKernels();
    const array = code => pyodide.runPython(code);
    const floats = proxy => { const buffer = proxy.getBuffer("f32"); const data = buffer.data.slice(); buffer.release(); return data; };
    const medianMs = run => { // as median_ms in Python
      let batch = 1;
      const times = [], end = performance.now() + seconds * 1000;
      while (times.length < 3 || performance.now() < end) {
        const start = performance.now();
        for (let i = 0; i < batch; i++) run();
        const elapsed = performance.now() - start;
        if (elapsed < 5) batch *= 2;
        else times.push(elapsed / batch);
      }
      return times.sort((a, b) => a - b)[times.length >> 1];
    };
    const [error, einsumMs] = ["error", "einsum_ms"].map(name => pyodide.globals.get(name));
    const results = [];
    for (const [name, nIn, nOut, count, rows] of matrices) {
      const w = array(`rng.standard_normal((${nOut}, ${nIn}), dtype=np.float32)`);
      const ws = floats(w);
      const handle = kernels.addWeight(ws, nOut, nIn);
      const handle8 = kernels.addWeightInt8(ws, nOut, nIn);
      for (const nSeq of rows) {
        const x = array(`rng.standard_normal((${nSeq}, ${nIn}), dtype=np.float32)`);
        const xs = floats(x);
        const kernel_ms = medianMs(() => kernels.matmul_t(xs, nSeq, handle));
        const int8_ms = medianMs(() => kernels.matmul_t(xs, nSeq, handle8));
        const y = kernels.matmul_t(xs, nSeq, handle), y8 = kernels.matmul_t(xs, nSeq, handle8);
        const einsum_ms = einsumMs(x, w, seconds);
        results.push({ name, n_seq: nSeq, n_in: nIn, n_out: nOut, count, kernel_ms, int8_ms, einsum_ms,
                       error: error(x, w, new Uint8Array(y.buffer)), int8_error: error(x, w, new Uint8Array(y8.buffer)) });
        x.destroy();
      }
      w.destroy();
    }
    const stack = pyodide.runPython("stack = layer_stack(); stack");
    const products = stack.toJs({ depth: 1 }).map(pair => {
      const [x, w] = [pair.get(0), pair.get(1)];
      const [ws, nOut, nIn] = [floats(w), w.shape.get(0), w.shape.get(1)];
      const job = { x: floats(x), nSeq: 1, handle: kernels.addWeight(ws, nOut, nIn), handle8: kernels.addWeightInt8(ws, nOut, nIn) };
      [x, w, pair].forEach(p => p.destroy());
      return job;
    });
    const stack_kernel_ms = medianMs(() => products.forEach(p => kernels.matmul_t(p.x, p.nSeq, p.handle)));
    const stack_int8_ms = medianMs(() => products.forEach(p => kernels.matmul_t(p.x, p.nSeq, p.handle8)));
    const stack_einsum_ms = pyodide.globals.get("stack_einsum_ms")(stack, seconds);
    postMessage({ stack_kernel_ms, stack_int8_ms, stack_einsum_ms, results, simd: simdSupported(),
                  kernel_memory_bytes: kernels.bytes });
  } catch (error) {
    postMessage({ error: String(error.stack ?? error) });
  }
};
"""

RUN_WORKER = """
([worker, message]) => new Promise(resolve => {
  const url = URL.createObjectURL(new Blob([worker], { type: "text/javascript" }));
  const w = new Worker(url, { type: "module" });
  w.onmessage = ({ data }) => { w.terminate(); resolve(data); };
  w.onerror = event => resolve({ error: event.message });
  w.postMessage(message);
})
"""


def run(seconds: float) -> dict:
    """Start the worker in headless Chromium and return what it measured."""
    if vendor_runtime.main([]) != 0:
        sys.exit("bench_kernels: could not fill vendor/ (Pyodide and NumPy for the worker)")
    with AppServer(ROOT) as app, sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        page.route(app.url + PAGE, lambda route: route.fulfill(body="<!doctype html><title>kernels</title>",
                                                               content_type="text/html"))
        page.goto(app.url + PAGE)
        message = {"origin": app.url, "python": PYTHON, "matrices": MATRICES, "seconds": seconds}
        measured = page.evaluate(RUN_WORKER, [WORKER, message])
        version = browser.version
        browser.close()
    if "error" in measured:
        sys.exit(f"bench_kernels: the worker failed: {measured['error']}")
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "chromium": version, **measured}


# The layer matrices' weights: the 48 GEMVs' bytes in float32 (4 a weight) and int8 (1, + scales).
LAYER_WEIGHTS = 12 * sum(n_in * n_out for _, n_in, n_out, count, _ in MATRICES if count == 12)
LAYER_ROWS = 12 * sum(n_out for _, n_in, n_out, count, _ in MATRICES if count == 12)


def rates(ms: float, r: dict, int8: bool = False) -> str:
    flops = 2 * r["n_seq"] * r["n_in"] * r["n_out"]
    weight_bytes = r["n_in"] * r["n_out"] + 4 * r["n_out"] if int8 else 4 * r["n_in"] * r["n_out"]
    return f"{ms:9.2f} {flops / ms / 1e6:7.2f} {weight_bytes / ms / 1e6:6.1f}"


def pass_ms(results: list[dict], n_seq: int, key: str) -> float:
    """The time of the weight products of one forward pass over n_seq tokens: every layer's at
    n_seq rows, the LM head's at one (a prefill asks only the last token's logits)."""
    return sum(r[key] * r["count"] for r in results if r["n_seq"] == (1 if r["name"] == "lm head" else n_seq))


def table(report: dict) -> str:
    """The measurements as a Markdown table, then the totals per forward pass of GPT-2 small."""
    lines = [f"CPU: {report['cpu']} ({report['cores']} cores), Chromium {report['chromium']}, one worker, "
             f"WASM SIMD: {report['simd']}",
             "",
             "| product | x @ w.T | f32 kernel ms | GFLOP/s | GB/s | int8 kernel ms | GFLOP/s | GB/s "
             "| einsum ms | GFLOP/s | GB/s | f32 vs einsum | int8 vs einsum | int8 vs f32 | f32 max error "
             "| int8 max error |",
             "| --- | --- |" + " ---: |" * 14]
    for r in report["results"]:
        kernel, int8, einsum = (rates(r["kernel_ms"], r).split(), rates(r["int8_ms"], r, int8=True).split(),
                                rates(r["einsum_ms"], r).split())
        shape = f"{r['n_seq']}x{r['n_in']} · ({r['n_out']}x{r['n_in']})"
        lines.append(f"| {r['name']} | {shape} | {' | '.join(kernel)} | {' | '.join(int8)} | {' | '.join(einsum)} | "
                     f"{r['einsum_ms'] / r['kernel_ms']:.2f}x | {r['einsum_ms'] / r['int8_ms']:.2f}x | "
                     f"{r['kernel_ms'] / r['int8_ms']:.2f}x | {r['error']:.1e} | {r['int8_error']:.1e} |")
    lines.append("\n(max error: of the kernel's y against einsum's x @ w.T, relative to |x| @ |w|.T; for int8 it is "
                 "the quantization of w, against the float32 product)")
    for n_seq in ROWS:
        kernel, int8, einsum = (pass_ms(report["results"], n_seq, key) for key in ("kernel_ms", "int8_ms", "einsum_ms"))
        lines.append(f"\nWeight products of a forward pass over {n_seq} token(s), 12 layers + LM head on the last: "
                     f"f32 kernel {kernel:.1f} ms, int8 kernel {int8:.1f} ms, einsum {einsum:.1f} ms "
                     f"(f32 {einsum / kernel:.2f}x, int8 {einsum / int8:.2f}x einsum; int8 {kernel / int8:.2f}x f32)")
    kernel, int8, einsum = report["stack_kernel_ms"], report["stack_int8_ms"], report["stack_einsum_ms"]
    f32_mb, int8_mb = 4 * LAYER_WEIGHTS / 1e6, (LAYER_WEIGHTS + 4 * LAYER_ROWS) / 1e6
    lines.append(f"\nThe 48 GEMVs of 12 layers with distinct weights (cache-cold as in decoding; {f32_mb:.0f} MB in "
                 f"float32, {int8_mb:.0f} MB in int8): f32 kernel {kernel:.1f} ms ({f32_mb / kernel:.1f} GB/s), "
                 f"int8 kernel {int8:.1f} ms ({int8_mb / int8:.1f} GB/s), einsum {einsum:.1f} ms "
                 f"({f32_mb / einsum:.1f} GB/s): f32 {einsum / kernel:.2f}x, int8 {einsum / int8:.2f}x einsum; "
                 f"int8 {kernel / int8:.2f}x f32")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="time per measurement (default 1.5)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "kernels.json")
    args = parser.parse_args(argv)
    report = run(args.seconds)
    print(table(report))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
