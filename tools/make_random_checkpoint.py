"""Write a random GPT-2 checkpoint in Hugging Face layout, GPT-2-small shaped by default
(124M parameters, ~500 MB of float32): for benchmarks. Needs only NumPy; never committed.

    python tools/make_random_checkpoint.py bench/models/gpt2-random
"""
from __future__ import annotations

import argparse
import json
import shutil
import struct
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TOKENIZER = ROOT / "tests" / "fixtures" / "gpt2-tokenizer"


def gpt2_shapes(n_layer: int, n_embd: int, n_ctx: int, n_vocab: int) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes as openai-community/gpt2's model.safetensors has them."""
    shapes = {"wte.weight": (n_vocab, n_embd), "wpe.weight": (n_ctx, n_embd)}
    for i in range(n_layer):
        p = f"h.{i}."
        shapes.update({
            p + "ln_1.weight": (n_embd,), p + "ln_1.bias": (n_embd,),
            p + "attn.c_attn.weight": (n_embd, 3 * n_embd), p + "attn.c_attn.bias": (3 * n_embd,),
            p + "attn.c_proj.weight": (n_embd, n_embd), p + "attn.c_proj.bias": (n_embd,),
            p + "ln_2.weight": (n_embd,), p + "ln_2.bias": (n_embd,),
            p + "mlp.c_fc.weight": (n_embd, 4 * n_embd), p + "mlp.c_fc.bias": (4 * n_embd,),
            p + "mlp.c_proj.weight": (4 * n_embd, n_embd), p + "mlp.c_proj.bias": (n_embd,),
        })
    return shapes | {"ln_f.weight": (n_embd,), "ln_f.bias": (n_embd,)}


def write_safetensors(path: Path, shapes: dict[str, tuple[int, ...]], seed: int) -> None:
    """Stream random float32 tensors into a safetensors file, one tensor in memory at a time."""
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = 4 * int(np.prod(shape))
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for name, shape in shapes.items():
            ones = name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight"))
            values = np.ones(shape, np.float32) if ones else rng.standard_normal(shape, np.float32) * 0.02
            f.write(values.astype("<f4").tobytes())


def make_checkpoint(out: Path, n_layer: int = 12, n_embd: int = 768, n_head: int = 12, n_ctx: int = 1024,
                    seed: int = 0, shards: int = 1) -> Path:
    """A random GPT-2 (GPT-2's tokenizer and vocabulary) in `out`: config.json, vocab.json,
    merges.txt, model.safetensors (or, with shards > 1, model-0000i-of-0000n.safetensors files of
    about equal size and model.safetensors.index.json)."""
    out.mkdir(parents=True, exist_ok=True)
    n_vocab = 50257
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "activation_function": "gelu_new",
              "vocab_size": n_vocab, "n_positions": n_ctx, "n_embd": n_embd, "n_head": n_head,
              "n_layer": n_layer, "layer_norm_epsilon": 1e-5, "bos_token_id": 50256, "eos_token_id": 50256}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(TOKENIZER / name, out / name)
    shapes = gpt2_shapes(n_layer, n_embd, n_ctx, n_vocab)
    if shards == 1:
        write_safetensors(out / "model.safetensors", shapes, seed)
        return out
    weight_map = {}
    for i, part in enumerate(split_shapes(shapes, shards), 1):
        name = f"model-{i:05d}-of-{shards:05d}.safetensors"
        write_safetensors(out / name, part, seed + i)
        weight_map |= dict.fromkeys(part, name)
    total = 4 * sum(int(np.prod(shape)) for shape in shapes.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return out


def split_shapes(shapes: dict[str, tuple[int, ...]], n: int) -> list[dict[str, tuple[int, ...]]]:
    """The tensors in order, cut into n runs of about equal bytes (none empty)."""
    sizes = [int(np.prod(shape)) for shape in shapes.values()]
    total, parts, done = sum(sizes), [{} for _ in range(n)], 0
    for (name, shape), size in zip(shapes.items(), sizes):
        part = min(done * n // total, n - 1, len([p for p in parts if p]))  # never skip a part
        parts[part][name] = shape
        done += size
    if not all(parts):
        raise ValueError(f"{len(shapes)} tensors cannot make {n} shards")
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--n-layer", type=int, default=12)
    parser.add_argument("--n-embd", type=int, default=768)
    parser.add_argument("--n-head", type=int, default=12)
    parser.add_argument("--n-ctx", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shards", type=int, default=1, help="weight files (model.safetensors.index.json)")
    args = parser.parse_args()
    print(make_checkpoint(args.out, args.n_layer, args.n_embd, args.n_head, args.n_ctx, args.seed, args.shards))


if __name__ == "__main__":
    main()
