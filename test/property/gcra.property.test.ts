/**
 * Property tests of the limiter's schedule against models written here,
 * independently of src/: a token bucket in integer ns (level in ns of credit,
 * T = ceil(1e9/rate) ns per cost unit), and the GCRA window invariant
 *
 *     for every granted i ≤ j (by time):  Σ cost(i..j)·T ≤ burst·T + (t_j − t_i)
 *
 * checked with exact bigint arithmetic. Every limiter runs on an injected
 * clock; nothing reads real time.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RateLimiter, type Reservation } from '../../src/index.js';

const NUM_RUNS = 300;

/** Emission interval, ns per cost unit: rounded up, never faster than asked. */
const intervalOf = (rate: number): bigint => BigInt(Math.ceil(1e9 / rate));

const min = (a: bigint, b: bigint): bigint => (a < b ? a : b);
const max = (a: bigint, b: bigint): bigint => (a > b ? a : b);

/**
 * Reference token bucket. `level` is credit in ns (T ns = one cost unit); it
 * starts full (burst·T), refills 1 ns per ns up to burst·T, and may go
 * negative (debt) only through `reserve`, as in x/time/rate.
 */
class TokenBucket {
  readonly cap: bigint;
  level: bigint;
  last: bigint;
  constructor(readonly T: bigint, burst: number, t0: bigint) {
    this.cap = BigInt(burst) * T;
    this.level = this.cap;
    this.last = t0;
  }
  private advance(t: bigint): void {
    if (t < this.last) throw new Error('model time went backwards');
    this.level = min(this.cap, this.level + (t - this.last));
    this.last = t;
  }
  tryTake(t: bigint, cost: number): boolean {
    this.advance(t);
    const need = BigInt(cost) * this.T;
    if (this.level < need) return false;
    this.level -= need;
    return true;
  }
  /** Whole cost units available at t. */
  available(t: bigint): number {
    this.advance(t);
    return this.level <= 0n ? 0 : Number(this.level / this.T);
  }
  /** The delay (ns) a reservation of `cost` at t would get. */
  delayFor(t: bigint, cost: number): bigint {
    this.advance(t);
    const after = this.level - BigInt(cost) * this.T;
    return after >= 0n ? 0n : -after;
  }
  /** Takes `cost` into debt; returns the delay (ns) until the debt is paid. */
  reserve(t: bigint, cost: number): bigint {
    const delay = this.delayFor(t, cost);
    this.level -= BigInt(cost) * this.T;
    return delay;
  }
  /** Gives `cost` back (cancel of the latest reservation). */
  giveBack(cost: number): void {
    this.level += BigInt(cost) * this.T;
  }
}

interface Granted {
  /** When the grant takes effect, ns. */
  t: bigint;
  cost: number;
}

/** The first window [t_i, t_j] whose granted cost exceeds burst + (t_j − t_i)/T, or null. */
function windowViolation(grants: readonly Granted[], burst: number, T: bigint): string | null {
  const g = [...grants].sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : 0));
  const tolerance = BigInt(burst) * T;
  for (let i = 0; i < g.length; i++) {
    let sum = 0n;
    for (let j = i; j < g.length; j++) {
      sum += BigInt(g[j]!.cost);
      if (sum * T > tolerance + (g[j]!.t - g[i]!.t)) {
        return `cost ${sum} granted in [${g[i]!.t}, ${g[j]!.t}] (${g[j]!.t - g[i]!.t} ns) > burst ${burst} + span/T (T = ${T})`;
      }
    }
  }
  return null;
}

/** ms (float) from a reservation → ns, exact for the delays generated here (< 2^53 / 1e6 ms). */
const msToNs = (ms: number): bigint => BigInt(Math.round(ms * 1e6));

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

/** Rates over the whole accepted range, with the awkward ones (non-integer 1e9/rate) favoured. */
const anyRate = fc.oneof(
  fc.constantFrom(1, 3, 7, 10, 0.1, 1e9, 1e-6, 1000 / 3, 500 / 60, 999_999_937),
  fc.integer({ min: 1, max: 1_000_000 }),
  fc.double({ min: 1e-6, max: 1e9, noNaN: true, noDefaultInfinity: true }),
);
/** Rates whose delays stay exactly representable as float ms (T ≤ 1e11 ns). */
const moderateRate = fc.oneof(
  fc.constantFrom(1, 3, 7, 10, 0.1, 1e9, 1000 / 3, 500 / 60),
  fc.integer({ min: 1, max: 1_000_000 }),
  fc.double({ min: 0.01, max: 1e9, noNaN: true, noDefaultInfinity: true }),
);
const anyBurst = fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 1000 }));

