/**
 * RateLimiter's public verbs, on injected clocks only: every expectation is an
 * exact schedule (ns) computed from the GCRA rules, never a measured time.
 *
 * T = ceil(1e9 / rate) ns is the emission interval; τ = burst·T the tolerance.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  CostTooLargeError,
  InvalidHandleError,
  InvalidOptionError,
  QueueFullError,
  RateLimiter,
  WaitTimeoutError,
  type Grant,
  type LimiterHandle,
  type LimiterStats,
} from '../../src/index.js';
import { LAYOUT_VERSION, LimitWord, Word, limitBase } from '../../src/layout.js';
import { fakeTimerClock, ManualClock, MS, S, track } from '../support/fake-clock.js';

/** Returns what `fn` throws; fails the test if it returns. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw, but the call returned');
}

function expectInvalidOption(error: unknown, field: string): void {
  expect(error).toBeInstanceOf(InvalidOptionError);
  expect((error as InvalidOptionError).field).toBe(field);
  expect((error as InvalidOptionError).code).toBe('E_INVALID_OPTION');
}

function limiterAt(clock: ManualClock, rate: number | `${number}/${string}`, burst = 1, extra: { maxQueue?: number; maxWaitMs?: number } = {}): RateLimiter {
  return new RateLimiter({ rate, burst, clock: clock.now, ...extra });
}

/** Lets settled promises run their handlers without moving fake time. */
const flush = () => vi.advanceTimersByTimeAsync(0);

// ---------------------------------------------------------------------------
// 1. x/time/rate-style decision tables
// ---------------------------------------------------------------------------

interface Step {
  /** Absolute clock time, ns. */
  at: bigint;
  cost?: number;
  ok: boolean;
}
interface TableCase {
  name: string;
  rate: number;
  burst: number;
  steps: Step[];
}

const TRY_ACQUIRE_TABLE: TableCase[] = [
  {
    name: 'rate 1/s burst 1: one grant per second, not one ns early',
    rate: 1,
    burst: 1,
    steps: [
      { at: 0n, ok: true },
      { at: 0n, ok: false },
      { at: 999n * MS, ok: false },
      { at: S - 1n, ok: false },
      { at: S, ok: true },
      { at: S, ok: false },
      { at: 2n * S, ok: true },
    ],
  },
  {
    name: 'rate 1/s burst 1: idle time does not accumulate past burst',
    rate: 1,
    burst: 1,
    steps: [
      { at: 0n, ok: true },
      { at: 100n * S, ok: true },
      { at: 100n * S, ok: false },
      { at: 101n * S - 1n, ok: false },
      { at: 101n * S, ok: true },
    ],
  },
  {
    name: 'rate 10/s burst 3: a burst of 3, then one per 100 ms',
    rate: 10,
    burst: 3,
    steps: [
      { at: 0n, ok: true },
      { at: 0n, ok: true },
      { at: 0n, ok: true },
      { at: 0n, ok: false },
      { at: 100n * MS - 1n, ok: false },
      { at: 100n * MS, ok: true },
      { at: 100n * MS, ok: false },
      // 200 ms later two more intervals have accrued: exactly 2 fit.
      { at: 300n * MS, ok: true },
      { at: 300n * MS, ok: true },
      { at: 300n * MS, ok: false },
      // Long idle: the bucket refills to burst (3), never beyond.
      { at: 10n * S, ok: true },
      { at: 10n * S, ok: true },
      { at: 10n * S, ok: true },
      { at: 10n * S, ok: false },
    ],
  },
  {
    name: 'fractional rate 0.1/s burst 1: exactly one per 10 s',
    rate: 0.1,
    burst: 1,
    steps: [
      { at: 0n, ok: true },
      { at: 9_999_999_999n, ok: false },
      { at: 10n * S, ok: true },
      { at: 20n * S - 1n, ok: false },
      { at: 20n * S, ok: true },
    ],
  },
  {
    name: 'rate 3/s: T = ceil(1e9/3) = 333333334 ns (rounded up: never faster than asked)',
    rate: 3,
    burst: 1,
    steps: [
      { at: 0n, ok: true },
      { at: 333_333_333n, ok: false },
      { at: 333_333_334n, ok: true },
      { at: 666_666_667n, ok: false },
      { at: 666_666_668n, ok: true },
      // Three intervals are 1_000_000_002 ns: the 4th grant is 2 ns after 1 s.
      { at: 1_000_000_001n, ok: false },
      { at: 1_000_000_002n, ok: true },
    ],
  },
  {
    name: 'rate 1e9/s (T = 1 ns) burst 1',
    rate: 1e9,
    burst: 1,
    steps: [
      { at: 0n, ok: true },
      { at: 0n, ok: false },
      { at: 1n, ok: true },
      { at: 1n, ok: false },
      { at: 5n, ok: true },
    ],
  },
  {
    name: 'rate 1/s burst 5 with weighted costs: a refused cost takes nothing',
    rate: 1,
    burst: 5,
    steps: [
      { at: 0n, cost: 5, ok: true },
      { at: 0n, cost: 1, ok: false },
      { at: 2n * S, cost: 3, ok: false },
      { at: 2n * S, cost: 2, ok: true },
      { at: 2n * S, cost: 1, ok: false },
      { at: 7n * S - 1n, cost: 5, ok: false },
      { at: 7n * S, cost: 5, ok: true },
    ],
  },
];

describe('tryAcquire decision tables (x/time/rate rate_test.go style)', () => {
  it.each(TRY_ACQUIRE_TABLE)('$name', ({ rate, burst, steps }) => {
    const clock = new ManualClock();
    const limiter = limiterAt(clock, rate, burst);
    const got = steps.map((step) => {
      clock.set(step.at);
      return limiter.tryAcquire(step.cost ?? 1);
    });
    expect(got).toEqual(steps.map((s) => s.ok));
  });

  it('the emission interval is ceil(1e9/rate) ns: rate 3/s spaces burst-1 grants by 333333334 ns', () => {
    const clock = new ManualClock();
    const limiter = limiterAt(clock, 3, 1);
    expect(limiter.tryAcquire()).toBe(true);
    // reserve() exposes the interval as a delay.
    const r = limiter.reserve();
    expect(r.delayMs).toBe(333_333_334 / 1e6);
  });
});

// ---------------------------------------------------------------------------
// 2. redis-cell style GCRA sequence with weighted costs
// ---------------------------------------------------------------------------

