"""Export a GPT-2 checkpoint (HF layout) to ONNX in the layout transformers.js loads.

    python tools/export_onnx.py [CHECKPOINT] [OUTPUT] [--no-slim] [--no-validation]

CHECKPOINT defaults to bench/models/gpt2-random (config.json, model.safetensors, vocab.json,
merges.txt; tools/make_random_checkpoint.py makes it), OUTPUT to bench/models/gpt2-random-onnx.
Writes, as transformers.js's own scripts/convert.py lays a decoder-only model out:

    OUTPUT/config.json, generation_config.json      (from optimum's export)
    OUTPUT/tokenizer.json, tokenizer_config.json, … (GPT2TokenizerFast from vocab.json + merges.txt)
    OUTPUT/onnx/model.onnx                          dtype "fp32": decoder with KV cache
                                                    (optimum, task text-generation-with-past)
    OUTPUT/onnx/model_quantized.onnx                dtype "q8": onnxruntime dynamic quantization,
                                                    int8 weights (QInt8), uint8 activations

The q8 settings follow transformers.js's scripts/quantize.py for gpt2: IntegerOps mode, every op
type onnxruntime can quantize dynamically, weight type QInt8 (the model has no Conv), no
per-channel and no reduced range (gpt2 is in its NO_PER_CHANNEL_REDUCE_RANGE_MODELS), extra
options EnableSubgraph and MatMulConstBOnly. Like convert.py, the fp32 export is run through
onnxslim first (--no-slim skips it).

Needs: pip install torch==2.13.0 optimum-onnx onnxruntime onnxslim (all from PyPI; no Hub access:
the checkpoint is read from disk, HF_HUB_OFFLINE is set).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = ROOT / "bench" / "models" / "gpt2-random"
DEFAULT_OUTPUT = ROOT / "bench" / "models" / "gpt2-random-onnx"
TASK = "text-generation-with-past"


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def save_tokenizer(checkpoint: Path, output: Path) -> None:
    """tokenizer.json and tokenizer_config.json (and the slow files) from vocab.json + merges.txt."""
    from transformers import GPT2TokenizerFast

    tokenizer = GPT2TokenizerFast(vocab_file=str(checkpoint / "vocab.json"),
                                  merges_file=str(checkpoint / "merges.txt"))
    tokenizer.model_max_length = 1024  # n_positions; otherwise it saves a huge sentinel value
    tokenizer.save_pretrained(str(output))


def export_fp32(checkpoint: Path, staging: Path, slim: bool, validate: bool) -> None:
    """optimum's export of the decoder with KV cache into staging/ (model.onnx + configs)."""
    from optimum.exporters.onnx import main_export
    from optimum.utils import logging as optimum_logging

    optimum_logging.set_verbosity_info()  # shows the validation against PyTorch
    main_export(model_name_or_path=str(checkpoint), output=str(staging), task=TASK, device="cpu",
                local_files_only=True, do_validation=validate, slim=slim)


def quantize_q8(source: Path, target: Path) -> None:
    """int8 weights as transformers.js's scripts/quantize.py makes its "q8" (model_quantized.onnx) for gpt2."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    quantize_dynamic(source, target, op_types_to_quantize=sorted(IntegerOpsRegistry),
                     per_channel=False, reduce_range=False, weight_type=QuantType.QInt8,
                     extra_options={"EnableSubgraph": True, "MatMulConstBOnly": True})


def export(checkpoint: Path, output: Path, slim: bool = True, validate: bool = True) -> None:
    if not (checkpoint / "model.safetensors").is_file():
        raise SystemExit(f"{checkpoint}: no model.safetensors (make it with tools/make_random_checkpoint.py)")
    output.mkdir(parents=True, exist_ok=True)
    (output / "onnx").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="export-onnx-", dir=output) as tmp:
        staging = Path(tmp)
        start = time.perf_counter()
        log(f"exporting {checkpoint} ({TASK}) ...")
        export_fp32(checkpoint, staging, slim, validate)
        log(f"  done in {time.perf_counter() - start:.0f} s")
        onnx_files = sorted(p for p in staging.iterdir() if p.suffix in (".onnx", ".onnx_data"))
        if [p.name for p in onnx_files] != ["model.onnx"]:
            raise SystemExit(f"expected optimum to write model.onnx alone, got {[p.name for p in onnx_files]}")
        for path in staging.iterdir():
            if path.suffix == ".json" and not path.name.startswith("tokenizer") \
                    and path.name not in ("vocab.json", "special_tokens_map.json"):
                shutil.copy2(path, output / path.name)  # config.json, generation_config.json
        fp32 = output / "onnx" / "model.onnx"
        shutil.move(staging / "model.onnx", fp32)
    start = time.perf_counter()
    log("quantizing to q8 ...")
    quantize_q8(fp32, output / "onnx" / "model_quantized.onnx")
    log(f"  done in {time.perf_counter() - start:.0f} s")
    save_tokenizer(checkpoint, output)
    for path in sorted(output.rglob("*")):
        if path.is_file():
            log(f"  {path.relative_to(output)}  {path.stat().st_size / 2**20:.1f} MB")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, nargs="?", default=DEFAULT_CHECKPOINT)
    parser.add_argument("output", type=Path, nargs="?", default=DEFAULT_OUTPUT)
    parser.add_argument("--no-slim", action="store_true", help="skip onnxslim on the fp32 export")
    parser.add_argument("--no-validation", action="store_true", help="skip optimum's ONNX-vs-PyTorch check")
    args = parser.parse_args(argv)
    export(args.checkpoint.resolve(), args.output.resolve(), slim=not args.no_slim, validate=not args.no_validation)


if __name__ == "__main__":
    main()
