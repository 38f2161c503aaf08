/**
 * Suite 2 worker: spins one kind of "may I take 1 unit now?" call on a limit
 * shared with the other workers, for a fixed time from a common start.
 *
 *   op 'ap'    — atomic-pace: RateLimiter.attach(handle).tryAcquire()
 *   op 'floor' — the bare inline GCRA CAS loop on a shared buffer
 *   op 'pm'    — ask a central limiter in the main thread over a MessagePort,
 *                keeping `inFlight` requests outstanding
 *   op 'redis' — atomic-pace's Redis store (RedisRateLimiter.tryAcquire over
 *                ioredis), keeping `inFlight` calls outstanding
 *
 * Posts { calls, granted, ns } (ns = time actually spent in the run).
 */
import { parentPort } from 'node:worker_threads';
import { RateLimiter } from '../../dist/index.js';
import { floorOver } from '../lib/floor.mjs';
import { awaitStart } from '../lib/pool.mjs';

const post = (m) => parentPort.postMessage(m);
const BLOCK = 256; // calls between clock checks

// Two identical loops, one per callee, so each stays monomorphic.
function spinAp(limiter, deadline) {
  let calls = 0;
  let granted = 0;
  do {
    for (let i = 0; i < BLOCK; i++) if (limiter.tryAcquire()) granted++;
    calls += BLOCK;
  } while (process.hrtime.bigint() < deadline);
  return { calls, granted };
}

function spinFloor(tryAcquire, deadline) {
  let calls = 0;
  let granted = 0;
  do {
    for (let i = 0; i < BLOCK; i++) if (tryAcquire()) granted++;
    calls += BLOCK;
  } while (process.hrtime.bigint() < deadline);
  return { calls, granted };
}

/** Redis store: `inFlight` concurrent loops of `await tryAcquire()`, one ioredis connection per worker. */
async function viaRedis(limiter, inFlight, deadline) {
  let calls = 0;
  let granted = 0;
  const loop = async () => {
    while (process.hrtime.bigint() < deadline) {
      const ok = await limiter.tryAcquire();
      if (process.hrtime.bigint() >= deadline) break; // answered after the window: not counted
      calls++;
      if (ok) granted++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, loop));
  return { calls, granted };
}

function viaPostMessage(port, inFlight, deadline) {
  return new Promise((resolve) => {
    let calls = 0;
    let granted = 0;
    let outstanding = 0;
    port.on('message', (ok) => {
      outstanding--;
      if (process.hrtime.bigint() < deadline) {
        calls++;
        if (ok) granted++;
        port.postMessage(0);
        outstanding++;
      } else if (outstanding === 0) {
        port.close();
        resolve({ calls, granted });
      }
    });
    for (let i = 0; i < inFlight; i++, outstanding++) port.postMessage(0);
  });
}

parentPort.on('message', async (cmd) => {
  try {
    const durationNs = BigInt(cmd.durationNs);
    if (cmd.op === 'ap') {
      const limiter = RateLimiter.attach(cmd.handle);
      const startNs = awaitStart(cmd.ctrl, post);
      const r = spinAp(limiter, startNs + durationNs);
      post({ ...r, ns: Number(process.hrtime.bigint() - startNs) });
    } else if (cmd.op === 'floor') {
      const tryAcquire = floorOver(cmd.buffer, cmd.intervalNs, cmd.burst);
      const startNs = awaitStart(cmd.ctrl, post);
      const r = spinFloor(tryAcquire, startNs + durationNs);
      post({ ...r, ns: Number(process.hrtime.bigint() - startNs) });
    } else if (cmd.op === 'pm') {
      const startNs = awaitStart(cmd.ctrl, post);
      const r = await viaPostMessage(cmd.port, cmd.inFlight, startNs + durationNs);
      post({ ...r, ns: Number(process.hrtime.bigint() - startNs) });
    } else if (cmd.op === 'redis') {
      const { Redis } = await import('ioredis');
      const { RedisRateLimiter } = await import('../../dist/redis/index.js');
      const client = new Redis({ port: cmd.port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
      try {
        const limiter = new RedisRateLimiter({ redis: client, name: cmd.name, rate: cmd.rate, burst: cmd.burst });
        await limiter.tryAcquire(); // connect and load the script before the clock starts
        const startNs = awaitStart(cmd.ctrl, post);
        const r = await viaRedis(limiter, cmd.inFlight, startNs + durationNs);
        post({ ...r, ns: Number(process.hrtime.bigint() - startNs) });
      } finally {
        client.disconnect();
      }
    } else {
      post({ error: `unknown op ${cmd.op}` });
    }
  } catch (error) {
    post({ error: String(error?.stack ?? error) });
  }
});
post({ online: true });
