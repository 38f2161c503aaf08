/**
 * Leased slots: a process-local front that leases stretches of the Redis
 * schedule and hands them to its threads with one CAS. Guarantees defended:
 * every grant owns a piece of the one global schedule (stretches never
 * overlap, across processes and plain Redis callers), no grant is decided
 * before its slot by the front's clock, backoffs cross the process boundary
 * both ways, an idle process holds little, close() gives back the unused
 * tail, and an outage means typed errors or fallback grants.
 */
import { Worker } from 'node:worker_threads';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  InvalidHandleError,
  InvalidOptionError,
  LeasedRateLimiter,
  RedisRateLimiter,
  RedisUnavailableError,
  type LeaseHandle,
} from '../../src/redis/index.js';
import { Op } from '../../src/redis/script.js';
import { countsAt, earlyGrants, leaseRecords, overlaps, uncontained, windowViolation, type LeaseRecord } from './support/checks.js';
import { makeFull, redisAvailable, RedisServer } from './support/redis-server.js';

let server: RedisServer;
let redis: Redis;
let other: Redis;
let counter = 0;
const open: LeasedRateLimiter[] = [];

async function leased(options: { rate: number; burst?: number; leaseAheadMs?: number; fallback?: { share: number; retryAfterMs?: number } }, name = `lease-${++counter}`): Promise<LeasedRateLimiter> {
  const limiter = new LeasedRateLimiter({ redis, name, ...options });
  open.push(limiter);
  await makeFull(redis, limiter.redis);
  return limiter;
}

interface WorkerResult { records: BigInt64Array; sources: string[]; errors: number; backoffAt: bigint | null }

async function runWorkers(handle: LeaseHandle, count: number, data: Record<string, unknown>): Promise<WorkerResult[]> {
  const start = new Int32Array(new SharedArrayBuffer(4));
  const workers = Array.from({ length: count }, (_, i) => new Worker(new URL('./lease-worker.mjs', import.meta.url), {
    workerData: { handle, start, ...data, ...(typeof data.perWorker === 'function' ? (data.perWorker as (i: number) => object)(i) : {}), perWorker: undefined },
  }));
  const results = workers.map((w) => new Promise<WorkerResult>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  }));
  await Promise.all(workers.map((w) => new Promise((resolve) => w.once('online', resolve))));
  Atomics.store(start, 0, 1);
  Atomics.notify(start, 0);
  const done = await Promise.all(results);
  await Promise.all(workers.map((w) => w.terminate()));
  return done;
}

