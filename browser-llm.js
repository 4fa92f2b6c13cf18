// Browser LLM for JavaScript pages: load a GPT-2 in a worker and stream its tokens.
//
//   import { loadModel } from "https://<where the app is hosted>/browser-llm.js";
//   const model = await loadModel("openai-community/gpt2", { onProgress: e => console.log(e) });
//   for await (const token of model.generate("Once upon a time", { maxNewTokens: 40, signal })) {
//     out.textContent += token.text;
//   }
//   await model.dispose();
//
// Each model runs in its own PyScript workers (Pyodide + NumPy) with the app's worker code
// (worker/worker.py, configured by pyscript.toml): one per core of the visitor's machine by
// default, each holding a slice of the model (client/parallel.js); the runtime is the app's vendor/ copy when
// it is served, else the pinned CDN release (client/runtime.js). Nothing is sent anywhere: the
// only downloads are the runtime and the model's files.

import { ParallelModel, workerCount } from "./client/parallel.js";

const HUB = "https://huggingface.co";
/** Files tried in a folder given by URL (sharded checkpoints: pass a {name: URL} map). */
const FOLDER_FILES = ["config.json", "vocab.json", "merges.txt", "model.safetensors",
  "model.safetensors.index.json", "pytorch_model.bin"];

/**
 * @typedef {object} LoadOptions
 * @property {string} [revision="main"]  branch, tag or commit (Hub repo ids only)
 * @property {string} [endpoint="https://huggingface.co"]  the Hub, or a mirror with its URL layout
 * @property {number} [workers]  how many workers (cores) to split the model over; default: one
 *   per logical core (navigator.hardwareConcurrency), at most 8; 1 keeps it in one worker
 * @property {(event: object) => void} [onProgress]  called with what the worker reports:
 *   {kind: "progress", file, files: {name: [received, total]}, cached, speed} or
 *   {kind: "status", text} (client/protocol.js: Progress, Status)
 * @property {"simd" | "numpy"} [kernels="simd"]  what multiplies by the weights: WebAssembly SIMD
 *   kernels (where the browser has them; else NumPy), or NumPy's einsum
 * @property {AbortSignal} [signal]  aborting stops the load (loadModel rejects with the signal's
 *   reason); what was downloaded stays in the browser cache and the next load goes on from it
 */

/**
 * @typedef {object} Token  One generated token.
 * @property {string} text  the new, complete UTF-8 text (may be "" inside a multi-byte character)
 * @property {number} tokenId
 * @property {number} prob  its probability after the sampling settings
 * @property {{text: string, prob: number}[]} top  the most likely tokens at this step
 * @property {null | "length" | "stop" | "eos"} finish  set on the last token
 * @property {number} dropped  prompt tokens dropped to stay within the context window
 */

/**
 * @typedef {object} GenerateOptions  Generation settings (omitted ones keep the engine's defaults).
 * @property {number} [maxNewTokens]
 * @property {number} [temperature]  0 = greedy
 * @property {number} [topK]
 * @property {number} [topP]
 * @property {number} [repetitionPenalty]
 * @property {number} [seed]  makes sampling reproducible
 * @property {string[]} [stop]  strings that end the reply
 * @property {AbortSignal} [signal]  aborting ends the stream within one token
 */

/**
 * Load a GPT-2-architecture model into new workers.
 * @param {string | URL | File[] | FileList | Record<string, string | URL | Blob>} source
 *   a Hub repo id ("openai-community/gpt2"); the URL of a folder in Hub file layout (absolute,
 *   or starting with "./", "../" or "/"; it ends in "/"); the File objects the visitor picked
 *   (config.json, model.safetensors, vocab.json, merges.txt); or a map of file name to URL or Blob
 * @param {LoadOptions} [options]
 * @returns {Promise<Model>}  rejects with the worker's reason if the model cannot be loaded
 */
export async function loadModel(source, { revision = "main", endpoint = HUB, onProgress, signal, kernels = "simd",
                                          workers = workerCount(new URLSearchParams()) } = {}) {
  signal?.throwIfAborted();
  const blobs = [];
  const request = { ...requestFor(source, revision, endpoint, blobs), kernels };
  const workersModel = new ParallelModel(workers);
  const aborted = new Promise((_, reject) => signal?.addEventListener("abort", () => reject(signal.reason), { once: true }));
  try {
    const info = JSON.parse(await Promise.race([workersModel.load(JSON.stringify(request), onProgress), aborted]));
    if (info.error) throw new Error(info.error);
    return new Model(workersModel, info);
  } catch (error) {
    workersModel.terminate();
    throw error;
  } finally {
    blobs.forEach(url => URL.revokeObjectURL(url));
  }
}

/** The worker's load request for a source (blob: URLs it makes are pushed to `blobs`). */
function requestFor(source, revision, endpoint, blobs) {
  const absolute = url => new URL(url, location.href).href;
  const blobURL = blob => { blobs.push(URL.createObjectURL(blob)); return blobs.at(-1); };
  if (typeof source === "string" && !/^(\w+:|\.{0,2}\/)/.test(source)) return { repo: source, revision, endpoint };
  if (typeof source === "string" || source instanceof URL) {
    const folder = absolute(source).replace(/\/?$/, "/");
    return { local: Object.fromEntries(FOLDER_FILES.map(name => [name, folder + name])) };
  }
  const entries = Symbol.iterator in source ? [...source].map(file => [file.name, file]) : Object.entries(source);
  return { local: Object.fromEntries(entries.map(([name, file]) =>
    [name, file instanceof Blob ? blobURL(file) : absolute(file)])) };
}

/** A loaded model in its own workers. Make one with loadModel(). */
export class Model {
  #workers;
  #busy = false;

  /** @hideconstructor */
  constructor(workers, info) {
    this.#workers = workers;
    /** What the workers reported: {repo, commit, n_params, n_ctx, n_layer, seconds, workers, …}. */
    this.info = info;
  }

  /**
   * Continue a text, token by token. One generation at a time per model; leaving the loop
   * early (break, or an abort) ends it in the worker too.
   * @param {string} prompt
   * @param {GenerateOptions} [options]
   * @returns {AsyncGenerator<Token>}  rejects with the signal's reason (an AbortError) on abort
   */
  async *generate(prompt, { signal, ...settings } = {}) {
    if (this.#busy) throw new Error("this model is already generating");
    signal?.throwIfAborted();
    this.#busy = true;
    const workers = this.#workers;
    try {
      await workers.start(JSON.stringify({ prompt, settings: snakeCase(settings) }));
      for (;;) {
        signal?.throwIfAborted();
        const { token_id, top, ...step } = JSON.parse(await workers.step());
        yield { ...step, tokenId: token_id, top: top.map(([text, prob]) => ({ text, prob })) };
        if (step.finish) return;
      }
    } finally {
      await workers.stop();
      this.#busy = false;
    }
  }

  /**
   * Token ids of a text, with the model's tokenizer.
   * @param {string} text
   * @returns {Promise<number[]>}
   */
  async tokenize(text) {
    return JSON.parse(await this.#workers.tokenize(text));
  }

  /**
   * Free the model: its workers end and their memory is released.
   * @returns {Promise<void>}
   */
  async dispose() {
    this.#workers.terminate();
  }
}

/** {maxNewTokens: 5} → {max_new_tokens: 5}, leaving out undefined values. */
function snakeCase(settings) {
  return Object.fromEntries(Object.entries(settings).filter(([, value]) => value !== undefined)
    .map(([key, value]) => [key.replace(/[A-Z]/g, c => "_" + c.toLowerCase()), value]));
}
