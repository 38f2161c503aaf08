/**
 * Several limits under random operations (immediate tries, reservations,
 * cancels, backoffs), on an injected clock: every
 * limit keeps the GCRA window invariant over the grants that stand, with
 * their costs after refunds, checked with exact bigint arithmetic; and every
 * grant is all-or-nothing (a refused request moves no limit's counter).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RateLimiter, type Reservation } from '../../src/index.js';

const MS = 1_000_000n;

interface Standing {
  due: bigint;
  costs: [number, number];
  cancelled: boolean;
}

/** Worst excess of Σcost·T over burst·T + span, for grants sorted by due time; ≤ 0 means the invariant holds. */
function worstExcess(grants: { due: bigint; cost: number }[], burst: number, intervalNs: bigint): bigint {
  const sorted = grants.filter((g) => g.cost > 0).sort((a, b) => (a.due < b.due ? -1 : a.due > b.due ? 1 : 0));
  let worst = -1n;
  for (let i = 0; i < sorted.length; i++) {
    let cost = 0n;
    for (let j = i; j < sorted.length; j++) {
      cost += BigInt(sorted[j]!.cost);
      const excess = cost * intervalNs - BigInt(burst) * intervalNs - (sorted[j]!.due - sorted[i]!.due);
      if (excess > worst) worst = excess;
    }
  }
  return worst;
}

const op = fc.oneof(
  fc.record({ kind: fc.constant('try' as const), gapMs: fc.integer({ min: 0, max: 300 }), tokens: fc.integer({ min: 0, max: 50 }) }),
  fc.record({ kind: fc.constant('reserve' as const), gapMs: fc.integer({ min: 0, max: 300 }), tokens: fc.integer({ min: 0, max: 50 }) }),
  fc.record({ kind: fc.constant('cancel' as const), gapMs: fc.integer({ min: 0, max: 50 }), pick: fc.nat() }),
  fc.record({ kind: fc.constant('backoff' as const), gapMs: fc.integer({ min: 0, max: 100 }), retryMs: fc.integer({ min: 0, max: 500 }) }),
);

describe('several limits: properties', () => {
  it('each limit keeps its window invariant; refusals leave no trace', () => {
    fc.assert(fc.property(
      fc.record({
        reqRate: fc.integer({ min: 1, max: 20 }), reqBurst: fc.integer({ min: 1, max: 4 }),
        tokRate: fc.integer({ min: 50, max: 500 }), tokBurst: fc.integer({ min: 50, max: 200 }),
        ops: fc.array(op, { minLength: 1, maxLength: 40 }),
      }),
      ({ reqRate, reqBurst, tokRate, tokBurst, ops }) => {
        let t = 10_000n * MS;
        const limiter = new RateLimiter({
          limits: { requests: { rate: reqRate, burst: reqBurst }, tokens: { rate: tokRate, burst: tokBurst } },
          clock: () => t,
        });
        const standing: Standing[] = [];
        const handles: { standing: Standing; reservation?: Reservation }[] = [];
        for (const o of ops) {
          t += BigInt(o.gapMs) * MS;
          if (o.kind === 'try' || o.kind === 'reserve') {
            if (o.tokens === 0 && o.kind === 'try') continue;
            const before = limiter.stats().limits;
            const costs: [number, number] = [1, o.tokens];
            if (o.kind === 'try') {
              if (limiter.tryAcquire({ requests: 1, tokens: o.tokens })) {
                const s = { due: t, costs, cancelled: false };
                standing.push(s);
                handles.push({ standing: s });
              } else {
                expect(limiter.stats().limits).toEqual(before); // all or nothing
              }
            } else {
              const reservation = limiter.reserve({ requests: 1, tokens: o.tokens });
              const s = { due: t + BigInt(Math.round(reservation.delayMs * 1e6)), costs, cancelled: false };
              standing.push(s);
              handles.push({ standing: s, reservation });
            }
          } else if (o.kind === 'cancel' && handles.length > 0) {
            const h = handles[o.pick % handles.length]!;
            if (h.reservation && h.reservation.delayMs > 0) {
              h.reservation.cancel();
              h.standing.cancelled = true;
            }
          } else if (o.kind === 'backoff') {
            const start = t;
            limiter.backoff({ retryAfterMs: o.retryMs });
            // Every standing reservation not yet due moves past the pause end;
            // re-read their live delays.
            for (const h of handles) {
              if (h.reservation && !h.standing.cancelled && h.standing.due > start) {
                h.standing.due = t + BigInt(Math.round(h.reservation.delayMs * 1e6));
              }
            }
          }
        }
        const live = standing.filter((s) => !s.cancelled);
        const reqT = BigInt(Math.ceil(1e9 / reqRate));
        const tokT = BigInt(Math.ceil(1e9 / tokRate));
        // delayMs is a float of ms: allow 1 ns of rounding per grant pair.
        expect(worstExcess(live.map((s) => ({ due: s.due, cost: s.costs[0] })), reqBurst, reqT)).toBeLessThanOrEqual(1n);
        expect(worstExcess(live.map((s) => ({ due: s.due, cost: s.costs[1] })), tokBurst, tokT)).toBeLessThanOrEqual(1n);
      },
    ), { numRuns: 300 });
  });

  it('settle down refunds exactly what a smaller request would have taken, or nothing', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 200 }), fc.integer({ min: 0, max: 200 }), fc.boolean(),
      (estimate, actual, someoneAfter) => {
        let t = 5_000n * MS;
        const make = () => new RateLimiter({
          limits: { requests: { rate: 10, burst: 5 }, tokens: { rate: 100, burst: 400 } }, clock: () => t,
        });
        const limiter = make();
        const grant = limiter.acquireSync({ tokens: estimate });
        if (someoneAfter) limiter.tryAcquire({ tokens: 1 });
        const result = grant.settle({ tokens: actual });
        const reference = make();
        reference.acquireSync({ tokens: someoneAfter || actual >= estimate ? Math.max(estimate, actual) : actual });
        if (someoneAfter) reference.tryAcquire({ tokens: 1 });
        expect(limiter.stats().limits.tokens!.available).toBe(reference.stats().limits.tokens!.available);
        expect(result.refunded.tokens! + result.forfeited.tokens!).toBe(Math.max(0, estimate - actual));
        expect(result.charged.tokens).toBe(Math.max(0, actual - estimate));
      },
    ), { numRuns: 300 });
  });
});
