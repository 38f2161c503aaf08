/**
 * The Redis store, one guarantee per test, against a real redis-server this
 * file starts. Redis's clock (TIME) can not be injected, so every
 * expectation is slot arithmetic on what the server returned, or an
 * invariant with slack in the direction that can not hide an over-grant.
 */
import type { Redis } from 'ioredis';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CostTooLargeError,
  GrantStateError,
  InvalidOptionError,
  QueueFullError,
  RedisConfigMismatchError,
  RedisRateLimiter,
  RedisUnavailableError,
  WaitTimeoutError,
  type RedisQueueStatus,
  type RedisRateLimiterOptions,
} from '../../src/redis/index.js';
import { makeFull, redisAvailable, RedisServer } from './support/redis-server.js';

let server: RedisServer;
let redis: Redis;
let counter = 0;

/** A limiter on a fresh key, its bucket full. */
async function fresh(options: Omit<RedisRateLimiterOptions, 'redis' | 'name'>, client: Redis = redis): Promise<RedisRateLimiter> {
  const limiter = new RedisRateLimiter({ redis: client, name: `store-${++counter}`, ...options });
  await makeFull(client, limiter);
  return limiter;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  let value: unknown;
  try {
    value = await promise;
  } catch (error) {
    return error;
  }
  throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
}

