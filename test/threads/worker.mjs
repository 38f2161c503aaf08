// A worker for the real-thread stress tests. Plain JS on purpose: vitest does
// not transform files loaded by `new Worker()`, so this imports the built
// package (dist/, built by `npm test`'s pretest step) through the public API only.
import { parentPort, workerData } from 'node:worker_threads';
import { RateLimiter } from '../../dist/index.js';

const { handle, baseNs, mode, durationMs, concurrency = 1, cost = 1, start, backoffAtMs, retryAfterMs, iterations, inFlight, seed = 1 } = workerData;
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
} else if (mode === 'acquire-blocked') {
  // CPU-parallel pipeline: `concurrency` acquire loops, while the same event
  // loop is blocked by synchronous work for 30–300 ms at random moments, so
  // grants come due while nothing in this thread can run. Each record's
  // second field is a proven lower bound of the instant acquire() resolved:
  // max(callStart, end of the latest block) — code in this thread can not
  // resolve anything while the thread is blocked, and a promise resolved
  // before a block would have run its continuation before the block began.
  let lastBlockEnd = 0;
  result.blocks = 0;
  let state = seed;
  const random = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648);
  const blocker = async () => {
    while (now() < endAt) {
      await new Promise((resolve) => setTimeout(resolve, 20 + Math.floor(random() * 130)));
      const until = now() + (30 + random() * 270) * 1e6;
      while (now() < until) { /* CPU work */ }
      lastBlockEnd = now();
      result.blocks++;
    }
  };
  const loop = async () => {
    while (now() < endAt) {
      const callStart = now();
      const grant = await limiter.acquire(cost);
      const observed = now();
      records.push(callStart, Math.max(callStart, lastBlockEnd), observed, Number(grant.slotNs - baseNs));
      result.granted += cost;
    }
  };
  await Promise.all([blocker(), ...Array.from({ length: concurrency }, loop)]);
} else if (mode === 'multi-async') {
  // Several limits, random costs per request; records per-limit costs.
  let state = seed;
  const random = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648);
  result.costs = [];
  const loop = async () => {
    while (now() < endAt) {
      const tokens = 1 + Math.floor(random() * 400);
      const callStart = now();
      const promise = limiter.acquire({ requests: 1, tokens });
      const callReturned = now();
      const grant = await promise;
      records.push(callStart, callReturned, now(), Number(grant.slotNs - baseNs));
      result.costs.push(tokens);
      grant.release();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
} else if (mode === 'permits') {
  // Hold a concurrency permit for a random few ms per call; count holders in a
  // test-owned shared counter and remember the most seen at once.
  let maxSeen = 0;
  const loop = async () => {
    while (now() < endAt) {
      await limiter.run(async () => {
        const holders = Atomics.add(inFlight, 0, 1) + 1;
        if (holders > maxSeen) maxSeen = holders;
        await new Promise((resolve) => setTimeout(resolve, 1 + Math.floor(Math.random() * 4)));
        Atomics.sub(inFlight, 0, 1);
      });
      result.granted += 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  result.maxSeen = maxSeen;
} else if (mode === 'hold-forever') {
  // Take a permit and never give it back: only the worker's exit can.
  await limiter.acquire();
  parentPort.postMessage({ holding: true });
  await new Promise(() => setInterval(() => {}, 1000));
}
parentPort.postMessage(result);
