/**
 * Deterministic time for limiter tests. Nothing here reads the real clock.
 *
 * - {@link ManualClock}: a bigint ns clock moved by hand, for the synchronous
 *   verbs (tryAcquire, reserve, backoff, stats, acquireSync's refusal paths).
 * - {@link fakeTimerClock}: reads vitest's fake `Date.now()`, so async
 *   `acquire` waits (which sleep with `setTimeout`) and the limiter's clock
 *   move together under `vi.advanceTimersByTimeAsync`.
 * - {@link track}: observes a promise's outcome without awaiting it, so a test
 *   can assert "still pending" and resolution order.
 */
import type { Clock } from '../../src/index.js';

export const NS = 1n;
export const US = 1_000n;
export const MS = 1_000_000n;
export const S = 1_000_000_000n;

/** A clock that only moves when told to. */
export class ManualClock {
  t: bigint;
  constructor(start = 0n) {
    this.t = start;
  }
  /** Pass this as the limiter's `clock`. */
  readonly now: Clock = () => this.t;
  /** Moves forward by `ns`. */
  advance(ns: bigint): this {
    if (ns < 0n) throw new Error('ManualClock never goes backwards');
    this.t += ns;
    return this;
  }
  /** Moves to absolute time `ns` (never backwards). */
  set(ns: bigint): this {
    if (ns < this.t) throw new Error(`ManualClock never goes backwards (${ns} < ${this.t})`);
    this.t = ns;
    return this;
  }
}

/** A limiter clock on vitest's fake `Date.now()` (ms resolution). */
export const fakeTimerClock: Clock = () => BigInt(Date.now()) * MS;

export interface Tracked<T> {
  status: 'pending' | 'fulfilled' | 'rejected';
  value?: T;
  error?: unknown;
  /** `Date.now()` when it settled (fake time under fake timers). */
  settledAt?: number;
}

/**
 * Attaches handlers at once (so a rejection is never "unhandled") and records
 * the outcome; `order`, when given, receives `label` when the promise settles.
 */
export function track<T>(promise: Promise<T>, order?: string[], label?: string): Tracked<T> {
  const state: Tracked<T> = { status: 'pending' };
  promise.then(
    (value) => {
      state.status = 'fulfilled';
      state.value = value;
      state.settledAt = Date.now();
      if (order && label !== undefined) order.push(label);
    },
    (error: unknown) => {
      state.status = 'rejected';
      state.error = error;
      state.settledAt = Date.now();
      if (order && label !== undefined) order.push(label);
    },
  );
  return state;
}