describe('weighted GCRA sequence (redis-cell CL.THROTTLE spirit)', () => {
  // 30 per 60 s, burst 15 => T = 2 s, τ = 30 s. Each row: at (s), cost,
  // expected decision, and the cost units available afterwards.
  const rows: Array<[atS: number, cost: number, ok: boolean, availableAfter: number]> = [
    [0, 15, true, 0],
    [1, 1, false, 0], // half a token
    [2, 1, true, 0],
    [8, 3, true, 0], // 3 tokens accrued over 6 s
    [8, 1, false, 0],
    [13, 2, true, 0], // 2.5 tokens: 2 fit, 0.5 stays
    [14, 1, true, 0], // the 0.5 + 0.5 accrued
    [44, 15, true, 0], // 30 s: exactly a full bucket
    [44, 1, false, 0],
    [1000, 10, true, 5], // idle for long: capped at 15
    [1000, 6, false, 5],
    [1000, 5, true, 0],
    [1000, 1, false, 0],
  ];

  it('grants exactly the cost that accrued, in whole units, capped at burst', () => {
    const clock = new ManualClock();
    const limiter = limiterAt(clock, '30/min' as `${number}/${string}`, 15);
    expect(limiter.stats().available).toBe(15);
    for (const [atS, cost, ok, availableAfter] of rows) {
      clock.set(BigInt(atS) * S);
      expect({ atS, cost, ok: limiter.tryAcquire(cost) }).toEqual({ atS, cost, ok });
      expect({ atS, available: limiter.stats().available }).toEqual({ atS, available: availableAfter });
    }
    expect(limiter.stats().grantedCost).toBe(15 + 1 + 3 + 2 + 1 + 15 + 10 + 5);
  });

  it.each([
    // After draining a burst-4 limiter at rate 10/s (T = 100 ms): how many
    // cost-1 grants fit after each idle span (fractional tokens carry over).
    { spansMs: [50, 50, 250, 100, 5000], fits: [0, 1, 2, 1, 4] },
    { spansMs: [99, 1, 199, 1], fits: [0, 1, 1, 1] },
  ])('cost-1 grants that fit after idle spans $spansMs: $fits', ({ spansMs, fits }) => {
    const clock = new ManualClock();
    const limiter = limiterAt(clock, 10, 4);
    expect(limiter.tryAcquire(4)).toBe(true);
    const got: number[] = [];
    for (const ms of spansMs) {
      clock.advance(BigInt(ms) * MS);
      let n = 0;
      while (limiter.tryAcquire()) n++;
      got.push(n);
    }
    expect(got).toEqual(fits);
  });
});

// ---------------------------------------------------------------------------
// 3. cost validation
// ---------------------------------------------------------------------------

describe('cost validation: bad costs are refused before touching shared state', () => {
  const BAD_COSTS: Array<[string, unknown]> = [
    ['0', 0],
    ['-1', -1],
    ['1.5', 1.5],
    ['NaN', NaN],
    ["'1' (a string)", '1'],
    ['Infinity', Infinity],
    ['null', null],
  ];

  /** burst 2, one unit already granted: a distinctive state to compare against. */
  function setup() {
    const clock = new ManualClock();
    const limiter = limiterAt(clock, 10, 2);
    expect(limiter.tryAcquire()).toBe(true);
    return { clock, limiter, before: limiter.stats() };
  }

  function expectUnchanged(limiter: RateLimiter, before: LimiterStats): void {
    expect(limiter.stats()).toEqual(before);
    // The one remaining unit is still there, and only it.
    expect(limiter.tryAcquire()).toBe(true);
    expect(limiter.tryAcquire()).toBe(false);
  }

  it.each(BAD_COSTS)('cost %s -> InvalidOptionError(cost) from tryAcquire, acquireSync, reserve (thrown) and acquire (rejected)', async (label, cost) => {
    const { limiter, before } = setup();
    const c = cost as number;
    for (const call of [() => limiter.tryAcquire(c), () => limiter.acquireSync(c), () => limiter.reserve(c)]) {
      const error = thrown(call);
      expectInvalidOption(error, 'cost');
      expect((error as Error).message).toContain('cost');
      expect((error as InvalidOptionError).value).toBe(cost);
    }
    let p: Promise<Grant> | undefined;
    expect(() => {
      p = limiter.acquire(c);
    }).not.toThrow();
    const error = await p!.then(() => undefined, (e: unknown) => e);
    expectInvalidOption(error, 'cost');
    expectUnchanged(limiter, before);
  });

  it.each([3, 4, 1000])('cost %d > burst 2 -> CostTooLargeError (thrown by sync verbs, rejected by acquire)', async (cost) => {
    const { limiter, before } = setup();
    for (const call of [() => limiter.tryAcquire(cost), () => limiter.acquireSync(cost), () => limiter.reserve(cost)]) {
      const error = thrown(call);
      expect(error).toBeInstanceOf(CostTooLargeError);
      expect(error).toMatchObject({ code: 'E_COST_TOO_LARGE', cost, burst: 2 });
    }
    let p: Promise<Grant> | undefined;
    expect(() => {
      p = limiter.acquire(cost);
    }).not.toThrow();
    await expect(p).rejects.toBeInstanceOf(CostTooLargeError);
    expectUnchanged(limiter, before);
  });

  it('cost equal to burst is valid', () => {
    const clock = new ManualClock();
    const limiter = limiterAt(clock, 10, 2);
    expect(limiter.tryAcquire(2)).toBe(true);
  });
});

// ---------------------------------------------------------------------------
// 4. reserve()
// ---------------------------------------------------------------------------

