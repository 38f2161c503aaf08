/**
 * The schedule over one limiter's shared words (`layout.ts`): placing,
 * cancelling and settling requests, and the shared pause. Every method takes
 * `now` (ns, from the limiter's clock) instead of reading a clock, so the same
 * code runs against real threads and against a test's fake clock.
 *
 * Timeline. The schedule lives on a virtual timeline v = now − SHIFT_NS.
 * Between backoffs SHIFT_NS is constant and virtual time runs with real time.
 * A backoff at real time b until real time u freezes virtual time at
 * P = b − SHIFT_NS ("pause start") until u:
 *
 *     virtual(now) = max(P, now − SHIFT_NS),   SHIFT_NS := u − P
 *
 * so every slot after P (everything not yet due when the pause began,
 * including waiters already sleeping) becomes due at u or later, in its old
 * order and with its old spacing, while slots up to P (already due) stay due.
 * The drain at a backoff places the next slot at P + 1 ns or later, so "up to
 * P" and "after P" never meet: the first grant after a pause comes 1 ns after
 * its end.
 * Waiters keep only their virtual slot and re-read SHIFT_NS/PAUSE_START when
 * they wake, so a pause reaches them without any message.
 *
 * One limit: lock-free. Each decision is one CAS on the limit's TAT word.
 *
 * Several limits: a grant must take every limit's cost or none, and no
 * single-word CAS spans several TATs, so decisions over several limits run
 * under a short lock (MULTI_LOCK: a few loads, a little arithmetic and the
 * stores, no allocation-heavy work, no waiting inside). A request's joint slot
 * is the latest of its per-limit slots and of LAST_SLOT (the previous
 * placement's slot), so placements are FIFO across limits; each limit then
 * sees arrivals at non-decreasing virtual times, which is plain GCRA per
 * limit, so each limit's window invariant holds.
 */
import { decreasedInterval, recoveredInterval, type AdaptiveLaw } from './adaptive.js';
import { threadId } from 'node:worker_threads';
import {
  GRANTED_STRIPES,
  LimitWord,
  SLEEP_INDEX_I32,
  Word,
  grantedStripeWord,
  limitBase,
  type SharedViews,
  type StoredConfig,
} from './layout.js';

/** How a placement ended. */
export const Outcome = {
  /** Conforms now: granted. */
  Granted: 0,
  /** Reserved a future slot: the caller waits until it is due. */
  Delayed: 1,
  /** The wait would exceed the allowed maximum; nothing reserved. */
  TooLate: 2,
  /** A limit's queue would hold more than its `maxQueue`; nothing reserved. */
  QueueFull: 3,
} as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];

/** A committed or refused place on the schedule. */
export interface Placed {
  readonly outcome: Outcome;
  /** Cost per limit, by limit index. */
  readonly costs: readonly number[];
  /**
   * Virtual time at which the request conforms in every limit: its position
   * on the schedule. Strictly increasing with one limit (next − τ, which can
   * lie in the past for a grant made at once); non-decreasing with several.
   */
  readonly slot: bigint;
  /** Real ns to wait from `now` (≤ 0 when granted at once). */
  readonly delayNs: bigint;
  /** Index of the limit whose `maxQueue` refused it (QueueFull only). */
  readonly fullLimit: number;
  /** The emission interval used per limit, ns. */
  readonly intervals: readonly bigint[];
  /** The TAT written per limit (single limit: undo by CAS from it). */
  readonly nexts: readonly bigint[];
  /** TATs before the placement (several limits: undo restores them). */
  readonly prevs: readonly bigint[];
  readonly prevLastSlot: bigint;
  /** MULTI_SEQ after this placement (several limits), else -1n. */
  readonly seq: bigint;
}

/** One limit, as this thread sees it. */
export interface LimitInfo {
  readonly name: string;
  readonly base: number;
  readonly burst: bigint;
  /** -1n = unbounded */
  readonly maxQueue: bigint;
  readonly law: AdaptiveLaw | null;
  /** This thread's stripe of the limit's granted-cost counter. */
  readonly granted: number;
  /** All stripes, for reading the total. */
  readonly grantedStripes: readonly number[];
}

/** Cost units moved by a settle, per limit index. */
export interface Settled {
  readonly charged: readonly number[];
  readonly refunded: readonly number[];
}

