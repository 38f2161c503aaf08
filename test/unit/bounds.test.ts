/**
 * Nothing over-granted, nothing stuck (issue #12): the schedule can not
 * overflow its 64-bit words, and waiters that give up — in any order — give
 * their capacity back.
 */
import { describe, expect, it } from 'vitest';
import { QueueFullError, RateLimiter } from '../../src/index.js';
import { ManualClock, MS, S, track } from '../support/fake-clock.js';

const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

describe('the schedule never overflows 64 bits (every path is bounded at 2^62 ns ahead)', () => {
  it('{rate: 1, burst: 1e9}: ten reserve(1e9) — none after the first is due at once; the queue is refused before it could wrap', () => {
    const clock = new ManualClock(1n * S);
    const limiter = new RateLimiter({ rate: 1, burst: 1e9, clock: clock.now });
    const delays = Array.from({ length: 10 }, () => limiter.reserve(1e9));
    expect(delays[0]!.ok).toBe(true);
    expect(delays[0]!.delayMs).toBe(0);
    const ok = delays.slice(1).filter((r) => r.ok);
    for (const r of ok) expect(r.delayMs).toBeGreaterThan(0);
    for (let i = 1; i < ok.length; i++) expect(ok[i]!.delayMs).toBeGreaterThan(ok[i - 1]!.delayMs);
    expect(delays.some((r) => !r.ok)).toBe(true); // refused, not wrapped
    expect(limiter.tryAcquire()).toBe(false);
  });

  it('{rate: 1e-6}: thousands of pending acquire() — none resolves at once; beyond the horizon QueueFullError', async () => {
    const clock = new ManualClock(1n * S);
    const limiter = new RateLimiter({ rate: 1e-6, clock: clock.now });
    const calls = Array.from({ length: 9300 }, () => track(limiter.acquire()));
    await flush();
    expect(calls[0]!.status).toBe('fulfilled');
    const later = calls.slice(1);
    expect(later.filter((c) => c.status === 'fulfilled')).toEqual([]);
    const refused = later.filter((c) => c.status === 'rejected');
    expect(refused.length).toBeGreaterThan(0);
    for (const c of refused) expect(c.error).toBeInstanceOf(QueueFullError);
    expect(limiter.tryAcquire()).toBe(false);
    // Leave no timers behind: give every pending wait up.
    expect(limiter.stats().waiting).toBeGreaterThan(0);
  });

  it.each([
    ['settle(1e10) at 1/s', 1e10],
    ['settle(2^53) at 1/s', 2 ** 53],
  ])('%s saturates: no tryAcquire goes through afterwards', (_name, actual) => {
    const clock = new ManualClock(1n * S);
    const limiter = new RateLimiter({ rate: 1, burst: 1, clock: clock.now });
    limiter.acquireSync().settle(actual);
    for (let i = 0; i < 4; i++) {
      expect(limiter.tryAcquire()).toBe(false);
      clock.advance(3600n * S);
    }
    expect(limiter.stats().available).toBe(0);
  });

  it('several limits: settle(1e10) saturates every limit it charges', () => {
    const clock = new ManualClock(1n * S);
    const limiter = new RateLimiter({ limits: { requests: { rate: 1 }, tokens: { rate: 1, burst: 10 } }, clock: clock.now });
    limiter.acquireSync({ requests: 1, tokens: 1 }).settle({ tokens: 1e10 });
    for (let i = 0; i < 4; i++) {
      expect(limiter.tryAcquire({ requests: 1, tokens: 1 })).toBe(false);
      clock.advance(3600n * S);
    }
  });
});

describe('a mass cancel gives the capacity back, in any order', () => {
  const N = 2000;
  it.each(['fifo', 'lifo', 'random'] as const)('%s: after every waiter has given up, a new request is granted within burst/rate', async (order) => {
    const clock = new ManualClock(1n * S);
    const limiter = new RateLimiter({ rate: 10, burst: 1, clock: clock.now });
    limiter.tryAcquire();
    const controllers = Array.from({ length: N }, () => new AbortController());
    const waits = controllers.map((c) => track(limiter.acquire(1, { signal: c.signal })));
    await flush();
    expect(limiter.stats().waiting).toBe(N);
    const indexes = controllers.map((_, i) => i);
    if (order === 'lifo') indexes.reverse();
    if (order === 'random') {
      let seed = 7;
      for (let i = indexes.length - 1; i > 0; i--) {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        const j = seed % (i + 1);
        [indexes[i], indexes[j]] = [indexes[j]!, indexes[i]!];
      }
    }
    for (const i of indexes) controllers[i]!.abort(new Error('gave up'));
    await flush();
    expect(waits.every((w) => w.status === 'rejected')).toBe(true);
    expect(limiter.stats().waiting).toBe(0);
    expect(limiter.stats().grantedCost).toBe(1); // only the tryAcquire at the start was handed out
    // A newcomer that must queue is placed right after what was delivered —
    // at most burst/rate = 100 ms away — not behind 2000 empty places.
    const next = limiter.reserve(1);
    expect(next.ok).toBe(true);
    expect(next.delayMs).toBeLessThanOrEqual(100);
    expect(limiter.reserve(1).delayMs).toBeLessThanOrEqual(200);
  });

  it('one AbortController shared by all waiters (listeners fire in FIFO order)', async () => {
    const clock = new ManualClock(1n * S);
    const limiter = new RateLimiter({ rate: 10, burst: 1, clock: clock.now });
    limiter.tryAcquire();
    const controller = new AbortController();
    const waits = Array.from({ length: N }, () => track(limiter.acquire(1, { signal: controller.signal })));
    await flush();
    controller.abort();
    await flush();
    expect(waits.every((w) => w.status === 'rejected')).toBe(true);
    expect(limiter.reserve(1).delayMs).toBeLessThanOrEqual(100);
  });
});
