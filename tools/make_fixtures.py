#!/usr/bin/env python
"""Generate the test fixtures under tests/fixtures/ (dev only: needs torch and transformers).

Writes:
  * gpt2-tokenizer/{vocab.json,merges.txt}: GPT-2's tokenizer, derived offline from
    npm tiktoken's encoders/gpt2.json and checked against tiktoken and transformers;
  * models/<name>/: small random GPT-2 checkpoints in Hugging Face layout, using a
    GPT-2 tokenizer truncated to 1024 ids, in several storage formats;
  * reference/<name>.npz: transformers float32 logits and greedy generations;
  * README.md: how all this was made.

Run: python tools/make_fixtures.py [--gpt2-json PATH]
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tiktoken
import torch
import transformers
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer
from transformers.modeling_outputs import CausalLMOutputWithCrossAttentions

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
DEFAULT_GPT2_JSON = Path("/tmp/rt/x/tiktoken-1.0.22/package/encoders/gpt2.json")
TIKTOKEN_NPM = "tiktoken@1.0.22"
EOT = "<|endoftext|>"
SMALL_VOCAB = 1024  # 256 byte tokens + 767 merges + <|endoftext|>

# Init scales (chosen so attention is clearly non-uniform but logits are not saturated).
WTE_STD = 0.3
WPE_STD = 0.3
LN_WEIGHT_MEAN, LN_STD = 1.0, 0.3
ATTN_GAIN = 1.6  # c_attn weight std = ATTN_GAIN / sqrt(n_embd)
PROJ_GAIN = 1.0  # other Conv1D weight std = PROJ_GAIN / sqrt(fan_in)
BIAS_STD = 0.1

REF_MAX_T = 48
PROMPT_LEN = 8
MAX_NEW_TOKENS = 24
DIAG_T = 16
MIN_GREEDY_GAP = 1e-3  # top-1 vs top-2 logit margin, so float32 error cannot flip greedy picks

CORPUS = [
    "Hello, world! This is a test of the GPT-2 tokenizer.",
    "The quick brown fox jumps over the lazy dog. It's 12:45 and we're done; they'll see.",
    "def f(x):\n    return x ** 2  # square\n\n\nclass A:\n\tpass\n",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
    "Numbers: 0 1 12 123 1234 12345 3.14159 -42 1e-10 0x1F 2024-06-01",
    "     leading spaces, trailing spaces     ",
    "line1\nline2\n\nline4\n\n\n\n  indented\r\nwindows",
    "tabs\t\tand\t spaces \t mixed",
    "Emoji: 😀🎉👍🏽 🇫🇷 ❤️ 🤖",
    "中文测试：你好，世界！日本語のテキスト。한국어 텍스트",
    "Accents: café naïve résumé Zürich São Paulo Ångström façade",
    "Ελληνικά κείμενο και кириллица тоже",
    "'s 't 're 've 'm 'll 'd 'S 'T",
    "<html><body><p>Some &amp; HTML</p></body></html>",
    "!!!???... --- *** ### @@@ $$$ %%% ^^^",
    "a" * 50 + " " + "ab" * 20,
    "",
    " ",
    "\n",
]


# ---------------------------------------------------------------- tokenizer


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode character table."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def read_gpt2_json(path: Path) -> dict:
    """Read tiktoken's gpt2.json, fetching the npm package with `npm pack` if missing."""
    if path.exists():
        return json.loads(path.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", TIKTOKEN_NPM], cwd=tmp, check=True, capture_output=True)
        (tarball,) = Path(tmp).glob("tiktoken-*.tgz")
        with tarfile.open(tarball) as tar:
            member = tar.extractfile("package/encoders/gpt2.json")
            assert member is not None
            return json.loads(member.read())


def parse_bpe_ranks(text: str) -> dict[bytes, int]:
    """Parse tiktoken-js rank lines: `! <offset> <b64>...` or `<b64> <rank>`."""
    ranks: dict[bytes, int] = {}
    for line in text.splitlines():
        if not line:
            continue
        parts = line.split(" ")
        if parts[0] == "!":
            offset = int(parts[1])
            for i, token in enumerate(parts[2:]):
                ranks[base64.b64decode(token)] = offset + i
        else:
            ranks[base64.b64decode(parts[0])] = int(parts[1])
    assert sorted(ranks.values()) == list(range(len(ranks))), "ranks are not 0..n-1"
    return ranks


def bpe_parts(token: bytes, ranks: dict[bytes, int], max_rank: int) -> list[bytes]:
    """Byte-level BPE of `token` using only ranks < max_rank (tiktoken's merge rule)."""
    parts = [bytes([b]) for b in token]
    while True:
        best = None
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < max_rank and (best is None or rank < best[0]):
                best = (rank, i)
        if best is None:
            return parts
        i = best[1]
        parts[i : i + 2] = [parts[i] + parts[i + 1]]


def recover_merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """The merge that creates each token of rank >= 256, in rank order."""
    by_rank = sorted(ranks, key=ranks.__getitem__)
    assert all(len(t) == 1 for t in by_rank[:256]), "first 256 ranks must be single bytes"
    merges = []
    for rank, token in enumerate(by_rank[256:], start=256):
        parts = bpe_parts(token, ranks, rank)
        assert len(parts) == 2, f"token {rank} {token!r} does not split in two: {parts}"
        merges.append((parts[0], parts[1]))
    return merges


def write_tokenizer(
    out_dir: Path, ranks: dict[bytes, int], merges: list[tuple[bytes, bytes]], eot_id: int
) -> None:
    """Write HF-style vocab.json and merges.txt (byte-level unicode strings)."""
    b2u = bytes_to_unicode()

    def to_unicode(token: bytes) -> str:
        return "".join(b2u[b] for b in token)

    vocab = {to_unicode(t): r for t, r in sorted(ranks.items(), key=lambda kv: kv[1])}
    vocab[EOT] = eot_id
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps(vocab))
    lines = ["#version: 0.2"] + [f"{to_unicode(a)} {to_unicode(b)}" for a, b in merges]
    (out_dir / "merges.txt").write_text("\n".join(lines) + "\n")


