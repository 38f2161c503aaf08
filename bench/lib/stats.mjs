/** Small statistics over plain arrays of numbers. */

/** Nearest-rank percentile (p in 0..100) of an array; sorts a copy. */
export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

/** p50 / p90 / p99 / max of an array in one sort. */
export function summarize(values) {
  if (values.length === 0) return { n: 0, p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN };
  const sorted = Float64Array.from(values).sort();
  const at = (p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
  let sum = 0;
  for (const v of sorted) sum += v;
  return { n: sorted.length, p50: at(50), p90: at(90), p99: at(99), max: sorted[sorted.length - 1], mean: sum / sorted.length };
}

export function median(values) {
  return percentile(values, 50);
}

/**
 * The worst window of a grant log: max over all time windows [a, b] of
 * (grants certainly inside the window) − (burst + rate × (b − a)).
 * A value ≤ 0 means no window ever held more than the limit allows.
 *
 * Each grant is known only up to a bracket [lo, hi] (ns): for a waiting grant
 * lo = hi = its slot on the schedule; for tryAcquire, the clock readings just
 * before and after the call. A grant counts in [a, b] only if its whole
 * bracket does, so scheduling noise can hide an excess but never invent one.
 *
 * With grants sorted by lo, the window from grant i to grant j is
 * [lo_i, max(hi_i..hi_j)]; we widen it to [lo_i, max(hi_0..hi_j)], which can
 * only lower the excess (brackets are µs-wide, slots ms apart, so the
 * widening is immaterial). Then excess(i, j) = (j + 1 − rate·H_j) −
 * (i − rate·lo_i) − burst, maximised in one pass with a running minimum.
 *
 * @param {Float64Array} lo  ns since a common origin
 * @param {Float64Array} hi  ns since the same origin
 * @param {number} rate grants per second
 * @param {number} burst
 * @returns {{ excess: number, count: number, spanMs: number }} the worst window found
 */
export function worstWindow(lo, hi, rate, burst) {
  const n = lo.length;
  if (n === 0) return { excess: -burst, count: 0, spanMs: 0 };
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => lo[a] - lo[b]);
  const perNs = rate / 1e9;
  let best = -Infinity;
  let bestCount = 0;
  let bestSpan = 0;
  let minTerm = Infinity; // min over i ≤ j of (i − rate·lo_i)
  let minAt = 0;
  let maxHi = -Infinity;
  for (let j = 0; j < n; j++) {
    const g = order[j];
    const term = j - perNs * lo[g];
    if (term < minTerm) {
      minTerm = term;
      minAt = j;
    }
    if (hi[g] > maxHi) maxHi = hi[g];
    const excess = j + 1 - perNs * maxHi - minTerm - burst;
    if (excess > best) {
      best = excess;
      bestCount = j - minAt + 1;
      bestSpan = (maxHi - lo[order[minAt]]) / 1e6;
    }
  }
  return { excess: best, count: bestCount, spanMs: bestSpan };
}

/**
 * When every one of `n` threads was stalled, given each thread's stall
 * intervals as flat [from, to, from, to, …] arrays (ns), within [0, endNs].
 * Returns the total ns and the complement: the intervals in which at least
 * one thread was running.
 */
export function stallUnion(stallsPerThread, endNs) {
  const n = stallsPerThread.length;
  const events = [];
  for (const flat of stallsPerThread) {
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const from = Math.max(0, flat[i]);
      const to = Math.min(endNs, flat[i + 1]);
      if (to > from) events.push([from, 1], [to, -1]);
    }
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let depth = 0;
  let since = 0;
  let stalledNs = 0;
  const running = [];
  let runFrom = 0;
  for (const [t, d] of events) {
    if (depth === n) stalledNs += t - since;
    const before = depth;
    depth += d;
    if (before < n && depth === n) running.push([runFrom, t]);
    if (before === n && depth < n) runFrom = t;
    since = t;
  }
  if (depth < n) running.push([runFrom, endNs]);
  return { stalledNs, running: running.filter(([a, b]) => b > a) };
}

/**
 * The most grants an ideal GCRA (rate, burst; bucket full at 0) could give a
 * caller that asks continuously, but only during `running` intervals (ns):
 * what any limiter could have handed to threads that were on a CPU only then.
 */
export function achievableGrants(running, rate, burst, endNs) {
  const T = 1e9 / rate;
  let tat = 0;
  let count = 0;
  for (const [s, e] of running) {
    let t = Math.max(0, s);
    const stop = Math.min(e, endNs);
    while (t <= stop) {
      if (Math.max(tat, t) + T - t <= burst * T + 1e-6) {
        tat = Math.max(tat, t) + T;
        count++;
      } else {
        t = tat + T - burst * T; // earliest time the next grant conforms
      }
    }
  }
  return count;
}

/** Longest gap (ns) between consecutive values of an unsorted list of times. */
export function longestGap(times) {
  const sorted = Float64Array.from(times).sort();
  let gap = 0;
  for (let i = 1; i < sorted.length; i++) gap = Math.max(gap, sorted[i] - sorted[i - 1]);
  return gap;
}