describe('reserve(): places on the schedule, live delays, cancel semantics', () => {
  function setup(extra: { maxQueue?: number; maxWaitMs?: number } = {}) {
    const clock = new ManualClock();
    const limiter = limiterAt(clock, 10, 1, extra); // T = 100 ms
    return { clock, limiter };
  }

  it('successive reservations are spaced by T: 0, 100, 200 ms', () => {
    const { limiter } = setup();
    const rs = [limiter.reserve(), limiter.reserve(), limiter.reserve()];
    expect(rs.map((r) => r.ok)).toEqual([true, true, true]);
    expect(rs.map((r) => r.delayMs)).toEqual([0, 100, 200]);
    expect(rs.map((r) => r.cost)).toEqual([1, 1, 1]);
    expect(limiter.stats().grantedCost).toBe(3);
  });

  it('reservations with costs take cost·T each (burst 3: the first 3 units are free)', () => {
    const clock = new ManualClock();
    const limiter = limiterAt(clock, 10, 3);
    expect([limiter.reserve(2), limiter.reserve(1), limiter.reserve(3), limiter.reserve(1)].map((r) => r.delayMs)).toEqual([0, 0, 300, 400]);
  });

  it('delayMs is live: it shrinks as the clock advances and stays at 0 once due', () => {
    const { clock, limiter } = setup();
    const rs = [limiter.reserve(), limiter.reserve(), limiter.reserve()];
    clock.advance(30n * MS);
    expect(rs.map((r) => r.delayMs)).toEqual([0, 70, 170]);
    clock.set(200n * MS - 1n);
    expect(rs[2]!.delayMs).toBe(1e-6);
    clock.set(250n * MS);
    expect(rs.map((r) => r.delayMs)).toEqual([0, 0, 0]);
  });

  it('cancel() of the latest reservation gives its slot back to the next reservation', () => {
    const { limiter } = setup();
    limiter.reserve();
    limiter.reserve();
    const r3 = limiter.reserve();
    expect(limiter.stats().grantedCost).toBe(3);
    r3.cancel();
    expect(limiter.stats()).toMatchObject({ grantedCost: 2, cancelled: 1 });
    expect(limiter.reserve().delayMs).toBe(200);
  });

  it('cancelling the latest twice gives back only once (the second cancel must not undo a later reservation)', () => {
    const { limiter } = setup();
    limiter.reserve();
    limiter.reserve();
    const r3 = limiter.reserve();
    r3.cancel();
    const r4 = limiter.reserve(); // takes r3's slot: same schedule position
    expect(r4.delayMs).toBe(200);
    r3.cancel(); // no-op
    expect(limiter.reserve().delayMs).toBe(300);
    expect(limiter.stats()).toMatchObject({ grantedCost: 4, cancelled: 1 });
  });

  it('cancel() of a non-latest reservation leaves a hole: later ones keep their delays, a new one is not moved earlier', () => {
    const { clock, limiter } = setup();
    limiter.reserve();
    const r2 = limiter.reserve();
    const r3 = limiter.reserve();
    r2.cancel();
    expect(r3.delayMs).toBe(200);
    const r4 = limiter.reserve();
    expect(r4.delayMs).toBe(300);
    // Nobody can use the hole either.
    clock.set(100n * MS);
    expect(limiter.tryAcquire()).toBe(false);
    expect(r3.delayMs).toBe(100);
    expect(limiter.stats()).toMatchObject({ grantedCost: 3 + 1, cancelled: 1 });
  });

  it('cancel() after the reservation is due is a no-op', () => {
    const { clock, limiter } = setup();
    limiter.reserve();
    const r2 = limiter.reserve();
    clock.set(100n * MS); // r2 due now
    expect(r2.delayMs).toBe(0);
    r2.cancel();
    expect(limiter.stats()).toMatchObject({ grantedCost: 2, cancelled: 0 });
    // r2 still holds 100 ms: the next slot is 200 ms.
    expect(limiter.tryAcquire()).toBe(false);
    expect(limiter.reserve().delayMs).toBe(100);
  });

  it('cancel() of a granted-at-once reservation (delayMs 0) is a no-op', () => {
    const { limiter } = setup();
    const r1 = limiter.reserve();
    r1.cancel();
    expect(limiter.stats().grantedCost).toBe(1);
    expect(limiter.reserve().delayMs).toBe(100);
  });

  it('timeoutMs: a reservation that would wait longer is refused (ok false, delayMs Infinity) and holds nothing', () => {
    const { limiter } = setup();
    limiter.reserve();
    const refused = limiter.reserve(1, { timeoutMs: 50 });
    expect(refused).toMatchObject({ ok: false, cost: 1, delayMs: Infinity });
    refused.cancel(); // harmless
    expect(limiter.stats()).toMatchObject({ grantedCost: 1, rejected: 1, cancelled: 0 });
    expect(limiter.reserve().delayMs).toBe(100);
  });

  it('timeoutMs equal to the delay is accepted; 1 ns less is refused', () => {
    const { limiter } = setup();
    limiter.reserve();
    expect(limiter.reserve(1, { timeoutMs: 100 - 1e-6 }).ok).toBe(false);
    const r = limiter.reserve(1, { timeoutMs: 100 });
    expect(r).toMatchObject({ ok: true, delayMs: 100 });
  });

  it('timeoutMs 0 reserves only what is free now', () => {
    const { limiter } = setup();
    expect(limiter.reserve(1, { timeoutMs: 0 })).toMatchObject({ ok: true, delayMs: 0 });
    expect(limiter.reserve(1, { timeoutMs: 0 }).ok).toBe(false);
  });

  it('the limiter maxWaitMs and maxQueue also refuse reservations without holding anything', () => {
    const a = setup({ maxWaitMs: 150 });
    expect([a.limiter.reserve(), a.limiter.reserve(), a.limiter.reserve()].map((r) => r.delayMs)).toEqual([0, 100, Infinity]);
    expect(a.limiter.stats().grantedCost).toBe(2);
    // A per-call timeoutMs can not extend maxWaitMs.
    expect(a.limiter.reserve(1, { timeoutMs: 10_000 }).ok).toBe(false);

    const b = setup({ maxQueue: 1 });
    expect([b.limiter.reserve(), b.limiter.reserve(), b.limiter.reserve()].map((r) => r.ok)).toEqual([true, true, false]);
    expect(b.limiter.stats()).toMatchObject({ grantedCost: 2, rejected: 1 });
  });

  it('invalid timeoutMs is an InvalidOptionError(timeoutMs)', () => {
    const { limiter } = setup();
    expectInvalidOption(thrown(() => limiter.reserve(1, { timeoutMs: -1 })), 'timeoutMs');
    expect(limiter.stats().grantedCost).toBe(0);
  });
});

// ---------------------------------------------------------------------------
// 5. acquire() with fake timers
// ---------------------------------------------------------------------------

