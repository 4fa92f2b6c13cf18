"""transformers.js on the same GPT-2-small-shaped random checkpoint, in headless Chromium.

    python bench/bench_transformersjs.py [--onnx bench/models/gpt2-random-onnx] [--checkpoint bench/models/gpt2-random]
                                         [--dtypes fp32 q8] [--threads 1 2] [--repeats 3]

What it runs: @huggingface/transformers from npm (bench/transformersjs/, `npm install` there; the
onnxruntime-web it pins, its asyncify WASM build as transformers.js loads it by default, served
locally), device "wasm", on the ONNX export of the checkpoint that tools/export_onnx.py makes
(optimum, text-generation-with-past: onnx/model.onnx is dtype "fp32", onnx/model_quantized.onnx
is "q8", int8 weights by onnxruntime's dynamic quantization). Both are made here when missing.

The page (bench/transformersjs/bench.html) is served cross-origin isolated (COOP/COEP, tools/serve.py)
so ONNX Runtime can run 2 WASM threads. Each dtype x thread count gets a fresh browser context
(ORT fixes its thread count when it starts): load the model, then a warm-up generation and
--repeats timed ones of 65 greedy tokens from a prompt of exactly 128 GPT-2 tokens
(bench_browser.prompt_of): prefill = time to the first new token, decode = tokens/s of the 64 after
it, as bench_browser.py times the app. min_new_tokens keeps EOS out. The tokens are compared with
our engine's greedy tokens (natively, in CPython) for the same prompt: fp32 should match them all.

Prints a markdown table (medians, with the CPU model) and writes bench/out/transformersjs.json.
Its "other load" column is the CPU (in cores) that processes outside this benchmark took while a
configuration ran: on this 2-core machine anything above ~0.1 makes that row's timings unreliable.
"""
from __future__ import annotations

import bench_native  # noqa: I001  first: it pins BLAS to one thread before NumPy loads

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from playwright.sync_api import sync_playwright

from bench_browser import prompt_of
from bench_native import DEFAULT_MODEL, ROOT, cpu_model, load_timed
from tools.browser import launch
from tools.serve import AppServer

PROMPT_TOKENS = 128
NEW_TOKENS = 64
PACKAGE_DIR = ROOT / "bench" / "transformersjs"
PAGE = "bench/transformersjs/bench.html"
DEFAULT_ONNX = ROOT / "bench" / "models" / "gpt2-random-onnx"
TIMEOUT_S = 600


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def ensure_package() -> dict[str, str]:
    """npm install in bench/transformersjs/ when node_modules is missing; the installed versions."""
    lib = PACKAGE_DIR / "node_modules" / "@huggingface" / "transformers" / "package.json"
    if not lib.is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("npm not found: install Node.js, then `npm install` in bench/transformersjs/")
        command = "ci" if (PACKAGE_DIR / "package-lock.json").is_file() else "install"
        log(f"npm {command} in bench/transformersjs/ ...")
        subprocess.run([npm, command, "--no-audit", "--no-fund"], cwd=PACKAGE_DIR, check=True)
    ort = PACKAGE_DIR / "node_modules" / "onnxruntime-web" / "package.json"
    return {"transformers.js": json.loads(lib.read_text())["version"],
            "onnxruntime-web": json.loads(ort.read_text())["version"]}


def ensure_onnx(checkpoint: Path, onnx_dir: Path, dtypes: list[str]) -> None:
    """Run tools/export_onnx.py when an ONNX file the run needs is missing."""
    names = {"fp32": "model.onnx", "q8": "model_quantized.onnx"}
    needed = [onnx_dir / "onnx" / names[d] for d in dtypes] + [onnx_dir / "tokenizer.json"]
    if not all(p.is_file() for p in needed):
        log(f"exporting {checkpoint} to {onnx_dir} (tools/export_onnx.py) ...")
        subprocess.run([sys.executable, str(ROOT / "tools" / "export_onnx.py"), str(checkpoint), str(onnx_dir)],
                       check=True)


def native_greedy(model, prompt: str, n: int) -> list[int]:
    """Our engine's first n greedy tokens for the prompt (the reference for the token check)."""
    steps = model.generate(prompt, temperature=0, repetition_penalty=1.0, max_new_tokens=n)
    return [step.token_id for step in steps]