async function serverBaseNs(): Promise<bigint> {
  const [sec, usec] = (await redis.time()) as [number | string, number | string];
  return (BigInt(sec) * 1_000_000n + BigInt(usec)) * 1000n;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(!redisAvailable)('leased slots', () => {
  beforeAll(async () => {
    server = await RedisServer.start();
    redis = await server.client();
    other = await server.client();
  });
  afterAll(async () => {
    await Promise.all(open.map((l) => l.close()));
    redis?.disconnect();
    other?.disconnect();
    await server?.stop();
  });

  it('a stretched round trip never makes a grant early: the clock mapping trusts only what causality proves', async () => {
    // Every other LEASE request is held 100–400 ms before it reaches Redis,
    // so the server reads its clock long after this process sent it (a
    // mapping from the round trip's midpoint would then run ahead).
    let leases = 0;
    const delaying = {
      evalsha: async (...args: Parameters<Redis['evalsha']>) => {
        if (String(args[4]) === String(Op.LEASE) && ++leases % 2 === 0) await sleep(100 + Math.random() * 300);
        return redis.evalsha(...args);
      },
      eval: (...args: Parameters<Redis['eval']>) => redis.eval(...args),
    };
    const name = `lease-${++counter}`;
    const limiter = new LeasedRateLimiter({ redis: delaying, name, rate: 500, burst: 2, leaseAheadMs: 100 });
    open.push(limiter);
    await makeFull(redis, limiter.redis);
    // This test's own bound on the server's clock: at local t it reads at
    // most t + min(TIME − sent) over fast round trips of its own.
    const upperBound = async (): Promise<bigint> => {
      let best: bigint | null = null;
      for (let i = 0; i < 30; i++) {
        const sent = process.hrtime.bigint();
        const [sec, usec] = (await other.time()) as [number | string, number | string];
        const serverNs = (BigInt(sec) * 1_000_000n + BigInt(usec)) * 1000n;
        if (best === null || serverNs - sent < best) best = serverNs - sent;
      }
      return best!;
    };
    const before = await upperBound();
    const baseNs = await serverBaseNs();
    const results = await runWorkers(limiter.handle, 3, { durationMs: 1500, baseNs });
    const after = await upperBound();
    const ub = before < after ? before : after;
    const records = results.flatMap((r, i) => leaseRecords(r.records, i));
    // decided: the server's virtual ns (no backoff here, so its real ns) the
    // front decided at; it must not lie after the server's clock when the
    // call returned.
    const early = records.filter((r) => r.decided + baseNs > r.returned + ub);
    expect(early.length).toBe(0);
    expect(records.length).toBeGreaterThan(100);
    expect(leases).toBeGreaterThan(3);
  });

  it('4 threads + a plain Redis caller share one limit: stretches never overlap, no grant is early, the window holds', async () => {
    const rate = 2000;
    const burst = 5;
    const limiter = await leased({ rate, burst, leaseAheadMs: 50 });
    const plain = new RedisRateLimiter({ redis: other, name: `lease-${counter}`, rate, burst }); // "another process"
    const baseNs = await serverBaseNs();
    const plainTimes: number[] = [];
    let plainRunning = true;
    const plainLoop = (async () => {
      while (plainRunning) {
        const g = await plain.acquire();
        plainTimes.push(Number(BigInt(g.slotUs!) * 1000n - baseNs));
      }
    })();
    const results = await runWorkers(limiter.handle, 4, { durationMs: 500, baseNs });
    plainRunning = false;
    await plainLoop;
    const records: LeaseRecord[] = results.flatMap((r, i) => leaseRecords(r.records, i));
    expect(records.length).toBeGreaterThan(300);
    expect(plainTimes.length).toBeGreaterThan(5);
    expect(overlaps(records)).toBe(0);
    const toleranceNs = BigInt(Math.ceil(burst * 1e6 / rate)) * 1000n;
    expect(earlyGrants(records, toleranceNs)).toBe(0);
    expect(uncontained(records, toleranceNs)).toBe(0);
    // The window invariant over every grant of the limit, leased and plain,
    // at the instants they count at (a plain grant's slot is that instant).
    // Exact: it follows from the two checks above. (How close the front's
    // clock is to the server's — half a lease round trip — is not tested here.)
    const times = [...records.map((r) => Number(countsAt(r, toleranceNs))), ...plainTimes];
    expect(windowViolation(times, burst, 1e9 / rate)).toBeNull();
    const stats = limiter.stats();
    expect(stats.grantedCost).toBe(records.length);
    expect(stats.leases).toBeGreaterThan(1);
  });

  it('tryAcquire never waits: it grants from the lease only; the first call finds none and asks for one', async () => {
    const limiter = await leased({ rate: 1000, burst: 3 });
    expect(limiter.tryAcquire()).toBe(false);
    expect(limiter.stats().stalls).toBe(1);
    const t0 = performance.now();
    while (!limiter.tryAcquire()) await sleep(1); // the owner leased meanwhile
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(limiter.stats().leases).toBeGreaterThanOrEqual(1);
    expect(() => limiter.tryAcquire(4)).toThrow(InvalidOptionError);
    expect(() => LeasedRateLimiter.attach({} as LeaseHandle)).toThrow(InvalidHandleError);
    expect(() => new LeasedRateLimiter({ redis, name: 'x', rate: 1, limits: {} } as never)).toThrow(InvalidOptionError);
  });

  it('a backoff in one thread pauses every thread of the process at once, and the other processes through Redis', async () => {
    const limiter = await leased({ rate: 1000, burst: 2, leaseAheadMs: 50 });
    const plain = new RedisRateLimiter({ redis: other, name: `lease-${counter}`, rate: 1000, burst: 2 });
    const retryAfterMs = 300;
    const results = await runWorkers(limiter.handle, 3, {
      durationMs: 700, baseNs: 0n, retryAfterMs,
      perWorker: (i: number) => (i === 0 ? { backoffAtMs: 150 } : {}),
    });
    const backoffAt = results[0]!.backoffAt!;
    expect(backoffAt).not.toBeNull();
    const records = results.flatMap((r, i) => leaseRecords(r.records, i));
    // Calls that started after backoff() returned were not granted before the pause ended.
    const pauseEnd = backoffAt + BigInt(retryAfterMs) * 1_000_000n;
    // (The owner then maps the pause Redis confirmed: its end may differ by half a round trip; 5 ms slack.)
    const inPause = records.filter((r) => r.called > backoffAt && r.returned < pauseEnd - 5_000_000n);
    expect(inPause).toEqual([]);
    expect(records.some((r) => r.called > pauseEnd)).toBe(true); // and it resumed
    expect(limiter.stats().throttles).toBe(1);
    expect((await plain.stats()).throttles).toBe(1); // the owner forwarded it to Redis
  });

  it('owner backoff resolves once Redis has it: a plain caller elsewhere waits for the pause', async () => {
    const limiter = await leased({ rate: 1000, burst: 2 });
    const plain = new RedisRateLimiter({ redis: other, name: `lease-${counter}`, rate: 1000, burst: 2 });
    await limiter.acquire();
    const sent = performance.now();
    await limiter.backoff({ retryAfterMs: 250 });
    expect((await plain.stats()).pausedForMs).toBeGreaterThan(0);
    await plain.acquire();
    // Redis got the pause after `sent`: nothing is granted before sent + 250 ms.
    expect(performance.now() - sent).toBeGreaterThanOrEqual(250);
  });

  it('a backoff reported elsewhere reaches the leased front within leaseAheadMs', async () => {
    const leaseAheadMs = 40;
    const limiter = await leased({ rate: 1000, burst: 2, leaseAheadMs });
    const plain = new RedisRateLimiter({ redis: other, name: `lease-${counter}`, rate: 1000, burst: 2 });
    for (let i = 0; i < 200; i++) await limiter.acquire(); // busy: long leases
    await plain.backoff({ retryAfterMs: 400 });
    const t0 = performance.now();
    const late: number[] = [];
    while (performance.now() - t0 < 500) {
      await limiter.acquire();
      late.push(performance.now() - t0);
    }
    // Grants in (leaseAheadMs + 40 ms of round trips and timers, pause end) would be a missed pause.
    expect(late.filter((t) => t > leaseAheadMs + 40 && t < 390)).toEqual([]);
    expect(late.some((t) => t >= 390)).toBe(true);
  });

  it('an idle process holds little: lease length follows demand', async () => {
    const limiter = await leased({ rate: 5000, burst: 1, leaseAheadMs: 200 });
    const plain = new RedisRateLimiter({ redis: other, name: `lease-${counter}`, rate: 5000, burst: 1 });
    const averageLeaseMs = (from: { leases: number; leasedMs: number }, to: { leases: number; leasedMs: number }) =>
      (to.leasedMs - from.leasedMs) / Math.max(1, to.leases - from.leases);
    const t0 = performance.now();
    const start = limiter.stats();
    while (performance.now() - t0 < 200) await limiter.acquire(); // busy: leases grow toward the horizon
    const busy = limiter.stats();
    await sleep(400); // idle: the leased stretch expires
    for (let i = 0; i < 3; i++) { // then a trickle: 10 requests/s against 5000/s
      await limiter.acquire();
      await sleep(100);
    }
    const trickleFrom = limiter.stats();
    await limiter.acquire();
    const idle = await plain.reserve();
    const trickle = limiter.stats();
    // Busy: long stretches. Trickle: one unit plus two round trips (the part
    // that passes while the lease is on its way): a few ms, more under load.
    const busyMs = averageLeaseMs(start, busy);
    expect(busyMs).toBeGreaterThan(20);
    expect(averageLeaseMs(trickleFrom, trickle)).toBeLessThan(busyMs / 2);
    expect(idle.delayMs).toBeLessThan(busyMs); // another process is not blocked behind a long lease
  });

  it('close() gives the unused tail back to Redis when no one was placed after it', async () => {
    const limiter = await leased({ rate: 1000, burst: 1, leaseAheadMs: 300 });
    const plain = new RedisRateLimiter({ redis: other, name: `lease-${counter}`, rate: 1000, burst: 1 });
    const t0 = performance.now();
    while (performance.now() - t0 < 150) await limiter.acquire();
    await limiter.close();
    const r = await plain.reserve();
    expect(r.delayMs).toBeLessThan(50); // a leased horizon of up to 300 ms came back
    await expect(limiter.acquire()).rejects.toBeInstanceOf(RedisUnavailableError);
  });

  it('Redis down without fallback: typed errors once the lease is used up; back up: leases again', async () => {
    const limiter = await leased({ rate: 2000, burst: 2, leaseAheadMs: 20 });
    await limiter.acquire();
    await server.kill();
    let error: unknown;
    for (let i = 0; i < 10_000 && error === undefined; i++) {
      try {
        await limiter.acquire(1, { timeoutMs: 1000 });
      } catch (e) {
        error = e;
      }
    }
    expect(error).toBeInstanceOf(RedisUnavailableError);
    expect(limiter.stats().mode).toBe('failing');
    expect(() => limiter.tryAcquire()).toThrow(RedisUnavailableError);
    await server.restart();
    await waitReady();
    const grant = await retry(() => limiter.acquire(1, { timeoutMs: 3000 }));
    expect(grant.source).toBe('lease');
    expect(limiter.stats().mode).toBe('leasing');
  });

  it('Redis down with fallback: local grants at share × rate, then leases again', async () => {
    const rate = 1000;
    const limiter = await leased({ rate, burst: 1, leaseAheadMs: 20, fallback: { share: 0.25, retryAfterMs: 300 } });
    await limiter.acquire();
    await server.kill();
    const fallback: LeaseRecord[] = [];
    const t0 = performance.now();
    while (performance.now() - t0 < 300) {
      const g = await limiter.acquire();
      if (g.source === 'fallback') fallback.push({ start: g.segment[0], end: g.segment[1], decided: g.decidedAtNs, called: 0n, returned: 0n, worker: 0 });
    }
    expect(limiter.stats().mode).toBe('fallback');
    // The local schedule at 250/s, burst 1 (τ = 4 ms): own pieces, never early, the window holds on its clock.
    expect(fallback.length).toBeGreaterThan(20);
    expect(overlaps(fallback)).toBe(0);
    expect(earlyGrants(fallback, 4_000_000n)).toBe(0);
    expect(uncontained(fallback, 4_000_000n)).toBe(0);
    const base = countsAt(fallback[0]!, 4_000_000n);
    expect(windowViolation(fallback.map((r) => Number(countsAt(r, 4_000_000n) - base)), 1, 1e9 / (rate * 0.25))).toBeNull();
    await server.restart();
    await waitReady();
    await retry(async () => {
      const g = await limiter.acquire(1, { timeoutMs: 3000 });
      if (g.source !== 'lease') throw new Error('still on the fallback');
      return g;
    });
    expect(limiter.stats().mode).toBe('leasing');
  });
});

async function waitReady(): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (redis.status !== 'ready' || other.status !== 'ready') {
    if (Date.now() > deadline) throw new Error('clients did not reconnect');
    await sleep(10);
  }
}

async function retry<T>(fn: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(50);
    }
  }
}
