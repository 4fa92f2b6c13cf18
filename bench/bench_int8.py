"""How far int8 weights move the logits from float32's, in the page (one worker, the SIMD kernels).

    python bench/bench_int8.py [--model bench/models/gpt2-random] [--tokens 128]

Loads the checkpoint twice into one page (weights=float32, then weights=int8), asks the worker
for the logits of the same --tokens tokens (worker.logits) and prints the largest and the mean
logit difference, the logits' spread, and how often the most likely next token is the same.
"""
from __future__ import annotations

import bench_native  # noqa: I001  first: it pins BLAS to one thread before NumPy loads

import argparse
import json
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
from playwright.sync_api import sync_playwright

from bench_browser import prompt_of
from bench_native import DEFAULT_MODEL, ROOT, cpu_model, load_timed
from tools.browser import launch
from tools.hub_server import HubServer
from tools.serve import AppServer

REPO = "bench/model"
LOAD = "async request => JSON.parse(await window.modelWorker.load(JSON.stringify(request)))"
LOGITS = "async ids => Array.from(await window.modelWorker.logits(JSON.stringify(ids)))"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    model, _ = load_timed(args.model)
    ids = model.tokenizer.encode(prompt_of(model.tokenizer, args.tokens))
    logits = {}
    with AppServer(ROOT) as app, HubServer({REPO: {"main": args.model}}) as hub, sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context().new_page()
        page.set_default_timeout(600_000)
        page.goto(f"{app.url}/?" + urlencode({"endpoint": hub.url, "workers": 1}))
        page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Runtime ready')")
        for weights in ("float32", "int8"):
            reply = page.evaluate(LOAD, {"repo": REPO, "endpoint": hub.url, "kernels": "simd", "weights": weights})
            assert reply.get("weights") == weights, reply
            logits[weights] = np.array(page.evaluate(LOGITS, ids), dtype=np.float32).reshape(len(ids), -1)
        browser.close()
    f32, q8 = logits["float32"], logits["int8"]
    diff = np.abs(q8 - f32)
    result = {"cpu": cpu_model(), "model": str(args.model), "tokens": len(ids), "max_error": float(diff.max()),
              "mean_error": float(diff.mean()), "logit_std": float(f32.std()),
              "top1_agreement": float(np.mean(q8.argmax(-1) == f32.argmax(-1)))}
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "int8.json").write_text(json.dumps(result, indent=2))
    print(f"\n{args.model.name}, {len(ids)} positions, int8 vs float32 weights in the page (CPU: {result['cpu']})")
    print("| max logit error | mean logit error | logits' standard deviation | top-1 agreement |")
    print("| ---: | ---: | ---: | ---: |")
    print(f"| {result['max_error']:.3f} | {result['mean_error']:.4f} | {result['logit_std']:.3f} "
          f"| {result['top1_agreement']:.3f} |")


if __name__ == "__main__":
    main()
