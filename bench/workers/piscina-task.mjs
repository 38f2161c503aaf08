/**
 * Suite 5 Piscina task: one request to the mock API, paced by one of four
 * limiters. Per-thread state lives in this module (one copy per pool thread)
 * and is rebuilt when `runId` changes.
 *
 *   'shared'       — atomic-pace: every thread attaches the same limiter;
 *                    limiter.run() does the request, and on a 429 pauses all
 *                    threads (shared backoff) and retries.
 *   'per-thread'   — an atomic-pace limiter created inside each thread at the
 *                    full rate (the common mistake: N threads, N × the rate).
 *   'split'        — a limiter per thread at rate / threads (the careful
 *                    workaround without shared state).
 *   'lock-sleep'   — a naive shared limiter: a spin-and-wait lock on a
 *                    SharedArrayBuffer, and the holder sleeps (Atomics.wait)
 *                    until one interval after the previous grant.
 * The non-shared variants handle a 429 as a plain client would: sleep the
 * server's Retry-After in this task only, then retry (up to 5 attempts).
 *
 * Returns { attempts, status }.
 */
import { RateLimiter } from '../../dist/index.js';
import { naiveLockSleep } from '../lib/local.mjs';

let runId = -1;
let local;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function request(url) {
  const res = await fetch(url, { method: 'POST', body: 'x' });
  await res.arrayBuffer(); // free the connection
  return res;
}


async function naiveRetry(url, acquire) {
  for (let attempt = 1; ; attempt++) {
    await acquire();
    const res = await request(url);
    if (res.status !== 429 || attempt === 5) return { attempts: attempt, status: res.status };
    await sleep(Number(res.headers.get('retry-after-ms') ?? 1000));
  }
}

export default async function task({ variant, url, handle, lockBuffer, rate, threads, id }) {
  if (id !== runId) {
    runId = id;
    local = undefined;
  }
  if (variant === 'shared') {
    local ??= RateLimiter.attach(handle);
    let attempts = 0;
    try {
      const res = await local.run(() => { attempts++; return request(url); }, { retries: 4 });
      return { attempts, status: res.status };
    } catch {
      return { attempts, status: 429 };
    }
  }
  if (variant === 'per-thread' || variant === 'split') {
    local ??= new RateLimiter({ rate: variant === 'split' ? rate / threads : rate, burst: 1 });
    return naiveRetry(url, () => local.acquire());
  }
  if (variant === 'lock-sleep') {
    return naiveRetry(url, async () => naiveLockSleep(lockBuffer, 1000 / rate));
  }
  throw new Error(`unknown variant ${variant}`);
}
