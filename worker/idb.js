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

// The byte length of each stored chunk of a file (null where one is missing), in one transaction.
export function chunkSizes(db, key, count) {
  const tx = db.transaction("chunks", "readonly");
  const store = tx.objectStore("chunks");
  const requests = Array.from({ length: count }, (_, i) => store.get([...key, i]));
  return settle(tx, () => requests.map(r => (r.result ? r.result.byteLength : null)));
}

// Store a copy of `bytes` (a view into the WebAssembly heap: cloning the view would clone the
// whole heap) as chunk `index` of the file `key`.
export function putChunk(db, key, index, bytes) {
  const tx = db.transaction("chunks", "readwrite");
  tx.objectStore("chunks").put(bytes.slice().buffer, [...key, index]);
  return settle(tx, () => true);
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
