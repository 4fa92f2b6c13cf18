// The WebAssembly SIMD kernels (kernels/matmul.js) for the model worker's Python
// (worker/kernels.py). NumPy arrays are read and written in place in Pyodide's memory, so nothing
// is converted on the way: as PyProxies, through their buffers, or (a product's x and y, 49
// times a token, and attention's arrays) as their addresses in that memory.
import { loadKernels } from "../kernels/matmul.js";

export { simdSupported } from "../kernels/matmul.js";

/** A new kernel instance (its own memory), for one model, beside Pyodide's memory `heap` (its
 * Emscripten module, whose HEAPF32 is that memory's current view); `bytes`: matmul.wasm's, else
 * fetched. */
export async function create(heap, bytes) {
  return new PyKernels(await loadKernels(bytes), heap);
}

class PyKernels {
  constructor(kernels, heap) {
    this.kernels = kernels;
    this.heap = heap;
  }

  /** Bytes of the kernel module's memory. */
  get bytes() {
    return this.kernels.bytes;
  }

  /** Copy a C-contiguous float32 NumPy matrix [nOut, nIn] in (as int8 with a scale per row if
   * `int8`); its handle. */
  addWeight(w, int8) {
    return withBuffers([w], ([b]) => int8 ? this.kernels.addWeightInt8(b.data, b.shape[0], b.shape[1])
      : this.kernels.addWeight(b.data, b.shape[0], b.shape[1]));
  }

  /** Rows `ids` (an int32 NumPy array [n]) of a float32 matrix `handle` into `out` [n, nIn]. */
  rowsInto(handle, ids, out) {
    withBuffers([ids, out], ([bi, bo]) => this.kernels.rowsInto(handle, bi.data, bo.data));
  }

  /** y = x @ w.T for the matrix `handle`; x [nSeq, nIn] and y [nSeq, nOut] C-contiguous float32
   * arrays at byte addresses xAt and yAt of Pyodide's memory: a call with numbers only, which
   * costs a NumPy array's PyProxy and buffer nothing (twice per product, 49 products a token). */
  matmulAt(xAt, nSeq, handle, yAt) {
    const { nOut, nIn } = this.kernels.shape(handle);
    this.kernels.matmulInto(this.#floats(xAt, nSeq * nIn), nSeq, handle, this.#floats(yAt, nSeq * nOut));
  }

  /** A key/value cache in the kernels' memory (MatmulKernels.addCache); its handle. */
  addCache(nLayer, nHead, nCtx, d) {
    return this.kernels.addCache(nLayer, nHead, nCtx, d);
  }

  /** A layer's keys and values of nSeq tokens, float32 [nHead, nSeq, d] at kAt and vAt of
   * Pyodide's memory, written at positions start.. of the cache. */
  storeAt(cache, layer, start, kAt, vAt, nSeq) {
    const { nHead, d } = this.kernels.caches[cache];
    const floats = nHead * nSeq * d;
    this.kernels.storeKV(cache, layer, start, this.#floats(kAt, floats), this.#floats(vAt, floats), nSeq);
  }

  /** Attention scores (MatmulKernels.scoresInto) of q [nHead, nSeq, d] at qAt into s [nHead,
   * nSeq, nPast] at sAt. */
  scoresAt(cache, layer, qAt, nSeq, nPast, sAt) {
    const { nHead, d } = this.kernels.caches[cache];
    this.kernels.scoresInto(cache, layer, this.#floats(qAt, nHead * nSeq * d), nSeq, nPast,
                            this.#floats(sAt, nHead * nSeq * nPast));
  }

  /** Attention's output (MatmulKernels.mixInto) of the weights p [nHead, nSeq, nPast] at pAt
   * into o [nHead, nSeq, d] at oAt. */
  mixAt(cache, layer, pAt, nSeq, nPast, oAt) {
    const { nHead, d } = this.kernels.caches[cache];
    this.kernels.mixInto(cache, layer, this.#floats(pAt, nHead * nSeq * nPast), nSeq, nPast,
                         this.#floats(oAt, nHead * nSeq * d));
  }

  /** `length` float32s at byte address `at` of Pyodide's memory. */
  #floats(at, length) {
    return this.heap.HEAPF32.subarray(at >>> 2, (at >>> 2) + length); // HEAPF32: made anew when the memory grows
  }
}

/** f(buffers) over the arrays' buffers, released afterwards. */
function withBuffers(arrays, f) {
  const buffers = [];
  try {
    for (const array of arrays) buffers.push(array.getBuffer());
    return f(buffers);
  } finally {
    buffers.forEach(buffer => buffer.release());
  }
}
