/**
 * The Generic Cell Rate Algorithm, as pure functions of plain numbers: no
 * shared memory, no clock. `state.ts` runs these inside its CAS loops; the
 * tests run them against a reference token bucket.
 *
 * Model. A limiter of `rate` grants per second and capacity `burst` has an
 * emission interval T = 1/rate (ns per cost unit) and a tolerance
 * τ = burst·T. Its whole state is one number, the theoretical arrival time
 * TAT: the instant at which the bucket would be full again if nothing else
 * were granted. A request of cost n at time `now` takes the next n·T of the
 * schedule:
 *
 *     next = max(TAT, now) + n·T          (the new TAT)
 *     slot = next − τ                     (the earliest instant it conforms)
 *
 * and is granted at once iff `slot ≤ now`, i.e. `next − now ≤ τ`. Otherwise it
 * may reserve the schedule and wait until `slot`.
 *
 * Equivalence with a token bucket (Envoy's atomic bucket uses the same trick):
 * tokens(now) = (τ − max(0, TAT − now)) / T. A full bucket is TAT ≤ now, an
 * empty one is TAT = now + τ, and "take n tokens" is TAT += n·T. One word
 * therefore holds the whole bucket, and one CAS updates it.
 *
 * Guarantee. Whatever the interleaving of requests, for every interval of
 * length L the cost granted inside it is ≤ burst + L/T. With burst = 1,
 * consecutive grants are ≥ T apart.
 */

/** Where a request lands on the schedule. */
export interface Placement {
  /** The TAT after this request. */
  readonly next: bigint;
  /** The earliest (virtual) time at which the request conforms. */
  readonly slot: bigint;
}

/** Places a request of `costNs` (= cost·T) on a schedule whose TAT is `tat`, at time `now`. */
export function place(tat: bigint, now: bigint, costNs: bigint, toleranceNs: bigint): Placement {
  const next = (tat > now ? tat : now) + costNs;
  return { next, slot: next - toleranceNs };
}

/**
 * Emission interval in whole ns for `rate` grants per second, rounded UP: the
 * limiter may run up to 1 ns per grant slower than asked, never faster.
 */
export function intervalNsFromRate(rate: number): bigint {
  return BigInt(Math.ceil(1e9 / rate));
}

/** Grants per second for an emission interval (for stats and messages). */
export function rateFromIntervalNs(intervalNs: bigint): number {
  return 1e9 / Number(intervalNs);
}

/**
 * Cost units that fit in `spanNs`, rounded down: how much of the schedule a
 * span of time represents.
 */
export function costUnitsIn(spanNs: bigint, intervalNs: bigint): bigint {
  return spanNs <= 0n ? 0n : spanNs / intervalNs;
}
