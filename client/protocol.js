// The messages between the page and the model workers. Generated from worker/protocol.py by
// `python3 -m worker.protocol > client/protocol.js`: edit that file, not this one.

/**
 * @typedef {object} LoadRequest  load, shard_load: a Hub repository, or the visitor's files ({file name: blob URL}, local). tiktoken: the base URL of the npm tiktoken package the worker tokenises with. kernels: "simd" multiplies by the weights with WebAssembly SIMD where the browser has it, "numpy" with NumPy; weights: "float32", or "int8" (a scale per row; with the SIMD kernels only). memory_limit: the bytes each of a worker's memories may hold (default: WebAssembly's 4 GiB; a lower one shows how a model splits on a smaller device).
 * @property {string} tiktoken
 * @property {(string|null)} repo
 * @property {string} revision
 * @property {string} endpoint
 * @property {(object|null)} local
 * @property {string} kernels
 * @property {string} weights
 * @property {(number|null)} memory_limit
 */

/**
 * @typedef {object} StartRequest  start, shard_start: {prompt} continues a text; {turns: [[role, text], ...], style: "transcript" | "eot"} asks for the next assistant turn. settings: GenerationSettings fields.
 * @property {(string|null)} prompt
 * @property {(Array|null)} turns
 * @property {string} style
 * @property {(object|null)} settings
 */

/**
 * @typedef {object} ModelRequest  model_size, cache_delete: one Hub model ({} for cache_delete: every model).
 * @property {string} endpoint
 * @property {string} repo
 * @property {string} revision
 */

/**
 * @typedef {object} ErrorReply  Any request that failed, and why (the app stays usable). workers_needed: a load refused because each worker could not hold its part, which a split over that many workers would fit.
 * @property {string} error
 * @property {(number|null)} workers_needed
 */

/**
 * @typedef {object} LoadReply  load: the model is ready. not_cached says why nothing was kept in the browser, or null; kernels which multiply by the weights: "simd" (WebAssembly SIMD) or "numpy"; weights their type as held: "float32" or "int8".
 * @property {string} repo
 * @property {(string|null)} commit
 * @property {(string|null)} host
 * @property {number} n_params
 * @property {number} n_ctx
 * @property {number} n_layer
 * @property {number} seconds
 * @property {boolean} from_cache
 * @property {number} downloaded
 * @property {(string|null)} not_cached
 * @property {string} kernels
 * @property {string} weights
 * @property {number} n_shards
 */

/**
 * @typedef {object} ShardLoadReply  shard_load: as load's, plus this shard (index shard of n_shards) and the sizes the page needs to move its arrays.
 * @property {string} repo
 * @property {(string|null)} commit
 * @property {(string|null)} host
 * @property {number} n_params
 * @property {number} n_ctx
 * @property {number} n_layer
 * @property {number} seconds
 * @property {boolean} from_cache
 * @property {number} downloaded
 * @property {(string|null)} not_cached
 * @property {string} kernels
 * @property {string} weights
 * @property {number} n_shards
 * @property {number} shard
 * @property {number} heads
 * @property {number} n_embd
 * @property {number} n_vocab
 * @property {number} shard_bytes
 */

/**
 * @typedef {object} StartReply  start, shard_start: the reply has begun. reused: prompt tokens the KV cache held from the last reply, not run again; feed: [ids, position] of the first forward pass (which shard_start's caller runs).
 * @property {number} prompt_tokens
 * @property {number} n_ctx
 * @property {number} reused
 * @property {(Array|null)} feed
 */

/**
 * @typedef {object} StepReply  step, shard_next: one token. top: the likeliest tokens as [text, probability]; finish: null, "length", "stop" or "eos"; dropped: tokens that left the context window; feed (shards): the next forward pass, or null when the reply is over.
 * @property {string} text
 * @property {number} token_id
 * @property {number} prob
 * @property {Array} top
 * @property {(string|null)} finish
 * @property {number} dropped
 * @property {(Array|null)} feed
 */

/**
 * @typedef {object} CachedModels  cache_models, cache_delete: models [{endpoint, repo, revision, files, bytes, partial}], storage {usage, quota}, off: why the cache is unusable, or null.
 * @property {Array} models
 * @property {object} storage
 * @property {(string|null)} off
 */

/**
 * @typedef {object} ModelSize  model_size: the download size of a Hub model's weights (from the Hub's listing), whether the browser holds them all, and the host they come from (null: the default Hub).
 * @property {boolean} cached
 * @property {number} bytes
 * @property {(string|null)} host
 */

/**
 * @typedef {object} Busy  shard_busy: seconds computing in exchanges and waiting for the other shards, since the last call.
 * @property {number} seconds
 * @property {number} calls
 * @property {number} wait
 */

/**
 * @typedef {object} Progress  Bytes of each file so far, {name: [received, total]}; speed in bytes/s; cached: read from the browser; host: where the bytes come from, when not the default Hub.
 * @property {"progress"} kind
 * @property {string} file
 * @property {object} files
 * @property {boolean} cached
 * @property {number} speed
 * @property {(string|null)} host
 */

/**
 * @typedef {object} Status  A line for the status bar.
 * @property {"status"} kind
 * @property {string} text
 */

/**
 * @typedef {object} Shards  The lead has the files in the browser cache: the other workers may load their shards (of n_shards) of this commit.
 * @property {"shards"} kind
 * @property {number} n_shards
 * @property {(string|null)} commit
 */

/**
 * @typedef {object} Token  generate, shard_generate (the lead): one token of the reply, pushed as soon as it is picked.
 * @property {"token"} kind
 * @property {string} text
 * @property {number} token_id
 * @property {number} prob
 * @property {Array} top
 * @property {(string|null)} finish
 * @property {number} dropped
 * @property {(Array|null)} feed
 */

/**
 * @typedef {object} ChunkReaderPort  The page started the lead's chunk reader as it opened (client/parallel.js readAhead), to read ahead from the browser cache while the worker starts: the worker asks it for chunks on the MessagePort sent with this message, and starts none of its own.
 * @property {"chunk_reader"} kind
 */

/** The kinds of the events a worker pushes (its postMessage). */
export const EVENT = Object.freeze({progress: "progress", status: "status", shards: "shards", token: "token"});

/** The kinds of the messages the page posts to a worker. */
export const TO_WORKER = Object.freeze({chunk_reader: "chunk_reader"});

/** The fields of the shards' shared control array, by index (then the next pass's ids). */
export const CONTROL = Object.freeze({arrivals: 0, generation: 1, stop: 2, n_ids: 3, position: 4, ids: 5});

/** The model worker's exported functions. */
export const FUNCTIONS = Object.freeze(["load", "cancel", "release", "defaults", "start", "step", "generate", "stop", "tokenize", "logits", "heap_bytes", "cache_models", "cache_delete", "model_size", "shard_load", "shard_start", "shard_feed", "shard_exchange", "shard_next", "shard_generate", "shard_stop", "shard_share", "shard_busy"]);