/**
 * Sleeps (of ~0.02–0.05 ms) a thread waits for a writer lock (the backoff
 * writer, or the multi-limit lock) before assuming its holder was terminated
 * inside the few operations it guards and taking over: about 1 s.
 */
const LOCK_MAX_WAITS = 20_000;
const LOCK_SPINS = 64;

export class LimiterState {
  readonly words: BigInt64Array;
  readonly i32: Int32Array;
  readonly limits: readonly LimitInfo[];
  readonly multi: boolean;
  readonly adaptive: boolean;

  // Limit 0's T and τ = burst·T; re-read only when the rate is adaptive.
  private cachedIntervalNs: bigint;
  private cachedToleranceNs: bigint;
  private readonly base0: number;
  private readonly granted0: number;
  private readonly burst0: bigint;

  constructor(views: SharedViews, config: StoredConfig) {
    this.words = views.words;
    this.i32 = views.i32;
    this.adaptive = config.decreasePpm > 0n;
    this.limits = config.limits.map((limit, i) => ({
      name: limit.name,
      base: limitBase(i),
      burst: limit.burst,
      maxQueue: limit.maxQueue,
      granted: grantedStripeWord(config.limits.length, i, threadId % GRANTED_STRIPES),
      grantedStripes: Array.from({ length: GRANTED_STRIPES }, (_, s) => grantedStripeWord(config.limits.length, i, s)),
      law: this.adaptive
        ? { minIntervalNs: limit.maxIntervalNs, floorIntervalNs: limit.floorIntervalNs, decreasePpm: config.decreasePpm, recoveryPpm: config.recoveryPpm }
        : null,
    }));
    this.multi = this.limits.length > 1;
    this.base0 = limitBase(0);
    this.granted0 = this.limits[0]!.granted;
    this.burst0 = config.limits[0]!.burst;
    this.cachedIntervalNs = Atomics.load(this.words, this.base0 + LimitWord.INTERVAL_NS);
    this.cachedToleranceNs = this.burst0 * this.cachedIntervalNs;
  }

  /** Cost granted by limit `i` so far: the sum of its counter stripes. */
  grantedCost(i: number): bigint {
    let sum = 0n;
    for (const index of this.limits[i]!.grantedStripes) sum += Atomics.load(this.words, index);
    return sum;
  }

  /** Current emission interval T of limit `i`, ns per cost unit. */
  intervalNs(i: number): bigint {
    return Atomics.load(this.words, this.limits[i]!.base + LimitWord.INTERVAL_NS);
  }

  // ---------------------------------------------------------------- one limit

  /**
   * One limit, at once or not at all; never reserves. The hot path: a load of
   * the read-mostly SHIFT_NS, then a load and one CAS on the limit's line.
   */
  tryTakeSingle(now: bigint, cost: number): boolean {
    const w = this.words;
    const base = this.base0;
    // A fixed-rate limit's interval never changes: skip the shared load.
    let intervalNs = this.cachedIntervalNs;
    if (this.adaptive) {
      intervalNs = Atomics.load(w, base + LimitWord.INTERVAL_NS);
      if (intervalNs !== this.cachedIntervalNs) {
        this.cachedToleranceNs = this.burst0 * intervalNs;
        this.cachedIntervalNs = intervalNs;
      }
    }
    const toleranceNs = this.cachedToleranceNs;
    const costNs = cost === 1 ? intervalNs : BigInt(cost) * intervalNs;
    // TAT loop. TAT only grows, except by an undo (cancel/refund) of the
    // latest placement. Grant iff next − v ≤ τ, then publish next with one
    // CAS; a failed CAS means another thread moved TAT: recompute from its
    // value. A clock read before the loop is only ever older (smaller v),
    // which can refuse a grant, never over-grant. Unclamped v: during a pause
    // now − SHIFT_NS < PAUSE_START ≤ TAT − (burst−1)·T, so the test refuses,
    // exactly as the clamped max(PAUSE_START, now − SHIFT_NS) would.
    for (;;) {
      const tat = Atomics.load(w, base);
      const v = now - Atomics.load(w, Word.SHIFT_NS);
      const next = (tat > v ? tat : v) + costNs;
      if (next - v > toleranceNs) return false;
      if (Atomics.compareExchange(w, base, tat, next) === tat) {
        Atomics.add(w, this.granted0, cost === 1 ? 1n : BigInt(cost));
        return true;
      }
    }
  }

