import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { InvalidOptionError } from '../../src/errors.js';
import { resolveMockOptions, ThrottlePolicy, type MockApiOptions, type MockOutcome } from '../../src/testing/throttle-policy.js';

const MS = 1e6; // ns per ms: the policy takes arrival times in ns

/** Feeds arrivals (ms) to a fresh policy; returns [outcome, retryAfterMs] per arrival. */
function run(options: MockApiOptions, arrivalsMs: number[]): Array<[MockOutcome, number]> {
  const policy = new ThrottlePolicy(options);
  return arrivalsMs.map((t) => {
    const d = policy.decide(t * MS);
    return [d.outcome, d.retryAfterMs];
  });
}

describe('sliding window: at most `limit` accepted in every half-open window [a, a + windowMs)', () => {
  it('accepts up to the limit, then throttles until the oldest accepted arrival leaves (table)', () => {
    expect(run({ limit: 2, windowMs: 100 }, [0, 10, 50, 99.999, 100, 109.9, 110.9])).toEqual([
      ['accepted', 0],
      ['accepted', 0],
      ['over-limit', 50], //  window frees at 0 + 100: asks for 100 − 50 ms; penalty until 100
      ['violation', 1], //    inside that pause: a violation, asked for the rest (rounded up to 1 ms)
      ['accepted', 0], //     t = 100: the arrival at 0 has left (half-open window), pause over
      ['over-limit', 1], //   10 and 100 in the window; frees at 110, asks ceil(0.1) = 1 ms, pause until 110.9
      ['accepted', 0], //     110.9: not before the deadline, and 10 has left
    ]);
  });

  it('a violation neither extends the pause nor counts as over-limit', () => {
    const policy = new ThrottlePolicy({ limit: 1, windowMs: 1000 });
    policy.decide(0);
    expect(policy.decide(10 * MS)).toMatchObject({ outcome: 'over-limit', retryAfterMs: 990 }); // until 1000
    expect(policy.decide(500 * MS)).toMatchObject({ outcome: 'violation', retryAfterMs: 500 });
    expect(policy.decide(999 * MS)).toMatchObject({ outcome: 'violation', retryAfterMs: 1 });
    expect(policy.decide(1000 * MS)).toMatchObject({ outcome: 'accepted' });
    expect(policy.stats()).toEqual({ total: 5, accepted: 2, overLimit: 1, spurious: 0, violations: 2 });
  });

  it('retryAfterMs fixes what every 429 asks for; 0 disables the penalty box', () => {
    expect(run({ limit: 1, windowMs: 1000, retryAfterMs: 250 }, [0, 1, 100, 251, 1000])).toEqual([
      ['accepted', 0], ['over-limit', 250], ['violation', 151], ['over-limit', 250], ['accepted', 0],
    ]);
    expect(run({ limit: 1, windowMs: 1000, retryAfterMs: 0 }, [0, 1, 1, 2])).toEqual([
      ['accepted', 0], ['over-limit', 0], ['over-limit', 0], ['over-limit', 0],
    ]);
  });

  it('property: no window holds more than `limit` accepted, and an over-limit 429 only when it is full', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 50 }),
        fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 60 }),
        fc.option(fc.integer({ min: 0, max: 30 }), { nil: undefined }),
        (limit, windowMs, gapsMs, retryAfterMs) => {
          const policy = new ThrottlePolicy({ limit, windowMs, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) });
          let t = 0;
          const accepted: number[] = [];
          for (const gap of gapsMs) {
            t += gap;
            const inWindow = accepted.filter((a) => a > t - windowMs).length;
            const outcome = policy.decide(t * MS).outcome;
            if (outcome === 'accepted') accepted.push(t);
            if (outcome === 'over-limit') expect(inWindow).toBe(limit);
            if (outcome === 'accepted') expect(inWindow).toBeLessThan(limit);
          }
          for (const a of accepted) expect(accepted.filter((b) => b >= a && b < a + windowMs).length).toBeLessThanOrEqual(limit);
          const s = policy.stats();
          expect(s.accepted + s.overLimit + s.spurious + s.violations).toBe(s.total);
        },
      ),
    );
  });
});

