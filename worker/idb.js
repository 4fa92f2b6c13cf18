// IndexedDB as promises, for worker/cache.py. Each call is one transaction that settles when
// the transaction does (so a write is durable, and a quota error rejects the promise), and
// never awaits between requests inside a transaction (that would let it auto-commit).
// Errors reject with the DOMException's name first: "QuotaExceededError: …".
const NAME = "browser-llm";
const VERSION = 1;
export const STORES = ["files", "chunks", "refs"];

function settle(tx, result) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve(result());
    const fail = () => reject(new Error(`${tx.error?.name ?? "AbortError"}: ${tx.error?.message ?? "aborted"}`));
    tx.onerror = fail;
    tx.onabort = fail;
  });
}

let connection = null;  // one connection for the worker's lifetime, opened on first use

export async function open() {
  connection ??= await connect();
  return connection;
}

function connect() {
  return new Promise((resolve, reject) => {
    if (typeof indexedDB === "undefined") return reject(new Error("IndexedDB is not available"));
    const request = indexedDB.open(NAME, VERSION);
    request.onupgradeneeded = () => {
      for (const store of STORES) {
        if (!request.result.objectStoreNames.contains(store)) request.result.createObjectStore(store);
      }
    };
    request.onsuccess = () => {
      request.result.onversionchange = () => { request.result.close(); connection = null; };
      resolve(request.result);
    };
    request.onerror = () => reject(new Error(`${request.error.name}: ${request.error.message}`));
    request.onblocked = () => reject(new Error("Blocked: another tab holds an older version of the cache"));
  });
}

export function get(db, store, key) {
  const tx = db.transaction(store, "readonly");
  const request = tx.objectStore(store).get(key);
  return settle(tx, () => request.result ?? null);
}

// Store a copy of `bytes` (a view into the WebAssembly heap: cloning the view would clone the
// whole heap) as chunk `index` of the file `key`; resolves with the copy's sha256 (hex) once it
// is stored. The write is queued before this returns, so it is ordered before any later call.
export async function putChunk(db, key, index, bytes) {
  const copy = bytes.slice();
  const tx = db.transaction("chunks", "readwrite");
  tx.objectStore("chunks").put(copy.buffer, [...key, index]);
  const [digest] = await Promise.all([sha256(copy), settle(tx, () => true)]);
  return digest;
}

// Chunk `index` of the file `key`: {data: ArrayBuffer or null if missing, sha256: its hex digest},
// read and hashed by the chunk reader when it runs, else here.
export function getChunk(db, key, index) {
  return reader ? reader.read(db, key, index) : readChunk(db, key, index);
}

// getChunk on this thread (the chunk reader's work).
export async function readChunk(db, key, index) {
  const data = await get(db, "chunks", [...key, index]);
  return { data, sha256: data ? await sha256(data) : null };
}

// Start the chunk reader (chunk_reader.js), which reads and hashes chunks on a thread of its own;
// called when the model worker opens the cache, so that a first visit fetches its script (and
// the service worker keeps it for offline visits). Where it cannot start (an idb.js from another
// origin, as imported by another site's page: a worker's script must be same-origin; a browser
// without workers in workers) or once it fails, chunks are read on this thread.
export function startChunkReader() {
  try {
    reader ??= new ChunkReader(new Worker(new URL("./chunk_reader.js", import.meta.url), { type: "module" }));
  } catch {
    reader = null;
  }
}

// Use the chunk reader the page started (client/parallel.js readAhead), asked on `port`, which is
// already reading ahead what the last load of the model read (unless this worker started one).
export function useChunkReader(port) {
  reader ??= new ChunkReader(port);
}

// What a load of `model` ({endpoint, repo, revision} as the page asks for it) read or wrote of
// the cache, in order: [[...key, index], ...], kept for the next visit's chunk reader to read ahead.
export function rememberReads(db, model, chunks) {
  return put(db, "refs", readsKey(model), JSON.stringify(chunks));
}

export async function rememberedReads(db, model) {
  const kept = await get(db, "refs", readsKey(model));
  return kept ? JSON.parse(kept) : [];
}

function readsKey({ endpoint, repo, revision }) {
  return [endpoint, repo, revision, "reads"];
}

let reader = null;

class ChunkReader {
  constructor(worker) {  // a Worker running chunk_reader.js, or a MessagePort to one
    this.worker = worker;
    this.waiting = new Map();  // id -> {resolve, reject, db, key, index}
    this.next = 0;
    worker.onmessage = ({ data: { id, chunk, error } }) => {
      const call = this.waiting.get(id);
      this.waiting.delete(id);
      if (error === undefined) call.resolve(chunk);
      else call.reject(new Error(error));
    };
    worker.onerror = event => {  // its script did not load or run: read here (the next load starts another)
      event.preventDefault();
      reader = null;
      for (const { resolve, reject, db, key, index } of this.waiting.values()) readChunk(db, key, index).then(resolve, reject);
      this.waiting.clear();
      worker.terminate();
    };
  }

  read(db, key, index) {
    return new Promise((resolve, reject) => {
      const id = this.next++;
      this.waiting.set(id, { resolve, reject, db, key, index });
      this.worker.postMessage({ id, key, index });
    });
  }
}

// WebCrypto's SHA-256 as hex.
async function sha256(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, b => b.toString(16).padStart(2, "0")).join("");
}

// Hold the Web Lock `name` (one holder across this origin's tabs and workers): resolves with a
// function that releases it, or with null when `wait` is false and another holder has it.
export function acquire(name, wait) {
  if (!navigator.locks) return Promise.resolve(() => {});
  return new Promise((resolve, reject) => {
    navigator.locks.request(name, { ifAvailable: !wait }, lock => {
      if (!lock) return resolve(null);
      return new Promise(release => resolve(() => release()));
    }).catch(reject);
  });
}

// The indexes of the stored chunks of a file, from their keys alone (reading the values, 32 MiB
// each, would read the whole file).
export function chunkIndexes(db, key) {
  const tx = db.transaction("chunks", "readonly");
  const range = IDBKeyRange.bound([...key, 0], [...key, Infinity]);
  const request = tx.objectStore("chunks").getAllKeys(range);
  return settle(tx, () => request.result.map(k => k.at(-1)));
}

export function put(db, store, key, value) {
  const tx = db.transaction(store, "readwrite");
  tx.objectStore(store).put(value, key);
  return settle(tx, () => true);
}

// Every record of a store whose key starts with `prefix` (an array), as [key, value] pairs.
export function entries(db, store, prefix) {
  const tx = db.transaction(store, "readonly");
  const request = tx.objectStore(store).openCursor(prefixRange(prefix));
  const found = [];
  request.onsuccess = () => {
    const cursor = request.result;
    if (cursor) { found.push([cursor.key, cursor.value]); cursor.continue(); }
  };
  return settle(tx, () => found);
}

// Delete every record whose key starts with `prefix` from all stores (all of them for []).
export function remove(db, prefix) {
  const tx = db.transaction(STORES, "readwrite");
  for (const store of STORES) tx.objectStore(store).delete(prefixRange(prefix));
  return settle(tx, () => true);
}

// Keys are arrays of strings (then a chunk number); arrays sort after every other key type,
// so [...prefix, []] is above every key that extends prefix.
function prefixRange(prefix) {
  return prefix.length ? IDBKeyRange.bound(prefix, [...prefix, []]) : IDBKeyRange.lowerBound([]);
}

export async function estimate() {
  const { usage, quota } = await navigator.storage.estimate();
  return JSON.stringify({ usage, quota });
}