def matching_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def cpu_snapshot() -> dict:
    """The time, the whole machine's busy CPU seconds, and each process's CPU seconds and name
    (/proc), with the pids of this benchmark's process tree (itself, Playwright's driver, Chromium)."""
    tick = os.sysconf("SC_CLK_TCK")
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    parents, procs = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            rest = stat[stat.rindex(")") + 2:].split()
            pid = int(entry.name)
            parents[pid] = int(rest[1])
            procs[pid] = ((int(rest[11]) + int(rest[12])) / tick, stat[stat.index("(") + 1:stat.rindex(")")])
    ours, todo = set(), [os.getpid()]
    while todo:
        pid = todo.pop()
        ours.add(pid)
        todo += [child for child, parent in parents.items() if parent == pid]
    return {"wall": time.monotonic(), "busy": (sum(fields) - fields[3] - fields[4]) / tick,  # not idle/iowait
            "procs": procs, "ours": ours}


def other_load(before: dict, after: dict) -> tuple[float, list[str]]:
    """Cores' worth of CPU that processes outside this benchmark used between two snapshots (a
    process of ours that ended in between is missed and counted as other), and the busiest of them."""
    wall = after["wall"] - before["wall"]
    if wall <= 0:
        return 0.0, []
    used = {pid: t - before["procs"].get(pid, (0.0, ""))[0] for pid, (t, _) in after["procs"].items()}
    ours = sum(used[pid] for pid in after["ours"] if pid in used)
    load = max(0.0, (after["busy"] - before["busy"] - ours) / wall)
    top = sorted((pid for pid in used if pid not in after["ours"]), key=lambda pid: -used[pid])[:3]
    return load, [f"{after['procs'][pid][1]} {used[pid] / wall:.2f}" for pid in top if used[pid] / wall >= 0.05]


def run_config(browser, url: str, options: dict) -> dict:
    """One fresh context: load with options' dtype and thread count, time the generations."""
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("crash", lambda _: errors.append("the page crashed"))
    page.on("console", lambda msg: msg.type in ("error", "warning") and log(f"    console.{msg.type}: {msg.text}"))
    page.on("response", lambda response: response.status >= 400 and log(f"    HTTP {response.status}: {response.url}"))
    page.set_default_timeout(TIMEOUT_S * 1000)
    try:
        page.goto(url)
        page.wait_for_function("() => window.benchReady === true")
        before = cpu_snapshot()
        result = page.evaluate("options => window.benchTransformersJs(options)", options)
        result["other_load_cores"], result["other_busiest"] = other_load(before, cpu_snapshot())
    finally:
        context.close()
    if errors:
        raise RuntimeError(f"page errors: {errors}")
    return result


def summarize(dtype: str, threads: int, raw: dict, reference: list[int]) -> dict:
    runs = raw["runs"]
    tokens = runs[0]["tokens"]
    same = matching_prefix(tokens, reference)
    return {
        "dtype": dtype, "threads_asked": threads, "threads": raw["threads"], "isolated": raw["isolated"],
        "load_s": raw["load_ms"] / 1e3, "other_load_cores": raw["other_load_cores"],
        "other_busiest": raw["other_busiest"],
        "prompt_tokens": runs[0]["prompt_tokens"],
        "prefill_ms": statistics.median(r["prefill_ms"] for r in runs),
        "decode_tok_s": statistics.median(r["decode_tok_s"] for r in runs),
        "step_ms": statistics.median(r["step_ms"] for r in runs),
        "decode_tokens": runs[0]["decode_tokens"],
        "first_run_prefill_ms": raw["first_run"]["prefill_ms"],
        "first_run_decode_tok_s": raw["first_run"]["decode_tok_s"],
        "tokens_same_as_native": same, "tokens_compared": min(len(tokens), len(reference)),
        "runs": [{k: v for k, v in r.items() if k != "tokens"} for r in runs],
        "tokens": tokens,
    }


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}"