describe('spurious throttles: seeded, at the configured rate, only within the limit', () => {
  const spaced = (n: number) => Array.from({ length: n }, (_, i) => i * 10); // 1 per 10 ms: always within limit 1/5ms

  it('happen at about spuriousRate, and the same seed gives the same sequence', () => {
    const options = { limit: 1, windowMs: 5, spuriousRate: 0.1, retryAfterMs: 0, seed: 42 };
    const a = run(options, spaced(10_000)).map(([o]) => o);
    const b = run(options, spaced(10_000)).map(([o]) => o);
    const c = run({ ...options, seed: 43 }, spaced(10_000)).map(([o]) => o);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    const rate = a.filter((o) => o === 'spurious').length / a.length;
    expect(rate).toBeGreaterThan(0.09);
    expect(rate).toBeLessThan(0.11);
    expect(a.every((o) => o === 'accepted' || o === 'spurious')).toBe(true);
  });

  it('ask for one average slot (windowMs / limit, rounded up) and start a penalty', () => {
    expect(run({ limit: 3, windowMs: 100, spuriousRate: 1 }, [0, 33, 34, 40])).toEqual([
      ['spurious', 34], ['violation', 1], ['spurious', 34], ['violation', 28],
    ]);
  });

  it('are never drawn for a request over the limit: a full window always answers over-limit', () => {
    const outcomes = run({ limit: 1, windowMs: 1000, spuriousRate: 0.5, retryAfterMs: 0, seed: 7 }, spaced(90)).map(([o]) => o);
    const firstAccepted = outcomes.indexOf('accepted');
    expect(firstAccepted).toBeGreaterThanOrEqual(0);
    expect(outcomes.slice(0, firstAccepted).every((o) => o === 'spurious')).toBe(true);
    expect(outcomes.slice(firstAccepted + 1).every((o) => o === 'over-limit')).toBe(true);
  });

  it('reset() restores the initial state, draws included', () => {
    const policy = new ThrottlePolicy({ limit: 1, windowMs: 5, spuriousRate: 0.3, retryAfterMs: 0, seed: 9 });
    const first = spaced(200).map((t) => policy.decide(t * MS).outcome);
    policy.reset();
    expect(policy.stats()).toEqual({ total: 0, accepted: 0, overLimit: 0, spurious: 0, violations: 0 });
    expect(spaced(200).map((t) => policy.decide(t * MS).outcome)).toEqual(first);
  });
});

describe('latency', () => {
  it('is constant, or a seeded uniform draw in [min, max], for accepted requests only', () => {
    const constant = new ThrottlePolicy({ limit: 10, windowMs: 1, latencyMs: 25 });
    expect(constant.decide(0).latencyMs).toBe(25);
    const ranged = new ThrottlePolicy({ limit: 1, windowMs: 1, latencyMs: [20, 60], seed: 3 });
    const draws = Array.from({ length: 500 }, (_, i) => ranged.decide(i * 2 * MS).latencyMs);
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(20);
    expect(Math.max(...draws)).toBeLessThanOrEqual(60);
    expect(new Set(draws).size).toBeGreaterThan(400);
    const throttled = new ThrottlePolicy({ limit: 1, windowMs: 1000, latencyMs: 25 });
    throttled.decide(0);
    expect(throttled.decide(1 * MS)).toMatchObject({ outcome: 'over-limit', latencyMs: 0 });
  });
});