def build_encoding(ranks: dict[bytes, int], pat_str: str, eot_id: int) -> tiktoken.Encoding:
    """A tiktoken Encoding built directly from ranks (no download)."""
    return tiktoken.Encoding(
        name="gpt2", pat_str=pat_str, mergeable_ranks=ranks, special_tokens={EOT: eot_id}
    )


def random_texts(encoding: tiktoken.Encoding, count: int, length: int) -> list[str]:
    """Seeded texts made of random (non-special) tokens, to exercise many merges."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, encoding.eot_token, (count, length)).tolist()
    return [encoding.decode(row, errors="replace") for row in ids]


def check_tokenizer(tok_dir: Path, encoding: tiktoken.Encoding, label: str) -> None:
    """Assert transformers' GPT2Tokenizer on tok_dir agrees with `encoding` on a varied corpus."""
    hf = GPT2Tokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"))
    texts = CORPUS + ["\n\n".join(CORPUS), f"one{EOT}two {EOT} three"]
    texts += random_texts(encoding, 200, 40)
    for text in texts:
        expected = encoding.encode(text, allowed_special="all")
        got = hf.encode(text)
        assert got == expected, f"mismatch on {text!r}:\n hf={got}\n tt={expected}"
        assert hf.decode(got) == text
    print(f"  tokenizer {label}: {len(texts)} texts agree with tiktoken (vocab {len(hf)})")


def make_tokenizers(gpt2: dict) -> tuple[dict[bytes, int], list[tuple[bytes, bytes]]]:
    """Write and verify the full GPT-2 tokenizer; return its ranks and merges."""
    ranks = parse_bpe_ranks(gpt2["bpe_ranks"])
    eot_id = gpt2["special_tokens"][EOT]
    assert eot_id == len(ranks) == 50256
    merges = recover_merges(ranks)
    out = FIXTURES / "gpt2-tokenizer"
    write_tokenizer(out, ranks, merges, eot_id)
    check_tokenizer(out, build_encoding(ranks, gpt2["pat_str"], eot_id), "gpt2")
    return ranks, merges


def truncated(
    ranks: dict[bytes, int], merges: list[tuple[bytes, bytes]], vocab_size: int
) -> tuple[dict[bytes, int], list[tuple[bytes, bytes]]]:
    """Keep ids 0..vocab_size-2 (and their merges); the last id is left for <|endoftext|>."""
    n = vocab_size - 1
    return {t: r for t, r in ranks.items() if r < n}, merges[: n - 256]


# ---------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelSpec:
    """A fixture model: shapes and how its weights are stored."""

    name: str
    n_layer: int
    n_head: int
    n_embd: int
    n_positions: int
    storage: str  # safetensors | bare-safetensors | f16 | bf16 | sharded | bin


