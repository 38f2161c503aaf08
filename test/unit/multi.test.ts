/**
 * Several limits, settling, concurrency permits and queue status, with an
 * injected clock (ns). Each case names the guarantee it defends.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  CostTooLargeError,
  GrantStateError,
  InvalidOptionError,
  QueueFullError,
  RateLimiter,
  WaitTimeoutError,
  type QueueStatus,
} from '../../src/index.js';

const MS = 1_000_000n;

function fixture(options: Omit<ConstructorParameters<typeof RateLimiter>[0], 'clock'>) {
  const clock = { t: 1_000_000n * MS };
  const limiter = new RateLimiter({ ...options, clock: () => clock.t });
  return { limiter, advance: (ms: number) => { clock.t += BigInt(Math.round(ms * 1e6)); }, clock };
}

const llm = { limits: { requests: { rate: 10, burst: 2 }, tokens: { rate: 1000, burst: 1000 } } };

describe('several limits: all or nothing', () => {
  it('a request refused by one limit consumes nothing in the others (tryAcquire)', () => {
    const { limiter } = fixture(llm);
    expect(limiter.tryAcquire({ tokens: 800 })).toBe(true);
    expect(limiter.tryAcquire({ tokens: 300 })).toBe(false); // tokens refuse
    expect(limiter.stats().limits.requests!.available).toBe(1); // requests untouched
    expect(limiter.tryAcquire({ tokens: 200 })).toBe(true);
    expect(limiter.tryAcquire({ tokens: 0 })).toBe(false); // requests now refuse (burst 2)
    expect(limiter.stats().limits.tokens!.available).toBe(0);
    expect(limiter.stats().limits.tokens!.grantedCost).toBe(1000);
  });

  it('the joint slot is the latest of the limits: tokens bind, requests wait with them', () => {
    const { limiter, advance } = fixture(llm);
    expect(limiter.tryAcquire({ tokens: 1000 })).toBe(true);
    const r = limiter.reserve({ tokens: 500 });
    expect(r.delayMs).toBeCloseTo(500, 6); // 500 tokens at 1000/s
    advance(499);
    expect(limiter.tryAcquire({ tokens: 1 })).toBe(false); // FIFO: behind the reservation
    advance(1);
    expect(r.delayMs).toBe(0);
  });

  it('timeouts and full queues refuse without a trace in any limit', () => {
    const { limiter } = fixture({ limits: { requests: { rate: 10, burst: 1, maxQueue: 1 }, tokens: { rate: 1000, burst: 1000 } } });
    limiter.tryAcquire({ tokens: 1000 });
    const before = limiter.stats();
    expect(() => limiter.acquireSync({ tokens: 100 }, { timeoutMs: 50 })).toThrow(WaitTimeoutError);
    expect(limiter.reserve({ tokens: 10 }).ok).toBe(true); // requests queue: 1 cost unit waiting
    const afterOne = limiter.stats();
    expect(() => limiter.acquireSync({ tokens: 10 })).toThrow(QueueFullError);
    try { limiter.acquireSync({ tokens: 10 }); } catch (e) { expect((e as QueueFullError).limit).toBe('requests'); }
    expect(limiter.stats().limits).toEqual(afterOne.limits);
    expect(afterOne.limits.tokens!.grantedCost).toBe(before.limits.tokens!.grantedCost + 10);
  });

  it('cancelling the latest reservation restores every limit exactly; a middle one leaves holes in all alike', () => {
    const { limiter } = fixture(llm);
    limiter.tryAcquire({ requests: 2, tokens: 1000 });
    const a = limiter.reserve({ tokens: 100 });
    const b = limiter.reserve({ tokens: 100 });
    const afterA = { req: 0, tok: 0 };
    b.cancel();
    const c = limiter.reserve({ tokens: 100 });
    expect(c.delayMs).toBeCloseTo(b.delayMs === 0 ? 200 : 200, 6); // c takes b's slot back
    expect(c.delayMs).toBeCloseTo(200, 6);
    a.cancel(); // not the latest: hole
    const d = limiter.reserve({ tokens: 100 });
    expect(d.delayMs).toBeCloseTo(300, 6);
    expect(limiter.stats().limits.requests!.grantedCost).toBe(2 + 3 - afterA.req);
    expect(limiter.stats().limits.tokens!.grantedCost).toBe(1000 + 300);
  });

  it('costs: a number needs one limit; names must exist; each cost within its burst', () => {
    const { limiter } = fixture(llm);
    expect(() => limiter.tryAcquire(1)).toThrow(InvalidOptionError);
    expect(() => limiter.tryAcquire({ token: 1 })).toThrow(/costs named after the limits/);
    expect(() => limiter.tryAcquire({ tokens: 1001 })).toThrow(CostTooLargeError);
    try { limiter.tryAcquire({ tokens: 1001 }); } catch (e) { expect((e as CostTooLargeError).field).toBe('cost.tokens'); }
    expect(() => limiter.tryAcquire({ requests: 0, tokens: 0 })).toThrow(/at least 1/);
    expect(limiter.stats().limits.tokens!.grantedCost).toBe(0);
  });

  it('defaultCost applies to limits a request does not name', () => {
    const { limiter } = fixture({ limits: { requests: { rate: 10, burst: 5 }, tokens: { rate: 1000, burst: 1000, defaultCost: 0 } } });
    limiter.tryAcquire({ tokens: 10 });
    limiter.tryAcquire({ requests: 1 });
    expect(limiter.stats().limits.requests!.grantedCost).toBe(2);
    expect(limiter.stats().limits.tokens!.grantedCost).toBe(10);
  });

  it('options: rate and limits are exclusive; per-limit fields are named in errors', () => {
    expect(() => new RateLimiter({ rate: 1, limits: { a: { rate: 1 } } })).toThrow(/rate must be absent/);
    expect(() => new RateLimiter({ limits: { a: { rate: 0 } } })).toThrow(/limits\.a\.rate/);
    expect(() => new RateLimiter({ limits: { a: { rate: 1, burst: 0 } } })).toThrow(/limits\.a\.burst/);
    expect(() => new RateLimiter({ limits: {} })).toThrow(/1\.\.16 named limits/);
    expect(() => new RateLimiter({ limits: { 'bad name': { rate: 1 } } })).toThrow(/limit names/);
    expect(() => new RateLimiter({ rate: 1, concurrency: 0 })).toThrow(/concurrency/);
    expect(() => new RateLimiter({ rate: 1, leaseMs: 0 })).toThrow(/leaseMs/);
  });

  it('a backoff pauses every limit, and grants resume one at a time', () => {
    const { limiter, advance } = fixture({ limits: { requests: { rate: 10, burst: 5 }, tokens: { rate: 1000, burst: 1000 } } });
    limiter.backoff({ retryAfterMs: 1000 });
    advance(999);
    expect(limiter.tryAcquire({ tokens: 1 })).toBe(false);
    advance(1.000001); // the first grant after a pause conforms 1 ns after its end
    expect(limiter.tryAcquire({ tokens: 1 })).toBe(true);
    expect(limiter.tryAcquire({ tokens: 1 })).toBe(false); // no burst after the pause
    advance(100);
    expect(limiter.tryAcquire({ tokens: 1 })).toBe(true);
  });
});

describe('settling the actual cost', () => {
  it('down, as the latest grant: the unused part is refunded', () => {
    const { limiter } = fixture(llm);
    const grant = limiter.acquireSync({ tokens: 800 });
    const result = grant.settle({ tokens: 300 });
    expect(result.refunded).toEqual({ requests: 0, tokens: 500 });
    expect(result.forfeited).toEqual({ requests: 0, tokens: 0 });
    expect(limiter.stats().limits.tokens!.available).toBe(700);
  });

  it('down, behind later grants: forfeited, never over-granted', () => {
    const { limiter } = fixture(llm);
    const grant = limiter.acquireSync({ tokens: 800 });
    limiter.tryAcquire({ tokens: 200 });
    const result = grant.settle({ tokens: 300 });
    expect(result.refunded.tokens).toBe(0);
    expect(result.forfeited.tokens).toBe(500);
    expect(limiter.stats().limits.tokens!.available).toBe(0);
  });

  it('up: the extra is charged now and delays later grants', () => {
    const { limiter } = fixture(llm);
    const grant = limiter.acquireSync({ tokens: 500 });
    expect(grant.settle({ tokens: 900 }).charged.tokens).toBe(400);
    expect(limiter.stats().limits.tokens!.available).toBe(100);
    expect(limiter.stats().limits.tokens!.grantedCost).toBe(900);
    expect(limiter.reserve({ tokens: 200 }).delayMs).toBeCloseTo(100, 6);
  });

  it('one limit: settle takes a number; a second settle is an error', () => {
    const { limiter } = fixture({ rate: 10, burst: 10 });
    const grant = limiter.acquireSync(5);
    expect(grant.settle(2).refunded).toEqual({ default: 3 });
    expect(() => grant.settle(2)).toThrow(GrantStateError);
    expect(() => limiter.acquireSync(1).settle(-1)).toThrow(InvalidOptionError);
  });
});

describe('concurrency permits', () => {
  it('at most `concurrency` grants hold permits; release gives one back; release is idempotent', () => {
    const { limiter } = fixture({ rate: 1000, burst: 10, concurrency: 2 });
    const a = limiter.acquireSync();
    const b = limiter.acquireSync();
    expect(limiter.stats().inFlight).toBe(2);
    expect(() => limiter.acquireSync(1, { timeoutMs: 0 })).toThrow(WaitTimeoutError);
    a.release();
    a.release();
    expect(limiter.stats().inFlight).toBe(1);
    const c = limiter.acquireSync(1, { timeoutMs: 0 });
    expect(limiter.stats().inFlight).toBe(2);
    b.release();
    c.release();
    expect(limiter.stats().inFlight).toBe(0);
  });

  it('a permit held past its lease is taken over by the next request; the stale release is ignored', () => {
    const { limiter, advance } = fixture({ rate: 1000, burst: 10, concurrency: 1, leaseMs: 1000 });
    const stuck = limiter.acquireSync();
    advance(999);
    expect(() => limiter.acquireSync(1, { timeoutMs: 0 })).toThrow(WaitTimeoutError);
    advance(3);
    const next = limiter.acquireSync(1, { timeoutMs: 0 });
    expect(limiter.stats().reclaimed).toBe(1);
    stuck.release(); // stale: must not free the permit `next` holds
    expect(limiter.stats().inFlight).toBe(1);
    expect(() => limiter.acquireSync(1, { timeoutMs: 0 })).toThrow(WaitTimeoutError);
    next.release();
    expect(limiter.stats().inFlight).toBe(0);
  });

  it('run() holds a permit for exactly the duration of the call, even when it throws', async () => {
    const { limiter } = fixture({ rate: 1000, burst: 10, concurrency: 1 });
    let during = -1;
    await limiter.run(async () => { during = limiter.stats().inFlight; });
    expect(during).toBe(1);
    expect(limiter.stats().inFlight).toBe(0);
    await expect(limiter.run(async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    expect(limiter.stats().inFlight).toBe(0);
  });
});

describe('queue status', () => {
  beforeEach(() => { vi.useFakeTimers(); vi.setSystemTime(0); });
  afterEach(() => { vi.useRealTimers(); });

  it('a waiting request reports its position and ETA, then "granted"', async () => {
    const limiter = new RateLimiter({ rate: 10, burst: 1, clock: () => BigInt(Date.now()) * MS });
    limiter.tryAcquire();
    const statuses: QueueStatus[] = [];
    const waits = [1, 2, 3].map(() => limiter.acquire(1, { onQueued: (s) => statuses.push(s) }));
    expect(statuses.map((s) => s.position)).toEqual([1, 2, 3]);
    expect(statuses.map((s) => s.etaMs)).toEqual([100, 200, 300]);
    expect(limiter.stats().waiting).toBe(3);
    await vi.advanceTimersByTimeAsync(100);
    await waits[0];
    expect(statuses[0]!.state).toBe('granted');
    expect(statuses[0]!.position).toBe(0);
    expect(statuses.slice(1).map((s) => s.position)).toEqual([1, 2]);
    await vi.advanceTimersByTimeAsync(200);
    await Promise.all(waits);
    expect(limiter.stats().waiting).toBe(0);
  });

  it('a cancelled wait reports "cancelled"', async () => {
    const limiter = new RateLimiter({ rate: 10, burst: 1, clock: () => BigInt(Date.now()) * MS });
    limiter.tryAcquire();
    const controller = new AbortController();
    let status: QueueStatus | undefined;
    const wait = limiter.acquire(1, { signal: controller.signal, onQueued: (s) => { status = s; } });
    controller.abort(new Error('user left'));
    await expect(wait).rejects.toThrow('user left');
    expect(status!.state).toBe('cancelled');
    expect(limiter.stats().cancelled).toBe(1);
  });
});