describe('acquire(): waits on fake timers', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(0);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function make(rate: number, burst: number, extra: { maxQueue?: number; maxWaitMs?: number } = {}): RateLimiter {
    return new RateLimiter({ rate, burst, clock: fakeTimerClock, ...extra });
  }

  it('FIFO: concurrent acquires with mixed costs resolve in call order, each exactly when its slot is due', async () => {
    const limiter = make(10, 3); // T = 100 ms, τ = 300 ms
    const costs = [1, 1, 1, 3, 1, 2, 1, 1, 3, 1, 2];
    const order: string[] = [];
    const tracked = costs.map((cost, i) => track(limiter.acquire(cost), order, `#${i}(cost ${cost})`));
    // Expected due time (ms) of request i: (units up to and including i)·T − τ, at least 0.
    let units = 0;
    const dueMs = costs.map((cost) => {
      units += cost;
      return Math.max(0, units * 100 - 300);
    });
    expect(dueMs).toEqual([0, 0, 0, 300, 400, 600, 700, 800, 1100, 1200, 1400]);
    expect(limiter.stats()).toMatchObject({ waiting: 8, waitingCost: costs.slice(3).reduce((a, b) => a + b, 0) });

    await vi.advanceTimersByTimeAsync(1500);
    expect(order).toEqual(costs.map((cost, i) => `#${i}(cost ${cost})`));
    expect(tracked.map((t) => t.status)).toEqual(costs.map(() => 'fulfilled'));
    expect(tracked.map((t) => t.settledAt)).toEqual(dueMs);
    expect(tracked.map((t) => t.value!.waitedMs)).toEqual(dueMs);
    expect(tracked.map((t) => t.value!.cost)).toEqual(costs);
    // slotNs is the FIFO order: strictly increasing.
    const slots = tracked.map((t) => t.value!.slotNs);
    for (let i = 1; i < slots.length; i++) expect(slots[i]! > slots[i - 1]!).toBe(true);
    expect(limiter.stats()).toMatchObject({ waiting: 0, waitingCost: 0 });
  });

  it('a waiting cost-3 request is not starved by later cost-1 requests', async () => {
    const limiter = make(10, 3);
    expect(limiter.tryAcquire(3)).toBe(true);
    const order: string[] = [];
    const big = track(limiter.acquire(3), order, 'big'); // due at 300 ms
    await vi.advanceTimersByTimeAsync(100);
    // One unit has accrued, but it belongs to the waiting cost-3 request.
    expect(limiter.tryAcquire()).toBe(false);
    const small = [track(limiter.acquire(1), order, 's1'), track(limiter.acquire(1), order, 's2')];
    await vi.advanceTimersByTimeAsync(199);
    expect(big.status).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(big).toMatchObject({ status: 'fulfilled', settledAt: 300 });
    await vi.advanceTimersByTimeAsync(200);
    expect(order).toEqual(['big', 's1', 's2']);
    expect(small.map((s) => s.settledAt)).toEqual([400, 500]);
  });

  it('a grant that conforms now resolves without a timer (waitedMs 0) and is not counted as waiting', async () => {
    const limiter = make(10, 2);
    const g = track(limiter.acquire(2));
    expect(limiter.stats().waiting).toBe(0);
    await flush();
    expect(g).toMatchObject({ status: 'fulfilled', settledAt: 0, value: { cost: 2, waitedMs: 0 } });
  });

  it('timeoutMs: a wait that would exceed it rejects at once with WaitTimeoutError and reserves nothing', async () => {
    const limiter = make(10, 1);
    await limiter.acquire();
    const refused = track(limiter.acquire(1, { timeoutMs: 50 }));
    await flush();
    expect(Date.now()).toBe(0);
    expect(refused.status).toBe('rejected');
    expect(refused.error).toBeInstanceOf(WaitTimeoutError);
    expect(refused.error).toMatchObject({ code: 'E_WAIT_TIMEOUT', timeoutMs: 50, wouldWaitMs: 100 });
    expect(limiter.stats()).toMatchObject({ grantedCost: 1, rejected: 1, waiting: 0 });
    // Nothing was reserved: the next request gets the 100 ms slot.
    expect(limiter.reserve().delayMs).toBe(100);
  });

  it('timeoutMs equal to the wait is accepted', async () => {
    const limiter = make(10, 1);
    await limiter.acquire();
    const g = track(limiter.acquire(1, { timeoutMs: 100 }));
    await vi.advanceTimersByTimeAsync(100);
    expect(g).toMatchObject({ status: 'fulfilled', settledAt: 100 });
  });

  it('maxWaitMs: the limiter-wide limit refuses the same way; per-call timeoutMs can only shorten it', async () => {
    const limiter = make(10, 1, { maxWaitMs: 50 });
    await limiter.acquire();
    const byLimiter = track(limiter.acquire());
    const longerCall = track(limiter.acquire(1, { timeoutMs: 1000 }));
    const shorterCall = track(limiter.acquire(1, { timeoutMs: 20 }));
    await flush();
    expect(Date.now()).toBe(0);
    for (const t of [byLimiter, longerCall, shorterCall]) {
      expect(t.status).toBe('rejected');
      expect(t.error).toBeInstanceOf(WaitTimeoutError);
    }
    expect(byLimiter.error).toMatchObject({ timeoutMs: 50, wouldWaitMs: 100 });
    expect(longerCall.error).toMatchObject({ timeoutMs: 50, wouldWaitMs: 100 });
    expect(shorterCall.error).toMatchObject({ timeoutMs: 20, wouldWaitMs: 100 });
    expect(limiter.stats()).toMatchObject({ grantedCost: 1, rejected: 3, waiting: 0 });
    expect(limiter.reserve().delayMs).toBe(Infinity); // still over 50 ms: refused, as before
    vi.setSystemTime(60);
    expect(limiter.reserve().delayMs).toBe(40);
  });

  it('maxQueue 2 (rate 10 burst 1): first granted, next two wait, the fourth rejects QueueFullError at once', async () => {
    const limiter = make(10, 1, { maxQueue: 2 });
    const calls = [track(limiter.acquire()), track(limiter.acquire()), track(limiter.acquire()), track(limiter.acquire())];
    await flush();
    expect(calls.map((c) => c.status)).toEqual(['fulfilled', 'pending', 'pending', 'rejected']);
    expect(calls[3]!.error).toBeInstanceOf(QueueFullError);
    expect(calls[3]!.error).toMatchObject({ code: 'E_QUEUE_FULL', maxQueue: 2 });
    // grantedCost counts what was handed out: the two waiters count once delivered.
    expect(limiter.stats()).toMatchObject({ waiting: 2, rejected: 1, grantedCost: 1 });
    // Once one waiter is served the queue has room for one more.
    await vi.advanceTimersByTimeAsync(100);
    expect(calls[1]!.status).toBe('fulfilled');
    const fifth = track(limiter.acquire());
    const sixth = track(limiter.acquire());
    await flush();
    expect(sixth.error).toBeInstanceOf(QueueFullError);
    await vi.advanceTimersByTimeAsync(200);
    expect(fifth).toMatchObject({ status: 'fulfilled', settledAt: 300 });
  });

  it('maxQueue counts cost units: with maxQueue 2 a cost-3 wait is refused even on an empty queue', async () => {
    const limiter = make(10, 3, { maxQueue: 2 });
    expect(limiter.tryAcquire(3)).toBe(true);
    const big = track(limiter.acquire(3));
    const small = track(limiter.acquire(2));
    await flush();
    expect(big.error).toBeInstanceOf(QueueFullError);
    expect(small.status).toBe('pending');
  });

  it('maxQueue 0 means never wait: a burst is granted, anything beyond it is refused at once', async () => {
    const limiter = make(10, 2, { maxQueue: 0 });
    const a = track(limiter.acquire());
    const b = track(limiter.acquire());
    const c = track(limiter.acquire());
    await flush();
    expect([a.status, b.status, c.status]).toEqual(['fulfilled', 'fulfilled', 'rejected']);
    expect(c.error).toBeInstanceOf(QueueFullError);
    expect(thrown(() => limiter.acquireSync())).toBeInstanceOf(QueueFullError);
    expect(limiter.reserve().ok).toBe(false);
    await vi.advanceTimersByTimeAsync(100);
    const d = track(limiter.acquire());
    await flush();
    expect(d).toMatchObject({ status: 'fulfilled', settledAt: 100 });
  });

  it('an already-aborted signal rejects with signal.reason and takes nothing', async () => {
    const limiter = make(10, 1);
    const controller = new AbortController();
    const reason = new Error('caller gave up');
    controller.abort(reason);
    await expect(limiter.acquire(1, { signal: controller.signal })).rejects.toBe(reason);
    expect(limiter.stats()).toMatchObject({ grantedCost: 0, waiting: 0 });
    expect(limiter.tryAcquire()).toBe(true);
  });

  it('aborting the latest waiter rejects with the reason at once and gives its slot to the next request', async () => {
    const limiter = make(10, 1);
    await limiter.acquire();
    const controller = new AbortController();
    const waiter = track(limiter.acquire(1, { signal: controller.signal })); // due 100 ms
    await vi.advanceTimersByTimeAsync(30);
    expect(limiter.stats().waiting).toBe(1);
    const reason = { why: 'shutdown' };
    controller.abort(reason);
    await flush();
    expect(waiter).toMatchObject({ status: 'rejected', settledAt: 30 });
    expect(waiter.error).toBe(reason);
    expect(limiter.stats()).toMatchObject({ waiting: 0, waitingCost: 0, cancelled: 1, grantedCost: 1 });
    const next = track(limiter.acquire());
    await vi.advanceTimersByTimeAsync(69);
    expect(next.status).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(next).toMatchObject({ status: 'fulfilled', settledAt: 100 });
  });

  it('aborting with no reason rejects with the signal default reason (an AbortError)', async () => {
    const limiter = make(10, 1);
    limiter.tryAcquire();
    const controller = new AbortController();
    const waiter = track(limiter.acquire(1, { signal: controller.signal }));
    controller.abort();
    await flush();
    expect(waiter.status).toBe('rejected');
    expect(waiter.error).toBe(controller.signal.reason);
    expect((waiter.error as Error).name).toBe('AbortError');
  });

  it('aborting a middle waiter does not let a new request jump ahead of later waiters', async () => {
    const limiter = make(10, 1);
    await limiter.acquire();
    const controller = new AbortController();
    const order: string[] = [];
    const middle = track(limiter.acquire(1, { signal: controller.signal }), order, 'middle'); // 100 ms
    const later = track(limiter.acquire(), order, 'later'); // 200 ms
    await vi.advanceTimersByTimeAsync(30);
    controller.abort(new Error('x'));
    const fresh = track(limiter.acquire(), order, 'fresh');
    await vi.advanceTimersByTimeAsync(70);
    expect(limiter.tryAcquire()).toBe(false); // the hole is not usable either
    await vi.advanceTimersByTimeAsync(300);
    expect(order).toEqual(['middle', 'later', 'fresh']);
    expect(middle).toMatchObject({ status: 'rejected', settledAt: 30 });
    expect(later.settledAt).toBe(200);
    expect(fresh.settledAt).toBe(300);
    expect(limiter.stats()).toMatchObject({ waiting: 0, cancelled: 1 });
  });

  it('aborting after the grant resolved has no effect', async () => {
    const limiter = make(10, 1);
    limiter.tryAcquire();
    const controller = new AbortController();
    const g = track(limiter.acquire(1, { signal: controller.signal }));
    await vi.advanceTimersByTimeAsync(100);
    expect(g.status).toBe('fulfilled');
    controller.abort();
    await flush();
    expect(g.status).toBe('fulfilled');
    expect(limiter.stats()).toMatchObject({ cancelled: 0, grantedCost: 2 });
  });

  it('stats().waiting / waitingCost rise while requests wait and fall back to 0', async () => {
    const limiter = make(10, 3);
    limiter.tryAcquire(3);
    const a = track(limiter.acquire(2));
    const b = track(limiter.acquire(3));
    expect(limiter.stats()).toMatchObject({ waiting: 2, waitingCost: 5 });
    await vi.advanceTimersByTimeAsync(200);
    expect(a.status).toBe('fulfilled');
    expect(limiter.stats()).toMatchObject({ waiting: 1, waitingCost: 3 });
    await vi.advanceTimersByTimeAsync(300);
    expect(b.status).toBe('fulfilled');
    expect(limiter.stats()).toMatchObject({ waiting: 0, waitingCost: 0 });
  });

  it('a backoff reaches requests already waiting: they resolve after the pause, in order', async () => {
    const limiter = make(10, 1);
    limiter.tryAcquire();
    const order: string[] = [];
    const a = track(limiter.acquire(), order, 'a'); // 100 ms
    const b = track(limiter.acquire(), order, 'b'); // 200 ms
    await vi.advanceTimersByTimeAsync(50);
    limiter.backoff({ retryAfterMs: 500 }); // pause from 50 to 550 ms: slots move by 500 ms
    await vi.advanceTimersByTimeAsync(549);
    expect([a.status, b.status]).toEqual(['pending', 'pending']);
    // The drain puts deliveries 1 ns after the pause (state.ts): a is due at
    // 600 ms + 1 ns, which fake timers (whole ms) reach at 601.
    await vi.advanceTimersByTimeAsync(1);
    expect(a.status).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(a).toMatchObject({ status: 'fulfilled', settledAt: 601 });
    // b keeps 1/rate after a's actual delivery (delivery-time strictness).
    await vi.advanceTimersByTimeAsync(99);
    expect(b.status).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(b).toMatchObject({ status: 'fulfilled', settledAt: 701 });
    expect(order).toEqual(['a', 'b']);
  });

  it('a backoff that pushes a waiter past its timeoutMs rejects it with WaitTimeoutError when it wakes', async () => {
    const limiter = make(10, 1);
    limiter.tryAcquire();
    const w = track(limiter.acquire(1, { timeoutMs: 300 })); // due 100 ms
    await vi.advanceTimersByTimeAsync(50);
    limiter.backoff({ retryAfterMs: 500 });
    await vi.advanceTimersByTimeAsync(50);
    expect(w.status).toBe('rejected');
    expect(w.error).toBeInstanceOf(WaitTimeoutError);
    expect(w.error).toMatchObject({ timeoutMs: 300, wouldWaitMs: 600 });
    expect(limiter.stats()).toMatchObject({ waiting: 0, rejected: 1 });
  });

  it('invalid timeoutMs rejects (not throws) with InvalidOptionError(timeoutMs) and takes nothing', async () => {
    const limiter = make(10, 1);
    let p: Promise<Grant> | undefined;
    expect(() => {
      p = limiter.acquire(1, { timeoutMs: -1 });
    }).not.toThrow();
    const error = await p!.then(() => undefined, (e: unknown) => e);
    expectInvalidOption(error, 'timeoutMs');
    expect(limiter.stats().grantedCost).toBe(0);
  });
});

