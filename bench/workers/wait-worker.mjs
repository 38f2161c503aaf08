/**
 * Suites 3 and 4 worker: takes grants from a shared limiter for a fixed time
 * from a common start and logs each one.
 *
 *   op 'sync'  — loop acquireSync()
 *   op 'async' — `concurrency` concurrent loops of await acquire()
 *   op 'try'   — spin tryAcquire()
 *
 * Per grant it logs, in ns since the common start:
 *   lo, hi — when the grant happened: for a wait, lo = hi = grant.slotNs (its
 *            due time on the schedule; the process clock, as no backoff runs);
 *            for tryAcquire, the clock just before and just after the call;
 *   seen   — the clock when the caller got the grant back (lateness = seen − slot).
 * In 'try' mode it also logs stalls: [from, to] pairs when this thread made no call.
 * No new request starts after the deadline; requests already waiting finish.
 */
import { parentPort } from 'node:worker_threads';
import { RateLimiter } from '../../dist/index.js';
import { awaitStart } from '../lib/pool.mjs';

const post = (m, transfer) => parentPort.postMessage(m, transfer);
const clock = process.hrtime.bigint;

class Log {
  constructor() { this.lo = []; this.hi = []; this.seen = []; this.waited = 0; this.stalls = []; }
  pack() {
    const lo = Float64Array.from(this.lo);
    const hi = Float64Array.from(this.hi);
    const seen = Float64Array.from(this.seen);
    const stalls = Float64Array.from(this.stalls);
    return [{ lo, hi, seen, stalls, waited: this.waited, grants: lo.length }, [lo.buffer, hi.buffer, seen.buffer, stalls.buffer]];
  }
}

/** Paced runs: a random pause in [0, 2·gapNs) after each grant (offered load below the rate). */
const gapSleep = new Int32Array(new SharedArrayBuffer(4));
function gapMs(gapNs) {
  return gapNs > 0 ? (Math.random() * 2 * gapNs) / 1e6 : 0;
}

function runSync(limiter, startNs, deadline, log, gapNs = 0) {
  while (clock() < deadline) {
    if (gapNs > 0) Atomics.wait(gapSleep, 0, 0, gapMs(gapNs));
    const g = limiter.acquireSync();
    const seen = clock();
    const slot = Number(g.slotNs - startNs);
    log.lo.push(slot); log.hi.push(slot); log.seen.push(Number(seen - startNs));
    if (g.waitedMs > 0) log.waited++;
  }
}

async function runAsync(limiter, startNs, deadline, log, concurrency, gapNs = 0) {
  const loop = async () => {
    while (clock() < deadline) {
      if (gapNs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs(gapNs)));
      const g = await limiter.acquire();
      const seen = clock();
      const slot = Number(g.slotNs - startNs);
      log.lo.push(slot); log.hi.push(slot); log.seen.push(Number(seen - startNs));
      if (g.waitedMs > 0) log.waited++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
}

/**
 * Spins tryAcquire. Also logs this thread's stalls: gaps of more than
 * STALL_NS between two consecutive calls (descheduled, or a GC pause), so
 * the main thread can tell when no caller at all was running.
 */
const STALL_NS = 20_000n;
function runTry(limiter, startNs, deadline, log) {
  let calls = 0;
  let prev = startNs;
  for (;;) {
    const lo = clock();
    if (lo - prev > STALL_NS) log.stalls.push(Number(prev - startNs), Number(lo - startNs));
    prev = lo;
    if (lo >= deadline) break;
    calls++;
    if (limiter.tryAcquire()) {
      const hi = clock();
      log.lo.push(Number(lo - startNs)); log.hi.push(Number(hi - startNs)); log.seen.push(Number(hi - startNs));
    }
  }
  return calls;
}

parentPort.on('message', async (cmd) => {
  try {
    const limiter = RateLimiter.attach(cmd.handle);
    const log = new Log();
    const startNs = awaitStart(cmd.ctrl, post);
    const deadline = startNs + BigInt(cmd.durationNs);
    let calls;
    if (cmd.op === 'sync') runSync(limiter, startNs, deadline, log, cmd.gapNs);
    else if (cmd.op === 'async') await runAsync(limiter, startNs, deadline, log, cmd.concurrency ?? 1, cmd.gapNs);
    else if (cmd.op === 'try') calls = runTry(limiter, startNs, deadline, log);
    else throw new Error(`unknown op ${cmd.op}`);
    const [packed, transfer] = log.pack();
    post({ ...packed, calls }, transfer);
  } catch (error) {
    post({ error: String(error?.stack ?? error) });
  }
});
post({ online: true });
