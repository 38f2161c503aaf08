// A worker thread of a leased front: attaches to the owner's handle and
// acquires for `durationMs`, recording each grant as
// [segment start, segment end, decided at] (virtual ns − baseNs), and the
// call's start and return on the process clock (hrtime ns), and its source.
import { workerData, parentPort } from 'node:worker_threads';
import { LeasedRateLimiter } from '../../dist/redis/index.js';

const { handle, durationMs, baseNs, start, backoffAtMs, retryAfterMs } = workerData;
const limiter = LeasedRateLimiter.attach(handle);
Atomics.wait(start, 0, 0); // released together
const records = [];
const sources = [];
let errors = 0;
let backoffAt = null;
const t0 = Date.now();
while (Date.now() - t0 < durationMs) {
  if (backoffAtMs !== undefined && backoffAt === null && Date.now() - t0 >= backoffAtMs) {
    limiter.backoff({ retryAfterMs });
    backoffAt = process.hrtime.bigint();
  }
  try {
    const called = process.hrtime.bigint();
    const g = limiter.acquireSync(1, { timeoutMs: 2000 });
    records.push(g.segment[0] - baseNs, g.segment[1] - baseNs, g.decidedAtNs - baseNs, called, process.hrtime.bigint());
    sources.push(g.source);
  } catch (error) {
    if (error?.code !== 'E_REDIS_UNAVAILABLE' && error?.code !== 'E_WAIT_TIMEOUT') throw error;
    errors++;
  }
}
parentPort.postMessage({ records: BigInt64Array.from(records), sources, errors, backoffAt });