  private placeSingle(now: bigint, cost: number, maxDelayNs: bigint): Placed {
    const w = this.words;
    const limit = this.limits[0]!;
    const intervalNs = Atomics.load(w, limit.base + LimitWord.INTERVAL_NS);
    const toleranceNs = limit.burst * intervalNs;
    const costNs = BigInt(cost) * intervalNs;
    const maxQueueNs = limit.maxQueue < 0n ? -1n : limit.maxQueue * intervalNs;
    // TAT loop, as in tryTakeSingle; refusals return before any write, so a
    // refused request leaves no trace on the schedule.
    for (;;) {
      const tat = Atomics.load(w, limit.base);
      const shift = Atomics.load(w, Word.SHIFT_NS);
      const pauseStart = Atomics.load(w, Word.PAUSE_START);
      const rawV = now - shift;
      const v = rawV > pauseStart ? rawV : pauseStart;
      const next = (tat > v ? tat : v) + costNs;
      const slot = next - toleranceNs;
      const delayNs = slot + shift - now;
      if (slot > v) {
        const refusal = this.refusal(slot - v, delayNs, maxDelayNs, maxQueueNs, 0, [cost], slot);
        if (refusal !== null) return refusal;
      }
      if (Atomics.compareExchange(w, limit.base, tat, next) === tat) {
        Atomics.add(w, limit.granted, BigInt(cost));
        return {
          outcome: slot > v ? Outcome.Delayed : Outcome.Granted,
          costs: [cost], slot, delayNs, fullLimit: -1,
          intervals: [intervalNs], nexts: [next], prevs: [tat], prevLastSlot: 0n, seq: -1n,
        };
      }
    }
  }

  // ----------------------------------------------------------- several limits

  /**
   * Places a request over every limit at once (see the module comment). Under
   * MULTI_LOCK only lock holders write TATs and LAST_SLOT, so plain stores
   * suffice; MULTI_SEQ counts placements so an undo can tell whether it is
   * still the latest.
   */
  private placeMulti(now: bigint, costs: readonly number[], maxDelayNs: bigint): Placed {
    const w = this.words;
    const n = this.limits.length;
    this.lock();
    try {
      const shift = Atomics.load(w, Word.SHIFT_NS);
      const pauseStart = Atomics.load(w, Word.PAUSE_START);
      const rawV = now - shift;
      const v = rawV > pauseStart ? rawV : pauseStart;
      const prevLastSlot = Atomics.load(w, Word.LAST_SLOT);
      const tats: bigint[] = new Array(n);
      const intervals: bigint[] = new Array(n);
      // Joint slot g: the earliest virtual time ≥ v, ≥ LAST_SLOT (FIFO) at
      // which every limit conforms: for limit i, max(TAT_i, g) + c_i·T_i − g ≤ τ_i
      // ⟺ g ≥ TAT_i + c_i·T_i − τ_i (as c_i ≤ burst_i).
      let g = v > prevLastSlot ? v : prevLastSlot;
      for (let i = 0; i < n; i++) {
        const limit = this.limits[i]!;
        const tat = Atomics.load(w, limit.base);
        const intervalNs = Atomics.load(w, limit.base + LimitWord.INTERVAL_NS);
        tats[i] = tat;
        intervals[i] = intervalNs;
        const earliest = tat + BigInt(costs[i]!) * intervalNs - limit.burst * intervalNs;
        if (earliest > g) g = earliest;
      }
      const delayNs = g + shift - now;
      if (g > v) {
        for (let i = 0; i < n; i++) {
          const limit = this.limits[i]!;
          const maxQueueNs = limit.maxQueue < 0n ? -1n : limit.maxQueue * intervals[i]!;
          const refusal = this.refusal(g - v, delayNs, maxDelayNs, maxQueueNs, i, costs, g);
          if (refusal !== null) return refusal;
        }
      }
      const nexts: bigint[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const limit = this.limits[i]!;
        const tat = tats[i]!;
        nexts[i] = (tat > g ? tat : g) + BigInt(costs[i]!) * intervals[i]!;
        Atomics.store(w, limit.base, nexts[i]!);
        if (costs[i]! > 0) Atomics.add(w, limit.granted, BigInt(costs[i]!));
      }
      Atomics.store(w, Word.LAST_SLOT, g);
      const seq = Atomics.add(w, Word.MULTI_SEQ, 1n) + 1n;
      return {
        outcome: g > v ? Outcome.Delayed : Outcome.Granted,
        costs, slot: g, delayNs, fullLimit: -1, intervals, nexts, prevs: tats, prevLastSlot, seq,
      };
    } finally {
      this.unlock();
    }
  }

