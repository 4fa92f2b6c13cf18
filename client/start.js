// The page's start (index.html): the pinned runtime and PyScript, from client/runtime.js. A file of
// its own, not an inline script, so the page's Content-Security-Policy can refuse inline scripts.
import { startPyScript } from "./runtime.js";

await startPyScript();
