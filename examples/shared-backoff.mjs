// The Stack Overflow scenario: 8 threads share one API limit; when one thread
// gets a 429, every thread must back off, not just that one.
// Run: npm run build && node examples/shared-backoff.mjs
import { createServer } from 'node:http';
import { Worker, isMainThread, workerData, parentPort } from 'node:worker_threads';
import { RateLimiter } from '../dist/index.js';

if (isMainThread) {
  // A strict toy API: 20 requests per second, 429 + Retry-After beyond that,
  // and one spurious throttle at request 30 (real providers do that).
  let served = 0, throttled = 0, windowStart = Date.now(), inWindow = 0;
  const server = createServer((req, res) => {
    if (Date.now() - windowStart >= 1000) { windowStart = Date.now(); inWindow = 0; }
    if (++inWindow > 20 || served === 30 && throttled === 0) {
      throttled++;
      res.writeHead(429, { 'retry-after': '1' }).end();
    } else {
      served++;
      res.end('ok');
    }
  }).listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const url = `http://127.0.0.1:${server.address().port}/`;

  const limiter = new RateLimiter({ rate: 18, burst: 1 }); // a little under the limit
  const started = Date.now();
  const workers = Array.from({ length: 8 }, () =>
    new Worker(new URL(import.meta.url), { workerData: { handle: limiter.handle, url } }));
  await Promise.all(workers.map((w) => new Promise((resolve) => w.once('exit', resolve))));
  server.close();
  const { throttles } = limiter.stats();
  console.log(`${served} requests served, ${throttled} answered 429, ${throttles} shared backoff(s), ${Date.now() - started} ms`);
} else {
  // In each worker: the same limiter, and a call that retries throttles.
  const limiter = RateLimiter.attach(workerData.handle);
  for (let i = 0; i < 10; i++) {
    // acquire → fetch → on 429: backoff({ retryAfterMs }) for every thread, jittered retry.
    const res = await limiter.run(() => fetch(workerData.url));
    await res.text();
  }
  parentPort?.close();
}
