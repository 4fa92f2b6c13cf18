// The runtime, chosen once for every page of the app: index.html's head, browser-llm.js and the
// examples import this module. Either vendor/ (the verified copy made by tools/vendor_runtime.py)
// or the same pinned versions from the public CDN, as client/runtime.json says (see chooseRuntime).
// ?runtime=cdn|vendor in the page's URL forces a choice.
//
// Every URL is absolute and computed from this module's own URL, so a page in another folder
// (or on another site) that imports it still gets the app's files and vendor/.

/** The app's folder (this file is client/runtime.js). */
export const APP_URL = new URL("../", import.meta.url).href;

/** The model worker: its code and its PyScript config (numpy, the Python files, tokenizer.js).
 * The config's relative paths resolve against the config's own URL, i.e. the app's folder. */
export const MODEL_WORKER = {
  src: new URL("worker/worker.py", APP_URL).href,
  config: new URL("pyscript.toml", APP_URL).href,
};

const CDN = {
  pyscript: "https://cdn.jsdelivr.net/npm/@pyscript/core@0.6.66/dist/",
  micropython: "https://cdn.jsdelivr.net/npm/@micropython/micropython-webassembly-pyscript@1.27.0/",
  pyodide: "https://cdn.jsdelivr.net/pyodide/v0.27.7/full/",
  tiktoken: "https://cdn.jsdelivr.net/npm/tiktoken@1.0.22/",
};
const VENDOR = {
  pyscript: "vendor/pyscript/", micropython: "vendor/micropython/",
  pyodide: "vendor/pyodide/", tiktoken: "vendor/tiktoken/",
};

/**
 * @typedef {object} Runtime  Absolute base URLs (ending in "/") of the pinned runtime.
 * @property {boolean} local  true when they point into the app's vendor/ folder
 * @property {string} pyscript  @pyscript/core's dist/ (core.js, core.css)
 * @property {string} micropython  MicroPython for the main thread (micropython.mjs)
 * @property {string} pyodide  Pyodide 0.27.7 for the model worker (pyodide.mjs, numpy)
 * @property {string} tiktoken  the npm tiktoken package (the worker's tokenizer, WASM)
 */

// Whether vendor/ is there is read from a file every build has, never probed: a request for a
// missing file is a console error ("Failed to load resource: 404"), and a static server answers
// the same for every committed file whether vendor/ was filled or not. So client/runtime.json says
// {"runtime": "cdn"} as committed (the repository served as it is, e.g. GitHub Pages from a
// branch); a site published with vendor/ says "vendor" in its copy (.github/workflows/pages.yml
// writes it), and tools/serve.py answers "vendor" when vendor/ is filled.
const SITE_CHOICE = new URL("client/runtime.json", APP_URL);

/** "vendor" or "cdn", as the site's client/runtime.json says ("cdn" when it cannot be read). */
async function siteChoice() {
  try {
    return (await (await fetch(SITE_CHOICE, { cache: "no-store" })).json()).runtime;
  } catch {
    return "cdn";
  }
}

let chosen = null;

/**
 * The runtime to use: vendor/ beside the app when the site says it has it, else the pinned CDN.
 * Decided once per page; later calls return the same answer.
 * @param {"cdn" | "vendor" | null} [force]  default: the page's ?runtime= parameter
 * @returns {Promise<Runtime>}
 */
export function chooseRuntime(force = new URLSearchParams(location.search).get("runtime")) {
  chosen ??= (async () => {
    const local = (force || await siteChoice()) === "vendor";
    const runtime = { local };
    for (const [name, url] of Object.entries(local ? VENDOR : CDN)) runtime[name] = new URL(url, APP_URL).href;
    return runtime;
  })();
  return chosen;
}

/**
 * Put the page under the app's service worker (sw.js, beside index.html), which keeps the app's
 * files and the runtime it uses so that the next visit opens with no network, and serves them
 * cross-origin isolated from the next visit on. On the first visit it waits (at most `timeout`
 * ms) until the worker controls the page, so that everything this visit loads, here and in the
 * model worker, is kept. Never fails: without service workers
 * (an insecure context, a private window that refuses them) the app simply needs the network.
 * @returns {Promise<boolean>}  whether the page is controlled
 */
