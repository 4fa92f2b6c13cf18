// The app's service worker: after one visit, the page, its Python code, its CSS and the runtime
// it used open with no network. (The model's weights are not kept here: the model worker keeps
// them in IndexedDB, worker/cache.py.) Registered by client/runtime.js; its scope is this folder.
//
// Two caches, two rules:
// - the runtime (the pinned CDN URLs below, or the same pinned versions in vendor/): cache-first.
//   A pinned version never changes, so the network is asked once. The cache's name holds the
//   pins: bumping one (here and in client/runtime.js, tests/e2e/test_offline.py checks they agree)
//   changes this file, so the browser installs the new worker, which drops the old copy.
// - the app's own files (index.html, app/, worker/, engine/, model_loader/, pyscript.toml…):
//   network-first, the cache only when the network fails. An edit shows on the next load, and
//   every file of one load comes from the same version of the app (stale-while-revalidate
//   could mix an old main.py with a new worker for one load).
// Every file of the CDN runtime is checked against the sha256 tools/runtime.lock.json pins for it
// (published beside the app): a different file is answered with a 502, never run nor kept.
// Never touched: other origins (the model hub: its answers are cached by the worker, in
// IndexedDB), Hub-style "/resolve/" URLs on this origin, Range requests, anything but GET.
//
// Cross-origin isolation, for static hosts that cannot send headers (GitHub Pages), as
// PyScript's mini-coi does: what this worker serves gets COOP/COEP headers, so the page is
// cross-origin isolated and the model's workers share memory (SharedArrayBuffer: the fast
// multi-worker path, client/parallel.js) from the second visit on.

const RUNTIME_PINS = [
  "https://cdn.jsdelivr.net/npm/@pyscript/core@0.6.66/dist/",
  "https://cdn.jsdelivr.net/npm/@micropython/micropython-webassembly-pyscript@1.27.0/",
  "https://cdn.jsdelivr.net/pyodide/v0.27.7/full/",
  "https://cdn.jsdelivr.net/npm/tiktoken@1.0.22/",
];
// Where each pin's files sit in vendor/ and in tools/runtime.lock.json ("pyodide/pyodide.mjs"),
// in the order of RUNTIME_PINS (client/runtime.js has the same pairs).
const VENDOR_DIRS = ["pyscript", "micropython", "pyodide", "tiktoken"];
const LOCK = "tools/runtime.lock.json";
const RUNTIME_CACHE = "runtime:" + RUNTIME_PINS.map(url => url.split("/").slice(3, -1).join("/")).join(" ");
const APP_CACHE = "app";
const SCOPE = new URL("./", self.location.href).href;
const VENDOR = SCOPE + "vendor/";

self.addEventListener("install", () => self.skipWaiting());

self.addEventListener("activate", event => event.waitUntil((async () => {
  for (const name of await caches.keys()) {
    if (name !== RUNTIME_CACHE && name !== APP_CACHE) await caches.delete(name);
  }
  await self.clients.claim();  // the first visit is then controlled too, so it fills the caches
})()));

/** "runtime", "app" or null (leave the request to the browser). */
function kind(request) {
  if (request.method !== "GET" || request.headers.has("range")) return null;
  const url = request.url;
  if (RUNTIME_PINS.some(prefix => url.startsWith(prefix)) || url.startsWith(VENDOR)) return "runtime";
  if (!url.startsWith(SCOPE) || new URL(url).pathname.includes("/resolve/")) return null;
  return "app";
}

/** A page is kept under its address without the query (?model=… changes from visit to visit). */
function pageKey(address) {
  const url = new URL(address);
  url.search = url.hash = "";
  return url.href;
}

function appKey(request) {
  return request.mode === "navigate" ? pageKey(request.url) : request;
}

/** A response that can be kept: a complete 200 whose body can be read (never an opaque answer,
 * whose status and bytes are hidden, a redirect's, or an error's). */
function keepable(response) {
  return response.status === 200 && (response.type === "basic" || response.type === "cors");
}

/** Answered when neither the network nor the cache has the file: a plain 503, not a network
 * error (which the browser would report on the page's console). */
function unavailable() {
  return new Response("offline, and not in the app's cache", {
    status: 503, headers: { "Content-Type": "text/plain; charset=utf-8" },
  });
}

