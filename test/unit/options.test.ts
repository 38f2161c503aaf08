/**
 * Option validation tables: every bad value is an InvalidOptionError naming
 * the field, the value received and the allowed range; every good value is
 * accepted with the meaning documented in options.ts.
 */
import { describe, expect, it } from 'vitest';
import { InvalidOptionError, RateLimiter, type RateLimiterOptions } from '../../src/index.js';
import { ManualClock, MS } from '../support/fake-clock.js';

const clock = new ManualClock();

/** Constructs with the given options (plus the fake clock unless overridden); returns the error. */
function constructError(options: Record<string, unknown>): InvalidOptionError {
  try {
    new RateLimiter({ clock: clock.now, ...options } as unknown as RateLimiterOptions);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidOptionError);
    return error as InvalidOptionError;
  }
  throw new Error(`expected InvalidOptionError for ${JSON.stringify(options)}`);
}

function make(options: Record<string, unknown>): RateLimiter {
  return new RateLimiter({ clock: clock.now, ...options } as unknown as RateLimiterOptions);
}

/** How describeValue renders a value in messages. */
function shown(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'function') return 'a function';
  if (value === null || value === undefined) return String(value);
  return 'an object';
}

function expectFieldError(error: InvalidOptionError, field: string, value: unknown): void {
  expect(error.code).toBe('E_INVALID_OPTION');
  expect(error.name).toBe('InvalidOptionError');
  expect(error.field).toBe(field);
  expect(Object.is(error.value, value)).toBe(true);
  expect(error.message.startsWith(`${field} must be `)).toBe(true);
  expect(error.message).toContain(`got ${shown(value)}`);
  expect(error.message).toContain(error.allowed);
}

describe('rate', () => {
  const NUMERIC_RANGE = '0.000001..1000000000'; // MIN_RATE..MAX_RATE as printed

  it.each<[string, unknown]>([
    ['0', 0],
    ['-1', -1],
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['-Infinity', -Infinity],
    ['2e9 (above 1e9: interval < 1 ns)', 2e9],
    ['1e-7 (below 1e-6)', 1e-7],
    ['{}', {}],
    ['undefined (missing)', undefined],
    ['null', null],
    ['true', true],
    ["'2000000000/s' (parses, out of range)", '2000000000/s'],
    ["'1/0s' (parses to Infinity)", '1/0s'],
    ["'1/1000000d' (parses, below 1e-6)", '1/1000000d'],
  ])('rate %s -> InvalidOptionError(rate) with the numeric range', (_label, rate) => {
    const error = constructError({ rate });
    expectFieldError(error, 'rate', rate);
    expect(error.message).toContain(NUMERIC_RANGE);
  });

  it.each<[string, unknown]>([
    ["'abc'", 'abc'],
    ["'5/fortnight' (unknown unit)", '5/fortnight'],
    ["'' (empty)", ''],
    ["'10' (no unit)", '10'],
    ["'-5/s' (negative)", '-5/s'],
    ["'10/s/extra'", '10/s/extra'],
    ["'1e3/s' (exponent not accepted)", '1e3/s'],
  ])('rate %s -> InvalidOptionError(rate) naming the accepted text format', (_label, rate) => {
    const error = constructError({ rate });
    expectFieldError(error, 'rate', rate);
    expect(error.message).toContain("'500/min'");
  });

  it.each<[string, number]>([
    ['500/min', 500 / 60],
    ['10/s', 10],
    ['1/10s', 0.1],
    ['90000/hour', 25],
    ['1/day', 1 / 86_400],
    ['2/ms', 2000],
    ['3/sec', 3],
    ['120/m', 2],
    ['7200/h', 2],
    ['1.5/s', 1.5],
    ['1/0.5s', 2],
    [' 60 / min ', 1],
    ['60/MIN', 1],
    ['1/2days', 1 / 172_800],
  ])('rate string %j = %d per second', (text, perSecond) => {
    const limiter = make({ rate: text });
    expect(limiter.rate).toBeCloseTo(perSecond, 12);
    expect(limiter.stats().rate).toBe(limiter.rate);
  });

  it("'500/min' is exactly 500/60 per second and spaces grants by ceil(60e9/500) = 120 ms", () => {
    const c = new ManualClock();
    const limiter = new RateLimiter({ rate: '500/min', clock: c.now });
    expect(limiter.rate).toBe(500 / 60);
    expect(limiter.tryAcquire()).toBe(true);
    c.set(120n * MS - 1n);
    expect(limiter.tryAcquire()).toBe(false);
    c.set(120n * MS);
    expect(limiter.tryAcquire()).toBe(true);
  });

  it.each([1e-6, 1e9, 0.1, 12.5])('numeric rate %d at the edges and in between is accepted as given', (rate) => {
    expect(make({ rate }).rate).toBe(rate);
  });
});