  // ------------------------------------------------------------- both shapes

  /** Grants at once or not at all; never reserves. */
  tryTake(now: bigint, costs: readonly number[]): boolean {
    if (!this.multi) return this.tryTakeSingle(now, costs[0]!);
    return this.placeMulti(now, costs, 0n).outcome === Outcome.Granted;
  }

  /**
   * Places a request: granted at once, or a future slot reserved, or refused
   * (nothing written) when the wait would exceed `maxDelayNs` (-1n =
   * unbounded) or a limit's queue would exceed its `maxQueue`.
   */
  place(now: bigint, costs: readonly number[], maxDelayNs: bigint): Placed {
    return this.multi ? this.placeMulti(now, costs, maxDelayNs) : this.placeSingle(now, costs[0]!, maxDelayNs);
  }

  private refusal(
    queuedNs: bigint, delayNs: bigint, maxDelayNs: bigint, maxQueueNs: bigint,
    limit: number, costs: readonly number[], slot: bigint,
  ): Placed | null {
    let outcome: Outcome | null = null;
    if (maxDelayNs >= 0n && delayNs > maxDelayNs) outcome = Outcome.TooLate;
    // Queue length in cost units = how far the slot lies beyond the present
    // (or beyond the pause, during a pause).
    else if (maxQueueNs >= 0n && queuedNs > maxQueueNs) outcome = Outcome.QueueFull;
    if (outcome === null) return null;
    return { outcome, costs, slot, delayNs, fullLimit: limit, intervals: [], nexts: [], prevs: [], prevLastSlot: 0n, seq: -1n };
  }

  /**
   * Real ns until virtual `slot` is due (0n when due). Due iff
   * slot ≤ max(PAUSE_START, now − SHIFT_NS). Reading SHIFT_NS before
   * PAUSE_START pairs with backoff writing them in the opposite order: a stale
   * SHIFT_NS is only seen by a read that happened before the backoff finished.
   */
  remainingNs(now: bigint, slot: bigint): bigint {
    const shift = Atomics.load(this.words, Word.SHIFT_NS);
    const pauseStart = Atomics.load(this.words, Word.PAUSE_START);
    if (slot <= pauseStart) return 0n;
    const remaining = slot + shift - now;
    return remaining > 0n ? remaining : 0n;
  }

  /**
   * Virtual now for decisions: max(PAUSE_START, now − SHIFT_NS), frozen at
   * the pause start while paused. Slots at or before PAUSE_START were due
   * when the pause began; the drain puts every later slot strictly after it.
   */
  virtualNow(now: bigint): bigint {
    const v = now - Atomics.load(this.words, Word.SHIFT_NS);
    const pauseStart = Atomics.load(this.words, Word.PAUSE_START);
    return v > pauseStart ? v : pauseStart;
  }

  /**
   * Gives back a placement that is not yet due (x/time/rate's Cancel): if no
   * later request has been placed after it, the schedule rolls back exactly.
   * Otherwise later grants were scheduled behind it and depend on it, so its
   * slot is left empty: capacity is lost, never over-granted, and with several
   * limits it is lost in all of them alike. Returns whether capacity came back.
   */
  cancel(now: bigint, placed: Placed): boolean {
    if (this.remainingNs(now, placed.slot) === 0n) return false; // already granted
    Atomics.add(this.words, Word.CANCELLED_COUNT, 1n);
    return this.undo(placed, placed.costs);
  }

  /**
   * Rolls `amounts` (≤ the placement's costs) of `placed` back off the
   * schedule iff nothing was placed after it. Single limit: one CAS — success
   * means TAT still equals what this placement wrote. Several: under the
   * lock, MULTI_SEQ still equals this placement's sequence number.
   */
  private undo(placed: Placed, amounts: readonly number[]): boolean {
    const w = this.words;
    if (!this.multi) {
      const base = this.limits[0]!.base;
      const next = placed.nexts[0]!;
      const back = BigInt(amounts[0]!) * placed.intervals[0]!;
      if (Atomics.compareExchange(w, base, next, next - back) !== next) return false;
      Atomics.sub(w, this.granted0, BigInt(amounts[0]!));
      return true;
    }
    this.lock();
    try {
      if (Atomics.load(w, Word.MULTI_SEQ) !== placed.seq) return false;
      // Nothing was placed, charged or drained since: TAT_i still equals
      // nexts[i], so subtracting amount·T_i is exactly "placed with less".
      const full = amounts.every((a, i) => a === placed.costs[i]);
      for (let i = 0; i < this.limits.length; i++) {
        const base = this.limits[i]!.base;
        const amount = BigInt(amounts[i]!);
        Atomics.store(w, base, full ? placed.prevs[i]! : placed.nexts[i]! - amount * placed.intervals[i]!);
        if (amount > 0n) Atomics.sub(w, this.limits[i]!.granted, amount);
      }
      if (full) Atomics.store(w, Word.LAST_SLOT, placed.prevLastSlot);
      return true;
    } finally {
      this.unlock();
    }
  }

