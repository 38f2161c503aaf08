/**
 * Sleeping until a deadline. Waiters never need a wake-up message: a slot
 * only ever moves later (a shared backoff, or deliveries it must conform
 * to) or stays, so a waiter sleeps until its deadline, re-reads the shared
 * state, and sleeps again if it moved.
 *
 * Precision matters: a strict server counts requests when they arrive, and a
 * grant handed out late is followed by the next one less than 1/rate later
 * unless the next one waits too (`state.ts` makes it wait). Lateness is
 * never a safety problem, but at saturation it is lost capacity. So:
 *
 * - Sync: `Atomics.wait` on a word nobody notifies, in shrinking steps (a
 *   long sleep overshoots by up to ~2 ms on a VM, a short one by ~0.1 ms),
 *   and the last {@link SPIN_NS} spun on the clock: ~0.01 ms late typically.
 * - Async: one ref'd `setTimeout` per thread (it keeps the event loop
 *   alive; a pending `Atomics.waitAsync` would not) for the waiter due
 *   first, until `finalMs` before its deadline, then the sync method above
 *   for the rest: the event loop is blocked at most `finalMs` per grant
 *   (asleep, not spinning, except the last {@link SPIN_NS}), and never past
 *   another waiter's deadline. `finalMs: 0` never blocks: whole-ms timers,
 *   grants ~1 ms late.
 *
 * Precise waits need the real clock; with an injected clock (tests) waits
 * fall back to plain timers and the caller re-checks its clock.
 */
import { SLEEP_INDEX_I32 } from './layout.js';

/** The last stretch of a precise wait, spun on the clock instead of slept. */
export const SPIN_NS = 50_000n;
/** A sleep longer than this is cut so that it ends this long before the deadline. */
const COARSE_MARGIN_NS = 2_000_000n;

/** Blocks the calling thread for about `ns` nanoseconds (one sleep; the caller re-checks). */
export function sleepSync(i32: Int32Array, ns: bigint): void {
  Atomics.wait(i32, SLEEP_INDEX_I32, 0, Number(ns) / 1e6);
}

/**
 * Blocks the calling thread until `clock()` reaches `deadlineNs`, never
 * returning before it: one coarse sleep to 2 ms before, halving sleeps, then
 * a spin of at most {@link SPIN_NS}. `clock` must be the real monotonic clock.
 */
export function sleepUntilSync(i32: Int32Array, deadlineNs: bigint, clock: () => bigint): void {
  for (;;) {
    const remaining = deadlineNs - clock();
    if (remaining <= 0n) return;
    if (remaining <= SPIN_NS) continue;
    const sleepNs = remaining > 2n * COARSE_MARGIN_NS ? remaining - COARSE_MARGIN_NS : (remaining - SPIN_NS) / 2n;
    Atomics.wait(i32, SLEEP_INDEX_I32, 0, Number(sleepNs) / 1e6);
  }
}

/**
 * Resolves after at least `ns` nanoseconds; rejects with `signal.reason` as
 * soon as `signal` aborts (the timer is cleared and the listener removed).
 */
export function sleepAsync(ns: bigint, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    // Whole ms (rounded up), capped at the largest delay Node timers accept;
    // the caller re-checks and sleeps again if the slot is further away.
    const ms = Math.min(Math.ceil(Number(ns) / 1e6), 2_147_483_647);
    if (signal === undefined) {
      setTimeout(resolve, ms);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** One async waiter in this thread's precise timer (below). */
interface Sleeper {
  readonly untilNs: bigint;
  /** When to start the precise (blocking) part: untilNs − finalNs. */
  readonly wakeNs: bigint;
  readonly i32: Int32Array;
  readonly resolve: () => void;
}

/**
 * This thread's async precise waits, all limiters together: one ref'd timer
 * for the waiter that must start its precise part first; when it fires, a
 * blocking precise sleep (`sleepUntilSync`) until that waiter's deadline —
 * never past another waiter's, since it is the earliest — then it is
 * resolved and the timer re-armed for the next (a 0 ms timer when the next
 * is already close, so the first's continuation runs before it). At most one
 * blocking sleep at a time per thread, at most `finalNs` long.
 */
const sleepers: Sleeper[] = [];
/** The armed timer (a Timeout), or an Immediate when the first sleeper is due now (setTimeout(0) would wait 1 ms). */
let armed: { timeout: ReturnType<typeof setTimeout> } | { immediate: ReturnType<typeof setImmediate> } | null = null;
let armedWakeNs = 0n;

function disarm(): void {
  if (armed === null) return;
  if ('timeout' in armed) clearTimeout(armed.timeout);
  else clearImmediate(armed.immediate);
  armed = null;
}

function rearm(clock: () => bigint): void {
  const first = sleepers[0];
  if (first === undefined) {
    disarm();
    return;
  }
  if (armed !== null && armedWakeNs <= first.wakeNs) return;
  disarm();
  const delayNs = first.wakeNs - clock();
  armedWakeNs = first.wakeNs;
  // Whole ms, rounded down: a timer is late, never early, so it fires at
  // most ~1 ms before wakeNs (the precise part covers the rest).
  const ms = delayNs <= 0n ? 0 : Math.min(Math.floor(Number(delayNs) / 1e6), 2_147_483_647);
  armed = ms === 0 ? { immediate: setImmediate(() => fire(clock)) } : { timeout: setTimeout(() => fire(clock), ms) };
}

function fire(clock: () => bigint): void {
  armed = null;
  const first = sleepers[0];
  if (first !== undefined && first.wakeNs <= clock()) {
    sleepers.shift();
    sleepUntilSync(first.i32, first.untilNs, clock);
    first.resolve();
  }
  rearm(clock);
}

/**
 * Resolves at `untilNs` on the real monotonic `clock`, within ~0.01–0.1 ms
 * on an idle machine: a timer until `finalNs` before, then a blocking
 * precise sleep (the per-thread timer above). Rejects with `signal.reason` as
 * soon as `signal` aborts.
 */
export function sleepUntilPrecise(
  i32: Int32Array, untilNs: bigint, finalNs: bigint, clock: () => bigint, signal: AbortSignal | undefined,
): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      const at = sleepers.indexOf(sleeper);
      if (at >= 0) sleepers.splice(at, 1);
      rearm(clock);
      reject(signal!.reason);
    };
    const sleeper: Sleeper = {
      untilNs, wakeNs: untilNs - finalNs, i32,
      resolve: () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      },
    };
    let at = sleepers.length;
    while (at > 0 && sleepers[at - 1]!.wakeNs > sleeper.wakeNs) at--;
    sleepers.splice(at, 0, sleeper);
    signal?.addEventListener('abort', onAbort, { once: true });
    rearm(clock);
  });
}

type WaitAsync = (i32: Int32Array, index: number, value: number, timeoutMs: number) =>
  { async: false; value: string } | { async: true; value: Promise<string> };

/**
 * Resolves when `i32[index]` is no longer `seen` (after an `Atomics.notify`),
 * or after about `ns`; rejects with `signal.reason` on abort. Holds a ref'd
 * timer meanwhile: a pending `Atomics.waitAsync` alone does not keep the
 * event loop alive.
 */
export function waitForChange(i32: Int32Array, index: number, seen: number, ns: bigint, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  const ms = Math.min(Math.max(1, Math.ceil(Number(ns) / 1e6)), 2_147_483_647);
  const result = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync(i32, index, seen, ms);
  if (!result.async) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const keepAlive = setTimeout(() => {}, ms + 1);
    const onAbort = (): void => {
      clearTimeout(keepAlive);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    void result.value.then(() => {
      clearTimeout(keepAlive);
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}
