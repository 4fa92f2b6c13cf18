// The model on every core: split over several workers (tensor parallelism; engine/parallel.py
// has the math), or on one worker when only one is used.
//
//   import { loadParallel } from "./client/parallel.js";
//   const model = await loadParallel({ repo, revision, endpoint }, { workers: 2 });
//   await model.start(JSON.stringify({ prompt, settings }));   // as the model worker's start()
//   const step = JSON.parse(await model.step());                 // as its step()
//   const ready = JSON.parse(await model.steps());               // or every token ready: [step, ...]
//   await model.settle(100);                                     // 100 ms, or until the reply's last token
//
// `model` offers the model worker's exported functions (load, start, step, stop, tokenize,
// logits, defaults, heap_bytes, cache_models, cache_delete, model_size, cancel; JSON strings in and out), so a
// page uses it in place of the worker; the chat page does (app/main.py). After start() the model
// runs the whole reply ahead of the page (until it ends or stop()), so a page that shows tokens
// slower than they come, or is busy, never holds it up. The worker count
// follows the visitor's cores (workerCount). With several workers, each runs worker/worker.py
// and holds one shard: a range of the heads, of the MLP's hidden units and of the vocabulary.
// This module, on the page's thread, only moves arrays: per forward pass it hands every shard
// (all at once, each in its own worker) the partial float32 arrays of all of them, until the
// shards say the pass is over; each sums them itself (worker/shard.py). Shard 0 also holds the
// generation state (sampling, stop strings, context window). No SharedArrayBuffer is needed.
// On a cross-origin-isolated page (COOP/COEP: tools/serve.py --isolated) the shards exchange
// their partials among themselves through SharedArrayBuffers (Atomics for the barrier) and run
// the whole reply among themselves: this module starts them once per reply and reads the
// tokens the lead pushes, so nothing the page's thread does holds up a forward pass.

import { CONTROL, EVENT, TO_WORKER } from "./protocol.js";
import { MODEL_WORKER, chooseRuntime, startWorker } from "./runtime.js";

export const MAX_WORKERS = 8;

/** The logical cores of the visitor's machine (navigator.hardwareConcurrency), else 1. */
function coreCount() {
  return navigator.hardwareConcurrency || 1;
}

/** How many workers to use: ?workers=N, else one per logical core (coreCount); at most
 * MAX_WORKERS. */
export function workerCount(query = new URLSearchParams(location.search), cores = coreCount()) {
  const asked = Number.parseInt(query.get("workers") ?? "", 10);
  const n = Number.isFinite(asked) ? asked : cores;
  return Math.min(Math.max(n, 1), MAX_WORKERS);
}

/** The kernels for the weight products: ?kernels=numpy asks for NumPy's einsum, else "simd"
 * (WebAssembly SIMD, where the browser has it; the worker falls back to NumPy elsewhere). */
export function kernelsChoice(query = new URLSearchParams(location.search)) {
  return query.get("kernels") ?? "simd";
}

/** ?worker_memory=BYTES: a lower limit for each of a worker's memories than WebAssembly's 4 GiB,
 * to see how a model splits on a smaller device (the load request's memory_limit). */
export function memoryLimit(query = new URLSearchParams(location.search)) {
  const bytes = Number.parseInt(query.get("worker_memory") ?? "", 10);
  return Number.isFinite(bytes) && bytes > 0 ? bytes : undefined;
}

