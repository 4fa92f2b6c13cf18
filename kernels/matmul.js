// WebAssembly SIMD kernels for the weight products y = x @ w.T and attention's two products over
// a key/value cache (kernels/matmul.c), with the weights and the cache in the kernel module's own
// memory: a second address space beside Pyodide's heap.
//
//   import { simdSupported, loadKernels } from "./kernels/matmul.js";
//   if (simdSupported()) {                          // else keep NumPy's einsum
//     const kernels = await loadKernels();          // fetches matmul.wasm beside this file
//     const w1 = kernels.addWeight(w, nOut, nIn);   // w: Float32Array [nOut, nIn], row-major
//     const y = kernels.matmul_t(x, nSeq, w1);      // x: Float32Array [nSeq, nIn] -> [nSeq, nOut]
//     const w2 = kernels.addWeightInt8(w, nOut, nIn); // the same matrix held as int8, 1/4 the bytes
//     kernels.matmulInto(x, nSeq, w2, y);           // y = x @ wDeq.T into y: Float32Array [nSeq, nOut]
//   }
//
// API (MatmulKernels):
//   addWeight(w, nOut, nIn) -> handle       copies float32 w [nOut, nIn] in
//   addWeightInt8(w, nOut, nIn) -> handle   quantizes float32 w per row into int8 + a float32 scale
//                                           per row (scale = max|row| / 127, q = round-half-even(w /
//                                           scale) in [-127, 127]; a row whose scale is 0 gets q = 0)
//   matmul_t(x, nSeq, handle) -> y          y = x @ w.T, a new Float32Array [nSeq, nOut]
//   matmulInto(x, nSeq, handle, y)          the same into y; both take either kind of handle
//   rowsInto(handle, ids, out)              copies rows ids (Int32Array [n]) of a float32 handle's
//                                           w into out (Float32Array [n, nIn]): an embedding lookup
//   addCache(nLayer, nHead, nCtx, d) -> c  a key/value cache: per layer and head, nCtx rows of d
//                                           floats of keys and as many of values
//   storeKV(c, layer, start, k, v, nSeq)    writes k and v (Float32Array [nHead, nSeq, d]) at
//                                           positions start.. of a layer
//   scoresInto(c, layer, q, nSeq, nPast, s) s[h, i, j] = q[h, i] . k[h, j], j < nPast: q [nHead,
//                                           nSeq, d] -> s [nHead, nSeq, nPast]
//   mixInto(c, layer, p, nSeq, nPast, o)    o[h, i] = sum_j p[h, i, j] v[h, j]: p [nHead, nSeq,
//                                           nPast] -> o [nHead, nSeq, d]
//   quantized(handle) -> { q, scales }      copies of an int8 handle's Int8Array q and Float32Array scales
//   dequantized(handle) -> Float32Array     the matrix a handle multiplies by: q * scale for int8
//   shape(handle) -> { nOut, nIn, int8 }    a handle's shape and kind
//   bytes                                   the module's memory, in bytes
//
// No dependencies; runs in a page, a worker and Node.

export const KERNELS_URL = new URL("./matmul.wasm", import.meta.url);

const CHUNK_FLOATS = 1 << 18; // addWeightInt8's scratch: 1 MiB of float32 rows at a time

// The smallest module that uses SIMD128: one function () -> v128 { i32x4.splat(i32.const 0) }.
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // types: () -> v128
  0x03, 0x02, 0x01, 0x00, // functions: one, of type 0
  0x0a, 0x08, 0x01, 0x06, 0x00, 0x41, 0x00, 0xfd, 0x11, 0x0b, // code: i32.const 0, i32x4.splat, end
]);

/** Whether this engine runs WebAssembly SIMD128 (the kernels need it). */
export function simdSupported() {
  return WebAssembly.validate(SIMD_PROBE);
}

/**
 * Compile and instantiate the kernels: from `bytes` (the .wasm file's contents) when given, else
 * fetched from KERNELS_URL.
 * @param {BufferSource} [bytes]
 * @returns {Promise<MatmulKernels>}
 */
