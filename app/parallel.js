// One model split over several workers (tensor parallelism; engine/parallel.py has the math).
//
//   import { loadParallel } from "./app/parallel.js";
//   const model = await loadParallel({ repo, revision, endpoint }, { workers: 2 });
//   await model.start(JSON.stringify({ prompt, settings }));   // as the model worker's start()
//   const step = JSON.parse(await model.step());                 // as its step()
//
// `model` offers the model worker's exported functions (load, start, step, stop, tokenize,
// defaults, heap_bytes; JSON strings in and out), so a page can use it in place of the worker.
// Each worker runs worker/worker.py and holds one shard: a range of the heads, of the MLP's
// hidden units and of the vocabulary. This module, on the page's thread, is the coordinator:
// per forward pass it asks every shard for its partial float32 arrays (all shards at once, each
// in its own worker), sums them in shard order (the all-reduce) and hands the sum back: once
// for the embeddings, twice per layer, then it concatenates the logits. Shard 0 also holds the
// generation state (sampling, stop strings, context window). No SharedArrayBuffer is needed.
// On a cross-origin-isolated page (COOP/COEP: tools/serve.py --isolated) the shards sum among
// themselves through SharedArrayBuffers (Atomics for the barrier; every shard adds the slots
// up in the same order, so the sums are the same), and this module calls each once per token.

import { MODEL_WORKER, chooseRuntime, startWorker } from "./runtime.js";

/** How many workers to use: ?workers=N (at most 8), else 1 (later: navigator.hardwareConcurrency). */
export function workerCount(query = new URLSearchParams(location.search)) {
  const n = Number.parseInt(query.get("workers") ?? "1", 10);
  return Number.isFinite(n) && n >= 1 ? Math.min(n, 8) : 1;
}

/** Sum of equally long Float32Arrays, in order, rounded to float32 after each addition. */
export function allReduce(partials) {
  const total = Float32Array.from(partials[0]);
  for (let p = 1; p < partials.length; p++) {
    const part = partials[p];
    for (let i = 0; i < total.length; i++) total[i] += part[i];
  }
  return total;
}

/** Concatenation of Float32Arrays. */
function concat(parts) {
  const out = new Float32Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) { out.set(part, at); at += part.length; }
  return out;
}

/**
 * Start `workers` model workers and load the model into them as shards.
 * @param {object} request  the model worker's load request without `tiktoken` ({repo, revision,
 *   endpoint} or {local: {name: URL}})
 * @param {{workers?: number, onProgress?: (event: object) => void}} [options]
 * @returns {Promise<ParallelModel>}  rejects with the reason if a shard cannot load
 */
export async function loadParallel(request, { workers = workerCount(), onProgress, shared } = {}) {
  const model = new ParallelModel(workers, shared);
  const info = JSON.parse(await model.load(JSON.stringify(request), onProgress));
  if (info.error) { model.terminate(); throw new Error(info.error); }
  return model;
}

export class ParallelModel {
  #workers = [];
  #nLayer = 0;
  #step = null;     // the pending step's feed: [ids, position]
  #stopped = false;

  /** @param {number} workers  @param {boolean} [shared]  all-reduce through SharedArrayBuffers
   * (default: when the page is cross-origin isolated) */
  constructor(workers, shared = globalThis.crossOriginIsolated === true) {
    this.n = workers;
    this.shared = shared;
    this.timings = { exchanges: 0, exchangeMs: 0 };
  }

  /** Start the workers (once) and load a model into them: shard 0 first (it fills the browser's
   * cache), then the others at once from the cache. Same request and reply as worker.load,
   * plus {workers, shard_bytes: [...]}. */
  async load(request, onProgress) {
    const options = { ...JSON.parse(request), tiktoken: (await chooseRuntime()).tiktoken };
    if (!this.#workers.length) {
      this.#workers = await Promise.all(Array.from({ length: this.n }, () => startWorker(MODEL_WORKER.src)));
    }
    const listener = ({ data }) => typeof data === "string" && onProgress?.(JSON.parse(data));
    this.#workers[0].addEventListener("message", listener);
    const load = (w, i) => this.#workers[i].sync.shard_load(JSON.stringify(options), i, this.n).then(JSON.parse);
    try {
      const lead = await load(this.#workers[0], 0);
      if (lead.error) return JSON.stringify(lead);
      const rest = await Promise.all(this.#workers.slice(1).map((w, i) => load(w, i + 1)));
      const failed = rest.find(info => info.error);
      if (failed) return JSON.stringify(failed);
      this.#nLayer = lead.n_layer;
      if (this.shared) {
        const floats = n => new Float32Array(new SharedArrayBuffer(4 * n));
        const ctrl = new Int32Array(new SharedArrayBuffer(8));
        const data = floats(2 * this.n * lead.n_ctx * lead.n_embd), logits = floats(lead.n_vocab);
        await Promise.all(this.#workers.map(w => w.sync.shard_share(ctrl, data, logits)));
      }
      this.info = { ...lead, workers: this.n, shared: this.shared,
                    shard_bytes: [lead, ...rest].map(info => info.shard_bytes) };
      return JSON.stringify(this.info);
    } finally {
      this.#workers[0].removeEventListener("message", listener);
    }
  }

  /** Begin a reply: as worker.start (and the prompt's forward pass runs on the first step). */
  async start(request) {
    const reply = JSON.parse(await this.#workers[0].sync.shard_start(request));
    this.#step = reply.feed ?? null;
    this.#stopped = false;
    delete reply.feed;
    return JSON.stringify(reply);
  }

  /** The next token: as worker.step. */
  async step() {
    if (!this.#step || this.#stopped) throw new Error("no reply in progress");
    const [ids, position] = this.#step;
    let reply;
    if (this.shared) {
      const t0 = performance.now();
      const replies = await Promise.all(this.#workers.map(w => w.sync.shard_run(JSON.stringify(ids), position)));
      this.timings.exchanges += 2 * this.#nLayer + 1;
      this.timings.exchangeMs += performance.now() - t0;
      reply = JSON.parse(replies[0]);
    } else {
      reply = JSON.parse(await this.#workers[0].sync.shard_next(await this.forward(ids, position)));
    }
    this.#step = reply.feed;
    delete reply.feed;
    return JSON.stringify(reply);
  }

  /** One forward pass of `ids` written at cache `position`: the logits after the last one. */
  async forward(ids, position) {
    const shards = this.#workers.map(w => w.sync);
    let partials = await Promise.all(shards.map(s => s.shard_feed(JSON.stringify(ids), position)));
    for (let k = 0; k <= 2 * this.#nLayer; k++) {
      const total = allReduce(partials);
      const t0 = performance.now();
      partials = await Promise.all(shards.map(s => s.shard_exchange(total)));
      this.timings.exchanges += 1;
      this.timings.exchangeMs += performance.now() - t0;
    }
    return concat(partials);
  }

  async stop() {
    this.#stopped = true;
    this.#step = null;
    await this.#workers[0]?.sync.shard_stop();
  }

  async tokenize(text) { return this.#workers[0].sync.shard_tokenize(text); }
  async defaults() { return this.#workers[0].sync.defaults(); }

  /** The largest WebAssembly memory among the workers. */
  async heap_bytes() {
    return Math.max(...await Promise.all(this.#workers.map(w => w.sync.heap_bytes())));
  }

  /** The shards' workers (PyScript workers; their exports on `.sync`). */
  get workers() { return [...this.#workers]; }

  /** End every worker (frees their memory). */
  terminate() {
    this.#workers.forEach(w => w.terminate());
    this.#workers = [];
  }
}