SPECS = [
    ModelSpec("tiny", 2, 4, 64, 64, "safetensors"),
    ModelSpec("odd-heads", 3, 3, 48, 128, "bare-safetensors"),
    ModelSpec("f16", 2, 2, 32, 64, "f16"),
    ModelSpec("bf16", 2, 2, 32, 64, "bf16"),
    ModelSpec("sharded", 4, 4, 64, 64, "sharded"),
    ModelSpec("bin", 2, 2, 32, 64, "bin"),
]
HALF_DTYPES = {"f16": torch.float16, "bf16": torch.bfloat16}


def make_config(spec: ModelSpec) -> GPT2Config:
    """GPT2Config for a fixture model with the truncated vocab."""
    return GPT2Config(
        vocab_size=SMALL_VOCAB,
        n_layer=spec.n_layer,
        n_head=spec.n_head,
        n_embd=spec.n_embd,
        n_positions=spec.n_positions,
        activation_function="gelu_new",
        bos_token_id=SMALL_VOCAB - 1,
        eos_token_id=SMALL_VOCAB - 1,
    )


def init_std(name: str, param: torch.Tensor) -> tuple[float, float]:
    """(mean, std) of the random init for one parameter, by its name."""
    if name.endswith("wte.weight"):
        return 0.0, WTE_STD
    if name.endswith("wpe.weight"):
        return 0.0, WPE_STD
    if ".ln_" in name:
        return (LN_WEIGHT_MEAN if name.endswith("weight") else 0.0), LN_STD
    if name.endswith("bias"):
        return 0.0, BIAS_STD
    gain = ATTN_GAIN if "c_attn" in name else PROJ_GAIN
    return 0.0, gain / param.shape[0] ** 0.5  # Conv1D weight is (fan_in, fan_out)


def reinit(model: GPT2LMHeadModel, seed: int) -> None:
    """Re-initialise every parameter with seeded values (lm_head stays tied to wte)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            mean, std = init_std(name, param)
            param.copy_(torch.randn(param.shape, generator=gen) * std + mean)


def round_weights(model: GPT2LMHeadModel, dtype: torch.dtype) -> None:
    """Round every parameter to `dtype` and back to float32, in place."""
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(param.to(dtype).to(torch.float32))


def legacy_state_dict(model: GPT2LMHeadModel) -> dict[str, torch.Tensor]:
    """State dict as old transformers saved it: prefixed keys, tied lm_head, attn buffers."""
    n = model.config.n_positions
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        out[key] = value
        if key.endswith(".ln_1.bias"):
            prefix = key[: -len("ln_1.bias")]
            out[prefix + "attn.bias"] = torch.tril(torch.ones(n, n)).view(1, 1, n, n)
            out[prefix + "attn.masked_bias"] = torch.tensor(-1e4)
    assert out["lm_head.weight"].data_ptr() == out["transformer.wte.weight"].data_ptr()
    return out


def bare_state_dict(model: GPT2LMHeadModel) -> dict[str, torch.Tensor]:
    """Keys as in openai-community/gpt2's safetensors: no prefix, no lm_head, attn.bias masks."""
    n = model.config.n_positions
    out: dict[str, torch.Tensor] = {}
    for key, value in model.transformer.state_dict().items():
        out[key] = value.contiguous()
        if key.endswith(".ln_1.bias"):
            prefix = key[: -len("ln_1.bias")]
            out[prefix + "attn.bias"] = torch.tril(torch.ones(n, n)).view(1, 1, n, n)
    return out


def save_model(model: GPT2LMHeadModel, spec: ModelSpec, out_dir: Path) -> None:
    """Save config + weights in the storage format of `spec` (half storage converts `model`)."""
    if spec.storage in HALF_DTYPES:
        model.to(HALF_DTYPES[spec.storage])
    shard = {"max_shard_size": "400KB"} if spec.storage == "sharded" else {}
    model.save_pretrained(out_dir, **shard)
    if spec.storage == "bare-safetensors":
        save_file(bare_state_dict(model), out_dir / "model.safetensors", metadata={"format": "pt"})
    elif spec.storage == "bin":
        (out_dir / "model.safetensors").unlink()
        torch.save(legacy_state_dict(model), out_dir / "pytorch_model.bin")
    add_torch_dtype(out_dir / "config.json")


def add_torch_dtype(config_path: Path) -> None:
    """Mirror transformers 5's `dtype` as the older `torch_dtype` key most hub configs have."""
    config = json.loads(config_path.read_text())
    config["torch_dtype"] = config["dtype"]
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def forward(
    model: GPT2LMHeadModel, ids: np.ndarray, **kwargs: bool
) -> CausalLMOutputWithCrossAttentions:
    """Run the model on one sequence without gradients."""
    with torch.no_grad():
        return model(torch.from_numpy(ids)[None], **kwargs)


