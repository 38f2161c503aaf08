// A CPU-parallel pipeline over a Piscina pool that shares one rate limit:
// documents are tokenized, chunked and hashed on every core, and each chunk
// is sent to an "embedding API" that allows 40 requests per sliding second.
// Run: npm run build && node examples/pipeline.mjs
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { RateLimiter } from '../dist/index.js';
import { startMockApi } from '../dist/testing/index.js';

const API_LIMIT = 40; // requests per sliding second
const DOCUMENTS = 40;
const WORKERS = Math.max(2, availableParallelism());

// A strict provider: 429 + Retry-After beyond the limit, 1 % spurious 429s, 10-40 ms per call.
const api = await startMockApi({ limit: API_LIMIT, windowMs: 1000, spuriousRate: 0.01, latencyMs: [10, 40] });
// One limiter for the whole pool, a little under the provider's limit.
const limiter = new RateLimiter({ rate: API_LIMIT * 0.9 });
const pool = new Piscina({
  filename: new URL('./pipeline-task.mjs', import.meta.url).href,
  maxThreads: WORKERS,
  workerData: { limiter: limiter.handle, url: api.url },
});

const started = performance.now();
const results = await Promise.all(
  Array.from({ length: DOCUMENTS }, (_, id) => pool.run({ id, text: fakeDocument(id) })),
);
const seconds = (performance.now() - started) / 1000;
await pool.destroy();
await api.close();

const chunks = results.reduce((n, r) => n + r.chunks, 0);
const tokens = results.reduce((n, r) => n + r.tokens, 0);
const { accepted, overLimit, spurious, violations } = api.stats();
console.log(`${DOCUMENTS} documents, ${tokens} tokens, ${chunks} chunks embedded by ${WORKERS} workers in ${seconds.toFixed(1)} s`);
console.log(`embedding calls: ${(accepted / seconds).toFixed(1)}/s (limiter ${limiter.rate}/s, API limit ${API_LIMIT}/s)`);
console.log(`429s: ${overLimit} over the limit, ${spurious} spurious (each paused the whole pool once), ${violations} in a penalty box`);
console.log(`shared backoffs: ${limiter.stats().throttles}`);

/** Deterministic filler text of a few thousand words. */
function fakeDocument(seed) {
  const words = ['rate', 'limit', 'worker', 'thread', 'atomic', 'schedule', 'token', 'bucket', 'embedding', 'vector',
    'shared', 'memory', 'request', 'retry', 'after', 'window', 'burst', 'queue', 'grant', 'pause'];
  let x = seed + 1;
  const out = [];
  const length = 2000 + (seed % 7) * 400;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    out.push(words[x % words.length]);
    if (x % 13 === 0) out.push('.');
  }
  return out.join(' ');
}
