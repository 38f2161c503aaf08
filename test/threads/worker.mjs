// A worker for the real-thread stress tests. Plain JS on purpose: vitest does
// not transform files loaded by `new Worker()`, so this imports the built
// package (dist/, built by `npm test`'s pretest step) through the public API only.
import { parentPort, workerData } from 'node:worker_threads';
import { RateLimiter } from '../../dist/index.js';

const { handle, baseNs, mode, durationMs, concurrency = 1, cost = 1, start, backoffAtMs, retryAfterMs, iterations } = workerData;
const limiter = RateLimiter.attach(handle);
const now = () => Number(process.hrtime.bigint() - baseNs); // ns since the test's base, exact as a double

// Start barrier: every worker begins at the same instant.
Atomics.wait(start, 0, 0);
const t0 = now();
const endAt = t0 + durationMs * 1e6;

/** Flat records: [callStart, callReturned, granted, slot] per grant (ns since base). */
const records = [];
const result = { records, granted: 0, backoff: null };

if (mode === 'try-spin') {
  // Saturation: spin on tryAcquire; a grant's linearization point lies in [before, after].
  while (true) {
    const before = now();
    if (before >= endAt) break;
    if (limiter.tryAcquire(cost)) {
      const after = now();
      records.push(before, after, after, 0);
      result.granted += cost;
    }
  }
} else if (mode === 'lost-update') {
  for (let i = 0; i < iterations; i++) {
    if (limiter.tryAcquire(cost)) result.granted += cost;
  }
} else if (mode === 'acquire-sync') {
  while (now() < endAt) {
    const before = now();
    const grant = limiter.acquireSync(cost);
    const after = now();
    records.push(before, before, after, Number(grant.slotNs - baseNs));
    result.granted += cost;
  }
} else if (mode === 'acquire-async') {
  // Keep `concurrency` acquires in flight; [callStart, callReturned] brackets the
  // synchronous reservation made inside acquire(), which fixes the FIFO order.
  let backoffDone = backoffAtMs === undefined;
  const loop = async () => {
    while (now() < endAt) {
      if (!backoffDone && now() >= t0 + backoffAtMs * 1e6) {
        backoffDone = true;
        const before = now();
        limiter.backoff({ retryAfterMs, reason: 'stress test' });
        result.backoff = { before, after: now(), retryAfterMs };
      }
      const callStart = now();
      const promise = limiter.acquire(cost);
      const callReturned = now();
      const grant = await promise;
      records.push(callStart, callReturned, now(), Number(grant.slotNs - baseNs));
      result.granted += cost;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
}
parentPort.postMessage(result);