// ---------------------------------------------------------------------------
// acquireSync: only paths that return without sleeping
// ---------------------------------------------------------------------------

describe('acquireSync(): immediate grants and refusals (no real sleep)', () => {
  it('grants at once when the request conforms', () => {
    const clock = new ManualClock();
    const limiter = limiterAt(clock, 10, 2);
    expect(limiter.acquireSync(2)).toMatchObject({ cost: 2, waitedMs: 0, slotNs: 0n });
    expect(limiter.stats()).toMatchObject({ grantedCost: 2, waiting: 0 });
  });

  it('throws WaitTimeoutError at once (timeoutMs / maxWaitMs) and reserves nothing', () => {
    const clock = new ManualClock();
    const limiter = limiterAt(clock, 10, 1, { maxWaitMs: 150 });
    limiter.acquireSync();
    const e1 = thrown(() => limiter.acquireSync(1, { timeoutMs: 0 }));
    expect(e1).toBeInstanceOf(WaitTimeoutError);
    expect(e1).toMatchObject({ timeoutMs: 0, wouldWaitMs: 100 });
    limiter.reserve(); // 100 ms
    const e2 = thrown(() => limiter.acquireSync());
    expect(e2).toMatchObject({ timeoutMs: 150, wouldWaitMs: 200 });
    expect(limiter.stats()).toMatchObject({ grantedCost: 2, rejected: 2, waiting: 0 });
  });

  it('wait path with a scripted clock: returns when the clock shows the slot due, waitedMs from the clock', () => {
    const clock = new ManualClock();
    const script: bigint[] = [];
    const limiter = new RateLimiter({ rate: 10, clock: () => script.shift() ?? clock.t });
    limiter.acquireSync();
    // Placement reads 0; the first re-check reads 100 ms: due, no sleep needed.
    script.push(0n, 100n * MS);
    expect(limiter.acquireSync()).toMatchObject({ cost: 1, waitedMs: 100, slotNs: 100n * MS });
    expect(limiter.stats()).toMatchObject({ waiting: 0, waitingCost: 0, grantedCost: 2 });
  });
});

