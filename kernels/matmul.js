// WebAssembly SIMD kernels for the weight products y = x @ w.T (kernels/matmul.c), with the
// weights in the kernel module's own memory: a second address space beside Pyodide's heap.
//
//   import { simdSupported, loadKernels } from "./kernels/matmul.js";
//   if (simdSupported()) {                          // else keep NumPy's einsum
//     const kernels = await loadKernels();          // fetches matmul.wasm beside this file
//     const w1 = kernels.addWeight(w, nOut, nIn);   // w: Float32Array [nOut, nIn], row-major
//     const y = kernels.matmul_t(x, nSeq, w1);      // x: Float32Array [nSeq, nIn] -> [nSeq, nOut]
//   }
//
// No dependencies; runs in a page, a worker and Node.

export const KERNELS_URL = new URL("./matmul.wasm", import.meta.url);

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
  /** @param {WebAssembly.Exports} exports of matmul.wasm: memory, alloc, heap_mark, heap_release, matmul_t */
  constructor(exports) {
    this.wasm = exports;
    this.weights = []; // per handle: { ptr, nOut, nIn }
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
   * x @ w.T for the weight matrix `handle` (from addWeight).
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
    const { ptr, nOut, nIn } = this.weights[handle];
    checkLength(x, nSeq * nIn, "x");
    checkLength(y, nSeq * nOut, "y");
    const mark = this.wasm.heap_mark(); // x and y are scratch, freed below
    try {
      const xPtr = this.alloc(x.length);
      const yPtr = this.alloc(y.length);
      this.view(xPtr, x.length).set(x);
      this.wasm.matmul_t(xPtr, ptr, yPtr, nSeq, nIn, nOut);
      y.set(this.view(yPtr, y.length));
    } finally {
      this.wasm.heap_release(mark);
    }
  }

  /** The byte offset of `floats` new float32s in the module's memory. */
  alloc(floats) {
    const ptr = this.wasm.alloc(floats * 4) >>> 0; // an address past 2 GiB comes back negative
    if (ptr === 0) throw new RangeError(`kernel memory cannot grow by ${floats * 4} bytes`);
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