  /**
   * Settles a granted placement at its actual costs. More than estimated:
   * the extra is charged now (TAT_i := max(TAT_i, v) + extra·T_i) — it
   * delays later grants so the long-run rate holds; it can not undo a window
   * already spent. Less: the unused part is refunded only if nothing was
   * placed after this grant (the same rule as cancel; a refund behind later
   * placements could let new grants collide with them), else it is forfeited.
   */
  settle(now: bigint, placed: Placed, actual: readonly number[]): Settled {
    const n = this.limits.length;
    const charged = new Array<number>(n).fill(0);
    const refunded = new Array<number>(n).fill(0);
    const refunds = placed.costs.map((c, i) => Math.max(0, c - actual[i]!));
    if (refunds.some((r) => r > 0) && this.undo(placed, refunds)) {
      refunds.forEach((r, i) => { refunded[i] = r; });
    }
    const extras = placed.costs.map((c, i) => Math.max(0, actual[i]! - c));
    if (extras.some((x) => x > 0)) {
      this.charge(now, extras);
      extras.forEach((x, i) => { charged[i] = x; });
    }
    return { charged, refunded };
  }

  private charge(now: bigint, extras: readonly number[]): void {
    const w = this.words;
    const charged = (i: number, tat: bigint, v: bigint): bigint =>
      (tat > v ? tat : v) + BigInt(extras[i]!) * Atomics.load(w, this.limits[i]!.base + LimitWord.INTERVAL_NS);
    if (!this.multi) {
      const base = this.limits[0]!.base;
      // TAT loop: only grows (a debt appended to the schedule).
      for (;;) {
        const tat = Atomics.load(w, base);
        const next = charged(0, tat, this.virtualNow(now));
        if (Atomics.compareExchange(w, base, tat, next) === tat) break;
      }
      Atomics.add(w, this.granted0, BigInt(extras[0]!));
      return;
    }
    this.lock();
    try {
      const v = this.virtualNow(now);
      for (let i = 0; i < this.limits.length; i++) {
        if (extras[i] === 0) continue;
        const base = this.limits[i]!.base;
        Atomics.store(w, base, charged(i, Atomics.load(w, base), v));
        Atomics.add(w, this.limits[i]!.granted, BigInt(extras[i]!));
      }
      Atomics.add(w, Word.MULTI_SEQ, 1n); // earlier placements can no longer be undone
    } finally {
      this.unlock();
    }
  }