describe('burst', () => {
  it.each<[string, unknown]>([
    ['0', 0],
    ['-1', -1],
    ['1.5', 1.5],
    ['2e9', 2e9],
    ['1e9 + 1', 1e9 + 1],
    ['NaN', NaN],
    ['Infinity', Infinity],
    ["'3'", '3'],
    ['null', null],
  ])('burst %s -> InvalidOptionError(burst) with the range', (_label, burst) => {
    const error = constructError({ rate: 10, burst });
    expectFieldError(error, 'burst', burst);
    expect(error.message).toContain('1..1000000000');
  });

  it.each([1, 2, 1000, 1e9])('burst %d is accepted', (burst) => {
    expect(make({ rate: 10, burst }).burst).toBe(burst);
  });

  it('default burst is 1', () => {
    expect(make({ rate: 10 }).burst).toBe(1);
  });

  it('burst too large for a tiny rate (rate 1e-6, burst 1e9: 31 709 years of tolerance) -> InvalidOptionError(burst)', () => {
    const error = constructError({ rate: 1e-6, burst: 1e9 });
    expectFieldError(error, 'burst', 1e9);
    expect(error.message).toMatch(/1\.\.\d+/);
    expect(error.message).toContain('146 years');
  });

  it('the tolerance bound (burst·T < 2^62 ns) is exact: at rate 1e-6 (T = 1e15 ns), burst 4611 fits and 4612 does not', () => {
    expect(make({ rate: 1e-6, burst: 4611 }).burst).toBe(4611);
    expectFieldError(constructError({ rate: 1e-6, burst: 4612 }), 'burst', 4612);
  });

  // src bug (see report): limiter.ts computes the advertised maximum as
  // floor(2^62 / T) − 1, but accepts every burst with burst·T < 2^62, i.e. up
  // to floor((2^62 − 1) / T). At rate 1e-6 the message says "1..4610" while
  // burst 4611 is accepted. The message's range should be the real range.
  it('the range in the too-large-burst message is the largest burst actually accepted', () => {
    const error = constructError({ rate: 1e-6, burst: 1e9 });
    const advertisedMax = Number(/1\.\.(\d+)/.exec(error.message)![1]);
    // The advertised maximum must be accepted and the next one refused.
    expect(make({ rate: 1e-6, burst: advertisedMax }).burst).toBe(advertisedMax);
    expectFieldError(constructError({ rate: 1e-6, burst: advertisedMax + 1 }), 'burst', advertisedMax + 1);
  });
});

describe('maxQueue', () => {
  it.each<[string, unknown]>([
    ['-1', -1],
    ['1.5', 1.5],
    ['NaN', NaN],
    ['-Infinity', -Infinity],
    ["'5'", '5'],
  ])('maxQueue %s -> InvalidOptionError(maxQueue)', (_label, maxQueue) => {
    const error = constructError({ rate: 10, maxQueue });
    expectFieldError(error, 'maxQueue', maxQueue);
    expect(error.message).toContain(`0..${Number.MAX_SAFE_INTEGER}`);
  });

  it.each([0, 1, 1e6, Infinity])('maxQueue %d is accepted', (maxQueue) => {
    expect(() => make({ rate: 10, maxQueue })).not.toThrow();
  });
});