def print_table(result: dict) -> None:
    v = result["versions"]
    print(f"\ntransformers.js {v['transformers.js']} (onnxruntime-web {v['onnxruntime-web']}, WASM), "
          f"headless Chromium {result['browser_version']}, on {result['cpu']} ({result['cores']} cores); "
          f"GPT-2 124M random; medians of {result['repeats']} after a warm-up; "
          f"load average before: {result['loadavg_before'][0]:.1f}\n")
    print(f"| dtype | WASM threads | isolated | load (s) | prefill {PROMPT_TOKENS} tok (ms) | "
          f"decode {NEW_TOKENS} tok (tok/s) | per step (ms) | first run: prefill ms / decode tok/s | "
          "greedy tokens = our engine's | other load (cores) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in result["results"]:
        print(f"| {r['dtype']} | {r['threads']} | {'yes' if r['isolated'] else 'no'} | {fmt(r['load_s'])} | "
              f"{fmt(r['prefill_ms'], 0)} | {fmt(r['decode_tok_s'])} | {fmt(r['step_ms'])} | "
              f"{fmt(r['first_run_prefill_ms'], 0)} / {fmt(r['first_run_decode_tok_s'])} | "
              f"{r['tokens_same_as_native']}/{r['tokens_compared']} | {r['other_load_cores']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--onnx", type=Path, default=DEFAULT_ONNX, help="the export (tools/export_onnx.py), inside the repository")
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "q8"], choices=["fp32", "q8"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    versions = ensure_package()
    model, _ = load_timed(args.checkpoint)
    onnx_dir = args.onnx.resolve()
    ensure_onnx(args.checkpoint.resolve(), onnx_dir, args.dtypes)
    try:
        model_dir = onnx_dir.relative_to(ROOT)
    except ValueError:
        raise SystemExit(f"{onnx_dir}: the ONNX export must be inside {ROOT} (the server's root)") from None
    prompt = prompt_of(model.tokenizer, PROMPT_TOKENS)
    reference = native_greedy(model, prompt, NEW_TOKENS + 1)
    del model

    load_before = os.getloadavg()
    results = []
    with AppServer(ROOT, isolated=True) as app, sync_playwright() as p:
        browser = launch(p)
        url = f"{app.url}/{PAGE}"
        for dtype in args.dtypes:
            for threads in args.threads:
                log(f"{dtype}, {threads} thread(s) ...")
                start = time.perf_counter()
                raw = run_config(browser, url, {
                    "modelRoot": f"/{quote(model_dir.parent.as_posix())}/", "modelId": model_dir.name,
                    "dtype": dtype, "threads": threads, "prompt": prompt, "newTokens": NEW_TOKENS,
                    "repeats": args.repeats})
                r = summarize(dtype, threads, raw, reference)
                if r["prompt_tokens"] != PROMPT_TOKENS or r["decode_tokens"] != NEW_TOKENS:
                    raise RuntimeError(f"expected {PROMPT_TOKENS} prompt and {NEW_TOKENS} decode tokens, got {r}")
                if r["threads"] != threads:
                    log(f"  WARNING: asked for {threads} threads, ONNX Runtime reports {r['threads']}")
                log(f"  load {r['load_s']:.1f} s, prefill {r['prefill_ms']:.0f} ms, decode {r['decode_tok_s']:.1f} tok/s, "
                    f"tokens = native: {r['tokens_same_as_native']}/{r['tokens_compared']}, "
                    f"other load {r['other_load_cores']:.2f} cores {r['other_busiest']} "
                    f"({time.perf_counter() - start:.0f} s)")
                results.append(r)
                user_agent = raw["user_agent"]
        browser_version = browser.version
        browser.close()

    result = {
        "cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)), "platform": platform.platform(),
        "loadavg_before": load_before,
        "browser_version": browser_version, "user_agent": user_agent, "versions": versions,
        "checkpoint": str(args.checkpoint), "onnx": str(model_dir), "prompt_tokens": PROMPT_TOKENS,
        "new_tokens": NEW_TOKENS, "repeats": args.repeats, "native_greedy_tokens": reference,
        "results": results,
    }
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "transformersjs.json").write_text(json.dumps(result, indent=2))
    print_table(result)
    log(f"\nwrote {out / 'transformersjs.json'}")


if __name__ == "__main__":
    main()
