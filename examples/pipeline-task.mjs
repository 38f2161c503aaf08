// One document per Piscina task: CPU work (chunk, tokenize, hash) runs in
// parallel on every worker; the "embedding API" calls of all workers go
// through one shared limiter.
import { createHash } from 'node:crypto';
import { workerData } from 'node:worker_threads';
import { limiterFromWorkerData } from '../dist/piscina.js';

const { url } = workerData;
const limiter = limiterFromWorkerData('limiter'); // attached once per worker
// Warm the HTTP client once per worker (a fresh worker's first fetch is slow); not counted by the mock.
await (await fetch(`${url}/_mock/health`)).arrayBuffer();

const CHUNK_TOKENS = 512;

export default async function embedDocument({ id, text }) {
  // CPU part: tokenize, cut into chunks, hash each chunk (content-addressed cache key).
  const tokens = text.toLowerCase().match(/[a-z0-9]+|[^\sa-z0-9]/g) ?? [];
  const chunks = [];
  for (let i = 0; i < tokens.length; i += CHUNK_TOKENS) {
    const chunk = tokens.slice(i, i + CHUNK_TOKENS).join(' ');
    let digest = chunk;
    for (let round = 0; round < 200; round++) digest = createHash('sha256').update(digest).digest('hex'); // stand-in for real CPU work
    chunks.push({ chunk, key: digest.slice(0, 16) });
  }
  // I/O part: one embedding call per chunk, all in flight at once; the shared
  // limiter spaces them across the whole pool and, on a 429, pauses every worker.
  let throttled = 0;
  await Promise.all(chunks.map(async ({ chunk, key }) => {
    const res = await limiter.run(async () => {
      const r = await fetch(`${url}/v1/embeddings`, { method: 'POST', body: JSON.stringify({ key, input: chunk }) });
      if (r.status === 429) throttled++;
      return r;
    }, { retries: 20 });
    await res.arrayBuffer();
  }));
  return { id, tokens: tokens.length, chunks: chunks.length, throttled };
}
