/**
 * Sleeping until a slot is due. Waiters never need a wake-up message: a slot
 * only ever moves later (a shared backoff) or stays, so a waiter sleeps until
 * its deadline, re-reads the shared state, and sleeps again if it moved.
 *
 * - Sync: `Atomics.wait` on a word nobody notifies, with a fractional-ms
 *   timeout: a real sleep (no spinning), ~0.1 ms late on an idle machine.
 * - Async: a ref'd `setTimeout`, which keeps the event loop alive while
 *   waiting (a pending `Atomics.waitAsync` would not). Node timers run in whole
 *   milliseconds, so the delay is rounded up: async grants arrive up to ~1 ms
 *   after they are due, never before.
 */
import { SLEEP_INDEX_I32 } from './layout.js';

/** Blocks the calling thread for about `ns` nanoseconds. */
export function sleepSync(i32: Int32Array, ns: bigint): void {
  Atomics.wait(i32, SLEEP_INDEX_I32, 0, Number(ns) / 1e6);
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
