/**
 * The Redis store decides as the shared-memory RateLimiter does. Redis's
 * clock can not be injected, so both run the same sequence side by side in
 * real time at slow rates (intervals of 0.5–1 s, every boundary at least
 * 100 ms from any delay the sequence can produce); a sequence takes a few ms,
 * so decisions must be identical and delays equal within 20 ms plus the time
 * the sequence took (the two sides decide at slightly different instants; on
 * a loaded machine a round trip can take tens of ms).
 *
 * Cancels follow the same rule in both: capacity comes back only while
 * nothing was placed after the cancelled reservation (one limit: its TAT is
 * still the one the reservation wrote), so after the latest reservation is
 * cancelled, the one before it is the latest again.
 */
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RateLimiter, type Reservation } from '../../src/index.js';
import { scriptFor } from '../../src/redis/script.js';
import { RedisRateLimiter, type RedisReservation } from '../../src/redis/index.js';
import { makeFull, redisAvailable, RedisServer } from './support/redis-server.js';

type Step =
  | { op: 'try'; cost: number }
  | { op: 'reserve'; cost: number; timeoutMs?: number }
  | { op: 'cancel'; which: 'latest' | 'earlier' }
  | { op: 'backoff'; ms: number };

interface Config {
  rate: number;
  burst: number;
  maxQueue?: number;
}

type Outcome = string;

let server: RedisServer;
let redis: Redis;
let counter = 0;

/** Runs `steps` on both limiters, interleaved; returns both outcome lists. */
interface Both {
  local: Outcome[];
  remote: Outcome[];
  /** Wall time the sequence took, ms: the most the two sides' instants can differ. */
  tookMs: number;
}

async function runBoth(config: Config, steps: Step[]): Promise<Both> {
  const t0 = performance.now();
  const local = new RateLimiter(config);
  const remote = new RedisRateLimiter({ redis, name: `sem-${++counter}`, ...config });
  await makeFull(redis, remote);
  const out: Both = { local: [], remote: [], tookMs: 0 };
  const localRes: { r: Reservation; cancelled: boolean }[] = [];
  const remoteRes: { r: RedisReservation; cancelled: boolean }[] = [];
  for (const step of steps) {
    switch (step.op) {
      case 'try':
        out.local.push(`try ${local.tryAcquire(step.cost)}`);
        out.remote.push(`try ${await remote.tryAcquire(step.cost)}`);
        break;
      case 'reserve': {
        const options = step.timeoutMs === undefined ? {} : { timeoutMs: step.timeoutMs };
        const l = local.reserve(step.cost, options);
        const r = await remote.reserve(step.cost, options);
        out.local.push(l.ok ? `reserve ok ~${l.delayMs}` : 'reserve refused');
        out.remote.push(r.ok ? `reserve ok ~${r.delayMs}` : 'reserve refused');
        if (l.ok) localRes.push({ r: l, cancelled: false });
        if (r.ok) remoteRes.push({ r, cancelled: false });
        break;
      }
      case 'cancel': {
        // Targets: the latest live reservation, or the earliest one.
        const live = localRes.map((x, i) => (x.cancelled ? -1 : i)).filter((i) => i >= 0);
        if (live.length === 0 || localRes.length !== remoteRes.length) break;
        const target = step.which === 'latest' ? live[live.length - 1]! : live[0]!;
        localRes[target]!.cancelled = true;
        remoteRes[target]!.cancelled = true;
        localRes[target]!.r.cancel();
        await remoteRes[target]!.r.cancel();
        out.local.push(`cancel ${target}`);
        out.remote.push(`cancel ${target}`);
        break;
      }
      case 'backoff':
        local.backoff({ retryAfterMs: step.ms });
        await remote.backoff({ retryAfterMs: step.ms });
        out.local.push(`backoff ${step.ms}`);
        out.remote.push(`backoff ${step.ms}`);
        break;
    }
  }
  // Where the two schedules stand: the delay a new reservation would get.
  const l = local.reserve(1);
  const r = await remote.reserve(1);
  out.local.push(l.ok ? `final ~${l.delayMs}` : 'final refused');
  out.remote.push(r.ok ? `final ~${r.delayMs}` : 'final refused');
  out.tookMs = performance.now() - t0;
  return out;
}

/** Same decisions; delays (the number after ~) within 20 ms + the sequence's duration. */
function expectSame(result: Both): void {
  const shape = (o: Outcome) => o.replace(/~[\d.e+-]+/, '~');
  expect(result.remote.map(shape)).toEqual(result.local.map(shape));
  result.local.forEach((o, i) => {
    const m = /~([\d.e+-]+)/.exec(o);
    if (!m) return;
    const remoteDelay = Number(/~([\d.e+-]+)/.exec(result.remote[i]!)![1]);
    expect(Math.abs(remoteDelay - Number(m[1])), `${o} vs ${result.remote[i]}`).toBeLessThan(20 + result.tookMs);
  });
}

