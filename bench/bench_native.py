"""Native CPython benchmark of the engine on one thread: prefill and decode speed, peak memory.

    python bench/bench_native.py [--model bench/models/gpt2-random] [--repeats 3]

Makes the GPT-2-small-shaped random checkpoint first if it is missing. Prints a table and
writes bench/out/native.json.
"""
from __future__ import annotations

import os

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"  # one thread, before NumPy loads its BLAS

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from browser_llm import load_model  # noqa: E402

DEFAULT_MODEL = ROOT / "bench" / "models" / "gpt2-random"


def ensure_checkpoint(folder: Path) -> None:
    if not (folder / "model.safetensors").exists():
        subprocess.run([sys.executable, str(ROOT / "tools" / "make_random_checkpoint.py"), str(folder)], check=True)


def load_timed(folder: Path):
    """The checkpoint (made first if missing) loaded natively, and the seconds the load took."""
    ensure_checkpoint(folder)
    start = time.perf_counter()
    model = load_model(folder)
    return model, time.perf_counter() - start


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), to write beside every figure."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(model, prompt_len: int, new_tokens: int) -> dict[str, float]:
    """Time the prefill of a prompt_len-token prompt and the decode of new_tokens tokens."""
    prompt = [(i * 7919) % 50000 for i in range(prompt_len)]
    steps = model.generate(prompt, temperature=0, repetition_penalty=1.0, max_new_tokens=new_tokens + 1)
    start = time.perf_counter()
    next(steps)
    first = time.perf_counter()
    n = sum(1 for _ in steps)
    end = time.perf_counter()
    return {"prefill_ms": (first - start) * 1e3, "decode_tok_s": n / (end - first)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model, load_s = load_timed(args.model)
    runs = [measure(model, args.prompt_tokens, args.new_tokens) for _ in range(args.repeats)]
    result = {
        "model": str(args.model), "params_m": model.n_params / 1e6, "load_s": load_s,
        "prefill_ms": statistics.median(r["prefill_ms"] for r in runs),
        "prefill_tok_s": args.prompt_tokens / statistics.median(r["prefill_ms"] for r in runs) * 1e3,
        "decode_tok_s": statistics.median(r["decode_tok_s"] for r in runs),
        "peak_rss_mb": peak_rss_mb(), "repeats": args.repeats,
        "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens,
    }
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "native.json").write_text(json.dumps(result, indent=2))
    print(f"| CPython {sys.version.split()[0]}, 1 thread | {result['params_m']:.0f}M params |")
    print("| --- | --- |")
    for key in ("load_s", "prefill_ms", "prefill_tok_s", "decode_tok_s", "peak_rss_mb"):
        print(f"| {key} | {result[key]:.1f} |")


if __name__ == "__main__":
    main()
