"""kernels/: the committed matmul.wasm is what tools/build_kernels.sh builds, and its products,
run in Node through kernels/matmul.js as a page or a worker would, equal NumPy's x @ w.T.

Node runs the wasm (Debian's nodejs, which apt's npm brings; tools/test.sh installs npm): without
it these tests fail, they are not skipped."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "kernels"
WASM = KERNELS / "matmul.wasm"
EXPORTS = ["alloc", "heap_mark", "heap_release", "matmul_t", "memory"]

# (n_seq, n_in, n_out): every remainder mod 4 of each size, on the GEMV (n_seq == 1) and the
# GEMM path, then GPT-2 small's shapes (attention in and MLP up, one token and 128).
SHAPES = [(1, 1, 1), (1, 3, 5), (1, 4, 4), (1, 6, 7), (1, 9, 2), (1, 33, 66),
          (2, 5, 3), (3, 8, 7), (4, 4, 4), (4, 13, 6), (5, 17, 11), (6, 2, 9), (7, 3, 2),
          (8, 64, 33), (9, 10, 768), (12, 31, 8),
          (1, 768, 2304), (128, 768, 3072)]

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

# The committed module validates and exports what kernels/matmul.js uses.
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
