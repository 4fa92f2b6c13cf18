// The chunk reader: a worker of the model worker's own (started by idb.js startChunkReader) that
// reads cached chunks from IndexedDB and hashes them, on a thread of its own, so that the model
// worker's thread only uses each chunk while the next ones are read and hashed here.
// In: {id, key, index}. Out: {id, chunk: {data, sha256}} (data transferred, not copied), or
// {id, error: "Name: message"} as idb.js's calls reject.
import { open, readChunk } from "./idb.js";

self.onmessage = async ({ data: { id, key, index } }) => {
  try {
    const chunk = await readChunk(await open(), key, index);
    self.postMessage({ id, chunk }, chunk.data ? [chunk.data] : []);
  } catch (error) {
    self.postMessage({ id, error: error?.message ?? String(error) });
  }
};