export async function loadKernels(bytes) {
  const source = bytes ?? (await (await fetch(KERNELS_URL)).arrayBuffer());
  const { instance } = await WebAssembly.instantiate(source);
  return new MatmulKernels(instance.exports);
}

/** Weight matrices held in the kernel module's memory, and the products with them. */
export class MatmulKernels {
  /** @param {WebAssembly.Exports} exports of matmul.wasm: memory, alloc, heap_mark, heap_release,
   * matmul_t, matmul_t_q8, quantize_rows, attention_scores, attention_mix */
  constructor(exports) {
    this.wasm = exports;
    this.weights = []; // per handle: { ptr, nOut, nIn }, and scales (a pointer) when int8
    this.caches = [];  // per cache: { k, v, nLayer, nHead, nCtx, d } (k, v: pointers)
  }

  /** Bytes of memory the module holds (weights, and the last product's scratch space). */
  get bytes() {
    return this.wasm.memory.buffer.byteLength;
  }

  /**
   * Copy a weight matrix into the module's memory.
   * @param {Float32Array} w [nOut, nIn], row-major (the engine's (out, in) layout)
   * @returns {number} its handle, for matmul_t
   */
  addWeight(w, nOut, nIn) {
    checkLength(w, nOut * nIn, "w");
    const ptr = this.alloc(w.length);
    this.view(ptr, w.length).set(w);
    return this.weights.push({ ptr, nOut, nIn }) - 1;
  }

  /**
   * Quantize a weight matrix per row into the module's memory: int8 q [nOut, nIn] and a float32
   * scale per row, w ~= q * scale (scale = max|row| / 127, q = round-half-even(w / scale), both in
   * float32; a row whose scale is 0 gets q = 0). A quarter of addWeight's bytes; the products
   * differ from the float32 ones by the rounding of w to q * scale (kernels/README.md).
   * @param {Float32Array} w [nOut, nIn], row-major
   * @returns {number} its handle, for matmul_t and matmulInto as addWeight's
   */
  addWeightInt8(w, nOut, nIn) {
    checkLength(w, nOut * nIn, "w");
    const start = this.wasm.heap_mark(); // back to here if the memory cannot grow
    let end = start;
    try {
      const ptr = this.allocBytes(nOut * nIn);
      const scales = this.alloc(nOut);
      end = this.wasm.heap_mark();
      // through scratch space in chunks of rows (~1 MiB), freed after, so that the memory (which
      // never shrinks) does not grow by the float32 matrix
      const rows = Math.max(1, Math.floor(CHUNK_FLOATS / Math.max(1, nIn)));
      const chunk = this.alloc(Math.min(rows, nOut) * nIn);
      for (let row = 0; row < nOut; row += rows) {
        const n = Math.min(rows, nOut - row);
        this.view(chunk, n * nIn).set(w.subarray(row * nIn, (row + n) * nIn));
        this.wasm.quantize_rows(chunk, ptr + row * nIn, scales + 4 * row, n, nIn);
      }
      this.wasm.heap_release(end);
      return this.weights.push({ ptr, scales, nOut, nIn }) - 1;
    } catch (error) {
      this.wasm.heap_release(start);
      throw error;
    }
  }

  /** A handle's shape, and whether it is held as int8. */
  shape(handle) {
    const { nOut, nIn, scales } = this.weights[handle];
    return { nOut, nIn, int8: scales !== undefined };
  }

  /**
   * Copies of an int8 handle's quantized matrix and scales (from addWeightInt8).
   * @returns {{q: Int8Array, scales: Float32Array}} q [nOut, nIn], scales [nOut]
   */
  quantized(handle) {
    const { ptr, scales, nOut, nIn } = this.weights[handle];
    if (scales === undefined) throw new TypeError(`weight ${handle} is float32, not int8`);
    return { q: new Int8Array(this.wasm.memory.buffer, ptr, nOut * nIn).slice(), scales: this.view(scales, nOut).slice() };
  }

