/**
 * Delivery-time strictness (state.ts): whatever the interleaving of
 * immediate grants, waiters that wake late or early, cancels, refunds,
 * charges and backoffs, the instants at which requests are handed out form
 * one GCRA-conforming sequence:
 *
 *     for every delivered i ≤ j (by instant):  Σ cost(i..j)·T ≤ burst·T + (t_j − t_i)
 *
 * (on real time; a backoff only removes instants). Checked with exact
 * bigint arithmetic on an injected clock: `now` is an argument of every call.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createShared } from '../../src/layout.js';
import { LimiterState, Outcome, type Placed } from '../../src/state.js';

const T = 1_000n; // ns per cost unit
const NUM_RUNS = 400;

function stateOf(limits: { burst: number }[]): LimiterState {
  const config = {
    limits: limits.map((l, i) => ({
      name: `l${i}`, burst: BigInt(l.burst), maxIntervalNs: T, floorIntervalNs: T,
      maxQueue: -1n, defaultCost: 1n, rate: 1e6,
    })),
    permitCount: 0, maxWaitNs: -1n, createdAtNs: 0n, decreasePpm: 0n, recoveryPpm: 0n, leaseNs: 1_000_000n,
  };
  return new LimiterState(createShared(config), config);
}

interface Delivered { at: bigint; costs: number[] }

/** Worst excess of Σcost·T − (burst·T + span) over all i ≤ j, per limit; ≤ 0 is conforming. */
function worstExcess(deliveries: Delivered[], limit: number, burst: number): bigint {
  const sorted = [...deliveries].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  // Excess(i..j) = (P_{j+1} − P_i)·T − burst·T − (t_j − t_i); track min over i of (P_i·T − t_i).
  let prefix = 0n;
  let minRight: bigint | null = null;
  let worst = -(1n << 62n);
  for (const d of sorted) {
    const right = prefix * T - d.at;
    if (minRight === null || right < minRight) minRight = right;
    prefix += BigInt(d.costs[limit]!);
    const excess = prefix * T - d.at - BigInt(burst) * T - minRight;
    if (excess > worst) worst = excess;
  }
  return worst;
}

type Op =
  | { kind: 'try'; cost: number }
  | { kind: 'place'; cost: number }
  | { kind: 'wake'; which: number; lateNs: number }
  | { kind: 'cancel'; which: number }
  | { kind: 'refund'; which: number }
  | { kind: 'charge'; which: number; extra: number }
  | { kind: 'backoff'; ns: number }
  | { kind: 'reserve'; cost: number }
  | { kind: 'step'; ns: number };

const op = (maxCost: number): fc.Arbitrary<Op> => fc.oneof(
  fc.record({ kind: fc.constant('try' as const), cost: fc.integer({ min: 1, max: maxCost }) }),
  fc.record({ kind: fc.constant('place' as const), cost: fc.integer({ min: 1, max: maxCost }) }),
  fc.record({ kind: fc.constant('wake' as const), which: fc.nat(), lateNs: fc.integer({ min: -2000, max: 5000 }) }),
  fc.record({ kind: fc.constant('wake' as const), which: fc.nat(), lateNs: fc.integer({ min: 0, max: 30 }) }),
  fc.record({ kind: fc.constant('cancel' as const), which: fc.nat() }),
  fc.record({ kind: fc.constant('refund' as const), which: fc.nat() }),
  fc.record({ kind: fc.constant('charge' as const), which: fc.nat(), extra: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ kind: fc.constant('backoff' as const), ns: fc.integer({ min: 0, max: 4000 }) }),
  fc.record({ kind: fc.constant('reserve' as const), cost: fc.integer({ min: 1, max: maxCost }) }),
  fc.record({ kind: fc.constant('step' as const), ns: fc.integer({ min: 0, max: 3000 }) }),
);

/**
 * Runs a sequence; a waiter's "wake" is an attempt to deliver at some time
 * near (before or after) what the limiter last told it. Returns what was
 * delivered, with the costs that finally count (after refunds and charges).
 */
function replay(state: LimiterState, ops: Op[], limitCount: number): Delivered[] {
  let now = 0n;
  const deliveries: Delivered[] = [];
  const waiting: { placed: Placed; wakeAt: bigint }[] = [];
  const granted: { placed: Placed; record: Delivered; settled: boolean }[] = [];
  const costsOf = (cost: number): number[] => Array.from({ length: limitCount }, (_, i) => (i === 0 ? cost : Math.max(1, cost - i)));
  const deliver = (placed: Placed, at: bigint): void => {
    const record = { at, costs: [...placed.costs] };
    deliveries.push(record);
    granted.push({ placed, record, settled: false });
  };
  for (const o of ops) {
    switch (o.kind) {
      case 'step': now += BigInt(o.ns); break;
      case 'try': {
        const costs = costsOf(o.cost);
        const placed = state.takeNow(now, costs);
        if (placed !== null) deliver(placed, now);
        break;
      }
      case 'place': {
        const placed = state.place(now, costsOf(o.cost), -1n);
        waiting.push({ placed, wakeAt: now + (placed.delayNs > 0n ? placed.delayNs : 0n) });
        break;
      }
      case 'reserve': {
        const placed = state.reserve(now, costsOf(o.cost), -1n);
        // The caller acts exactly when told (its own lateness is its business).
        if (placed.outcome === Outcome.Granted || placed.outcome === Outcome.Delayed) {
          const at = now + (placed.delayNs > 0n ? placed.delayNs : 0n);
          deliveries.push({ at, costs: [...placed.costs] });
        }
        break;
      }
      case 'wake': {
        if (waiting.length === 0) break;
        const w = waiting[o.which % waiting.length]!;
        const at = w.wakeAt + BigInt(o.lateNs);
        if (at > now) now = at; // time never goes back; an early wake happens "now"
        const remaining = state.deliver(now, w.placed);
        if (remaining === 0n) {
          deliver(w.placed, now);
          waiting.splice(waiting.indexOf(w), 1);
        } else {
          expect(remaining).toBeGreaterThan(0n);
          w.wakeAt = now + remaining;
        }
        break;
      }
      case 'cancel': {
        if (waiting.length === 0) break;
        const w = waiting[o.which % waiting.length]!;
        state.cancel(now, w.placed);
        waiting.splice(waiting.indexOf(w), 1);
        break;
      }
      case 'refund':
      case 'charge': {
        const open = granted.filter((g) => !g.settled);
        if (open.length === 0) break;
        const g = open[o.which % open.length]!;
        g.settled = true;
        const actual = g.placed.costs.map((c) => (o.kind === 'refund' ? Math.max(0, c - 1) : c + o.extra));
        const { charged, refunded } = state.settle(now, g.placed, actual);
        // What counts: the refunded part never happened; a charge is a new
        // delivery of the extra at the instant it is charged.
        g.record.costs = g.record.costs.map((c, i) => c - refunded[i]!);
        if (charged.some((x) => x > 0)) deliveries.push({ at: now, costs: [...charged] });
        break;
      }
      case 'backoff': state.backoff(now, now + BigInt(o.ns)); break;
    }
  }
  return deliveries;
}