describe.skipIf(!redisAvailable)('Redis store', () => {
  beforeAll(async () => {
    server = await RedisServer.start();
    redis = await server.client();
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  describe('decisions (GCRA on the server clock)', () => {
    it('tryAcquire grants the burst, then refuses, without queueing', async () => {
      const limiter = await fresh({ rate: 1, burst: 3 });
      const got = [];
      for (let i = 0; i < 5; i++) got.push(await limiter.tryAcquire());
      expect(got).toEqual([true, true, true, false, false]);
      const stats = await limiter.stats();
      expect(stats.available).toBe(0);
      expect(stats.waiting).toBe(0);
    });

    it('weighted costs take cost/rate of the schedule; a cost above burst is CostTooLargeError at once', async () => {
      const limiter = await fresh({ rate: 10, burst: 10 });
      expect(await limiter.tryAcquire(7)).toBe(true);
      expect(await limiter.tryAcquire(4)).toBe(false);
      expect(await limiter.tryAcquire(3)).toBe(true);
      expect(await rejection(limiter.tryAcquire(11))).toBeInstanceOf(CostTooLargeError);
      expect(await rejection(limiter.acquire(0))).toBeInstanceOf(InvalidOptionError);
    });

    it('acquire: FIFO slots exactly one interval apart, each granted no earlier than due', async () => {
      const limiter = await fresh({ rate: 40, burst: 1 }); // 25 ms apart
      const t0 = performance.now();
      const arrivals: number[] = [];
      const grants = await Promise.all(Array.from({ length: 5 }, (_, k) => limiter.acquire().then((g) => {
        arrivals[k] = performance.now() - t0;
        return g;
      })));
      const slots = grants.map((g) => g.slotUs!);
      for (let i = 1; i < slots.length; i++) expect(slots[i]! - slots[i - 1]!).toBe(25_000);
      // Never early: the first placement happened after t0, so the k-th grant,
      // due k intervals after it by the server's clock, arrives k intervals
      // after t0 at the earliest (clock rates differ by ppm only).
      arrivals.forEach((ms, k) => expect(ms).toBeGreaterThanOrEqual(k * 25));
      expect(grants.every((g) => g.source === 'redis')).toBe(true);
    });

    it('timeoutMs: a wait beyond it fails at once with WaitTimeoutError and reserves nothing', async () => {
      const limiter = await fresh({ rate: 2, burst: 1 }); // 500 ms apart
      const first = await limiter.acquire();
      const t0 = performance.now();
      const error = await rejection(limiter.acquire(1, { timeoutMs: 100 }));
      expect(error).toBeInstanceOf(WaitTimeoutError);
      expect((error as WaitTimeoutError).wouldWaitMs).toBeGreaterThan(100);
      expect(performance.now() - t0).toBeLessThan(400); // at once, not after sleeping the ~500 ms
      const reservation = await limiter.reserve();
      expect(reservation.slotUs).toBe(first.slotUs! + 500_000); // the refused wait left no trace
      expect((await limiter.stats()).rejected).toBe(1);
    });

    it('maxWaitMs bounds every call; maxQueue refuses with QueueFullError beyond the queue', async () => {
      const capped = await fresh({ rate: 2, burst: 1, maxWaitMs: 100 });
      await capped.acquire();
      expect(await rejection(capped.acquire())).toBeInstanceOf(WaitTimeoutError);
      const queued = await fresh({ rate: 1, burst: 1, maxQueue: 2 });
      expect((await queued.reserve()).ok).toBe(true); // now
      expect((await queued.reserve()).ok).toBe(true); // 1 behind
      expect((await queued.reserve()).ok).toBe(true); // 2 behind
      expect((await queued.reserve()).ok).toBe(false);
      const error = await rejection(queued.acquire());
      expect(error).toBeInstanceOf(QueueFullError);
      expect((error as QueueFullError).maxQueue).toBe(2);
    });

    it('abort gives the slot back when it is the latest placement, else leaves it empty', async () => {
      const limiter = await fresh({ rate: 1, burst: 1 });
      await limiter.acquire();
      const ac = new AbortController();
      let status: RedisQueueStatus | undefined;
      const waiting = limiter.acquire(1, { signal: ac.signal, onQueued: (s) => { status = s; } });
      await until(() => status !== undefined);
      ac.abort(new Error('user gave up'));
      expect(((await rejection(waiting)) as Error).message).toBe('user gave up');
      await until(async () => (await limiter.stats()).cancelled === 1);
      const next = await limiter.reserve();
      expect(next.slotUs).toBe(status!.slotUs); // capacity came back
      // Not the latest: r1 then r2; cancelling r1 leaves its slot empty, r2 keeps its time.
      const r2 = await limiter.reserve();
      expect(await next.cancel()).toBe(false);
      const r3 = await limiter.reserve();
      expect(r3.slotUs).toBe(r2.slotUs + 1_000_000);
    });

    it('settle: refund if still the latest placement, forfeit otherwise; extra cost is charged', async () => {
      const limiter = await fresh({ rate: 10, burst: 10 });
      const grant = await limiter.acquire(6);
      expect(await grant.settle(2)).toEqual({ charged: { default: 0 }, refunded: { default: 4 }, forfeited: { default: 0 } });
      expect((await limiter.stats()).available).toBe(8);
      const a = await limiter.acquire(4);
      await limiter.acquire(1);
      expect((await a.settle(1)).forfeited).toEqual({ default: 3 });
      const before = (await limiter.stats()).available;
      expect((await (await limiter.acquire(1)).settle(3)).charged).toEqual({ default: 2 });
      expect((await limiter.stats()).available).toBeLessThanOrEqual(before - 3);
      await expect(grant.settle(1)).rejects.toBeInstanceOf(GrantStateError);
    });
  });

  describe('several limits', () => {
    it('all or nothing: a refusal in one limit charges none; FIFO joint slot across limits', async () => {
      const limiter = await fresh({ limits: { requests: { rate: 1, burst: 2 }, tokens: { rate: 100, burst: 100 } } });
      expect(await limiter.tryAcquire({ requests: 1, tokens: 100 })).toBe(true);
      expect(await limiter.tryAcquire({ requests: 1, tokens: 50 })).toBe(false); // tokens empty
      let stats = await limiter.stats();
      expect(stats.limits.requests!.available).toBe(1); // not charged by the refusal
      expect(stats.limits.tokens!.available).toBe(0);
      const r1 = await limiter.reserve({ requests: 1, tokens: 100 }); // waits for tokens: 1 s
      const r2 = await limiter.reserve({ requests: 1, tokens: 1 }); // behind r1 (FIFO), though it would fit sooner in tokens alone
      expect(r2.slotUs).toBeGreaterThanOrEqual(r1.slotUs);
      stats = await limiter.stats();
      expect(stats.limits.requests!.available).toBe(0);
      expect(stats.limits.requests!.queuedCost).toBeGreaterThanOrEqual(1);
      const error = await rejection(limiter.acquire({ requests: 3 }));
      expect(error).toBeInstanceOf(CostTooLargeError);
      expect((error as CostTooLargeError).field).toBe('cost.requests');
    });
  });

  describe('shared backoff', () => {
    it('pauses grants, including a request already waiting, and resumes one interval apart', async () => {
      const limiter = await fresh({ rate: 20, burst: 1 }); // 50 ms
      await limiter.acquire();
      const t0 = performance.now();
      const waiting = limiter.acquire(); // due in ~50 ms
      await limiter.backoff({ retryAfterMs: 300 });
      expect(await limiter.tryAcquire()).toBe(false);
      const stats = await limiter.stats();
      expect(stats.pausedForMs).toBeGreaterThan(200);
      expect(stats.throttles).toBe(1);
      const granted = await waiting;
      expect(performance.now() - t0).toBeGreaterThanOrEqual(300 - 2);
      const after = await limiter.acquire();
      expect(after.slotUs! - granted.slotUs!).toBeGreaterThanOrEqual(50_000); // no burst after the pause
      // A shorter backoff never shortens a pause.
      await limiter.backoff({ retryAfterMs: 400 });
      await limiter.backoff({ retryAfterMs: 10 });
      expect((await limiter.stats()).pausedForMs).toBeGreaterThan(300);
    });
  });

  describe('queue status across processes', () => {
    it('waiting count and each request\'s position/eta are readable from Redis by id', async () => {
      const limiter = await fresh({ rate: 10, burst: 1 });
      const other = new RedisRateLimiter({ redis, name: `store-${counter}`, rate: 10, burst: 1 }); // "another process"
      await limiter.acquire();
      const statuses: RedisQueueStatus[] = [];
      const waits = ['req-a', 'req-b', 'req-c'].map((id) => limiter.acquire(1, { id, onQueued: (s) => statuses.push(s) }));
      await until(() => statuses.length === 3);
      expect(statuses.map((s) => s.position)).toEqual([1, 2, 3]);
      expect((await other.stats()).waiting).toBe(3);
      const c = await other.requestStatus('req-c');
      expect(c.state).toBe('queued');
      if (c.state === 'queued') {
        expect(c.position).toBe(3);
        expect(c.etaMs).toBeGreaterThan(0);
        expect(c.etaMs).toBeLessThanOrEqual(300);
      }
      await waits[0];
      expect(await other.requestStatus('req-a')).toEqual({ state: 'unknown' });
      await statuses[2]!.refresh();
      expect(statuses[2]!.position).toBeLessThanOrEqual(2);
      await Promise.all(waits);
      expect((await other.stats()).waiting).toBe(0);
      expect(statuses.every((s) => s.state === 'granted' && s.position === 0)).toBe(true);
    });
  });

  describe('configuration and scripts', () => {
    it('another configuration under the same name is refused with RedisConfigMismatchError', async () => {
      const a = await fresh({ rate: 5, burst: 2 });
      const b = new RedisRateLimiter({ redis, name: `store-${counter}`, rate: 6, burst: 2 });
      const error = await rejection(b.tryAcquire());
      expect(error).toBeInstanceOf(RedisConfigMismatchError);
      expect((error as RedisConfigMismatchError).code).toBe('E_REDIS_CONFIG_MISMATCH');
      expect((error as RedisConfigMismatchError).stored).toContain('5');
      expect(await a.tryAcquire()).toBe(true);
      await a.reset();
      expect(typeof (await b.tryAcquire())).toBe('boolean'); // b's configuration is stored now
      expect(await rejection(a.tryAcquire())).toBeInstanceOf(RedisConfigMismatchError);
    });

    it('runs by EVALSHA and reloads the script after SCRIPT FLUSH (NOSCRIPT), with no double decision', async () => {
      const limiter = await fresh({ rate: 1, burst: 3 });
      await limiter.tryAcquire();
      const before = await commandCalls();
      await redis.script('FLUSH');
      expect(await limiter.tryAcquire()).toBe(true);
      expect(await limiter.tryAcquire()).toBe(true);
      expect(await limiter.tryAcquire()).toBe(false);
      const after = await commandCalls();
      expect(after.eval - before.eval).toBe(1); // one reload
      expect(after.evalsha - before.evalsha).toBe(1 + 2); // the refused NOSCRIPT attempt, then two that ran
      expect(after.evalsha + after.eval - before.evalsha - before.eval).toBe(4); // 3 decisions + 1 refused attempt
    });

    it('validates options with InvalidOptionError naming the field', () => {
      const cases: [Record<string, unknown>, string][] = [
        [{ redis, name: 'a{b}', rate: 1 }, 'name'],
        [{ redis: {}, name: 'a', rate: 1 }, 'redis'],
        [{ redis, name: 'a', rate: 0 }, 'rate'],
        [{ redis, name: 'a', rate: 1, concurrency: 2 }, 'concurrency'],
        [{ redis, name: 'a', rate: 1e-6, burst: 1e9 }, 'burst'],
        [{ redis, name: 'a', rate: 1, fallback: { share: 2 } }, 'fallback.share'],
        [{ redis, name: 'a', rate: 1, commandTimeoutMs: -1 }, 'commandTimeoutMs'],
      ];
      for (const [options, field] of cases) {
        let error: unknown;
        try {
          new RedisRateLimiter(options as unknown as RedisRateLimiterOptions);
        } catch (e) {
          error = e;
        }
        expect(error, field).toBeInstanceOf(InvalidOptionError);
        expect((error as InvalidOptionError).field).toBe(field);
      }
    });
  });

  describe('Redis Cluster', () => {
    it('every key a script touches is declared and shares the hash tag: runs on a cluster node', async () => {
      const node = await RedisServer.start({ cluster: true });
      const cluster = new Cluster([{ host: '127.0.0.1', port: node.port }], { redisOptions: { maxRetriesPerRequest: 1 }, enableOfflineQueue: true });
      try {
        const limiter = new RedisRateLimiter({ redis: cluster, name: 'cluster', rate: 50, burst: 2 });
        expect(await cluster.call('CLUSTER', 'KEYSLOT', limiter.key)).toBe(await cluster.call('CLUSTER', 'KEYSLOT', `${limiter.key}:q`));
        await limiter.stats();
        await cluster.hset(limiter.key, 't1', 0, 'd1', 0);
        expect(await limiter.tryAcquire()).toBe(true);
        const statuses: RedisQueueStatus[] = [];
        const grants = await Promise.all([limiter.acquire(), limiter.acquire(1, { onQueued: (s) => statuses.push(s) }), limiter.acquire()]);
        expect(grants[2]!.slotUs! - grants[1]!.slotUs!).toBe(20_000);
        await limiter.backoff({ retryAfterMs: 50 });
        expect((await limiter.stats()).throttles).toBe(1);
      } finally {
        cluster.disconnect();
        await node.stop();
      }
    });
  });

  describe('failures', () => {
    it('Redis down: typed RedisUnavailableError (fail closed); back up: grants again', async () => {
      const limiter = await fresh({ rate: 100, burst: 5 });
      expect(await limiter.tryAcquire()).toBe(true);
      await server.kill();
      // One call at a time, each awaited as it is made (a rejection must never go unhandled).
      const calls = { tryAcquire: () => limiter.tryAcquire(), acquire: () => limiter.acquire(), backoff: () => limiter.backoff({ retryAfterMs: 10 }), stats: () => limiter.stats() };
      for (const [name, call] of Object.entries(calls)) {
        const error = await rejection(call());
        expect(error, `${name}: ${String(error)}`).toBeInstanceOf(RedisUnavailableError);
        expect((error as RedisUnavailableError).code).toBe('E_REDIS_UNAVAILABLE');
      }
      await server.restart();
      await until(() => redis.status === 'ready');
      // The state was lost with the server: the new one starts drained, never with a fresh burst.
      const granted = await limiter.tryAcquire();
      const diagnosis = granted
        ? JSON.stringify({ state: await redis.hgetall(limiter.key), uptime: /uptime_in_seconds:(\d+)/.exec(String(await redis.info('server')))?.[1], time: await redis.time() })
        : '';
      expect(granted, `a new state starts drained ${diagnosis}`).toBe(false);
      const grant = await limiter.acquire(1, { timeoutMs: 5000 });
      expect(grant.source).toBe('redis');
    });

    it('a waiter whose state is lost (key deleted) places again instead of trusting its old slot', async () => {
      const limiter = await fresh({ rate: 5, burst: 1 });
      await limiter.acquire();
      const statuses: RedisQueueStatus[] = [];
      const waiting = limiter.acquire(1, { onQueued: (s) => statuses.push(s) });
      await until(() => statuses.length === 1);
      await redis.del(limiter.key);
      const grant = await waiting;
      expect(grant.slotUs).not.toBe(statuses[0]!.slotUs);
    });

    it('a server that stops answering fails the call after commandTimeoutMs', async () => {
      const client = await server.client();
      const limiter = await fresh({ rate: 100, burst: 5, commandTimeoutMs: 150 }, client);
      server.pause();
      try {
        const t0 = performance.now();
        expect(await rejection(limiter.tryAcquire())).toBeInstanceOf(RedisUnavailableError);
        expect(performance.now() - t0).toBeGreaterThanOrEqual(149);
      } finally {
        server.resume();
        client.disconnect();
      }
    });

    it('fallback: a local limiter at share × rate while Redis fails, then Redis again after the cool-down', async () => {
      const limiter = await fresh({ rate: 100, burst: 10, fallback: { share: 0.5, retryAfterMs: 200 } });
      await server.kill();
      const local: boolean[] = [];
      for (let i = 0; i < 7; i++) local.push(await limiter.tryAcquire());
      expect(local.filter(Boolean).length).toBe(5); // fallback burst = round(10 × 0.5)
      const grant = await limiter.acquire();
      expect(grant.source).toBe('fallback');
      expect(grant.slotUs).toBeNull();
      expect((await limiter.stats()).source).toBe('fallback');
      await server.restart();
      await until(() => redis.status === 'ready');
      await new Promise((resolve) => setTimeout(resolve, 220));
      await until(async () => (await limiter.acquire(1, { timeoutMs: 5000 })).source === 'redis');
      expect((await limiter.stats()).source).toBe('redis');
    });
  });
});

async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function commandCalls(): Promise<{ eval: number; evalsha: number }> {
  const info = String(await redis.info('commandstats'));
  const calls = (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
  return { eval: calls('eval'), evalsha: calls('evalsha') };
}