// ---------------------------------------------------------------------------
// 6. backoff()
// ---------------------------------------------------------------------------

describe('backoff(): shared pauses on the virtual timeline', () => {
  it('nothing is granted during the pause; afterwards strict spacing with no burst (burst 5)', () => {
    const clock = new ManualClock(3n * S);
    const limiter = limiterAt(clock, 10, 5); // T = 100 ms
    const t = clock.t;
    limiter.backoff({ retryAfterMs: 500 });
    expect(limiter.tryAcquire()).toBe(false);
    clock.set(t + 250n * MS);
    expect(limiter.tryAcquire()).toBe(false);
    clock.set(t + 500n * MS - 1n);
    expect(limiter.tryAcquire()).toBe(false);
    // The pause ends at t+500 ms. The first grant conforms 1 ns after it
    // (state.ts step 3 drains TAT to pauseStart+(burst−1)·T and adds 1 ns).
    clock.set(t + 500n * MS + 1n);
    expect(limiter.tryAcquire()).toBe(true);
    expect(limiter.tryAcquire()).toBe(false); // no burst although burst is 5
    clock.advance(100n * MS - 1n);
    expect(limiter.tryAcquire()).toBe(false);
    clock.advance(1n);
    expect(limiter.tryAcquire()).toBe(true);
    expect(limiter.tryAcquire()).toBe(false);
    // The bucket refills at rate afterwards: 5 s later the full burst is back.
    clock.advance(5n * S);
    expect(limiter.tryAcquire(5)).toBe(true);
  });

  it('no grant of any cost during the pause, even with a full bucket', () => {
    const clock = new ManualClock();
    const limiter = limiterAt(clock, 1000, 10);
    limiter.backoff({ retryAfterMs: 1 });
    for (const cost of [1, 2, 10]) expect(limiter.tryAcquire(cost)).toBe(false);
    expect(limiter.reserve(1, { timeoutMs: 0.5 }).ok).toBe(false);
  });

  it('reservations not yet due are shifted by the pause keeping order and spacing; already-due ones stay due', () => {
    const clock = new ManualClock();
    const limiter = limiterAt(clock, 10, 1);
    const r1 = limiter.reserve(); // due 0
    const r2 = limiter.reserve(); // due 100
    const r3 = limiter.reserve(); // due 200
    const r4 = limiter.reserve(); // due 300
    clock.set(150n * MS); // r1, r2 due; r3 in 50 ms, r4 in 150 ms
    expect([r1, r2, r3, r4].map((r) => r.delayMs)).toEqual([0, 0, 50, 150]);
    limiter.backoff({ retryAfterMs: 500 });
    expect([r1, r2, r3, r4].map((r) => r.delayMs)).toEqual([0, 0, 550, 650]);
    clock.set(400n * MS);
    expect([r1, r2, r3, r4].map((r) => r.delayMs)).toEqual([0, 0, 300, 400]);
    clock.set(700n * MS);
    expect([r3, r4].map((r) => r.delayMs)).toEqual([0, 100]);
    // A new reservation goes after them, one interval apart (+1 ns from the
    // backoff's drain step, state.ts step 3): due at 900 ms + 1 ns.
    const r5 = limiter.reserve();
    expect(r5.delayMs).toBeCloseTo(200 + 1e-6, 9);
  });

  it('a reservation made during the pause on an idle limiter becomes due at the end of the pause', () => {
    const clock = new ManualClock();
    const limiter = limiterAt(clock, 10, 3);
    limiter.backoff({ retryAfterMs: 500 });
    clock.set(200n * MS);
    const r = limiter.reserve();
    expect(r.delayMs).toBeGreaterThanOrEqual(300);
    expect(r.delayMs).toBeLessThanOrEqual(300 + 1e-6);
    expect(limiter.reserve().delayMs).toBeCloseTo(r.delayMs + 100, 9);
  });

  it('overlapping backoffs extend to the latest end; a shorter one never shortens', () => {
    const clock = new ManualClock();
    const limiter = limiterAt(clock, 10, 1);
    limiter.backoff({ retryAfterMs: 500 }); // until 500 ms
    clock.set(100n * MS);
    limiter.backoff({ retryAfterMs: 1000 }); // until 1100 ms
    expect(limiter.stats().pausedForMs).toBe(1000);
    clock.set(200n * MS);
    limiter.backoff({ retryAfterMs: 100 }); // until 300 ms: must not shorten
    expect(limiter.stats()).toMatchObject({ pausedForMs: 900, throttles: 3 });
    clock.set(600n * MS);
    expect(limiter.tryAcquire()).toBe(false);
    clock.set(1100n * MS - 1n);
    expect(limiter.tryAcquire()).toBe(false);
    expect(limiter.stats().pausedForMs).toBe(1e-6);
    // Each backoff() adds 1 ns to TAT (state.ts step 3): 3 backoffs, 3 ns.
    clock.set(1100n * MS + 3n);
    expect(limiter.stats().pausedForMs).toBe(0);
    expect(limiter.tryAcquire()).toBe(true);
    expect(limiter.tryAcquire()).toBe(false);
  });

  it('a backoff after the previous pause ended starts a new pause from now', () => {
    const clock = new ManualClock();
    const limiter = limiterAt(clock, 10, 1);
    limiter.backoff({ retryAfterMs: 100 });
    clock.set(5n * S);
    expect(limiter.tryAcquire()).toBe(true);
    clock.set(6n * S);
    limiter.backoff({ retryAfterMs: 200 });
    expect(limiter.stats().pausedForMs).toBe(200);
    clock.set(6n * S + 200n * MS - 1n);
    expect(limiter.tryAcquire()).toBe(false);
    clock.set(6n * S + 200n * MS + 1n);
    expect(limiter.tryAcquire()).toBe(true);
  });

  it('maxQueue during a pause counts the waiters, not the length of the pause', () => {
    const clock = new ManualClock();
    const limiter = limiterAt(clock, 10, 1, { maxQueue: 2 });
    limiter.backoff({ retryAfterMs: 1000 }); // 10 intervals long
    clock.set(100n * MS);
    const rs = [limiter.reserve(), limiter.reserve(), limiter.reserve()];
    expect(rs.map((r) => r.ok)).toEqual([true, true, false]);
    // Due right after the pause (+1 ns, state.ts step 3), then one interval apart.
    expect(rs[0]!.delayMs).toBeCloseTo(900 + 1e-6, 9);
    expect(rs[1]!.delayMs).toBeCloseTo(1000 + 1e-6, 9);
    expect(limiter.stats()).toMatchObject({ grantedCost: 2, rejected: 1 });
  });

  it('stats(): pausedForMs counts down, throttles counts calls', () => {
    const clock = new ManualClock();
    const limiter = limiterAt(clock, 10, 1);
    expect(limiter.stats()).toMatchObject({ pausedForMs: 0, throttles: 0 });
    limiter.backoff({ retryAfterMs: 500, reason: 'HTTP 429' });
    expect(limiter.stats()).toMatchObject({ pausedForMs: 500, throttles: 1, available: 0 });
    clock.set(123n * MS);
    expect(limiter.stats().pausedForMs).toBe(377);
    clock.set(600n * MS);
    expect(limiter.stats()).toMatchObject({ pausedForMs: 0, throttles: 1, available: 1 });
  });

  it('default retryAfterMs is 1000', () => {
    const clock = new ManualClock();
    const limiter = limiterAt(clock, 10, 1);
    limiter.backoff();
    expect(limiter.stats().pausedForMs).toBe(1000);
  });

  it.each([-1, NaN, Infinity, -Infinity, 1e12, 86_400_001])('retryAfterMs %s -> InvalidOptionError(retryAfterMs), no pause', (retryAfterMs) => {
    const clock = new ManualClock();
    const limiter = limiterAt(clock, 10, 1);
    const error = thrown(() => limiter.backoff({ retryAfterMs }));
    expectInvalidOption(error, 'retryAfterMs');
    expect((error as Error).message).toContain('retryAfterMs');
    expect((error as Error).message).toContain(String(retryAfterMs));
    expect(limiter.stats()).toMatchObject({ throttles: 0, pausedForMs: 0 });
    expect(limiter.tryAcquire()).toBe(true);
  });

  it("retryAfterMs as a string and a non-string reason are refused", () => {
    const clock = new ManualClock();
    const limiter = limiterAt(clock, 10, 1);
    expectInvalidOption(thrown(() => limiter.backoff({ retryAfterMs: '500' as unknown as number })), 'retryAfterMs');
    expectInvalidOption(thrown(() => limiter.backoff({ reason: 429 as unknown as string })), 'reason');
    expect(limiter.stats().throttles).toBe(0);
  });
});

