/**
 * Bad input gets a typed error at once, naming the field — and leaves the
 * shared state exactly as it was: a second limiter attached to the same
 * buffer grants afterwards exactly what a control limiter (same options,
 * same clock, never given bad input) grants.
 */
import { describe, expect, it } from 'vitest';
import { InvalidHandleError, InvalidOptionError, RateLimiter } from '../../src/index.js';
import { LimitWord, SLEEP_INDEX_I32, limitBase } from '../../src/layout.js';
import { ManualClock, MS, track } from '../support/fake-clock.js';

type Call = (limiter: RateLimiter) => unknown;

/** Runs `call` on a fresh limiter; returns the error it threw or rejected with. */
async function errorOf(call: Call, prepare?: Call): Promise<{ error: unknown; intact: boolean }> {
  const clock = new ManualClock(1_000n * MS);
  const options = { rate: 10, burst: 3, maxQueue: 2, clock: clock.now };
  const limiter = new RateLimiter(options);
  const control = new RateLimiter(options);
  prepare?.(limiter);
  prepare?.(control);
  let error: unknown;
  try {
    await call(limiter);
  } catch (e) {
    error = e;
  }
  // State intact: the same decisions as the control, from another attachment.
  const other = RateLimiter.attach(limiter.handle, { clock: clock.now });
  const seen: boolean[] = [];
  const expected: boolean[] = [];
  for (let i = 0; i < 5; i++) {
    seen.push(other.tryAcquire());
    expected.push(control.tryAcquire());
    clock.advance(30n * MS);
  }
  return { error, intact: JSON.stringify(seen) === JSON.stringify(expected) && other.stats().waiting === 0 };
}

const signalLike = { aborted: false, addEventListener() {}, removeEventListener() {} };

describe('bad input: InvalidOptionError naming the field, state intact', () => {
  const cases: [string, string, Call, Call?][] = [
    ['acquire(1, null)', 'options', (l) => l.acquire(1, null as never)],
    ['acquire(1, 5)', 'options', (l) => l.acquire(1, 5 as never)],
    ['acquire(1, [])', 'options', (l) => l.acquire(1, [] as never)],
    ['acquireSync(1, null)', 'options', (l) => l.acquireSync(1, null as never)],
    ['reserve(1, null)', 'options', (l) => l.reserve(1, null as never)],
    ['backoff(null)', 'options', (l) => l.backoff(null as never)],
    ['backoff("5")', 'options', (l) => l.backoff('5' as never)],
    ['attach(handle, null)', 'options', (l) => RateLimiter.attach(l.handle, null as never)],
    ['a signal that is not an AbortSignal, granted at once', 'signal', (l) => l.acquire(1, { signal: {} as never })],
    ['a string as signal', 'signal', (l) => l.acquire(1, { signal: 'stop' as never })],
    ['null as signal', 'signal', (l) => l.acquire(1, { signal: null as never })],
    ['tryAcquire([])', 'cost', (l) => l.tryAcquire([] as never)],
    ['acquire([1])', 'cost', (l) => l.acquire([1] as never)],
    ['reserve([2])', 'cost', (l) => l.reserve([2] as never)],
    ['acquireSync([])', 'cost', (l) => l.acquireSync([] as never)],
    ['onQueued not a function (a request that would wait)', 'onQueued', (l) => l.acquire(1, { onQueued: 'call me' as never }), (l) => l.tryAcquire(3)],
    ['onQueued not a function (granted at once)', 'onQueued', (l) => l.acquire(1, { onQueued: 42 as never })],
  ];
  it.each(cases)('%s → %s', async (_name, field, call, prepare) => {
    const { error, intact } = await errorOf(call, prepare);
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect((error as InvalidOptionError).code).toBe('E_INVALID_OPTION');
    expect((error as InvalidOptionError).field).toBe(field);
    expect(intact).toBe(true);
  });

  it('control: a well-formed signal-like object is accepted (signals from another realm qualify)', async () => {
    const limiter = new RateLimiter({ rate: 10, burst: 1 });
    await expect(limiter.acquire(1, { signal: signalLike as never })).resolves.toMatchObject({ cost: 1 });
  });
});

describe('onQueued: a throwing callback gives its place back', () => {
  it('with maxQueue 1 the queue is not left full', async () => {
    const clock = new ManualClock(1_000n * MS);
    const limiter = new RateLimiter({ rate: 10, burst: 1, maxQueue: 1, clock: clock.now });
    limiter.tryAcquire();
    const boom = new Error('callback failed');
    await expect(limiter.acquire(1, { onQueued: () => { throw boom; } })).rejects.toBe(boom);
    // Its place went back: a new waiter fits in the queue of 1, due at the same slot.
    const r = limiter.reserve(1, {});
    expect(r.ok).toBe(true);
    expect(r.delayMs).toBeCloseTo(100, 3);
    expect(limiter.stats().waiting).toBe(0);
  });
});