const ISOLATION = { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "credentialless" };
// Only a page's and a worker's own response carry their isolation; anything else is served as it
// came, which keeps V8's compiled code of a cached .wasm (Pyodide's): the browser keeps that code
// beside the cache's copy, and a rebuilt response (new Response) has none, so a warm start would
// compile Pyodide again.
const ISOLATED_DESTINATIONS = ["document", "iframe", "worker", "sharedworker"];

/** The response with the isolation headers where `request` needs them (an opaque one cannot be
 * changed, nor needs them). */
function isolated(request, response) {
  if (!ISOLATED_DESTINATIONS.includes(request.destination)) return response;
  if (response.type === "opaque" || response.status === 0) return response;
  const headers = new Headers(response.headers);
  for (const [name, value] of Object.entries(ISOLATION)) headers.set(name, value);
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

async function runtimeFirst(event) {
  const cache = await caches.open(RUNTIME_CACHE);
  const hit = await cache.match(event.request);
  if (hit) return hit;
  try {
    const response = await verified(event.request.url, await fetch(event.request));
    if (keepable(response)) event.waitUntil(cache.put(event.request, response.clone()));
    return response;
  } catch {
    return unavailable();
  }
}

let pinnedHashes = null;

/** The sha256 the lockfile pins for each file of the CDN runtime, by URL (empty if the lockfile
 * is not published beside the app). */
function pinned() {
  pinnedHashes ??= fetch(SCOPE + LOCK, { cache: "no-store" })
    .then(response => (response.ok ? response.json() : { files: {} }))
    .catch(() => ({ files: {} }))
    .then(lock => new Map(Object.entries(lock.files ?? {}).flatMap(([path, { sha256 }]) => {
      const pin = VENDOR_DIRS.indexOf(path.split("/")[0]);
      return pin < 0 ? [] : [[RUNTIME_PINS[pin] + path.slice(path.indexOf("/") + 1), sha256]];
    })));
  return pinnedHashes;
}

/** A CDN runtime file whose bytes are not the ones the lockfile pins is answered with a 502
 * (and not kept): what runs is what was verified when the runtime was pinned. */
async function verified(url, response) {
  const expected = (await pinned()).get(url.split("?")[0]);
  if (!expected || !response.ok) return response;
  const bytes = await response.clone().arrayBuffer();
  const digest = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)),
                            b => b.toString(16).padStart(2, "0")).join("");
  if (digest === expected) return response;
  return new Response(`${url} is not the pinned file (sha256 ${digest}, pinned ${expected})`, {
    status: 502, headers: { "Content-Type": "text/plain; charset=utf-8" },
  });
}

async function networkFirst(event) {
  const cache = await caches.open(APP_CACHE);
  const key = appKey(event.request);
  try {
    const response = await fetch(event.request);
    if (keepable(response)) event.waitUntil(cache.put(key, response.clone()));
    return response;
  } catch {
    return (await cache.match(key)) ?? unavailable();
  }
}

/** The first visit: the page, then what it loaded before this worker took over (index.html,
 * client/runtime.js, app/style.css), sent by client/runtime.js; keep what the rules above would. */
async function keepEarlyFiles({ page, loaded }) {
  for (const address of [page, ...loaded]) {
    const request = new Request(address);
    const which = kind(request);
    if (!which) continue;
    const cache = await caches.open(which === "runtime" ? RUNTIME_CACHE : APP_CACHE);
    const key = address === page ? pageKey(address) : address;
    if (which === "runtime" && await cache.match(key)) continue;
    try {
      const response = await fetch(request);
      if (keepable(response) && (which === "app" || (await verified(address, response)).ok)) await cache.put(key, response);
    } catch { /* offline again already: the next visit keeps it */ }
  }
}

self.addEventListener("message", event => {
  if (event.data?.type === "keep-early-files") event.waitUntil(keepEarlyFiles(event.data));
});

self.addEventListener("fetch", event => {
  const which = kind(event.request);
  const serve = response => isolated(event.request, response);
  if (which === "runtime") event.respondWith(runtimeFirst(event).then(serve));
  else if (which === "app") event.respondWith(networkFirst(event).then(serve));
});
