// tiktoken's WASM build ("lite", npm tiktoken) for the model worker, without a bundler.
// `base` is the tiktoken package root: vendor/tiktoken/ or the CDN copy.
let glue = null;

async function loadWasm(base) {
  if (glue) return glue;
  const mod = await import(new URL("lite/tiktoken_bg.js", base).href);
  const wasm = await WebAssembly.instantiateStreaming(
    fetch(new URL("lite/tiktoken_bg.wasm", base).href), { "./tiktoken_bg.js": mod });
  mod.__wbg_set_wasm(wasm.instance.exports);
  glue = mod;
  return glue;
}

// A Tiktoken for ranks given as "<base64 token> <rank>" lines, special tokens as a JSON object
// string and the pre-tokenisation pattern.
export async function create(base, ranks, specialTokens, pattern) {
  const { Tiktoken } = await loadWasm(base);
  return new Tiktoken(ranks, JSON.parse(specialTokens), pattern);
}