describe('limit names that are Object.prototype members are plain names', () => {
  // JSON.parse makes "__proto__" an own key, as a config file would.
  const limits = JSON.parse('{"constructor": {"rate": 10, "burst": 5}, "toString": {"rate": 10, "burst": 5}, "__proto__": {"rate": 10, "burst": 5}, "valueOf": {"rate": 10, "burst": 5}}');
  it('a cost naming one of them charges that limit only; unnamed ones take their default cost', () => {
    const limiter = new RateLimiter({ limits, clock: new ManualClock(1_000n * MS).now });
    expect(limiter.limitNames).toEqual(['constructor', 'toString', '__proto__', 'valueOf']);
    expect(limiter.tryAcquire(JSON.parse('{"__proto__": 2, "constructor": 3}'))).toBe(true);
    const stats = limiter.stats();
    expect(stats.limits['__proto__']!.grantedCost).toBe(2);
    expect(stats.limits['constructor']!.grantedCost).toBe(3);
    expect(stats.limits['toString']!.grantedCost).toBe(1); // defaultCost
    expect(stats.limits['valueOf']!.grantedCost).toBe(1);
  });

  it('settle() with such names reads own properties only', () => {
    const limiter = new RateLimiter({ limits, clock: new ManualClock(1_000n * MS).now });
    const grant = limiter.acquireSync({ constructor: 2 });
    const result = grant.settle({ constructor: 1 });
    expect(result.refunded['constructor']).toBe(1);
    expect(result.refunded['toString']).toBe(0);
  });
});

describe('documented maxima and the clock', () => {
  it('16 limits with 64-character names (both documented maxima) construct and attach', () => {
    const limits = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`${String(i).padStart(2, '0')}${'n'.repeat(62)}`, { rate: 10 }]));
    const limiter = new RateLimiter({ limits });
    const other = RateLimiter.attach(limiter.handle);
    expect(other.limitNames).toEqual(Object.keys(limits));
    expect(other.tryAcquire(Object.fromEntries(Object.keys(limits).map((n) => [n, 1])))).toBe(true);
  });

  it.each([
    ['a number', () => 5],
    ['a bigint past 2^62', () => 1n << 62n],
    ['a negative bigint past -2^62', () => -(1n << 62n)],
  ])('a clock returning %s: InvalidOptionError(clock) at construction and at attach', (_name, clock) => {
    expect(() => new RateLimiter({ rate: 1, clock: clock as never })).toThrow(InvalidOptionError);
    const limiter = new RateLimiter({ rate: 1 });
    let error: unknown;
    try { RateLimiter.attach(limiter.handle, { clock: clock as never }); } catch (e) { error = e; }
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect((error as InvalidOptionError).field).toBe('clock');
  });
});

describe('attach checks the live words a decision trusts', () => {
  it.each([
    ['interval 0 ns', (w: BigInt64Array) => { w[limitBase(0) + LimitWord.INTERVAL_NS] = 0n; }],
    ['interval 1 ns', (w: BigInt64Array) => { w[limitBase(0) + LimitWord.INTERVAL_NS] = 1n; }],
    ['interval past the adaptive floor', (w: BigInt64Array) => { w[limitBase(0) + LimitWord.INTERVAL_NS] = 10n ** 12n; }],
    ['a nonzero sleep word', (_w: BigInt64Array, i32: Int32Array) => { i32[SLEEP_INDEX_I32] = 1; }],
  ])('%s → InvalidHandleError', (_name, tamper) => {
    const limiter = new RateLimiter({ rate: 10 });
    tamper(new BigInt64Array(limiter.handle.buffer), new Int32Array(limiter.handle.buffer));
    expect(() => RateLimiter.attach(limiter.handle)).toThrow(InvalidHandleError);
  });
});

describe('run(): delays above backoff()’s 24 h are clamped, not a rejection at the first throttle', () => {
  it.each([
    ['retryAfter of 3 days', { retryAfter: () => 3 * 86_400_000 }],
    ['maxDelayMs and baseDelayMs of 2 days', { baseDelayMs: 2 * 86_400_000, maxDelayMs: 2 * 86_400_000 }],
  ])('%s', async (_name, options) => {
    const limiter = new RateLimiter({ rate: 1000, burst: 10 });
    const controller = new AbortController();
    let n = 0;
    const run = track(limiter.run(() => (n++ === 0 ? { status: 429 } : { status: 200 }), {
      retries: 1, random: () => 0.5, sleep: async () => {}, signal: controller.signal, ...options,
    }));
    for (let i = 0; i < 20; i++) await Promise.resolve();
    // Not rejected by the throttle: paused (at most 24 h) and waiting to retry.
    expect(run.status).toBe('pending');
    const paused = limiter.stats().pausedForMs;
    expect(paused).toBeGreaterThan(86_000_000);
    expect(paused).toBeLessThanOrEqual(86_400_000);
    controller.abort(new Error('done'));
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(run.status).toBe('rejected');
  });
});