describe('delivery-time strictness (state.ts, injected time)', () => {
  it.each([{ burst: 1 }, { burst: 3 }])('one limit, burst $burst: delivered instants conform, however late the waiters wake', ({ burst }) => {
    fc.assert(fc.property(fc.array(op(burst), { minLength: 1, maxLength: 120 }), (ops) => {
      const state = stateOf([{ burst }]);
      const deliveries = replay(state, ops, 1);
      // A charge may overdraw on purpose (debt): the sequence conforms once
      // the charged debt is counted as cost delivered at its instant, but
      // its extra itself may exceed burst; only check runs without charges.
      if (ops.some((o) => o.kind === 'charge')) return;
      expect(worstExcess(deliveries, 0, burst)).toBeLessThanOrEqual(0n);
    }), { numRuns: NUM_RUNS });
  });

  it('one limit: after a charge, later deliveries still wait for the debt', () => {
    fc.assert(fc.property(fc.array(op(2), { minLength: 1, maxLength: 120 }), (ops) => {
      const state = stateOf([{ burst: 2 }]);
      const deliveries = replay(state, ops, 1);
      // Charges are deliveries of cost "extra" that may come in excess of
      // burst themselves; the excess over all windows is at most that debt.
      const debt = BigInt(ops.filter((o) => o.kind === 'charge').reduce((s, o) => s + (o.kind === 'charge' ? o.extra : 0), 0));
      expect(worstExcess(deliveries, 0, 2)).toBeLessThanOrEqual(debt * T);
    }), { numRuns: NUM_RUNS });
  });

  it('two limits: each limit\'s delivered instants conform', () => {
    fc.assert(fc.property(fc.array(op(3), { minLength: 1, maxLength: 100 }), (ops) => {
      if (ops.some((o) => o.kind === 'charge')) return;
      const state = stateOf([{ burst: 3 }, { burst: 2 }]);
      const deliveries = replay(state, ops, 2);
      expect(worstExcess(deliveries, 0, 3)).toBeLessThanOrEqual(0n);
      expect(worstExcess(deliveries, 1, 2)).toBeLessThanOrEqual(0n);
    }), { numRuns: NUM_RUNS });
  });
});

describe('a late waiter is never delivered on top of what was delivered meanwhile', () => {
  it('immediate grant while a waiter sleeps past its slot: the waiter waits 1/rate after it', () => {
    const state = stateOf([{ burst: 1 }]);
    expect(state.tryTakeSingle(0n, 1)).toBe(true); // delivered at 0
    const w = state.place(0n, [1], -1n); // due at 1000
    expect(w.slot).toBe(1000n);
    // The waiter's thread is blocked until 2500; meanwhile a tryAcquire at
    // 2100 finds nothing delivered since 0 and the queue's place long past.
    expect(state.tryTakeSingle(2100n, 1)).toBe(true);
    // The late waiter must not go out at 2500, 400 ns after that grant.
    expect(state.deliver(2500n, w)).toBe(600n);
    // It holds its place: nobody passes it meanwhile.
    expect(state.tryTakeSingle(2900n, 1)).toBe(false);
    expect(state.deliver(3100n, w)).toBe(0n);
  });

  it('two waiters, the first wakes late: it follows the second by 1/rate (re-ordered, never closer)', () => {
    const state = stateOf([{ burst: 1 }]);
    state.tryTakeSingle(0n, 1);
    const a = state.place(0n, [1], -1n); // 1000
    const b = state.place(0n, [1], -1n); // 2000
    expect(state.deliver(2000n, b)).toBe(0n); // b on time
    expect(state.deliver(2300n, a)).toBe(700n); // a late: not beside b
    expect(state.deliver(3000n, a)).toBe(0n);
  });

  it('a waiter due before a backoff but woken after it waits for the pause (no grant inside a pause)', () => {
    const state = stateOf([{ burst: 1 }]);
    state.tryTakeSingle(0n, 1);
    const a = state.place(0n, [1], -1n); // 1000
    state.backoff(1500n, 10_000n); // a was due at 1000 but has not woken
    const remaining = state.deliver(1600n, a);
    expect(remaining).toBeGreaterThan(0n);
    expect(1600n + remaining).toBeGreaterThanOrEqual(10_000n);
  });
});
