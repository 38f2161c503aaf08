/**
 * The adaptive-rate law, as pure functions of the emission interval (the
 * CAS loops that apply them are in `state.ts`).
 *
 * AIMD, as TCP congestion control and the AWS SDK's adaptive retry mode:
 * each throttle that starts a new shared pause is one congestion event and
 * multiplies the rate by `decrease`; each reported success adds
 * `recovery × rate` (the configured rate) back. The rate stays within
 * [minRate, rate]. Throttles reported during a pause that is already in force
 * belong to the same event and do not cut again, so eight threads that all see
 * the same 429 burst halve the rate once, not eight times.
 *
 * With the defaults (decrease 0.5, recovery 0.01, minRate rate/10): one
 * throttle halves the rate; 50 successes restore it.
 */

/** The law's parameters, in the integer units kept in shared memory. */
export interface AdaptiveLaw {
  /** Configured (highest) rate's interval, ns. */
  readonly minIntervalNs: bigint;
  /** Lowest rate's interval, ns. */
  readonly floorIntervalNs: bigint;
  /** Multiplier per congestion event, parts per million, in 1..999_999. */
  readonly decreasePpm: bigint;
  /** Additive increase per success, ppm of the configured rate, in 1..1_000_000. */
  readonly recoveryPpm: bigint;
}

const PPM = 1_000_000;

/** Interval after one congestion event: rate × decrease, not below minRate. */
export function decreasedInterval(intervalNs: bigint, law: AdaptiveLaw): bigint {
  const rate = 1e9 / Number(intervalNs);
  return clampInterval(BigInt(Math.ceil(1e9 / (rate * (Number(law.decreasePpm) / PPM)))), law);
}

/** Interval after one success: rate + recovery × configured rate, not above it. */
export function recoveredInterval(intervalNs: bigint, law: AdaptiveLaw): bigint {
  const rate = 1e9 / Number(intervalNs);
  const maxRate = 1e9 / Number(law.minIntervalNs);
  const target = rate + maxRate * (Number(law.recoveryPpm) / PPM);
  // Reaching the configured rate must land on exactly its interval, which
  // float rounding of 1e9/target could miss by a nanosecond.
  if (target >= maxRate * (1 - 1e-9)) return law.minIntervalNs;
  return clampInterval(BigInt(Math.ceil(1e9 / target)), law);
}

function clampInterval(intervalNs: bigint, law: AdaptiveLaw): bigint {
  if (intervalNs < law.minIntervalNs) return law.minIntervalNs;
  if (intervalNs > law.floorIntervalNs) return law.floorIntervalNs;
  return intervalNs;
}
