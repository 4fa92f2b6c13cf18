// The WebAssembly SIMD kernels (kernels/matmul.js) for the model worker's Python
// (worker/kernels.py). NumPy arrays arrive as PyProxies and are read and written in place
// through their buffers (views of Pyodide's memory), so nothing is converted on the way.
import { loadKernels } from "../kernels/matmul.js";

export { simdSupported } from "../kernels/matmul.js";

/** A new kernel instance (its own memory), for one model; `bytes`: matmul.wasm's, else fetched. */
export async function create(bytes) {
  return new PyKernels(await loadKernels(bytes));
}

class PyKernels {
  constructor(kernels) {
    this.kernels = kernels;
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

  /** y = x @ w.T for the matrix `handle`; x [nSeq, nIn] and y [nSeq, nOut] C-contiguous float32. */
  matmulInto(x, handle, y) {
    withBuffers([x, y], ([bx, by]) => this.kernels.matmulInto(bx.data, bx.shape[0], handle, by.data));
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