// ---------------------------------------------------------------------------
// 7. handle / attach
// ---------------------------------------------------------------------------

describe('handle and RateLimiter.attach', () => {
  function copyBuffer(src: SharedArrayBuffer): SharedArrayBuffer {
    const dst = new SharedArrayBuffer(src.byteLength);
    new Uint8Array(dst).set(new Uint8Array(src));
    return dst;
  }

  it('attach(limiter.handle) shares the schedule both ways', () => {
    const clock = new ManualClock();
    const a = limiterAt(clock, 10, 2);
    const b = RateLimiter.attach(a.handle, { clock: clock.now });
    expect(b.rate).toBe(10);
    expect(b.burst).toBe(2);
    expect(a.tryAcquire()).toBe(true);
    expect(b.stats()).toMatchObject({ grantedCost: 1, available: 1 });
    expect(b.tryAcquire()).toBe(true);
    expect(a.tryAcquire()).toBe(false);
    expect(b.tryAcquire()).toBe(false);
    // Backoff and reservations are shared too.
    clock.set(S);
    b.backoff({ retryAfterMs: 100 });
    expect(a.stats()).toMatchObject({ throttles: 1, pausedForMs: 100 });
    expect(a.tryAcquire()).toBe(false);
  });

  it('the handle is frozen and survives structuredClone (the SharedArrayBuffer is shared, not copied)', () => {
    const clock = new ManualClock();
    const a = limiterAt(clock, 10, 1);
    expect(Object.isFrozen(a.handle)).toBe(true);
    const clone = structuredClone(a.handle);
    expect(clone.buffer).not.toBe(a.handle.buffer);
    const b = RateLimiter.attach(clone, { clock: clock.now });
    expect(b.tryAcquire()).toBe(true);
    expect(a.tryAcquire()).toBe(false);
    expect(a.stats().grantedCost).toBe(1);
  });

  it('attach keeps the creator configuration (maxQueue, maxWaitMs) from shared memory', () => {
    const clock = new ManualClock();
    const a = limiterAt(clock, 10, 1, { maxQueue: 1, maxWaitMs: 1000 });
    const b = RateLimiter.attach(a.handle, { clock: clock.now });
    b.tryAcquire();
    expect(b.reserve().ok).toBe(true);
    expect(b.reserve().ok).toBe(false); // maxQueue 1
    const c = limiterAt(clock, 10, 1, { maxWaitMs: 50 });
    const d = RateLimiter.attach(c.handle, { clock: clock.now });
    d.tryAcquire();
    expect(d.reserve().ok).toBe(false); // maxWaitMs 50 < 100
  });

  it.each([10, 0.1, 1e9, 1e-6, 4])('attach reports the creator rate %d when 1e9/rate is a whole number of ns', (rate) => {
    const clock = new ManualClock();
    const a = limiterAt(clock, rate, 1);
    const b = RateLimiter.attach(a.handle, { clock: clock.now });
    expect(b.rate).toBe(a.rate);
    expect(b.stats()).toMatchObject({ rate: a.stats().rate, currentRate: a.stats().currentRate });
  });

  // src bug (see report): the creator keeps the rate it was given (3), but
  // attach() derives it from the stored interval, 1e9 / ceil(1e9/3) =
  // 2.999999994, so two handles on the very same limiter disagree on its
  // configured `rate` (and on stats().rate).
  it('attach reports the same configured rate as the creator when 1e9/rate is not whole (rate 3)', () => {
    const clock = new ManualClock();
    const a = limiterAt(clock, 3, 1);
    const b = RateLimiter.attach(a.handle, { clock: clock.now });
    expect(b.rate).toBe(a.rate);
    expect(b.stats().rate).toBe(a.stats().rate);
  });

  it('a rate given as a string survives attach', () => {
    const clock = new ManualClock();
    const a = limiterAt(clock, '90000/hour' as `${number}/${string}`, 1);
    expect(RateLimiter.attach(a.handle, { clock: clock.now }).rate).toBe(25);
  });

  it('attach with a non-function clock is an InvalidOptionError(clock)', () => {
    const a = limiterAt(new ManualClock(), 10, 1);
    expectInvalidOption(thrown(() => RateLimiter.attach(a.handle, { clock: 5 as unknown as () => bigint })), 'clock');
  });

  const good = () => limiterAt(new ManualClock(), 10, 3).handle;
  const BAD_HANDLES: Array<[string, () => unknown]> = [
    ['null', () => null],
    ['undefined', () => undefined],
    ['42', () => 42],
    ['a string', () => 'atomic-pace/rate-limiter'],
    ['{}', () => ({})],
    ['wrong kind', () => ({ ...good(), kind: 'something-else' })],
    ['wrong version', () => ({ ...good(), version: LAYOUT_VERSION + 1 })],
    ['missing buffer', () => ({ kind: good().kind, version: good().version })],
    ['ArrayBuffer instead of SharedArrayBuffer', () => {
      const h = good();
      const ab = new ArrayBuffer(h.buffer.byteLength);
      new Uint8Array(ab).set(new Uint8Array(h.buffer));
      return { ...h, buffer: ab };
    }],
    ['a typed array instead of the buffer', () => ({ ...good(), buffer: new BigInt64Array(good().buffer) })],
    // Wrong sizes with otherwise valid contents (magic, version, config all copied).
    ['SharedArrayBuffer too small (truncated copy)', () => {
      const h = good();
      const buffer = new SharedArrayBuffer(h.buffer.byteLength - 8);
      new Uint8Array(buffer).set(new Uint8Array(h.buffer, 0, buffer.byteLength));
      return { ...h, buffer };
    }],
    ['SharedArrayBuffer too large (extended copy)', () => {
      const h = good();
      const buffer = new SharedArrayBuffer(h.buffer.byteLength + 8);
      new Uint8Array(buffer).set(new Uint8Array(h.buffer));
      return { ...h, buffer };
    }],
    ['empty SharedArrayBuffer', () => ({ ...good(), buffer: new SharedArrayBuffer(0) })],
    ['right size but zeroed (no magic)', () => ({ ...good(), buffer: new SharedArrayBuffer(good().buffer.byteLength) })],
    ['layout version word changed', () => {
      const h = good();
      const buffer = copyBuffer(h.buffer);
      new BigInt64Array(buffer)[Word.VERSION] = 99n;
      return { ...h, buffer };
    }],
    ['corrupted burst word (0)', () => {
      const h = good();
      const buffer = copyBuffer(h.buffer);
      new BigInt64Array(buffer)[limitBase(0) + LimitWord.BURST] = 0n;
      return { ...h, buffer };
    }],
    ['corrupted burst word (-5)', () => {
      const h = good();
      const buffer = copyBuffer(h.buffer);
      new BigInt64Array(buffer)[limitBase(0) + LimitWord.BURST] = -5n;
      return { ...h, buffer };
    }],
    ['corrupted interval word (0)', () => {
      const h = good();
      const buffer = copyBuffer(h.buffer);
      new BigInt64Array(buffer)[limitBase(0) + LimitWord.MAX_INTERVAL_NS] = 0n;
      return { ...h, buffer };
    }],
  ];

  it.each(BAD_HANDLES)('attach(%s) -> InvalidHandleError', (_label, make) => {
    const error = thrown(() => RateLimiter.attach(make() as LimiterHandle));
    expect(error).toBeInstanceOf(InvalidHandleError);
    expect((error as InvalidHandleError).code).toBe('E_INVALID_HANDLE');
  });

  it('control: an uncorrupted byte copy of the buffer attaches (so the corruption cases fail for the corruption)', () => {
    const clock = new ManualClock();
    const a = limiterAt(clock, 10, 3);
    a.tryAcquire(2);
    const copy = RateLimiter.attach({ ...a.handle, buffer: copyBuffer(a.handle.buffer) }, { clock: clock.now });
    expect(copy.burst).toBe(3);
    // A copy is a snapshot, not shared: it starts from the same state and then diverges.
    expect(copy.stats()).toMatchObject({ grantedCost: 2, available: 1 });
    expect(copy.tryAcquire()).toBe(true);
    expect(a.stats().grantedCost).toBe(2);
  });

  it('a failed attach leaves the next constructor call unaffected', () => {
    expect(() => RateLimiter.attach({} as LimiterHandle)).toThrow(InvalidHandleError);
    const clock = new ManualClock();
    const fresh = limiterAt(clock, 5, 2);
    expect([fresh.rate, fresh.burst]).toEqual([5, 2]);
    expect(fresh.stats().grantedCost).toBe(0);
  });
});

