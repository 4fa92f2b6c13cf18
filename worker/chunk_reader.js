// The chunk reader: a worker that reads cached chunks from IndexedDB and hashes them, on a thread
// of its own, so that the model worker's thread only uses each chunk while the next ones are read
// and hashed here. Started by the model worker (idb.js startChunkReader), or by the page as the
// page opens (client/parallel.js readAhead), which sends it the MessagePort the model worker will
// ask on and the model the page is about to load: it then reads ahead, while the model worker is
// still starting, the chunks the last load of that model read (idb.js rememberReads), up to a
// budget of bytes not yet asked for. A request for another chunk, or a chunk no longer in the
// cache, drops what was read ahead.
// In: {id, key, index}. Out: {id, chunk: {data, sha256}} (data transferred, not copied), or
// {id, error: "Name: message"} as idb.js's calls reject.
import { open, readChunk, rememberedReads } from "./idb.js";

const IDLE_MS = 60_000; // what was read ahead is dropped after this long with no request

const ahead = new Map(); // chunk (JSON of [...key, index]) -> promise of what readChunk gives
const counted = new Set(); // the chunks of `ahead` read and counted in `held`
let planned = [];        // the chunks still to read ahead, in order
let budget = 0;          // bytes the chunks read ahead may hold before they are asked for
let held = 0;            // bytes they hold
let reading = false;
let idle = null;
// chunks answered from what was read ahead, and read when asked (for tests and benchmarks)
const served = self.served = { ahead: 0, asked: 0 };

self.onmessage = ({ data }) => {
  if (data.port) readAhead(data);
  else answer(self, data);
};

async function answer(to, { id, key, index }) {
  try {
    const chunk = await take(key, index);
    to.postMessage({ id, chunk }, chunk.data ? [chunk.data] : []);
  } catch (error) {
    to.postMessage({ id, error: error?.message ?? String(error) });
  }
}

async function readAhead({ port, model, bytes }) {
  port.onmessage = ({ data }) => answer(port, data);
  self.postMessage("reading ahead"); // the page hands the other end of the port to the model worker
  try {
    planned = (await rememberedReads(await open(), model)).map(chunk => JSON.stringify(chunk));
  } catch {
    planned = []; // no cache, or nothing remembered: chunks are read as they are asked for
  }
  budget = bytes;
  pump();
}

// A chunk asked for: the one read ahead, else read now (and the plan dropped if it is not in it).
async function take(key, index) {
  const name = JSON.stringify([...key, index]);
  const early = ahead.get(name);
  if (!early) {
    const at = planned.indexOf(name);
    if (at < 0) drop();
    else planned.splice(at, 1);
    served.asked += 1;
    return readChunk(await open(), key, index);
  }
  ahead.delete(name);
  served.ahead += 1;
  const chunk = await early;
  if (counted.delete(name)) held -= chunk.data?.byteLength ?? 0;
  pump();
  return chunk;
}

// Read the plan's next chunks, one at a time, while they hold less than the budget.
async function pump() {
  clearTimeout(idle);
  if (!reading) {
    reading = true;
    try {
      while (planned.length && held < budget) {
        const name = planned.shift(), chunk = JSON.parse(name);
        const read = open().then(db => readChunk(db, chunk.slice(0, -1), chunk.at(-1)));
        ahead.set(name, read);
        const { data } = await read.catch(() => ({ data: null })); // its error goes to whoever asks
        if (!data) { // gone from the cache: the list no longer fits it (a download may put it back)
          drop();
        } else if (ahead.has(name)) { // not asked for meanwhile, nor dropped
          held += data.byteLength;
          counted.add(name);
        }
      }
    } finally {
      reading = false;
    }
  }
  if (ahead.size) idle = setTimeout(drop, IDLE_MS);
}

function drop() {
  ahead.clear();
  counted.clear();
  planned = [];
  held = 0;
}