export async function useServiceWorker(timeout = 3000) {
  const container = navigator.serviceWorker;
  if (!container) return false;
  try {
    await container.register(new URL("sw.js", APP_URL), { scope: APP_URL });
  } catch { /* offline with no registration yet, or refused: go on without it */ }
  if (!container.controller) {
    await new Promise(resolve => {
      container.addEventListener("controllerchange", resolve, { once: true });
      setTimeout(resolve, timeout);
    });
    // What loaded before it took over (this page, its CSS, this module) is kept on request.
    container.controller?.postMessage({
      type: "keep-early-files", page: location.href,
      loaded: performance.getEntriesByType("resource").map(entry => entry.name),
    });
  }
  return Boolean(container.controller);
}

/** Show the header's offline notice (#offline) while the browser has no network. */
export function showConnection(notice = document.getElementById("offline")) {
  if (!notice) return;
  const update = () => { notice.hidden = navigator.onLine; };
  addEventListener("online", update);
  addEventListener("offline", update);
  update();
}

/** The PyScript core module (loaded once, from the chosen runtime). */
async function pyscriptCore() {
  const runtime = await chooseRuntime();
  return import(runtime.pyscript + "core.js");
}

/**
 * Start PyScript on this page with the pinned interpreters: an <mpy-config> for MicroPython
 * scripts, and each `<script type="py" worker config="….toml">` gets its config inlined with an
 * `interpreter` line in front. Inlined, the config's relative paths resolve against the page,
 * so this suits pages in the app's folder (index.html); a page elsewhere starts the model's
 * code with startWorker(). First shows the offline notice and puts the page under the app's
 * service worker (useServiceWorker). Sets globalThis.RUNTIME (read by the Python on the page).
 * @returns {Promise<Runtime>}
 */
export async function startPyScript() {
  showConnection();
  await useServiceWorker();
  const runtime = (globalThis.RUNTIME = await chooseRuntime());
  const add = (tag, props, text) => {
    const element = Object.assign(document.createElement(tag), props);
    if (text) element.textContent = text;
    document.head.append(element);
  };
  const main = await (await fetch(new URL("app/main.json", APP_URL), { cache: "no-store" })).json();
  const absolute = paths => Object.fromEntries(Object.entries(paths).map(([from, to]) => [new URL(from, APP_URL).href, to]));
  add("mpy-config", {}, JSON.stringify({
    interpreter: runtime.micropython + "micropython.mjs", files: absolute(main.files),
    js_modules: { main: absolute(main.js_modules.main) },
  }));
  for (const script of document.querySelectorAll('script[type="py"][worker][config$=".toml"]')) {
    const toml = await (await fetch(script.getAttribute("config"), { cache: "no-store" })).text();
    script.setAttribute("config", `interpreter = ${JSON.stringify(runtime.pyodide + "pyodide.mjs")}\n${toml}`);
  }
  add("link", { rel: "stylesheet", href: runtime.pyscript + "core.css", crossOrigin: "anonymous" });
  await pyscriptCore();
  return runtime;
}

/**
 * Start a PyScript worker (Pyodide from the chosen runtime) running `src`, configured by a
 * pyscript.toml whose relative paths resolve against its own URL, from any page and without a
 * <script> element. The worker's `__export__`ed functions are then on `worker.sync` (awaited
 * calls); what it sends with `xworker.postMessage` arrives as "message" events on `worker`.
 * @param {string | URL} src  the worker's Python file (absolute, or relative to the page)
 * @param {string | URL} [config]  its pyscript.toml; default: the model worker's
 * @returns {Promise<Worker & {sync: object}>}  resolves once `src` has run
 */
export async function startWorker(src, config = MODEL_WORKER.config) {
  const [runtime, { PyWorker }] = await Promise.all([chooseRuntime(), pyscriptCore()]);
  // PyScript sets its hooks for Python workers (which give them the `pyscript` module) just
  // before it defines <py-script>; a PyWorker made earlier would lack them.
  await customElements.whenDefined("py-script");
  // PyScript 0.6.66 breaks on a string config in a PyWorker (pyscript/pyscript#2404): give an
  // object, and the config file's URL as configURL, from which the worker reads the file itself.
  return PyWorker(new URL(src, location.href).href, {
    config: {}, configURL: new URL(config, location.href).href, version: runtime.pyodide + "pyodide.mjs",
  });
}
