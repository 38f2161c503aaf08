import { describe, expect, it } from 'vitest';
import { InvalidOptionError, RateLimiter } from '../../src/index.js';
import { decreasedInterval, recoveredInterval, type AdaptiveLaw } from '../../src/adaptive.js';

const S = 1_000_000_000n;

function fixture(options: ConstructorParameters<typeof RateLimiter>[0]) {
  let t = 1_000n * S;
  const limiter = new RateLimiter({ ...options, clock: () => t });
  return { limiter, advanceMs: (ms: number) => { t += BigInt(ms) * 1_000_000n; } };
}

describe('adaptive rate law (pure)', () => {
  const law: AdaptiveLaw = { minIntervalNs: 10_000_000n, floorIntervalNs: 100_000_000n, decreasePpm: 500_000n, recoveryPpm: 10_000n };
  it.each([
    { from: 10_000_000n, to: 20_000_000n, why: '100/s halves to 50/s' },
    { from: 20_000_000n, to: 40_000_000n, why: '50/s halves to 25/s' },
    { from: 80_000_000n, to: 100_000_000n, why: 'clamped at the floor (10/s)' },
    { from: 100_000_000n, to: 100_000_000n, why: 'stays at the floor' },
  ])('decrease: $why', ({ from, to }) => {
    expect(decreasedInterval(from, law)).toBe(to);
  });
  it.each([
    { from: 20_000_000n, to: 19_607_844n, why: '50/s + 1/s = 51/s (interval rounded up)' },
    { from: 10_101_010n, to: 10_000_000n, why: '99/s + 1/s lands exactly on the configured rate' },
    { from: 10_101_011n, to: 10_000_001n, why: 'just short of it stays just short (rounded up, never faster)' },
    { from: 10_000_000n, to: 10_000_000n, why: 'stays at the configured rate' },
  ])('recovery: $why', ({ from, to }) => {
    expect(recoveredInterval(from, law)).toBe(to);
  });
});

describe('adaptive rate on the limiter', () => {
  it('a throttle that starts a pause halves the shared rate; throttles inside it do not cut again', () => {
    const { limiter, advanceMs } = fixture({ rate: 100, adaptive: true });
    const attached = RateLimiter.attach(limiter.handle, { clock: () => 0n });
    limiter.backoff({ retryAfterMs: 100 });
    expect(limiter.stats().currentRate).toBeCloseTo(50, 6);
    expect(attached.stats().currentRate).toBeCloseTo(50, 6); // one shared value
    advanceMs(10);
    limiter.backoff({ retryAfterMs: 100 }); // same congestion event
    expect(limiter.stats().currentRate).toBeCloseTo(50, 6);
    advanceMs(200); // pause over: a new throttle is a new event
    limiter.backoff({ retryAfterMs: 10 });
    expect(limiter.stats().currentRate).toBeCloseTo(25, 6);
  });

  it('never below minRate, and successes recover to exactly the configured rate, never above', () => {
    const { limiter, advanceMs } = fixture({ rate: 100, adaptive: { minRate: 30, decrease: 0.5, recovery: 0.1 } });
    for (let i = 0; i < 5; i++) {
      limiter.backoff({ retryAfterMs: 1 });
      advanceMs(5);
    }
    expect(limiter.stats().currentRate).toBeCloseTo(30, 4);
    const seen: number[] = [];
    for (let i = 0; i < 10; i++) {
      limiter.success();
      seen.push(limiter.stats().currentRate);
    }
    expect(seen[0]).toBeCloseTo(40, 4); // +0.1 × 100 per success
    expect(seen.every((r, i) => i === 0 || r >= seen[i - 1]!)).toBe(true);
    expect(seen.at(-1)).toBe(100);
    expect(Math.max(...seen)).toBeLessThanOrEqual(100);
  });

  it('the cut rate governs spacing: after halving, grants are 2/rate apart', () => {
    const { limiter, advanceMs } = fixture({ rate: 100, adaptive: true });
    limiter.backoff({ retryAfterMs: 0 });
    advanceMs(20);
    expect(limiter.tryAcquire()).toBe(true);
    advanceMs(19);
    expect(limiter.tryAcquire()).toBe(false);
    advanceMs(1);
    expect(limiter.tryAcquire()).toBe(true);
  });

  it('without adaptive, backoff and success leave the rate alone', () => {
    const { limiter } = fixture({ rate: 100 });
    limiter.backoff({ retryAfterMs: 10 });
    limiter.success();
    expect(limiter.stats().currentRate).toBe(100);
  });

  it.each([
    [{ minRate: 200 }, 'adaptive.minRate'],
    [{ minRate: 'soon' }, 'adaptive.minRate'],
    [{ decrease: 1 }, 'adaptive.decrease'],
    [{ decrease: 0 }, 'adaptive.decrease'],
    [{ recovery: 0 }, 'adaptive.recovery'],
    [{ recovery: 2 }, 'adaptive.recovery'],
    ['yes', 'adaptive'],
  ])('invalid adaptive option %j names %s', (adaptive, field) => {
    const call = () => new RateLimiter({ rate: 100, adaptive: adaptive as never });
    expect(call).toThrow(InvalidOptionError);
    try { call(); } catch (e) { expect((e as InvalidOptionError).field).toBe(field); }
  });
});
