/**
 * Suite 6 probe, run in a child process started with --expose-gc (so that
 * every worker thread has gc()). Prints one JSON line on stdout.
 *
 * In each of `trials` fresh worker threads, after a full GC at each step:
 *   h0 — heap of a worker that has loaded nothing;
 *   h1 — after `await import('dist/index.js')` (atomic-pace's code);
 *   h2 — after attaching one limiter;
 *   h3 — after attaching `n` more limiters to the same handle (kept alive).
 * Per-thread cost of using atomic-pace = h2 − h0; per extra attached
 * limiter = (h3 − h2) / n. Shared memory is counted once per limiter, not
 * per thread: handle.buffer.byteLength.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const distUrl = new URL('../../dist/index.js', import.meta.url).href;

function heapAfterGc() {
  for (let i = 0; i < 4; i++) globalThis.gc();
  return process.memoryUsage().heapUsed;
}

if (isMainThread) {
  if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc');
  const { RateLimiter } = await import(distUrl);
  const limiter = new RateLimiter({ rate: 100, burst: 1 });
  const trials = Number(process.argv[2] ?? 5);
  const n = Number(process.argv[3] ?? 1000);
  const samples = [];
  for (let t = 0; t < trials; t++) {
    samples.push(await new Promise((resolve, reject) => {
      const w = new Worker(new URL(import.meta.url), { workerData: { handle: limiter.handle, n } });
      w.once('message', resolve);
      w.once('error', reject);
    }));
  }
  process.stdout.write(JSON.stringify({ sharedBytes: limiter.handle.buffer.byteLength, n, samples }) + '\n');
} else {
  const { handle, n } = workerData;
  const h0 = heapAfterGc();
  const { RateLimiter } = await import(distUrl);
  const h1 = heapAfterGc();
  const first = RateLimiter.attach(handle);
  first.tryAcquire();
  const h2 = heapAfterGc();
  const more = [];
  for (let i = 0; i < n; i++) more.push(RateLimiter.attach(handle));
  const h3 = heapAfterGc();
  parentPort.postMessage({ h0, h1, h2, h3, kept: more.length + (first ? 1 : 0) });
}
