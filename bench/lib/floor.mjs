/**
 * The physical floor: GCRA `tryAcquire` written inline, with no abstraction.
 * One BigInt64 word (TAT, ns) in a SharedArrayBuffer, the process clock, one
 * load and one compare-and-swap: the least any shared-memory GCRA can do in
 * JavaScript. atomic-pace runs the same algorithm; the ratio of the two is
 * the cost of its abstraction and bookkeeping.
 *
 *   next = max(TAT, now) + T;  grant iff next − now ≤ τ;  publish next by CAS
 */

/** A floor limiter over `buffer` (word 0 = TAT), shareable across threads. */
export function floorOver(buffer, intervalNs, burst) {
  const tat = new BigInt64Array(buffer);
  const T = BigInt(intervalNs);
  const tau = BigInt(burst) * T;
  return function floorTryAcquire() {
    const now = process.hrtime.bigint();
    for (;;) {
      const old = Atomics.load(tat, 0);
      const next = (old > now ? old : now) + T;
      if (next - now > tau) return false;
      if (Atomics.compareExchange(tat, 0, old, next) === old) return true;
    }
  };
}

/** A fresh floor buffer, bucket full (TAT = now). 128 bytes: TAT alone on its line. */
export function newFloorBuffer() {
  const buffer = new SharedArrayBuffer(128);
  new BigInt64Array(buffer)[0] = process.hrtime.bigint();
  return buffer;
}