/** Tokens in the order they come, for whoever asks for the next one (take), until fail. */
class TokenQueue {
  #items = [];
  #waiting = [];
  #error = null;
  #end = null;
  /** Resolves once the reply's last token is in, or the queue failed. */
  ended = new Promise(resolve => { this.#end = resolve; });

  put(token) {
    const waiting = this.#waiting.shift();
    if (waiting) waiting.resolve(token); else this.#items.push(token);
    if (token.finish) this.#end();
  }

  fail(error) {
    this.#error = error;
    this.#waiting.splice(0).forEach(w => w.reject(error));
    this.#end();
  }

  take() {
    if (this.#items.length) return Promise.resolve(this.#items.shift());
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  get length() { return this.#items.length; }
}

/** An event a worker pushed (worker.push: a JSON string), or {} for PyScript's own messages. */
function pushed({ data }) {
  return typeof data === "string" ? JSON.parse(data) : {};
}

/**
 * Start `workers` model workers and load the model into them as shards.
 * @param {object} request  the model worker's load request without `tiktoken` ({repo, revision,
 *   endpoint} or {local: {name: URL}})
 * @param {{workers?: number, shared?: boolean, onProgress?: (event: object) => void}} [options]
 * @returns {Promise<ParallelModel>}  rejects with the reason if a shard cannot load
 */
export async function loadParallel(request, { workers = workerCount(), onProgress, shared } = {}) {
  const model = new ParallelModel(workers, { shared });
  const info = JSON.parse(await model.load(JSON.stringify(request), onProgress));
  if (info.error) { model.terminate(); throw new Error(info.error); }
  return model;
}

/**
 * The chat page's model: `lead` (the page's model worker) and workers - 1 more, which start
 * booting now, beside it.
 * @returns {ParallelModel}
 */
export function pageModel(lead, workers) {
  const model = new ParallelModel(workers, { lead });
  model.boot().catch(() => {});  // load() boots again and reports
  return model;
}

/**
 * Start the lead model worker's chunk reader (worker/chunk_reader.js) now, while the worker
 * itself is still starting: it reads ahead from the browser cache, and hashes, what the last
 * load of `model` read (a JSON {endpoint, repo, revision}, as the coming load will ask for it),
 * so that a warm start finds the weights read. The worker asks it for chunks on a MessagePort
 * (ChunkReaderPort) and starts no reader of its own; the port is handed over once the reader's
 * script runs (a port reports no failure). `bytes`: what it may hold before the worker asks.
 */
export function readAhead(lead, model, bytes = readAheadBytes()) {
  let reader;
  try {
    reader = new Worker(new URL("../worker/chunk_reader.js", import.meta.url), { type: "module" });
  } catch {
    return; // no workers from here: the model worker starts its own reader
  }
  const channel = new MessageChannel();
  reader.onerror = () => reader.terminate();
  reader.onmessage = () => lead.postMessage({ kind: TO_WORKER.chunk_reader }, [channel.port2]);
  reader.postMessage({ port: channel.port1, model: JSON.parse(model), bytes }, [channel.port1]);
}

/** What the chunk reader may read ahead: 128 MiB for each core beside the one the model worker
 * starts on (the reader and the worker's start then share no core), within 64 MiB per GB of
 * the device's memory. */
export function readAheadBytes(cores = coreCount(), gigabytes = navigator.deviceMemory ?? 4) {
  return Math.min(128 * Math.max(cores - 1, 1), 64 * gigabytes) * 2 ** 20;
}

/**
 * A model on one or several model workers, with the model worker's functions (JSON strings in
 * and out). With one worker it is that worker's own generation loop; with several, each worker
 * holds a shard and this object coordinates them. Workers that cannot start are done without
 * (down to one).
 */
export class ParallelModel {
  #workers = [];    // started workers; the first is the lead (shard 0, the cache, the tokenizer)
  #active = 0;      // how many hold the loaded model (1: the lead alone, unsplit)
  #reply = null;    // the reply in progress: its tokens, as the model runs ahead (start)
  #booting = null;
  #control = null;  // shared: the shards' control array (protocol CONTROL), for the stop flag

  /**
   * @param {number} [workers]  how many workers to use (default: workerCount())
   * @param {{shared?: boolean, lead?: Worker}} [options]  shared: all-reduce through
   *   SharedArrayBuffers (default: when the page is cross-origin isolated); lead: a model worker
   *   already started (the page's <script type="py" worker>) to use as the first one
   */
  constructor(workers = workerCount(), { shared = globalThis.crossOriginIsolated === true, lead = null } = {}) {
    this.n = workers;
    this.shared = shared;
    this.timings = { exchanges: 0, exchangeMs: 0 };
    if (lead) this.#workers.push(lead);
  }

  /** Start the workers not started yet, all at once (once, however often it is called
   * meanwhile); resolves to how many run. */
  boot() {
    this.#booting ??= this.#startMissing().finally(() => { this.#booting = null; });
    return this.#booting;
  }

  async #startMissing() {
    const missing = Array.from({ length: Math.max(this.n - this.#workers.length, 0) }, () => startWorker(MODEL_WORKER.src));
    for (const result of await Promise.allSettled(missing)) {
      if (result.status === "fulfilled") this.#workers.push(result.value);
      else console.warn("A model worker could not start; going on with fewer:", result.reason);
    }
    if (!this.#workers.length) throw new Error("no model worker could start");
    return this.#workers.length;
  }

  /** Use `n` workers from the next load on (the surplus ones end now). */
  setWorkers(n) {
    this.n = n;
    this.#workers.splice(Math.max(n, 1)).forEach(w => w.terminate());
    this.#active = Math.min(this.#active, this.#workers.length);
  }

  get #lead() { return this.#workers[0].sync; }

  /** Load a model (as worker.load: same request and reply, plus {workers, shared, shard_bytes}):
   * into the lead alone when one worker is used, else as shards (#loadShards). The lead starts
   * as soon as it runs, while the other workers may still be booting. */
  async load(request, onProgress) {
    const booting = this.boot();
    if (!this.#workers.length) await booting;  // no lead given: wait for the workers
    const options = { kernels: kernelsChoice(), memory_limit: memoryLimit(), ...JSON.parse(request),
                      tiktoken: (await chooseRuntime()).tiktoken };
    const listener = message => {
      const event = pushed(message);
      if (event.kind === EVENT.progress || event.kind === EVENT.status) onProgress?.(event);
    };
    this.#workers[0].addEventListener("message", listener);
    await this.#endReply();
    this.#active = 0;
    try {
      const info = this.n === 1 ? await this.#loadWhole(options) : await this.#loadShards(options, booting);
      if (!info.error) this.info = info;
      return JSON.stringify(info);
    } finally {
      this.#workers[0].removeEventListener("message", listener);
    }
  }

  async #loadWhole(options) {
    const info = JSON.parse(await this.#lead.load(JSON.stringify(options)));
    this.#active = info.error ? 0 : 1;
    return { ...info, workers: 1, shared: false };
  }

  /** The lead loads first; once it has the files in the browser's cache (its "shards" event,
   * with how many shards the model allows) the others load from there, beside it, as soon as
   * they run (`booting`: the workers' boot). If some worker could not start, the model is
   * loaded whole in the lead. */
  async #loadShards(options, booting) {
    const load = (request, i, n) => this.#workers[i].sync.shard_load(JSON.stringify(request), i, n).then(JSON.parse);
    let others = Promise.resolve([]);
    const startOthers = message => {
      const event = pushed(message);
      if (event.kind !== EVENT.shards) return;
      const request = event.commit ? { ...options, revision: event.commit } : options;  // no second look at a branch
      others = booting.then(running => running < event.n_shards ? null :
        Promise.all(Array.from({ length: event.n_shards - 1 }, (_, i) => load(request, i + 1, event.n_shards))));
    };
    this.#workers[0].addEventListener("message", startOthers);
    let lead, rest;
    try {
      lead = await load(options, 0, this.n);
      rest = await others;
    } finally {
      this.#workers[0].removeEventListener("message", startOthers);
    }
    if (rest === null) return this.#loadWhole(options);  // too few workers started
    const n = lead.n_shards;  // 1: loaded whole (one head, a .bin, no cache); fewer than asked: fewer heads
    await Promise.all(this.#workers.slice(lead.error ? 1 : n).map(w => w.sync.release()));
    if (lead.error) return lead;
    if (n === 1) {
      this.#active = 1;
      return { ...lead, workers: 1, shared: false };
    }
    const failed = rest.find(info => info.error);
    if (failed) return failed;
    const shared = this.shared;
    if (shared) {  // two sets of n slots, each as long as the longest partial: a prompt's activations or the logits
      const slot = Math.max(lead.n_ctx * lead.n_embd, lead.n_vocab);
      this.#control = new Int32Array(new SharedArrayBuffer(4 * (CONTROL.ids + lead.n_ctx)));
      const data = new Float32Array(new SharedArrayBuffer(4 * 2 * n * slot));
      await Promise.all(this.#shards(n).map(s => s.shard_share(this.#control, data)));
    }
    this.#active = n;
    return { ...lead, workers: n, shared, shard_bytes: [lead, ...rest].map(info => info.shard_bytes) };
  }

  /** The exported functions of the first n workers. */
  #shards(n = this.#active) { return this.#workers.slice(0, n).map(w => w.sync); }

  /** Begin a reply: as worker.start. The model then runs the whole reply ahead of the page,
   * token after token, until it is finished or stopped; step() and steps() take its tokens as
   * they come, so nothing the page's thread does holds up the model. */
  async start(request) {
    await this.#endReply();
    const split = this.#active > 1;
    const reply = JSON.parse(await (split ? this.#lead.shard_start(request) : this.#lead.start(request)));
    if (reply.error) return JSON.stringify(reply);
    const feed = reply.feed;
    delete reply.feed;
    const run = this.#reply = { tokens: new TokenQueue(), ending: false, finished: false, unlisten: null };
    const running = split && !feed ? Promise.reject(new Error("no reply in progress"))
      : split && !this.info.shared ? this.#pump(run, feed)
      : this.#pushed(run, split ? () => Promise.all(this.#shards().map(s => s.shard_generate())) : () => this.#lead.generate());
    run.done = running.catch(error => run.tokens.fail(error));
    return JSON.stringify(reply);
  }

  /** Shards that exchange through this thread: run each pass, then ask the lead for the token. */
  async #pump(run, feed) {
    while (!run.ending) {
      await this.forward(...feed);
      const token = JSON.parse(await this.#lead.shard_next());
      feed = token.feed;
      run.tokens.put(token);
      if (token.finish) return;
    }
  }

  /** One worker (generate), or shards that share memory (shard_generate in every shard, the
   * passes run among themselves): the model runs the reply by itself and the lead pushes each
   * token (a Token event). */
  async #pushed(run, generate) {
    const lead = this.#workers[0];
    const listen = message => {
      const event = pushed(message);
      if (event.kind === EVENT.token) run.tokens.put(event);
    };
    lead.addEventListener("message", listen);
    run.unlisten = () => lead.removeEventListener("message", listen);
    if (this.#active > 1) Atomics.store(this.#control, CONTROL.stop, 0);
    await generate();
  }

  /** Stop the reply in progress, if any (within a token), and wait until the model has. */
  async #endReply() {
    const run = this.#reply;
    if (!run) return;
    run.ending = true;
    if (this.#control) Atomics.store(this.#control, CONTROL.stop, 1);
    if (this.#active === 1) await this.#lead.stop();  // generate ends at its next token
    await run.done;
    run.unlisten?.();
    this.#reply = null;
  }

  /** The reply's next token, once the model has it. */
  async #take() {
    const run = this.#reply;
    if (!run || run.ending || run.finished) throw new Error("no reply in progress");
    const token = await run.tokens.take();
    run.finished = Boolean(token.finish);
    delete token.kind;
    delete token.feed;
    return token;
  }

  /** The next token: as worker.step. */
  async step() { return JSON.stringify(await this.#take()); }

  /** The next tokens: a JSON array of every token the model has ready (at least one; it ends
   * with the reply's last token). */
  async steps() {
    const out = [await this.#take()];
    while (!out.at(-1).finish && this.buffered) out.push(await this.#take());
    return JSON.stringify(out);
  }

  /** Wait `ms` milliseconds, or less if the reply's last token comes first (or there is no
   * reply): a page that shows the tokens a few times a second (steps) shows the last ones at once. */
  settle(ms) {
    const ended = this.#reply?.tokens.ended ?? Promise.resolve();
    return Promise.race([ended, new Promise(resolve => setTimeout(resolve, ms))]);
  }

  /** Whether the loaded model's workers use every core of this machine (so the page's thread
   * has none to itself, and whatever it does takes time from them). */
  get usesEveryCore() {
    return this.#active >= coreCount();
  }

  /** Tokens the model has ready that step() has not returned yet. */
  get buffered() { return this.#reply?.tokens.length ?? 0; }

  /** One forward pass of `ids` written at cache `position`: every shard gets all partials,
   * until they answer empty arrays (the lead then holds the logits). */
  async forward(ids, position) {
    const shards = this.#shards();
    let partials = await Promise.all(shards.map(s => s.shard_feed(JSON.stringify(ids), position)));
    while (partials[0].length) {
      const t0 = performance.now();
      partials = await Promise.all(shards.map(s => s.shard_exchange(partials)));
      this.timings.exchanges += 1;
      this.timings.exchangeMs += performance.now() - t0;
    }
  }

  /** Stop the reply in progress: as worker.stop. */
  async stop() {
    await this.#endReply();
    if (!this.#workers.length) return;
    await (this.#active > 1 ? this.#lead.shard_stop() : this.#lead.stop());
  }

  async tokenize(text) { return this.#lead.tokenize(text); }

  /** As worker.logits, for a model loaded on one worker. */
  async logits(ids) {
    if (this.#active !== 1) throw new Error("logits needs a model loaded on one worker");
    return this.#lead.logits(ids);
  }

  async defaults() { return this.#lead.defaults(); }
  async cache_models() { return this.#lead.cache_models(); }
  async cache_delete(model) { return this.#lead.cache_delete(model); }

  /** Stop the load in progress, in every worker, within a chunk; what was downloaded is kept
   * and the next load goes on from it. The load then answers {error} saying it was cancelled. */
  async cancel() {
    await Promise.all(this.#workers.map(w => w.sync.cancel()));
  }
  async model_size(model) { return this.#lead.model_size(model); }

  /** The largest WebAssembly memory among the workers. */
  async heap_bytes() {
    return Math.max(...await Promise.all(this.#workers.map(w => w.sync.heap_bytes())));
  }

  /** The workers (PyScript workers; their exports on `.sync`). */
  get workers() { return [...this.#workers]; }

  /** End every worker (frees their memory). */
  terminate() {
    this.#reply = null;  // abandoned: its workers end
    this.#workers.forEach(w => w.terminate());
    this.#workers = [];
    this.#active = 0;
  }
}