def diagnostics(model: GPT2LMHeadModel, rng: np.random.Generator) -> dict[str, float]:
    """Mean max attention probability and mean max output probability on random ids."""
    ids = rng.integers(0, SMALL_VOCAB, DIAG_T)
    out = forward(model, ids, output_attentions=True)
    attentions = torch.stack(out.attentions)  # (layer, 1, head, T, T)
    uniform = float(np.mean(1.0 / np.arange(1, DIAG_T + 1)))
    return {
        "attn_max": float(attentions.max(-1).values.mean()),
        "attn_max_uniform": uniform,
        "out_max": float(out.logits.softmax(-1).max(-1).values.mean()),
    }


def reference(
    model: GPT2LMHeadModel, spec: ModelSpec, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Logits for a random sequence and a greedy continuation of a random prompt."""
    eot = SMALL_VOCAB - 1
    ids = rng.integers(0, SMALL_VOCAB, min(spec.n_positions, REF_MAX_T)).astype(np.int64)
    prompt = rng.integers(0, eot, PROMPT_LEN).astype(np.int64)
    logits = forward(model, ids).logits[0].numpy().astype(np.float32)
    with torch.no_grad():
        generated = model.generate(
            torch.from_numpy(prompt)[None],
            attention_mask=torch.ones(1, PROMPT_LEN, dtype=torch.int64),
            do_sample=False,
            max_new_tokens=MAX_NEW_TOKENS,
            eos_token_id=eot,
            pad_token_id=eot,
        )
    greedy = generated[0, PROMPT_LEN:].numpy().astype(np.int64)
    return {"ids": ids, "logits": logits, "greedy_prompt": prompt, "greedy_ids": greedy}


def greedy_gap(model: GPT2LMHeadModel, ref: dict[str, np.ndarray]) -> float:
    """Smallest top-1 minus top-2 logit margin over the greedy steps of `ref`."""
    seq = np.concatenate([ref["greedy_prompt"], ref["greedy_ids"]])
    steps = forward(model, seq).logits[0, PROMPT_LEN - 1 : len(seq) - 1]
    top2 = steps.topk(2, dim=-1).values
    return float((top2[:, 0] - top2[:, 1]).min())


def make_model(spec: ModelSpec, seed: int, tokenizer_src: Path) -> dict[str, float]:
    """Build, save and reference one fixture model; return its diagnostics."""
    model = GPT2LMHeadModel(make_config(spec))
    model.set_attn_implementation("eager")
    reinit(model, seed)
    if spec.storage in HALF_DTYPES:
        round_weights(model, HALF_DTYPES[spec.storage])
    model.eval()
    diag = diagnostics(model, np.random.default_rng(seed))
    expected = reference(model, spec, np.random.default_rng(seed + 1))

    out_dir = FIXTURES / "models" / spec.name
    if out_dir.exists():
        shutil.rmtree(out_dir)
    save_model(model, spec, out_dir)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(tokenizer_src / name, out_dir / name)

    loaded = GPT2LMHeadModel.from_pretrained(
        out_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    ref = reference(loaded, spec, np.random.default_rng(seed + 1))
    np.testing.assert_allclose(ref["logits"], expected["logits"], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(ref["greedy_ids"], expected["greedy_ids"])
    np.savez(FIXTURES / "reference" / f"{spec.name}.npz", **ref)
    diag["greedy_len"] = len(ref["greedy_ids"])
    diag["greedy_gap"] = greedy_gap(loaded, ref)
    assert diag["greedy_gap"] > MIN_GREEDY_GAP, f"{spec.name}: greedy pick too close to a tie"
    return diag


def write_small_tokenizer(
    out: Path, ranks: dict[bytes, int], merges: list[tuple[bytes, bytes]], pat_str: str
) -> None:
    """Write and verify the GPT-2 tokenizer truncated to SMALL_VOCAB ids (eot = last id)."""
    small_ranks, small_merges = truncated(ranks, merges, SMALL_VOCAB)
    write_tokenizer(out, small_ranks, small_merges, SMALL_VOCAB - 1)
    check_tokenizer(out, build_encoding(small_ranks, pat_str, SMALL_VOCAB - 1), "gpt2-1024")


# ---------------------------------------------------------------- README / main


def write_readme(diags: dict[str, dict[str, float]]) -> None:
    """Describe how the fixtures were made."""
    rows = "\n".join(
        f"| {s.name} | {s.n_layer} | {s.n_head} | {s.n_embd} | {s.n_positions} | {s.storage} "
        f"| {diags[s.name]['attn_max']:.2f} | {diags[s.name]['out_max']:.2f} |"
        for s in SPECS
    )
    text = f"""# Test fixtures

Generated by `python tools/make_fixtures.py` (transformers {transformers.__version__},
torch {torch.__version__}, tiktoken {tiktoken.__version__}, npm {TIKTOKEN_NPM}). Re-running it
overwrites everything here deterministically (fixed seeds). Do not edit by hand.

- `gpt2-tokenizer/`: GPT-2's `vocab.json` (50257 ids) and `merges.txt` (50000 merges), derived
  offline from npm tiktoken's `encoders/gpt2.json`: each token's merge is found by running BPE on
  its bytes with lower ranks only. Checked: transformers `GPT2Tokenizer` on these files gives the
  same ids as a `tiktoken.Encoding` built from the json ranks on a varied corpus.
- `models/<name>/`: random GPT-2 checkpoints (`gelu_new`) in Hugging Face layout. Their tokenizer
  is GPT-2's truncated to {SMALL_VOCAB} ids: the 256 byte tokens and the first
  {SMALL_VOCAB - 257} merges (ids 0..{SMALL_VOCAB - 2} as in GPT-2), and `{EOT}` renumbered to
  {SMALL_VOCAB - 1} (`bos_token_id`/`eos_token_id`). `config.json` has both `dtype` and
  `torch_dtype`.
- `reference/<name>.npz`: transformers float32 eager results loaded back from `models/<name>/`:
  `ids` (T = min(n_positions, {REF_MAX_T})) and `logits` (T, vocab); `greedy_prompt`
  ({PROMPT_LEN} ids) and `greedy_ids`, the new tokens of greedy `generate`
  (max_new_tokens={MAX_NEW_TOKENS}, eos = pad = {SMALL_VOCAB - 1}; may stop early at eos).
  For f16/bf16 the weights are rounded first and the reference uses them upcast to float32.

Init (replaces GPT-2's std 0.02, which gives near-uniform attention that hides bugs): wte ~
N(0, {WTE_STD}), wpe ~ N(0, {WPE_STD}), LayerNorm weight ~ N({LN_WEIGHT_MEAN}, {LN_STD}) and bias ~
N(0, {LN_STD}), c_attn weight ~ N(0, {ATTN_GAIN}/sqrt(n_embd)), other Conv1D weights ~
N(0, {PROJ_GAIN}/sqrt(fan_in)), Conv1D biases ~ N(0, {BIAS_STD}); lm_head is tied to wte.
Diagnostics on {DIAG_T} random ids: mean max attention probability (uniform causal attention
would give {diags[SPECS[0].name]['attn_max_uniform']:.2f}) and mean max output probability.

| model | layers | heads | n_embd | n_positions | storage | attn max | out max |
| --- | --- | --- | --- | --- | --- | --- | --- |
{rows}

Storage: `safetensors` = `save_pretrained` (keys `transformer.*`, no `lm_head`);
`bare-safetensors` = keys without `transformer.` and with `h.N.attn.bias` masks, like
openai-community/gpt2; `f16`/`bf16` = `save_pretrained` in that dtype; `sharded` =
`model.safetensors.index.json` + shards; `bin` = `torch.save` of an old-style state dict
(`transformer.*`, tied `lm_head.weight`, `attn.bias` float32 masks, `attn.masked_bias` = -1e4).
"""
    (FIXTURES / "README.md").write_text(text)


def print_sizes() -> None:
    """Print every fixture file's size and the total."""
    total = 0
    for path in sorted(p for p in FIXTURES.rglob("*") if p.is_file()):
        size = path.stat().st_size
        total += size
        print(f"  {size:>10,}  {path.relative_to(FIXTURES)}")
    print(f"  {total:>10,}  total")


def main() -> None:
    """Generate all fixtures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpt2-json", type=Path, default=DEFAULT_GPT2_JSON)
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()

    gpt2 = read_gpt2_json(args.gpt2_json)
    ranks, merges = make_tokenizers(gpt2)
    (FIXTURES / "reference").mkdir(parents=True, exist_ok=True)
    diags = {}
    with tempfile.TemporaryDirectory() as tmp:
        small_tok = Path(tmp)
        write_small_tokenizer(small_tok, ranks, merges, gpt2["pat_str"])
        for seed, spec in enumerate(SPECS, start=1000):
            diags[spec.name] = make_model(spec, seed, small_tok)
            stats = ", ".join(f"{k}={v:.3g}" for k, v in diags[spec.name].items())
            print(f"  model {spec.name}: {stats}")
    write_readme(diags)
    print_sizes()


if __name__ == "__main__":
    main()
