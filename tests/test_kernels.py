"""kernels/: the committed matmul.wasm is what tools/build_kernels.sh builds, and its products,
run in Node through kernels/matmul.js as a page or a worker would, equal NumPy's x @ w.T; with
int8 weights (addWeightInt8), its quantization is NumPy's by the documented rule, bit for bit, and
its products equal NumPy's x @ (q * scale).T: one row of x by the documented integer sums, bit for
bit (support.int8_gemv: x in blocks of int16s), more rows as the float kernel by q, times the
scales, bit for bit.

Node runs the wasm (Debian's nodejs, which apt's npm brings; tools/test.sh installs npm): without
it these tests fail, they are not skipped."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from support import int8_gemv, int8_gemv_rounding, quantize

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "kernels"
WASM = KERNELS / "matmul.wasm"
EXPORTS = ["alloc", "attention_mix", "attention_scores", "heap_mark", "heap_release", "matmul_t", "matmul_t_q8", "memory",
           "quantize_rows"]

# (n_seq, n_in, n_out): every remainder mod 4 of each size, on the GEMV (n_seq == 1) and the
# GEMM path, then GPT-2 small's shapes (attention in and MLP up, one token and 128).
SHAPES = [(1, 1, 1), (1, 3, 5), (1, 4, 4), (1, 6, 7), (1, 9, 2), (1, 33, 66),
          (2, 5, 3), (3, 8, 7), (4, 4, 4), (4, 13, 6), (5, 17, 11), (6, 2, 9), (7, 3, 2),
          (8, 64, 33), (9, 10, 768), (12, 31, 8),
          (1, 768, 2304), (128, 768, 3072)]

# int8 (n_seq, n_in, n_out): every remainder of n_in mod 16 and mod 4 (the GEMV's 16-wide steps,
# the GEMM's 4-wide), of n_out mod 4 (the GEMM's blocks of 4 rows of w), of n_seq mod 2 and 4 (the GEMM's pairs of rows of x; its tail rows of w meet 4 rows
# of x); n_in past a block of the GEMV's x (64) by a step and by a tail, and many blocks (4100); then
# GPT-2 small's shapes (every layer matrix at one token, MLP up and down at 128).
SHAPES_Q8 = [(1, 1, 1), (1, 3, 5), (1, 4, 4), (1, 15, 7), (1, 16, 8), (1, 17, 9), (1, 20, 12),
             (1, 31, 13), (1, 33, 15), (1, 47, 66), (1, 64, 3), (2, 1, 2), (2, 5, 3), (2, 18, 17),
             (3, 8, 7), (3, 35, 16), (4, 4, 4), (4, 13, 6), (4, 36, 9), (5, 17, 11), (5, 50, 20),
             (6, 2, 9), (7, 3, 2), (7, 19, 5), (8, 64, 33), (9, 10, 768), (12, 31, 8), (13, 100, 23),
             (1, 80, 6), (1, 89, 5), (1, 4100, 9), (1, 768, 2304), (1, 768, 768), (1, 768, 3072),
             (1, 3072, 768), (128, 768, 3072), (128, 3072, 768)]

# Instantiates the kernels from the committed bytes, adds every weight first (the memory grows
# under the earlier ones), then runs every product twice (the second pass must not grow it).
RUN_PRODUCTS = """
import { readFileSync, writeFileSync } from "node:fs";
const [kernelsUrl, wasmPath, dataPath, outPath, shapesJson] = process.argv.slice(1);
const { simdSupported, loadKernels } = await import(kernelsUrl);
const kernels = await loadKernels(readFileSync(wasmPath));
const data = readFileSync(dataPath);
const floats = new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4);
let at = 0;
const take = n => floats.subarray(at, (at += n));
const jobs = JSON.parse(shapesJson).map(([nSeq, nIn, nOut]) => {
  const x = take(nSeq * nIn);
  return { x, nSeq, handle: kernels.addWeight(take(nOut * nIn), nOut, nIn) };
});
const run = () => jobs.map(({ x, nSeq, handle }) => kernels.matmul_t(x, nSeq, handle));
run();
const bytesAfterFirstPass = kernels.bytes;
const ys = run();
const out = new Float32Array(ys.reduce((n, y) => n + y.length, 0));
ys.reduce((offset, y) => (out.set(y, offset), offset + y.length), 0);
writeFileSync(outPath, out);
console.log(JSON.stringify({ simd: simdSupported(), bytesAfterFirstPass, bytes: kernels.bytes }));
"""

# For each shape, adds w both as float32 and as int8 (every weight first, so that the memory grows
# under the earlier ones), then writes, per shape, the int8 handle's q, scales and dequantized(),
# and its products by matmul_t and by matmulInto; every product runs twice (the second pass must
# not grow the memory: the scratch is freed). Then counts the GEMM's outputs (nSeq > 1) that
# differ, in any bit, from the float kernel's product by the rows of q as floats, times the
# scales (the design: the same sums in the same order), and measures what addWeightInt8 grows a
# fresh instance's memory by.
RUN_Q8 = """
import { readFileSync, writeFileSync } from "node:fs";
const [kernelsUrl, wasmPath, dataPath, outPath, shapesJson] = process.argv.slice(1);
const { loadKernels } = await import(kernelsUrl);
const wasm = readFileSync(wasmPath);
const kernels = await loadKernels(wasm);
const data = readFileSync(dataPath);
const floats = new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4);
let at = 0;
const take = n => floats.subarray(at, (at += n));
const jobs = JSON.parse(shapesJson).map(([nSeq, nIn, nOut]) => {
  const x = take(nSeq * nIn), w = take(nOut * nIn);
  const f32 = kernels.addWeight(w, nOut, nIn);
  return { x, w, nSeq, nOut, f32, q8: kernels.addWeightInt8(w, nOut, nIn) };
});
const run = () => jobs.map(({ x, nSeq, nOut, q8 }) => {
  const into = new Float32Array(nSeq * nOut).fill(NaN);
  kernels.matmulInto(x, nSeq, q8, into);
  return [kernels.matmul_t(x, nSeq, q8), into];
});
run();
const bytesAfterFirstPass = kernels.bytes;
const ys = run();
const bytes = kernels.bytes;
const parts = jobs.flatMap(({ w, q8, f32 }, i) => {
  const { q, scales } = kernels.quantized(q8);
  const same = kernels.dequantized(f32).every((v, k) => Object.is(v, w[k]));
  if (!same || kernels.shape(f32).int8 || !kernels.shape(q8).int8) throw new Error(`handles of job ${i}`);
  return [q, scales, kernels.dequantized(q8), ...ys[i]].map(a => new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
});
writeFileSync(outPath, Buffer.concat(parts));
// the int8 product is the float kernel's on the rows of q as floats, times the scales, bit for bit
let notFloatKernel = 0;
jobs.filter(({ nSeq }) => nSeq > 1).forEach(({ x, nSeq, nOut, q8 }, i) => {
  const { q, scales } = kernels.quantized(q8);
  const yq = kernels.matmul_t(x, nSeq, kernels.addWeight(Float32Array.from(q), nOut, q.length / nOut));
  kernels.matmul_t(x, nSeq, q8).forEach((v, k) => { notFloatKernel += !Object.is(v, Math.fround(yq[k] * scales[k % nOut])); });
});
const fresh = await loadKernels(wasm);
const [nOut, nIn] = [2304, 768];
const before = fresh.bytes;
fresh.addWeightInt8(new Float32Array(nOut * nIn).fill(0.5), nOut, nIn);
console.log(JSON.stringify({ bytesAfterFirstPass, bytes, addInt8Growth: fresh.bytes - before, notFloatKernel,
                             addInt8Matrix: [nOut, nIn] }));
"""

# A KV cache of 2 layers for each head size: per layer its keys and values, written in two
# calls (positions 0..a, then a..b), then NaN rows at b..n_ctx in layer 1 (past what is read);
# then per layer and query count, the scores of the queries over the first b keys, and the mix of
# the given weights with the first b values, each run twice (the second pass must not grow the
# memory); last, writes and reads past n_ctx, which must be refused.
RUN_ATTENTION = """
import { readFileSync, writeFileSync } from "node:fs";
const [kernelsUrl, wasmPath, dataPath, outPath, casesJson] = process.argv.slice(1);
const { loadKernels } = await import(kernelsUrl);
const kernels = await loadKernels(readFileSync(wasmPath));
const data = readFileSync(dataPath);
const floats = new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4);
let at = 0;
const take = n => floats.subarray(at, (at += n));
const jobs = JSON.parse(casesJson).map(({ nHead, d, nCtx, a, b, queries }) => {
  const cache = kernels.addCache(2, nHead, nCtx, d);
  for (const layer of [0, 1]) {
    const [k, v] = [take(nHead * b * d), take(nHead * b * d)];
    const part = (x, start, end) => Float32Array.from({ length: nHead * (end - start) * d }, (_, i) => {
      const h = Math.floor(i / ((end - start) * d));
      return x[h * b * d + start * d + (i % ((end - start) * d))];
    });
    kernels.storeKV(cache, layer, 0, part(k, 0, a), part(v, 0, a), a);
    kernels.storeKV(cache, layer, a, part(k, a, b), part(v, a, b), b - a);
  }
  const nan = new Float32Array(nHead * (nCtx - b) * d).fill(NaN);
  kernels.storeKV(cache, 1, b, nan, nan, nCtx - b);
  const reads = [0, 1].flatMap(layer => queries.map(nSeq => (
    { layer, nSeq, q: take(nHead * nSeq * d), p: take(nHead * nSeq * b) })));
  return { cache, nHead, d, nCtx, b, reads };
});
const run = () => jobs.flatMap(({ cache, nHead, d, b, reads }) => reads.flatMap(({ layer, nSeq, q, p }) => {
  const s = new Float32Array(nHead * nSeq * b).fill(NaN), o = new Float32Array(nHead * nSeq * d).fill(NaN);
  kernels.scoresInto(cache, layer, q, nSeq, b, s);
  kernels.mixInto(cache, layer, p, nSeq, b, o);
  return [s, o];
}));
run();
const bytesAfterFirstPass = kernels.bytes;
const ys = run();
writeFileSync(outPath, Buffer.concat(ys.map(y => new Uint8Array(y.buffer))));
const { cache, nHead, d, nCtx } = jobs[0];
const refused = [() => kernels.storeKV(cache, 0, nCtx, new Float32Array(nHead * d), new Float32Array(nHead * d), 1),
                 () => kernels.scoresInto(cache, 0, new Float32Array(nHead * d), 1, nCtx + 1, new Float32Array(nHead * (nCtx + 1))),
                 () => kernels.mixInto(cache, 2, new Float32Array(nHead), 1, 1, new Float32Array(nHead * d))].map(f => {
  try { f(); return null; } catch (error) { return error.name; }
});
console.log(JSON.stringify({ bytesAfterFirstPass, bytes: kernels.bytes, refused }));
"""

# The committed module validates and exports what kernels/matmul.js uses.
# Reads rows of a float32 handle back (rowsInto: the embedding lookup of a tied LM head held by
# the kernels), after a second matrix has grown the memory; then asks an int8 handle for rows and a
# row past the end, each of which must throw.
RUN_ROWS = """
import { readFileSync, writeFileSync } from "node:fs";
const [kernelsUrl, wasmPath, dataPath, outPath, nOut, nIn, idsJson] = process.argv.slice(1);
const { loadKernels } = await import(kernelsUrl);
const kernels = await loadKernels(readFileSync(wasmPath));
const data = readFileSync(dataPath);
const w = new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4);
const handle = kernels.addWeight(w, +nOut, +nIn);
const q8 = kernels.addWeightInt8(w, +nOut, +nIn);
const ids = Int32Array.from(JSON.parse(idsJson));
const out = new Float32Array(ids.length * nIn).fill(NaN);
kernels.rowsInto(handle, ids, out);
writeFileSync(outPath, out);
const refused = [[q8, [0]], [handle, [+nOut]], [handle, [-1]]].map(([h, bad]) => {
  try { kernels.rowsInto(h, Int32Array.from(bad), new Float32Array(nIn)); return null; } catch (e) { return e.name; }
});
console.log(JSON.stringify({ refused }));
"""

CHECK_MODULE = """
import { readFileSync } from "node:fs";
const bytes = readFileSync(process.argv[1]);
const valid = WebAssembly.validate(bytes);
const exports = valid ? WebAssembly.Module.exports(new WebAssembly.Module(bytes)).map(e => e.name).sort() : [];
console.log(JSON.stringify({ valid, exports }));
"""


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is needed to run kernels/matmul.wasm: apt-get install -y nodejs (or npm)")
    return path


def run_node(node: str, script: str, *args: str) -> dict:
    done = subprocess.run([node, "--input-type=module", "-e", script, *map(str, args)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_rebuild_gives_the_committed_bytes(node, tmp_path):
    """With Debian's clang-14 and wasm-ld-14 on PATH, tools/build_kernels.sh rebuilds
    kernels/matmul.wasm byte for byte. Without them (a machine without `apt-get install clang
    lld`), this checks instead that the committed file is a valid module with the exports
    kernels/matmul.js uses, which the products test below then runs."""
    if shutil.which("clang-14") and shutil.which("wasm-ld-14"):
        rebuilt = tmp_path / "matmul.wasm"
        subprocess.run(["bash", str(ROOT / "tools" / "build_kernels.sh"), str(rebuilt)],
                       check=True, capture_output=True, timeout=120)
        assert rebuilt.read_bytes() == WASM.read_bytes(), "kernels/matmul.wasm is stale: run tools/build_kernels.sh"
    else:
        assert run_node(node, CHECK_MODULE, WASM) == {"valid": True, "exports": EXPORTS}


def test_products_equal_numpy(node, tmp_path):
    """Every shape's y = x @ w.T within 1e-5 of NumPy's, relative to |x| @ |w|.T (the size of the
    sum's terms: an output near zero by cancellation has no relative precision of its own)."""
    rng = np.random.default_rng(12)
    pairs = [(rng.standard_normal((t, n), dtype=np.float32), rng.standard_normal((m, n), dtype=np.float32))
             for t, n, m in SHAPES]
    (tmp_path / "in.f32").write_bytes(b"".join(x.tobytes() + w.tobytes() for x, w in pairs))
    result = run_node(node, RUN_PRODUCTS, (KERNELS / "matmul.js").as_uri(), WASM, tmp_path / "in.f32",
                      tmp_path / "out.f32", json.dumps(SHAPES))
    assert result["simd"] is True
    assert result["bytes"] == result["bytesAfterFirstPass"], "scratch space of matmul_t was not freed"
    assert result["bytes"] >= sum(w.nbytes for _, w in pairs)
    out = np.fromfile(tmp_path / "out.f32", dtype=np.float32)
    at = 0
    for (x, w), shape in zip(pairs, SHAPES):
        y = out[at:at + x.shape[0] * w.shape[0]].reshape(x.shape[0], w.shape[0])
        at += y.size
        scale = np.abs(x) @ np.abs(w).T
        assert np.all(np.abs(y - x @ w.T) <= 1e-5 * scale), shape
    assert at == out.size


def test_rows_read_back_a_float32_matrix(node, tmp_path):
    """rowsInto copies the asked rows of a float32 matrix out of the kernels' memory, in the order
    asked, repeats included; an int8 matrix (whose float32 rows are not kept) and rows out of range
    are refused."""
    w = np.random.default_rng(3).standard_normal((50, 13), dtype=np.float32)
    ids = [49, 0, 7, 7, 31]
    w.tofile(tmp_path / "w.f32")
    result = run_node(node, RUN_ROWS, (KERNELS / "matmul.js").as_uri(), WASM, tmp_path / "w.f32",
                      tmp_path / "rows.f32", *w.shape, json.dumps(ids))
    assert np.array_equal(np.fromfile(tmp_path / "rows.f32", dtype=np.float32).reshape(len(ids), 13), w[ids])
    assert result["refused"] == ["TypeError", "RangeError", "RangeError"]


# Head sizes with every remainder mod 4 (the kernels' lanes) and GPT-2's 64; a tiny and a
# GPT-2-sized context; queries one (decode) and several (a prompt: the scores by the GEMM).
ATTENTION_CASES = [dict(nHead=3, d=1, nCtx=9, a=2, b=7, queries=[1, 5]),
                   dict(nHead=2, d=6, nCtx=8, a=3, b=4, queries=[1, 3, 4]),
                   dict(nHead=1, d=7, nCtx=12, a=1, b=11, queries=[2]),
                   dict(nHead=4, d=8, nCtx=16, a=0, b=16, queries=[1, 9]),
                   dict(nHead=12, d=64, nCtx=1024, a=100, b=160, queries=[1, 6])]


def test_attention_over_a_cache_equals_numpy(node, tmp_path):
    """A KV cache in the kernels' memory: keys and values written in two calls land where NumPy
    puts them; the scores q . k of one or several queries over the first n_past keys, and the
    weights' mix of the first n_past values, of each layer and head, are within 1e-5 of NumPy's
    einsum, relative to the size of their terms; what lies past n_past (NaN here) is not read,
    the scratch space is freed, and positions or layers past the cache's are refused."""
    rng = np.random.default_rng(5)
    chunks, expected = [], []
    for case in ATTENTION_CASES:
        n_head, d, b = case["nHead"], case["d"], case["b"]
        layers = [(rng.standard_normal((n_head, b, d), dtype=np.float32),
                   rng.standard_normal((n_head, b, d), dtype=np.float32)) for _ in range(2)]
        chunks += [a for kv in layers for a in kv]
        for k, v in layers:
            for n_seq in case["queries"]:
                q = rng.standard_normal((n_head, n_seq, d), dtype=np.float32)
                p = rng.random((n_head, n_seq, b), dtype=np.float32)
                chunks += [q, p]
                expected += [(np.einsum("hid,hjd->hij", q, k), np.einsum("hid,hjd->hij", np.abs(q), np.abs(k))),
                             (np.einsum("hij,hjd->hid", p, v), np.einsum("hij,hjd->hid", p, np.abs(v)))]
    (tmp_path / "in.f32").write_bytes(b"".join(a.tobytes() for a in chunks))
    result = run_node(node, RUN_ATTENTION, (KERNELS / "matmul.js").as_uri(), WASM, tmp_path / "in.f32",
                      tmp_path / "out.f32", json.dumps(ATTENTION_CASES))
    assert result["bytes"] == result["bytesAfterFirstPass"], "the attention's scratch space was not freed"
    assert result["refused"] == ["RangeError"] * 3
    out = np.fromfile(tmp_path / "out.f32", dtype=np.float32)
    at = 0
    for reference, scale in expected:
        got = out[at:at + reference.size].reshape(reference.shape)
        at += reference.size
        assert np.all(np.abs(got - reference) <= 1e-5 * scale), reference.shape
    assert at == out.size


def special_rows(n_in: int) -> np.ndarray:
    """Rows that test the rule's edges: zeros; one nonzero; ties (max 127 makes scale 1, so w / scale
    = k + 0.5 exactly, which rounds to even: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2); subnormals; a max so
    small that max / 127 underflows to scale 0; huge values; a negative extreme."""
    rows = np.zeros((7, n_in), dtype=np.float32)
    rows[1, n_in // 2] = -2.5
    rows[2, :] = np.resize(np.float32([127, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 126.5, -126.5]), n_in)
    rows[3, :] = np.resize(np.float32([1e-40, -3e-41, 7e-42, 2e-39]), n_in)
    rows[4, :] = np.resize(np.float32([1e-44, -4e-45, 0]), n_in)
    rows[5, :] = np.resize(np.float32([1e30, -3e29, 5e20, 1]), n_in)
    rows[6, :] = np.resize(np.float32([-9, 4.5, 1, -0.25]), n_in)
    return rows


def test_int8_products(node, tmp_path):
    """addWeightInt8 quantizes as quantize() above, bit for bit (q, scales, and dequantized() =
    q * scale in float32), and its products, on every tail shape and GPT-2 small's, by matmul_t
    and matmulInto alike, are within 1e-5 of x @ (q * scale).T relative to |x| @ |q * scale|.T, as
    the float kernel is of x @ w.T; one row of x gives support.int8_gemv's integer sums bit for
    bit (x all zeros or tiny: 0; x with inf or NaN: NaN), more rows the float kernel's products
    by q, times the scales. Their distance from the float32 product x @ w.T is the rounding of
    w: within sum|x| * scale / 2 per output (every |w - q * scale| <= scale / 2)."""
    rng = np.random.default_rng(8)
    pairs = []
    for t, n, m in SHAPES_Q8:
        x, w = rng.standard_normal((t, n), dtype=np.float32), rng.standard_normal((m, n), dtype=np.float32)
        if m >= 7:  # the edge rows replace the first 7 (the GEMM's widened blocks)
            w[:7] = special_rows(n)
        pairs.append((x, w))
    # the GEMV's edges: x all zeros, x so small that it counts as zeros, x holding inf, or NaN
    special_x = {(1, 17, 9): 0.0, (1, 20, 12): 1e-36, (1, 31, 13): np.inf, (1, 33, 15): np.nan}
    for (x, _), shape in zip(pairs, SHAPES_Q8):
        if shape in special_x:
            value = np.float32(special_x[shape])
            if np.isfinite(value):
                x *= value
            else:
                x[0, 3] = value
    (tmp_path / "in.f32").write_bytes(b"".join(x.tobytes() + w.tobytes() for x, w in pairs))
    result = run_node(node, RUN_Q8, (KERNELS / "matmul.js").as_uri(), WASM, tmp_path / "in.f32",
                      tmp_path / "out.bin", json.dumps(SHAPES_Q8))
    assert result["bytes"] == result["bytesAfterFirstPass"], "scratch space of matmul_t_q8 was not freed"
    assert result["notFloatKernel"] == 0, "int8 products differ from the float kernel's on q, times the scales"
    n_out, n_in = result["addInt8Matrix"]
    # int8 data, scales, the 1 MiB chunk of float rows being quantized, and page rounding: not the
    # float32 matrix's 4 bytes a weight
    assert result["addInt8Growth"] <= n_out * n_in + 4 * n_out + (1 << 20) + 2 * 65536
    out = (tmp_path / "out.bin").read_bytes()
    at = 0

    def take(dtype, count):
        nonlocal at
        array = np.frombuffer(out, dtype=dtype, count=count, offset=at)
        at += array.nbytes
        return array

    worst = 0.0
    for (x, w), shape in zip(pairs, SHAPES_Q8):
        t, n, m = shape
        q_ref, scale_ref = quantize(w)
        q, scale = take(np.int8, m * n).reshape(m, n), take(np.float32, m)
        assert np.array_equal(q, q_ref), shape
        assert np.array_equal(scale, scale_ref), shape
        w_deq = q_ref.astype(np.float32) * scale_ref[:, None]
        assert np.array_equal(take(np.float32, m * n).reshape(m, n), w_deq), shape
        ys = take(np.float32, t * m).reshape(t, m), take(np.float32, t * m).reshape(t, m)
        if t == 1:
            for y in ys:
                assert np.array_equal(y[0], int8_gemv(x[0], q_ref, scale_ref), equal_nan=True), shape
        if shape in special_x:
            assert all(np.all(y == 0) if np.isfinite(special_x[shape]) else np.all(np.isnan(y)) for y in ys), shape
            continue
        y_ref = x.astype(np.float64) @ w_deq.astype(np.float64).T
        size = np.abs(x).astype(np.float64) @ np.abs(w_deq).astype(np.float64).T
        # |w - q * scale| <= scale / 2 per row, or max|w| where scale underflowed to 0
        step = np.where(scale_ref > 0, scale_ref.astype(np.float64) / 2, np.abs(w).max(axis=1))
        rounding = np.abs(x).astype(np.float64).sum(axis=1, keepdims=True) * step
        y32 = x.astype(np.float64) @ w.astype(np.float64).T
        # one row of x goes as int16s, a block at a time: within half a step of each value
        x_rounding = int8_gemv_rounding(x[0], w_deq)[None, :] if t == 1 else 0
        for y in ys:
            assert np.all(np.abs(y - y_ref) <= 1e-5 * size + 1.0001 * x_rounding), shape
            assert np.all(np.abs(y - y32) <= 1.0001 * (rounding + x_rounding) + 1e-5 * size), shape
        if m >= 7:
            assert np.all(y[:, [0, 4]] == 0), shape  # scale 0
        worst = max(worst, float(np.max(np.abs(y - y_ref) / np.maximum(size, 1e-300))))
    assert at == len(out)
    assert worst > 0  # the comparison compared something