  /**
   * The matrix a handle multiplies by, as a new Float32Array [nOut, nIn]: a copy of the float32
   * weights, or q * scale (in float32) for an int8 handle.
   */
  dequantized(handle) {
    const { ptr, nOut, nIn } = this.weights[handle];
    if (!this.shape(handle).int8) return this.view(ptr, nOut * nIn).slice();
    const { q, scales } = this.quantized(handle);
    const w = new Float32Array(nOut * nIn);
    for (let row = 0; row < nOut; row++) {
      for (let k = row * nIn; k < (row + 1) * nIn; k++) w[k] = q[k] * scales[row]; // exact product, rounded once
    }
    return w;
  }

  /**
   * x @ w.T for the weight matrix `handle` (from addWeight or addWeightInt8).
   * @param {Float32Array} x [nSeq, nIn], row-major
   * @returns {Float32Array} [nSeq, nOut], a new array
   */
  matmul_t(x, nSeq, handle) {
    const y = new Float32Array(nSeq * this.weights[handle].nOut);
    this.matmulInto(x, nSeq, handle, y);
    return y;
  }

  /**
   * x @ w.T for the weight matrix `handle`, written into y (e.g. a view of another module's
   * memory, as a NumPy array's buffer in Pyodide).
   * @param {Float32Array} x [nSeq, nIn], row-major
   * @param {Float32Array} y [nSeq, nOut], row-major
   */
  matmulInto(x, nSeq, handle, y) {
    const { ptr, scales, nOut, nIn } = this.weights[handle];
    checkLength(x, nSeq * nIn, "x");
    checkLength(y, nSeq * nOut, "y");
    this.#throughScratch(x, y, (xPtr, yPtr) => scales === undefined
      ? this.wasm.matmul_t(xPtr, ptr, yPtr, nSeq, nIn, nOut)
      : this.wasm.matmul_t_q8(xPtr, ptr, scales, yPtr, this.alloc(4 * nIn), nSeq, nIn, nOut));
  }

  /**
   * Rows of a float32 weight matrix, copied out: w[ids] (a tied LM head read back as the token
   * embedding, so the model holds that matrix once).
   * @param {Int32Array} ids [n] row indices, each in [0, nOut)
   * @param {Float32Array} out [n, nIn], row-major
   */
  rowsInto(handle, ids, out) {
    const { ptr, scales, nOut, nIn } = this.weights[handle];
    if (scales !== undefined) throw new TypeError(`weight ${handle} is int8: its rows are not kept as float32`);
    checkLength(out, ids.length * nIn, "out");
    ids.forEach((id, i) => {
      if (!(id >= 0 && id < nOut)) throw new RangeError(`row ${id} of a matrix of ${nOut} rows`);
      out.set(this.view(ptr + 4 * id * nIn, nIn), i * nIn);
    });
  }

  /**
   * A key/value cache for attention (attention_scores, attention_mix in matmul.c): per layer
   * and head, nCtx rows of d floats of keys, and as many of values.
   * @returns {number} its handle
   */
  addCache(nLayer, nHead, nCtx, d) {
    const floats = nLayer * nHead * nCtx * d;
    const start = this.wasm.heap_mark();
    try {
      return this.caches.push({ k: this.alloc(floats), v: this.alloc(floats), nLayer, nHead, nCtx, d }) - 1;
    } catch (error) {
      this.wasm.heap_release(start);
      throw error;
    }
  }

  /**
   * Write a layer's keys and values of nSeq tokens at positions start.. of the cache.
   * @param {Float32Array} k [nHead, nSeq, d]
   * @param {Float32Array} v [nHead, nSeq, d]
   */
  storeKV(cache, layer, start, k, v, nSeq) {
    const { nHead, nCtx, d } = this.#cacheAt(cache, layer, start + nSeq);
    checkLength(k, nHead * nSeq * d, "k");
    checkLength(v, nHead * nSeq * d, "v");
    for (const [rows, from] of [[this.#layer(cache, "k", layer), k], [this.#layer(cache, "v", layer), v]]) {
      for (let h = 0; h < nHead; h++) {
        this.view(rows + 4 * (h * nCtx + start) * d, nSeq * d).set(from.subarray(h * nSeq * d, (h + 1) * nSeq * d));
      }
    }
  }

  /**
   * Attention scores of nSeq queries over a layer's first nPast keys, per head: s[h, i, j] =
   * q[h, i] . k[h, j] (not scaled).
   * @param {Float32Array} q [nHead, nSeq, d]
   * @param {Float32Array} s [nHead, nSeq, nPast]
   */
  scoresInto(cache, layer, q, nSeq, nPast, s) {
    const { nHead, nCtx, d } = this.#cacheAt(cache, layer, nPast);
    checkLength(q, nHead * nSeq * d, "q");
    checkLength(s, nHead * nSeq * nPast, "s");
    const keys = this.#layer(cache, "k", layer);
    this.#throughScratch(q, s, (qPtr, sPtr) =>
      this.wasm.attention_scores(qPtr, keys, sPtr, nHead, nSeq, nPast, d, nCtx));
  }

  /**
   * Attention's output: the weights p times a layer's first nPast values, per head: o[h, i] =
   * sum over j of p[h, i, j] * v[h, j].
   * @param {Float32Array} p [nHead, nSeq, nPast]
   * @param {Float32Array} o [nHead, nSeq, d]
   */
  mixInto(cache, layer, p, nSeq, nPast, o) {
    const { nHead, nCtx, d } = this.#cacheAt(cache, layer, nPast);
    checkLength(p, nHead * nSeq * nPast, "p");
    checkLength(o, nHead * nSeq * d, "o");
    const values = this.#layer(cache, "v", layer);
    this.#throughScratch(p, o, (pPtr, oPtr) =>
      this.wasm.attention_mix(pPtr, values, oPtr, nHead, nSeq, nPast, d, nCtx));
  }

  /** A cache, once its layer and its last position (end <= nCtx) are checked. */
  #cacheAt(cache, layer, end) {
    const c = this.caches[cache];
    if (!(layer >= 0 && layer < c.nLayer)) throw new RangeError(`layer ${layer} of ${c.nLayer}`);
    if (!(end >= 0 && end <= c.nCtx)) throw new RangeError(`position ${end} past the cache's ${c.nCtx}`);
    return c;
  }

  /** The address of a layer's keys ("k") or values ("v"). */
  #layer(cache, kind, layer) {
    const c = this.caches[cache];
    return c[kind] + 4 * layer * c.nHead * c.nCtx * c.d;
  }

  /** run(inPtr, outPtr) on a copy of `input` in the module's memory, its result then copied into
   * `output`: both copies, and whatever run allocates, are scratch, freed after. */
  #throughScratch(input, output, run) {
    const mark = this.wasm.heap_mark();
    try {
      const inPtr = this.alloc(input.length);
      const outPtr = this.alloc(output.length);
      this.view(inPtr, input.length).set(input);
      run(inPtr, outPtr);
      output.set(this.view(outPtr, output.length));
    } finally {
      this.wasm.heap_release(mark);
    }
  }

  /** The byte offset of `floats` new float32s in the module's memory. */
  alloc(floats) {
    return this.allocBytes(floats * 4);
  }

  /** The byte offset of `bytes` new bytes (16-byte aligned) in the module's memory. */
  allocBytes(bytes) {
    const ptr = this.wasm.alloc(bytes) >>> 0; // an address past 2 GiB comes back negative
    if (ptr === 0) throw new RangeError(`kernel memory cannot grow by ${bytes} bytes`);
    return ptr;
  }

  /** A view of `length` float32s at `ptr`, made anew each time: growing the memory detaches old views. */
  view(ptr, length) {
    return new Float32Array(this.wasm.memory.buffer, ptr, length);
  }
}

function checkLength(array, expected, name) {
  if (!(array instanceof Float32Array) || array.length !== expected) {
    throw new TypeError(`${name}: expected a Float32Array of ${expected} floats, got ${array?.length}`);
  }
}