  /**
   * Pauses every grant until real time `untilNs` (shared backoff).
   *
   * Order matters. (1) PAUSE_START := max(PAUSE_START, now − SHIFT_NS);
   * (2) SHIFT_NS := max(SHIFT_NS, untilNs − PAUSE_START); (3) per limit,
   * TAT := max(TAT, PAUSE_START + (burst−1)·T) + 1. Step 3 drains the
   * buckets so grants resume one interval at a time (no burst after the
   * pause), puts every new slot strictly after PAUSE_START (slots up to it
   * count as due before the pause), and always changes TAT, so any request that read SHIFT_NS before step 2 fails
   * its CAS and re-reads (several limits: step 3 runs under MULTI_LOCK, which
   * orders it after any placement that read the old SHIFT_NS): once backoff()
   * returns no request can be granted on a pre-pause view. Steps 1–2 run under
   * a writer lock because two backoffs interleaving them could publish a
   * PAUSE_START computed from a stale SHIFT_NS (a pause start later than the
   * frozen present). Monotone: a shorter backoff never shortens a pause.
   */
  backoff(now: bigint, untilNs: bigint): void {
    const w = this.words;
    let newPause = false;
    this.lockWord(Word.PAUSE_WRITER);
    try {
      const shift = Atomics.load(w, Word.SHIFT_NS);
      const pauseStart = Atomics.load(w, Word.PAUSE_START);
      const v = now - shift;
      // Not inside a pause (virtual time not frozen): this throttle starts one.
      newPause = v >= pauseStart;
      const newPauseStart = v > pauseStart ? v : pauseStart;
      if (newPauseStart !== pauseStart) Atomics.store(w, Word.PAUSE_START, newPauseStart);
      const newShift = untilNs - newPauseStart;
      if (newShift > shift) Atomics.store(w, Word.SHIFT_NS, newShift);
    } finally {
      Atomics.store(w, Word.PAUSE_WRITER, 0n);
    }
    // A throttle that starts a new pause is a new congestion event: cut the
    // rate before the drain, so the drain spaces by the new interval.
    if (newPause && this.adaptive) this.limits.forEach((_, i) => this.adjustInterval(i, decreasedInterval));
    const pauseStart = Atomics.load(w, Word.PAUSE_START);
    const drainTo = (i: number): bigint => pauseStart + (this.limits[i]!.burst - 1n) * this.intervalNs(i);
    if (!this.multi) {
      const base = this.limits[0]!.base;
      const target = drainTo(0);
      // TAT loop: TAT only grows here; the +1 always changes it (see above)
      // and puts every new slot strictly after PAUSE_START.
      for (;;) {
        const tat = Atomics.load(w, base);
        const next = (tat > target ? tat : target) + 1n;
        if (Atomics.compareExchange(w, base, tat, next) === tat) break;
      }
    } else {
      this.lock();
      try {
        this.limits.forEach((limit, i) => {
          const tat = Atomics.load(w, limit.base);
          const target = drainTo(i);
          Atomics.store(w, limit.base, (tat > target ? tat : target) + 1n);
        });
        Atomics.add(w, Word.MULTI_SEQ, 1n); // no undo may cross a backoff
      } finally {
        this.unlock();
      }
    }
    Atomics.add(w, Word.THROTTLE_COUNT, 1n);
  }

  /** Adaptive rate: one success moves every limit's rate back toward its configured rate. */
  recordSuccess(): void {
    if (!this.adaptive) return;
    for (let i = 0; i < this.limits.length; i++) {
      if (this.intervalNs(i) !== this.limits[i]!.law!.minIntervalNs) this.adjustInterval(i, recoveredInterval);
    }
  }

  /**
   * INTERVAL_NS loop: the interval only moves by the law, always within
   * [minIntervalNs, floorIntervalNs]; a failed CAS means another thread applied
   * a step first, and ours is applied on top of it (no step is lost).
   */
  private adjustInterval(i: number, step: (intervalNs: bigint, law: AdaptiveLaw) => bigint): void {
    const w = this.words;
    const limit = this.limits[i]!;
    const index = limit.base + LimitWord.INTERVAL_NS;
    for (;;) {
      const intervalNs = Atomics.load(w, index);
      const next = step(intervalNs, limit.law!);
      if (next === intervalNs || Atomics.compareExchange(w, index, intervalNs, next) === intervalNs) return;
    }
  }

  /** Real time at which the current pause ends (≤ now when not paused). */
  pausedUntilNs(): bigint {
    const shift = Atomics.load(this.words, Word.SHIFT_NS);
    return Atomics.load(this.words, Word.PAUSE_START) + shift;
  }

  private lock(): void {
    this.lockWord(Word.MULTI_LOCK);
  }

  private unlock(): void {
    Atomics.store(this.words, Word.MULTI_LOCK, 0n);
  }

  /**
   * Lock loop: 0 = free, 1 = held. Guards a handful of operations; spin
   * briefly, then sleep in 0.02 ms steps. If the holder was terminated inside
   * the section, take over after ~LOCK_MAX_WAITS sleeps instead of waiting
   * forever (a live holder is never that slow).
   */
  private lockWord(index: number): void {
    const w = this.words;
    for (let tries = 0; ; tries++) {
      if (Atomics.compareExchange(w, index, 0n, 1n) === 0n) return;
      if (tries < LOCK_SPINS) continue;
      if (tries >= LOCK_SPINS + LOCK_MAX_WAITS) return;
      Atomics.wait(this.i32, SLEEP_INDEX_I32, 0, 0.02);
    }
  }
}
