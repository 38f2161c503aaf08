/**
 * Suite 7 Piscina task: one request to a real nginx `limit_req` (no burst),
 * paced by one of four limiters. Records, for every HTTP attempt, the
 * instant the limiter let it go (`sentNs`: right after acquire resolved /
 * when run() started the attempt / when the lock returned), the schedule's
 * slot where the limiter has one (`slotNs`), and nginx's status.
 *
 *   'acquire'    — atomic-pace: `await limiter.acquire()` then fetch; no retry.
 *   'run'        — atomic-pace: `limiter.run(fetch)` with its defaults (a 429
 *                  pauses every thread, then retries), retries: 2.
 *   'lock-sleep' — a naive shared limiter: a spin-and-wait lock on a
 *                  SharedArrayBuffer whose holder sleeps (Atomics.wait) until
 *                  one interval after the previous grant.
 *   'per-thread' — an atomic-pace limiter per thread at rate / threads.
 *
 * Times are ns on the process clock minus `baseNs` (one timeline for all
 * threads in Node).
 */
import { RateLimiter } from '../../dist/index.js';
import { naiveLockSleep } from '../lib/local.mjs';

let runId = -1;
let local;
let base = 0n;
const now = () => Number(process.hrtime.bigint() - base);

async function get(url) {
  const res = await fetch(url);
  await res.arrayBuffer(); // free the connection
  return res.status;
}


export default async function task({ variant, url, handle, lockBuffer, rate, threads, id, baseNs }) {
  if (id !== runId) {
    runId = id;
    local = undefined;
    base = baseNs;
  }
  const attempts = [];
  if (variant === 'warm') {
    await get(url);
    return attempts;
  }
  if (variant === 'acquire' || variant === 'per-thread') {
    local ??= variant === 'acquire' ? RateLimiter.attach(handle) : new RateLimiter({ rate: rate / threads, burst: 1 });
    const callNs = now();
    const grant = await local.acquire();
    const sentNs = now();
    const slotNs = variant === 'acquire' ? Number(grant.slotNs - base) : Number.NaN;
    // The limiter's own hand-out instant, from the call's start and its wait.
    const handedNs = callNs + grant.waitedMs * 1e6;
    attempts.push({ sentNs, slotNs, handedNs, status: await get(url) });
    return attempts;
  }
  if (variant === 'run') {
    local ??= RateLimiter.attach(handle);
    try {
      await local.run(async (_attempt, _signal, grant) => {
        const sentNs = now();
        const record = { sentNs, slotNs: Number(grant.slotNs - base), status: 0 };
        attempts.push(record);
        const res = await fetch(url);
        await res.arrayBuffer();
        record.status = res.status;
        return res;
      }, { retries: 2 });
    } catch {
      // retries exhausted: the attempts are recorded
    }
    return attempts;
  }
  if (variant === 'lock-sleep') {
    naiveLockSleep(lockBuffer, 1000 / rate);
    attempts.push({ sentNs: now(), slotNs: Number.NaN, status: await get(url) });
    return attempts;
  }
  throw new Error(`unknown variant ${variant}`);
}
