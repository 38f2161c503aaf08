/**
 * The one clock. Every thread of a process reads the same monotonic timeline
 * from `process.hrtime.bigint()` (Node 20: one CLOCK_MONOTONIC for all
 * workers), so a time written to shared memory by one thread means the same
 * instant to every other thread.
 *
 * The algorithm never reads the clock itself: `state.ts` and `gcra.ts` take
 * `now` as an argument, and the limiter passes its {@link Clock}. Tests inject
 * a fake clock and get fully deterministic schedules.
 */

/** Nanoseconds on a monotonic scale. Must never go backwards. */
export type Clock = () => bigint;

/** The process-wide monotonic clock, ns. */
export const monotonicClock: Clock = process.hrtime.bigint;

export const NS_PER_MS = 1_000_000n;
export const NS_PER_S = 1_000_000_000n;

/** ns → ms as a float, for reporting and timer arguments. */
export function nsToMs(ns: bigint): number {
  return Number(ns) / 1e6;
}

/** ms → ns, rounded up so a converted limit is never shorter than asked. */
export function msToNsCeil(ms: number): bigint {
  return BigInt(Math.ceil(ms * 1e6));
}