describe.skipIf(!redisAvailable)('Redis store decides as the shared-memory limiter', () => {
  beforeAll(async () => {
    server = await RedisServer.start();
    redis = await server.client();
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  const table: { name: string; config: Config; steps: Step[] }[] = [
    { name: 'burst, then refusals', config: { rate: 1, burst: 3 }, steps: [1, 1, 1, 1].map((cost) => ({ op: 'try', cost })) },
    { name: 'weighted costs', config: { rate: 2, burst: 10 }, steps: [{ op: 'try', cost: 7 }, { op: 'try', cost: 4 }, { op: 'try', cost: 3 }, { op: 'reserve', cost: 5 }] },
    {
      name: 'reservations queue one interval apart; a timeout refuses without reserving',
      config: { rate: 2, burst: 1 },
      steps: [{ op: 'reserve', cost: 1 }, { op: 'reserve', cost: 1 }, { op: 'reserve', cost: 1, timeoutMs: 750 }, { op: 'reserve', cost: 1, timeoutMs: 1250 }],
    },
    {
      name: 'maxQueue bounds the cost units behind the present',
      config: { rate: 1, burst: 2, maxQueue: 1 },
      steps: [{ op: 'reserve', cost: 1 }, { op: 'reserve', cost: 1 }, { op: 'reserve', cost: 1 }, { op: 'reserve', cost: 1 }, { op: 'try', cost: 1 }],
    },
    {
      name: 'cancel of the latest returns capacity; of an earlier one leaves its slot empty',
      config: { rate: 1, burst: 1 },
      steps: [{ op: 'reserve', cost: 1 }, { op: 'reserve', cost: 1 }, { op: 'reserve', cost: 1 }, { op: 'cancel', which: 'earlier' }, { op: 'reserve', cost: 1 }, { op: 'cancel', which: 'latest' }, { op: 'reserve', cost: 1 }],
    },
    {
      name: 'cancels in reverse order: each one is the latest again',
      config: { rate: 1, burst: 1 },
      steps: [{ op: 'reserve', cost: 1 }, { op: 'reserve', cost: 1 }, { op: 'reserve', cost: 1 }, { op: 'cancel', which: 'latest' }, { op: 'cancel', which: 'latest' }, { op: 'reserve', cost: 1 }],
    },
    {
      name: 'backoff pauses, keeps the queue in order, and resumes without a burst',
      config: { rate: 2, burst: 3 },
      steps: [{ op: 'try', cost: 1 }, { op: 'reserve', cost: 1 }, { op: 'backoff', ms: 1300 }, { op: 'try', cost: 1 }, { op: 'reserve', cost: 1 }, { op: 'reserve', cost: 1 }, { op: 'backoff', ms: 200 }, { op: 'reserve', cost: 2 }],
    },
  ];

  for (const { name, config, steps } of table) {
    it(name, async () => {
      expectSame(await runBoth(config, steps));
    });
  }

  it('several limits: the same joint decisions (all or nothing, FIFO joint slot)', async () => {
    const limits = { requests: { rate: 1, burst: 2 }, tokens: { rate: 50, burst: 100 } };
    const t0 = performance.now();
    const local = new RateLimiter({ limits });
    const remote = new RedisRateLimiter({ redis, name: `sem-${++counter}`, limits });
    await makeFull(redis, remote);
    const costs: Record<string, number>[] = [{ requests: 1, tokens: 100 }, { requests: 1, tokens: 10 }, { tokens: 50 }, { requests: 1, tokens: 1 }];
    for (const cost of costs) expect(await remote.tryAcquire(cost), JSON.stringify(cost)).toBe(local.tryAcquire(cost));
    for (const cost of costs) {
      const l = local.reserve(cost, { timeoutMs: 2600 });
      const r = await remote.reserve(cost, { timeoutMs: 2600 });
      expect(r.ok).toBe(l.ok);
      if (l.ok) expect(Math.abs(r.delayMs - l.delayMs)).toBeLessThan(20 + performance.now() - t0);
    }
  });

  it('random sequences (fast-check): identical decisions, delays within the sequence\'s duration', async () => {
    const step: fc.Arbitrary<Step> = fc.oneof(
      fc.record({ op: fc.constant('try' as const), cost: fc.integer({ min: 1, max: 2 }) }),
      fc.record({ op: fc.constant('reserve' as const), cost: fc.integer({ min: 1, max: 2 }), timeoutMs: fc.option(fc.constantFrom(250, 1250, 2750, 4250), { nil: undefined }) }),
      fc.record({ op: fc.constant('cancel' as const), which: fc.constantFrom('latest' as const, 'earlier' as const) }),
      fc.record({ op: fc.constant('backoff' as const), ms: fc.constantFrom(600, 1600) }),
    );
    const config = fc.record({ rate: fc.constantFrom(1, 2), burst: fc.integer({ min: 2, max: 3 }), maxQueue: fc.option(fc.integer({ min: 0, max: 4 }), { nil: undefined }) });
    await fc.assert(fc.asyncProperty(config, fc.array(step, { minLength: 1, maxLength: 12 }), async (c, steps) => {
      expectSame(await runBoth(c, steps));
    }), { numRuns: 40 });
  });

  it('the script touches only its declared keys (KEYS[1], KEYS[2]: one hash tag, Cluster-safe)', () => {
    const SCRIPT = scriptFor('{"v":1}', [{ perUs: 1000, toleranceUs: 2000, maxQueue: -1 }, { perUs: 0.5, toleranceUs: 7, maxQueue: 3 }]).lua;
    const calls = [...SCRIPT.matchAll(/redis\.call\('([A-Z]+)'(?:,\s*([^,)]+))?/g)].map((m) => [m[1]!, m[2]?.trim()]);
    expect(calls.length).toBeGreaterThan(10);
    for (const [command, firstArg] of calls) {
      if (command === 'TIME' || command === 'INFO') continue;
      expect(['key', 'qkey'], `${command} ${firstArg}`).toContain(firstArg);
    }
    expect(SCRIPT).toMatch(/local key, qkey = KEYS\[1\], KEYS\[2\]/);
    expect(SCRIPT).not.toMatch(/KEYS\[[3-9]\]/);
  });
});