describe('option validation: InvalidOptionError naming field, value and range', () => {
  const base = { limit: 10, windowMs: 1000 };
  const cases: Array<[string, unknown, string]> = [
    ['options', null, 'options must be an object'],
    ['limit', { ...base, limit: 0 }, 'limit must be an integer in 1..1000000, got 0'],
    ['limit', { ...base, limit: 2.5 }, 'got 2.5'],
    ['limit', { windowMs: 1000 }, 'got undefined'],
    ['windowMs', { ...base, windowMs: 0 }, 'windowMs must be a number of ms in 1..86400000, got 0'],
    ['windowMs', { ...base, windowMs: Infinity }, 'got Infinity'],
    ['spuriousRate', { ...base, spuriousRate: 1.5 }, 'spuriousRate must be a probability in 0..1, got 1.5'],
    ['spuriousRate', { ...base, spuriousRate: NaN }, 'got NaN'],
    ['latencyMs', { ...base, latencyMs: -1 }, 'latencyMs must be a number of ms in 0..60000, or [min, max]'],
    ['latencyMs', { ...base, latencyMs: [50, 10] }, 'got an array'],
    ['latencyMs', { ...base, latencyMs: [1, 2, 3] }, 'got an array'],
    ['retryAfterMs', { ...base, retryAfterMs: -5 }, 'retryAfterMs must be a number of ms in 0..86400000, got -5'],
    ['seed', { ...base, seed: -1 }, 'seed must be an integer in 0..4294967295, got -1'],
    ['seed', { ...base, seed: 2 ** 32 }, 'got 4294967296'],
    ['host', { ...base, host: '' }, 'host must be a non-empty host name'],
    ['algorithm', { ...base, algorithm: 'token' }, "algorithm must be 'sliding-window' or 'leaky-bucket'"],
    ['rate', { algorithm: 'leaky-bucket' }, 'rate must be requests per second in 0.001..1000000'],
    ['rate', { algorithm: 'leaky-bucket', rate: 0 }, 'got 0'],
    ['burst', { algorithm: 'leaky-bucket', rate: 50, burst: 1.5 }, 'burst must be an integer in 0..1000000'],
    ['limit', { algorithm: 'leaky-bucket', rate: 50, limit: 5 }, "absent with algorithm 'leaky-bucket'"],
    ['rate', { ...base, rate: 50 }, 'absent with the sliding window'],
  ];
  it.each(cases)('%s: %j', (field, options, message) => {
    let error: unknown;
    try {
      resolveMockOptions(options);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect((error as InvalidOptionError).field).toBe(field);
    expect((error as InvalidOptionError).message).toContain(message);
  });

  it('accepts the documented ranges and defaults', () => {
    expect(resolveMockOptions({ limit: 1, windowMs: 1 })).toEqual({
      algorithm: 'sliding-window', rateMilli: 0, burstMilli: 0, limit: 1, windowNs: 1e6, spuriousRate: 0, latencyMs: [0, 0], retryAfterMs: -1, seed: 1, host: '127.0.0.1',
    });
    expect(resolveMockOptions({ limit: 1_000_000, windowMs: 0.5e8, spuriousRate: 1, latencyMs: [0, 60_000], retryAfterMs: 0, seed: 2 ** 32 - 1, host: '::1' }))
      .toMatchObject({ latencyMs: [0, 60_000], retryAfterMs: 0 });
  });
});

describe("leaky bucket: nginx limit_req's rule (ms clock, excess in thousandths, bare 429)", () => {
  // [arrival ms, accepted?] — worked by hand from ngx_http_limit_req_lookup.
  const cases: { name: string; rate: number; burst: number; arrivals: [number, boolean][] }[] = [
    { name: '50 r/s, no burst: sooner than 20 ms after the last accepted is rejected', rate: 50, burst: 0,
      arrivals: [[0, true], [19.9, false], [20, true], [39.99, false], [40.2, true], [59.5, false], [61, true]] },
    { name: 'whole ms: 19.9 ms apart in real time but 20 on the ms clock is accepted', rate: 50, burst: 0,
      arrivals: [[0.95, true], [20.1, true]] },
    { name: 'rejections do not move the state', rate: 50, burst: 0,
      arrivals: [[0, true], [5, false], [10, false], [15, false], [20, true]] },
    { name: 'burst 1: two at once, then one per 20 ms; last only moves on whole ms', rate: 50, burst: 1,
      arrivals: [[0, true], [0.5, true], [10, false], [20, true], [21, false], [40, true]] },
    { name: '1000 r/s: one per ms', rate: 1000, burst: 0, arrivals: [[0, true], [0.9, false], [1, true], [1.5, false], [3, true]] },
  ];
  it.each(cases)('$name', ({ rate, burst, arrivals }) => {
    const policy = new ThrottlePolicy({ algorithm: 'leaky-bucket', rate, burst });
    const got = arrivals.map(([ms]) => policy.decide(ms * 1e6));
    expect(got.map((d) => d.outcome === 'accepted')).toEqual(arrivals.map(([, ok]) => ok));
    for (const d of got) if (d.outcome !== 'accepted') expect(d).toMatchObject({ outcome: 'over-limit', retryAfterMs: -1 });
    expect(policy.stats().violations).toBe(0);
  });
});