describe('maxWaitMs', () => {
  it.each<[string, unknown]>([
    ['-1', -1],
    ['NaN', NaN],
    ['-Infinity', -Infinity],
    ['2^31 (above the Node timer limit)', 2 ** 31],
    ["'100'", '100'],
  ])('maxWaitMs %s -> InvalidOptionError(maxWaitMs)', (_label, maxWaitMs) => {
    const error = constructError({ rate: 10, maxWaitMs });
    expectFieldError(error, 'maxWaitMs', maxWaitMs);
    expect(error.message).toContain('0..2147483647');
    expect(error.message).toContain('Infinity');
  });

  it.each([0, 0.5, 2_147_483_647, Infinity])('maxWaitMs %d is accepted', (maxWaitMs) => {
    expect(() => make({ rate: 10, maxWaitMs })).not.toThrow();
  });
});

describe('timeoutMs (per call)', () => {
  it.each<[string, unknown]>([
    ['-1', -1],
    ['NaN', NaN],
    ['2^31', 2 ** 31],
    ["'5'", '5'],
  ])('timeoutMs %s -> InvalidOptionError(timeoutMs) from reserve, acquireSync and acquire', async (_label, timeoutMs) => {
    const limiter = make({ rate: 10 });
    const t = timeoutMs as number;
    for (const call of [() => limiter.reserve(1, { timeoutMs: t }), () => limiter.acquireSync(1, { timeoutMs: t })]) {
      let error: unknown;
      try {
        call();
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidOptionError);
      expectFieldError(error as InvalidOptionError, 'timeoutMs', timeoutMs);
    }
    const error = await limiter.acquire(1, { timeoutMs: t }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidOptionError);
    expectFieldError(error as InvalidOptionError, 'timeoutMs', timeoutMs);
    expect(limiter.stats().grantedCost).toBe(0);
  });
});

describe('clock', () => {
  it.each<[string, unknown]>([
    ['a number', 5],
    ['a string', 'hrtime'],
    ['an object', {}],
    ['null', null],
  ])('clock %s -> InvalidOptionError(clock)', (_label, badClock) => {
    const error = constructError({ rate: 10, clock: badClock });
    expectFieldError(error, 'clock', badClock);
  });

  it('a clock returning a number instead of bigint -> InvalidOptionError(clock) naming the value', () => {
    const error = constructError({ rate: 10, clock: () => 1234 });
    expectFieldError(error, 'clock', 1234);
    expect(error.message).toContain('bigint');
  });

  it('the default clock (no clock option) works', () => {
    const limiter = new RateLimiter({ rate: 1 });
    expect(limiter.tryAcquire()).toBe(true);
    expect(limiter.tryAcquire()).toBe(false);
  });
});

describe('options object', () => {
  it.each<[string, unknown]>([
    ['undefined', undefined],
    ['null', null],
    ['a number', 10],
    ['a string', '10/s'],
  ])('options %s -> InvalidOptionError(options)', (_label, options) => {
    let error: unknown;
    try {
      new RateLimiter(options as RateLimiterOptions);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect((error as InvalidOptionError).field).toBe('options');
  });

  it('validation happens before anything is created: the first bad field in order rate, burst, maxQueue, maxWaitMs, clock is reported', () => {
    const all = { rate: 0, burst: 0, maxQueue: -1, maxWaitMs: -1, clock: 5 };
    const order = ['rate', 'burst', 'maxQueue', 'maxWaitMs', 'clock'] as const;
    const fixes: Record<string, unknown> = { rate: 10, burst: 1, maxQueue: 0, maxWaitMs: 0, clock: clock.now };
    const opts: Record<string, unknown> = { ...all };
    for (const field of order) {
      expect(constructError(opts).field).toBe(field);
      opts[field] = fixes[field];
    }
    expect(() => make(opts)).not.toThrow();
  });
});