/** Gaps between requests, ns, scaled to T, with exact multiples of T and ±1 ns around them. */
function gapArb(T: bigint): fc.Arbitrary<bigint> {
  return fc.oneof(
    fc.constant(0n),
    fc.bigInt(0n, 2n * T),
    fc
      .tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: -1, max: 1 }))
      .map(([k, d]) => max(0n, BigInt(k) * T + BigInt(d))),
    fc.bigInt(0n, 30n * T),
  );
}

const costArb = (burst: number) => fc.oneof(fc.constant(1), fc.integer({ min: 1, max: burst }));

const startArb = fc.bigInt(0n, 10n ** 15n);

// ---------------------------------------------------------------------------
// 1. tryAcquire = reference token bucket; window invariant
// ---------------------------------------------------------------------------

const tryScenario = fc
  .tuple(anyRate, anyBurst)
  .chain(([rate, burst]) => {
    const T = intervalOf(rate);
    return fc.record({
      rate: fc.constant(rate),
      burst: fc.constant(burst),
      start: startArb,
      steps: fc.array(fc.record({ gap: gapArb(T), cost: costArb(burst) }), { minLength: 1, maxLength: 80 }),
    });
  });

describe('tryAcquire against a reference token bucket', () => {
  it('makes exactly the decisions of the integer-ns token bucket, and stats().available agrees', () => {
    fc.assert(
      fc.property(tryScenario, ({ rate, burst, start, steps }) => {
        const T = intervalOf(rate);
        let t = start;
        const limiter = new RateLimiter({ rate, burst, clock: () => t });
        const model = new TokenBucket(T, burst, start);
        for (const [k, step] of steps.entries()) {
          t += step.gap;
          expect({ k, t, available: limiter.stats().available }).toEqual({ k, t, available: model.available(t) });
          const got = limiter.tryAcquire(step.cost);
          const want = model.tryTake(t, step.cost);
          expect({ k, t, cost: step.cost, granted: got }).toEqual({ k, t, cost: step.cost, granted: want });
        }
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('never grants more than burst + span/T in any window [t_i, t_j] (exact integer check)', () => {
    fc.assert(
      fc.property(tryScenario, ({ rate, burst, start, steps }) => {
        const T = intervalOf(rate);
        let t = start;
        const limiter = new RateLimiter({ rate, burst, clock: () => t });
        const grants: Granted[] = [];
        for (const step of steps) {
          t += step.gap;
          // Hammer: try the same instant until refused, so windows are saturated.
          while (limiter.tryAcquire(step.cost)) grants.push({ t, cost: step.cost });
        }
        expect(windowViolation(grants, burst, T)).toBeNull();
        expect(limiter.stats().grantedCost).toBe(grants.reduce((s, g) => s + g.cost, 0));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('the window check itself catches an over-grant (sanity of the oracle)', () => {
    const T = 100n;
    expect(windowViolation([{ t: 0n, cost: 1 }, { t: 99n, cost: 1 }], 1, T)).not.toBeNull();
    expect(windowViolation([{ t: 0n, cost: 1 }, { t: 100n, cost: 1 }], 1, T)).toBeNull();
    expect(windowViolation([{ t: 0n, cost: 3 }, { t: 199n, cost: 2 }], 3, T)).not.toBeNull();
    expect(windowViolation([{ t: 0n, cost: 3 }, { t: 200n, cost: 2 }], 3, T)).toBeNull();
  });
});

// ---------------------------------------------------------------------------
// 2. reservations with cancels (and tryAcquire), against the debt model
// ---------------------------------------------------------------------------

type ResOp =
  | { kind: 'reserve'; gap: bigint; cost: number; timeoutMs: number | undefined }
  | { kind: 'try'; gap: bigint; cost: number }
  | { kind: 'cancel'; gap: bigint; pick: number };

function resOpArb(T: bigint, burst: number): fc.Arbitrary<ResOp> {
  // Timeouts in whole ms (exact in ns), around the scale of T.
  const maxTimeoutMs = Math.max(1, Math.ceil(Number(5n * T) / 1e6));
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('reserve' as const), gap: gapArb(T), cost: costArb(burst), timeoutMs: fc.option(fc.integer({ min: 0, max: maxTimeoutMs }), { nil: undefined, freq: 3 }) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('try' as const), gap: gapArb(T), cost: costArb(burst) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('cancel' as const), gap: gapArb(T), pick: fc.nat() }) },
  );
}

const resScenario = fc
  .tuple(moderateRate, fc.integer({ min: 1, max: 6 }))
  .chain(([rate, burst]) => {
    const T = intervalOf(rate);
    return fc.record({
      rate: fc.constant(rate),
      burst: fc.constant(burst),
      start: startArb,
      ops: fc.array(resOpArb(T, burst), { minLength: 1, maxLength: 60 }),
    });
  });

interface LiveRes {
  id: number;
  res: Reservation;
  cost: number;
  /** Due time by the model, ns. */
  due: bigint;
  cancelled: boolean;
}

describe('reservations and cancels', () => {
  it('delays, refusals and cancels match the x/time/rate debt model; due times of kept reservations satisfy the window invariant', () => {
    fc.assert(
      fc.property(resScenario, ({ rate, burst, start, ops }) => {
        const T = intervalOf(rate);
        let t = start;
        const limiter = new RateLimiter({ rate, burst, clock: () => t });
        const model = new TokenBucket(T, burst, start);
        const all: LiveRes[] = [];
        const tryGrants: Granted[] = [];
        /** Placements (reservations and tryAcquire grants) in schedule order; cancel of the top gives back. */
        const stack: number[] = [];
        let nextId = 0;
        for (const [k, op] of ops.entries()) {
          t += op.gap;
          if (op.kind === 'try') {
            const want = model.tryTake(t, op.cost);
            expect({ k, granted: limiter.tryAcquire(op.cost) }).toEqual({ k, granted: want });
            if (want) {
              tryGrants.push({ t, cost: op.cost });
              stack.push(nextId++);
            }
          } else if (op.kind === 'reserve') {
            const wouldWait = model.delayFor(t, op.cost);
            const refuse = op.timeoutMs !== undefined && wouldWait > BigInt(op.timeoutMs) * 1_000_000n;
            const res = op.timeoutMs === undefined ? limiter.reserve(op.cost) : limiter.reserve(op.cost, { timeoutMs: op.timeoutMs });
            if (refuse) {
              expect({ k, ok: res.ok, delayMs: res.delayMs }).toEqual({ k, ok: false, delayMs: Infinity });
              continue;
            }
            const delay = model.reserve(t, op.cost);
            expect({ k, ok: res.ok, delayNs: msToNs(res.delayMs) }).toEqual({ k, ok: true, delayNs: delay });
            const id = nextId++;
            all.push({ id, res, cost: op.cost, due: t + delay, cancelled: false });
            stack.push(id);
          } else {
            if (all.length === 0) continue;
            const r = all[op.pick % all.length]!;
            const due = r.due <= t;
            r.res.cancel();
            if (r.cancelled || due) continue; // no-op: double cancel, or already due
            r.cancelled = true;
            if (stack[stack.length - 1] === r.id) {
              stack.pop();
              model.giveBack(r.cost);
            }
          }
          // Every kept reservation still has its model due time (cancels
          // never move other reservations, earlier or later).
          for (const r of all) {
            if (r.cancelled) continue;
            const left = r.due > t ? r.due - t : 0n;
            expect({ k, id: r.id, delayNs: msToNs(r.res.delayMs) }).toEqual({ k, id: r.id, delayNs: left });
          }
        }
        const kept = all.filter((r) => !r.cancelled).map((r) => ({ t: r.due, cost: r.cost }));
        expect(windowViolation([...kept, ...tryGrants], burst, T)).toBeNull();
      }),
      { numRuns: NUM_RUNS },
    );
  });
});

// ---------------------------------------------------------------------------
// 3. backoffs interleaved with tryAcquire, reservations and cancels
// ---------------------------------------------------------------------------

type PauseOp =
  | { kind: 'try'; gap: bigint; cost: number }
  | { kind: 'reserve'; gap: bigint; cost: number }
  | { kind: 'cancel'; gap: bigint; pick: number }
  | { kind: 'backoff'; gap: bigint; retryMs: number };

function pauseOpArb(T: bigint, burst: number): fc.Arbitrary<PauseOp> {
  // Pauses in whole ms (exact in ns): up to ~5 T, at least a few ms.
  const maxPauseMs = Math.max(3, Math.min(86_400_000, Math.ceil(Number(5n * T) / 1e6)));
  return fc.oneof(
    { weight: 5, arbitrary: fc.record({ kind: fc.constant('try' as const), gap: gapArb(T), cost: costArb(burst) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('reserve' as const), gap: gapArb(T), cost: costArb(burst) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('cancel' as const), gap: gapArb(T), pick: fc.nat() }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('backoff' as const), gap: gapArb(T), retryMs: fc.integer({ min: 0, max: maxPauseMs }) }) },
  );
}

const pauseScenario = fc
  .tuple(moderateRate, fc.integer({ min: 1, max: 6 }))
  .chain(([rate, burst]) => {
    const T = intervalOf(rate);
    return fc.record({
      rate: fc.constant(rate),
      burst: fc.constant(burst),
      start: startArb,
      ops: fc.array(pauseOpArb(T, burst), { minLength: 1, maxLength: 60 }),
    });
  });

interface Pause {
  /** Op index of the backoff() call. */
  k: number;
  from: bigint;
  until: bigint;
}

interface TrackedRes {
  id: number;
  k: number;
  res: Reservation;
  cost: number;
  /** Last observed due time, ns: exact, since due times only move at a backoff and are re-read after each op. */
  due: bigint;
  cancelled: boolean;
}

describe('backoff', () => {
  it('no grant inside any pause; pending reservations move by the same amount past its end; FIFO and the window invariant hold', () => {
    fc.assert(
      fc.property(pauseScenario, ({ rate, burst, start, ops }) => {
        const T = intervalOf(rate);
        let t = start;
        const limiter = new RateLimiter({ rate, burst, clock: () => t });
        const pauses: Pause[] = [];
        const tries: Array<Granted & { k: number; order: number }> = [];
        const reservations: TrackedRes[] = [];
        let order = 0;
        const observe = (k: number) => {
          for (const r of reservations) {
            if (r.cancelled) continue;
            const left = msToNs(r.res.delayMs);
            if (left > 0n) r.due = t + left;
            else expect({ k, id: r.id, dueNotAfterNow: r.due <= t }).toEqual({ k, id: r.id, dueNotAfterNow: true });
          }
        };
        for (const [k, op] of ops.entries()) {
          t += op.gap;
          if (op.kind === 'try') {
            if (limiter.tryAcquire(op.cost)) tries.push({ t, cost: op.cost, k, order: order++ });
          } else if (op.kind === 'reserve') {
            const res = limiter.reserve(op.cost);
            expect(res.ok).toBe(true);
            reservations.push({ id: order++, k, res, cost: op.cost, due: t + msToNs(res.delayMs), cancelled: false });
          } else if (op.kind === 'cancel') {
            if (reservations.length > 0) {
              const r = reservations[op.pick % reservations.length]!;
              if (!r.cancelled && r.due > t) r.cancelled = true;
              r.res.cancel();
            }
          } else {
            const until = t + BigInt(op.retryMs) * 1_000_000n;
            const pending = reservations.filter((r) => !r.cancelled && r.due > t);
            const before = pending.map((r) => r.due);
            limiter.backoff({ retryAfterMs: op.retryMs });
            pauses.push({ k, from: t, until });
            expect(limiter.stats().pausedForMs).toBeGreaterThanOrEqual(op.retryMs);
            observe(k);
            // Everything not yet due moves past the end of the pause, by one
            // common shift (order and spacing kept).
            const moved = pending.map((r, i) => r.due - before[i]!);
            for (const [i, r] of pending.entries()) {
              expect({ k, id: r.id, dueAtOrAfterPauseEnd: r.due >= until }).toEqual({ k, id: r.id, dueAtOrAfterPauseEnd: true });
              expect({ k, id: r.id, moved: moved[i] }).toEqual({ k, id: r.id, moved: moved[0] });
            }
            continue;
          }
          observe(k);
        }
        // Let every pause end and every reservation fall due.
        t += 10n ** 15n;
        observe(ops.length);

        // 1. No tryAcquire grant inside a pause that began before it.
        for (const g of tries) {
          for (const p of pauses) {
            if (p.k < g.k && g.t >= p.from && g.t < p.until) {
              expect.fail(`tryAcquire granted at ${g.t} inside the pause [${p.from}, ${p.until}) set at op ${p.k}`);
            }
          }
        }
        // 2. No kept reservation falls due inside a pause, unless it was due when the pause began.
        const kept = reservations.filter((r) => !r.cancelled);
        for (const r of kept) {
          for (const p of pauses) {
            if (r.due > p.from && r.due < p.until) {
              expect.fail(`reservation #${r.id} (op ${r.k}) due at ${r.due} inside the pause [${p.from}, ${p.until}) set at op ${p.k}`);
            }
          }
        }
        // 3. FIFO: grants take effect in the order they were placed.
        const placed = [...tries.map((g) => ({ order: g.order, t: g.t })), ...kept.map((r) => ({ order: r.id, t: r.due }))].sort((a, b) => a.order - b.order);
        for (let i = 1; i < placed.length; i++) {
          if (placed[i]!.t < placed[i - 1]!.t) expect.fail(`FIFO: placement ${placed[i]!.order} takes effect at ${placed[i]!.t}, before placement ${placed[i - 1]!.order} at ${placed[i - 1]!.t}`);
        }
        // 4. The window invariant over all grants.
        expect(windowViolation([...tries, ...kept.map((r) => ({ t: r.due, cost: r.cost }))], burst, T)).toBeNull();
      }),
      { numRuns: NUM_RUNS },
    );
  });
});
