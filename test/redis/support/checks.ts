/**
 * Checks over grants recorded against the Redis store, all exact unless a
 * slack is passed explicitly (and then named in the test).
 */
import { worstScheduleWindow, type GrantRecord, type WindowViolation } from '../../support/invariants.js';

/** A leased grant: its stretch of the schedule and its decision time (virtual ns from a base), and the call's bracket on the process clock. */
export interface LeaseRecord {
  start: bigint;
  end: bigint;
  decided: bigint;
  called: bigint;
  returned: bigint;
  worker: number;
}

export function leaseRecords(flat: BigInt64Array, worker: number): LeaseRecord[] {
  const out: LeaseRecord[] = [];
  for (let i = 0; i < flat.length; i += 5) {
    out.push({ start: flat[i]!, end: flat[i + 1]!, decided: flat[i + 2]!, called: flat[i + 3]!, returned: flat[i + 4]!, worker });
  }
  return out;
}

/** Pairs of leased stretches that overlap (every grant must own its piece of the one schedule). */
export function overlaps(records: readonly { start: bigint; end: bigint }[]): number {
  const sorted = [...records].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  let count = 0;
  for (let i = 1; i < sorted.length; i++) if (sorted[i]!.start < sorted[i - 1]!.end) count++;
  return count;
}

/** Grants decided before their slot (end − τ) was due by the decider's clock. */
export function earlyGrants(records: readonly LeaseRecord[], toleranceNs: bigint): number {
  return records.filter((r) => r.end - toleranceNs > r.decided).length;
}

/**
 * The instant a grant counts at: its decision time when its stretch starts
 * there or later (granted at once), else its slot end − τ (granted after
 * waiting for it; delivered then or later). Each grant's stretch lies in
 * [t, t + τ]; with stretches disjoint, that is the whole window invariant.
 */
export function countsAt(r: LeaseRecord, toleranceNs: bigint): bigint {
  return r.start >= r.decided ? r.decided : r.end - toleranceNs;
}

/** Grants whose stretch is not inside [t, t + τ] of their {@link countsAt} instant. */
export function uncontained(records: readonly LeaseRecord[], toleranceNs: bigint): number {
  return records.filter((r) => {
    const t = countsAt(r, toleranceNs);
    return r.start < t || r.end > t + toleranceNs;
  }).length;
}

/**
 * Window invariant over cost-1 grants at `timesNs`: in every window of
 * length L, at most burst + slack + L/T grants. Null when it holds.
 */
export function windowViolation(timesNs: readonly number[], burst: number, intervalNs: number, slack = 0): WindowViolation | null {
  const records: GrantRecord[] = timesNs.map((t) => ({ callStart: t, callReturned: t, granted: t, slot: t, cost: 1, worker: 0 }));
  return worstScheduleWindow(records, burst + slack, intervalNs);
}
