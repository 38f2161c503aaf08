/**
 * Checks over recorded grants. Each check is conservative: it reports a
 * violation only when the recorded times prove one, so it can not fail from
 * scheduling noise, and does fail when the limiter over-grants.
 */

/** One grant as recorded by a worker, ns on a common base. */
export interface GrantRecord {
  /** Before the call. */
  callStart: number;
  /** When the call returned (for async acquire: the promise, before awaiting it). */
  callReturned: number;
  /** When the grant was seen by the caller. */
  granted: number;
  /** The grant's slot on the shared schedule (acquire/acquireSync only). */
  slot: number;
  cost: number;
  worker: number;
}

export function toRecords(flat: number[], cost: number, worker: number): GrantRecord[] {
  const out: GrantRecord[] = [];
  for (let i = 0; i < flat.length; i += 4) {
    out.push({ callStart: flat[i]!, callReturned: flat[i + 1]!, granted: flat[i + 2]!, slot: flat[i + 3]!, cost, worker });
  }
  return out;
}

export interface WindowViolation {
  from: number;
  to: number;
  cost: number;
  allowed: number;
}

/**
 * Window invariant over grants whose linearization point lies somewhere in
 * [callStart, granted]: for each window [a, a+L] (a = some callStart, L from
 * `lengthsNs`), the grants that certainly fall inside it (whole bracket
 * inside) must cost ≤ burst + L/T. Returns the worst violation, or null.
 */
export function worstBracketWindow(records: GrantRecord[], burst: number, intervalNs: number, lengthsNs: number[]): WindowViolation | null {
  const byStart = [...records].sort((x, y) => x.callStart - y.callStart);
  let worst: WindowViolation | null = null;
  for (const length of lengthsNs) {
    const allowed = burst + Math.floor(length / intervalNs);
    for (let i = 0; i < byStart.length; i++) {
      const a = byStart[i]!.callStart;
      let cost = 0;
      for (let j = i; j < byStart.length && byStart[j]!.callStart <= a + length; j++) {
        if (byStart[j]!.granted <= a + length) cost += byStart[j]!.cost;
      }
      if (cost > allowed && (worst === null || cost - allowed > worst.cost - worst.allowed)) {
        worst = { from: a, to: a + length, cost, allowed };
      }
    }
  }
  return worst;
}

/**
 * The schedule itself (slots) obeys GCRA exactly: for all i ≤ j in slot
 * order, cost(i..j) ≤ burst + (slot_j − slot_i)/T. Returns the worst excess.
 */
export function worstScheduleWindow(records: GrantRecord[], burst: number, intervalNs: number): WindowViolation | null {
  const bySlot = [...records].sort((x, y) => x.slot - y.slot);
  // Violation for i ≤ j ⟺ (cost(i..j) − burst)·T > slot_j − slot_i
  //                  ⟺ prefix_{j+1}·T − slot_j − burst·T > prefix_i·T − slot_i,
  // so keeping the minimum of the right side over i ≤ j checks every window in O(n).
  let worst: WindowViolation | null = null;
  let prefix = 0;
  let minRight = Infinity;
  let minAt = 0;
  for (let j = 0; j < bySlot.length; j++) {
    const right = prefix * intervalNs - bySlot[j]!.slot;
    if (right < minRight) {
      minRight = right;
      minAt = j;
    }
    prefix += bySlot[j]!.cost;
    const excessNs = prefix * intervalNs - bySlot[j]!.slot - burst * intervalNs - minRight;
    if (excessNs > 0) {
      const from = bySlot[minAt]!.slot;
      const to = bySlot[j]!.slot;
      let cost = 0;
      for (let k = minAt; k <= j; k++) cost += bySlot[k]!.cost;
      const allowed = burst + Math.floor((to - from) / intervalNs);
      if (worst === null || cost - allowed > worst.cost - worst.allowed) worst = { from, to, cost, allowed };
    }
  }
  return worst;
}

/**
 * FIFO across threads: if A's reservation finished before B's started
 * (A.callReturned < B.callStart), A's slot is not after B's. Returns the
 * number of inverted pairs.
 */
export function fifoInversions(records: GrantRecord[]): number {
  const byReturned = [...records].sort((x, y) => x.callReturned - y.callReturned);
  const byStart = [...records].sort((x, y) => x.callStart - y.callStart);
  let inversions = 0;
  let k = 0;
  let maxSlotBefore = -Infinity;
  for (const b of byStart) {
    while (k < byReturned.length && byReturned[k]!.callReturned < b.callStart) {
      maxSlotBefore = Math.max(maxSlotBefore, byReturned[k]!.slot);
      k++;
    }
    if (maxSlotBefore > b.slot) inversions++;
  }
  return inversions;
}

/**
 * Window invariant on delivery instants known only within brackets
 * [lower, upper] (e.g. lower = a proven earliest instant, upper = when the
 * caller saw the grant): for each window [a, a + L] with a = some grant's
 * `lower`, the grants whose whole bracket lies inside it certainly were
 * delivered inside it, and must cost ≤ burst + L/T. Returns the worst
 * proven violation, or null. `lowerOf`/`upperOf` pick the bracket.
 */
export function worstProvenWindow(
  records: GrantRecord[], burst: number, intervalNs: number, lengthsNs: number[],
  lowerOf: (r: GrantRecord) => number, upperOf: (r: GrantRecord) => number,
): WindowViolation | null {
  const byLower = [...records].sort((x, y) => lowerOf(x) - lowerOf(y));
  let worst: WindowViolation | null = null;
  for (const length of lengthsNs) {
    const allowed = burst + Math.floor(length / intervalNs);
    for (let i = 0; i < byLower.length; i++) {
      const a = lowerOf(byLower[i]!);
      let cost = 0;
      for (let j = i; j < byLower.length && lowerOf(byLower[j]!) <= a + length; j++) {
        if (upperOf(byLower[j]!) <= a + length) cost += byLower[j]!.cost;
      }
      if (cost > allowed && (worst === null || cost - allowed > worst.cost - worst.allowed)) {
        worst = { from: a, to: a + length, cost, allowed };
      }
    }
  }
  return worst;
}