// ---------------------------------------------------------------------------
// 8. stats()
// ---------------------------------------------------------------------------

describe('stats()', () => {
  it('available tracks the bucket over time (whole units, capped at burst); grantedCost sums costs', () => {
    const clock = new ManualClock();
    const limiter = limiterAt(clock, 10, 5);
    const at = (ms: number) => {
      clock.set(BigInt(ms) * MS);
      return limiter.stats();
    };
    expect(at(0)).toMatchObject({ rate: 10, currentRate: 10, burst: 5, available: 5, grantedCost: 0, waiting: 0, waitingCost: 0, rejected: 0, cancelled: 0, throttles: 0, pausedForMs: 0 });
    expect(limiter.tryAcquire(3)).toBe(true);
    expect(at(0)).toMatchObject({ available: 2, grantedCost: 3 });
    expect(limiter.tryAcquire(2)).toBe(true);
    expect(at(0)).toMatchObject({ available: 0, grantedCost: 5 });
    expect(at(99).available).toBe(0);
    expect(at(100).available).toBe(1);
    expect(at(250).available).toBe(2);
    expect(at(500).available).toBe(5);
    expect(at(10_000).available).toBe(5);
    // Reserved (future) cost counts as granted and makes available 0.
    limiter.reserve(5);
    limiter.reserve(2);
    expect(at(10_000)).toMatchObject({ available: 0, grantedCost: 12 });
    expect(at(10_200).available).toBe(0);
    expect(at(10_700).available).toBe(5);
  });

  it('currentRate equals rate for a fractional rate', () => {
    const limiter = limiterAt(new ManualClock(), 0.1, 1);
    expect(limiter.stats().rate).toBe(0.1);
    expect(limiter.stats().currentRate).toBeCloseTo(0.1, 12);
  });
});
