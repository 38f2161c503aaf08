/**
 * The CAS loops over one limiter's shared words (`layout.ts`). Every method
 * takes `now` (ns, from the limiter's clock) instead of reading a clock, so the
 * same code runs against real threads and against a test's fake clock.
 *
 * Timeline. The schedule lives on a virtual timeline v = now − SHIFT_NS.
 * Between backoffs SHIFT_NS is constant and virtual time runs with real time.
 * A backoff at real time b until real time u freezes virtual time at
 * P = b − SHIFT_NS ("pause start") until u:
 *
 *     virtual(now) = max(PAUSE_START, now − SHIFT_NS),   SHIFT_NS := u − P
 *
 * so every slot at or after P (everything not yet due when the pause began,
 * including waiters already sleeping) becomes due at u or later, in its old
 * order and with its old spacing, while slots before P (already due) stay due.
 * Waiters keep only their virtual slot and re-read SHIFT_NS/PAUSE_START when
 * they wake, so a pause reaches them without any message.
 */
import { decreasedInterval, recoveredInterval, type AdaptiveLaw } from './adaptive.js';
import { place } from './gcra.js';
import { Word, SLEEP_INDEX_I32, type SharedViews } from './layout.js';

/** How a reservation request ended. */
export const Outcome = {
  /** Conforms now: granted. */
  Granted: 0,
  /** Reserved a future slot: the caller waits until it is due. */
  Delayed: 1,
  /** The wait would exceed the allowed maximum; nothing reserved. */
  TooLate: 2,
  /** The queue holds more than `maxQueue` cost units; nothing reserved. */
  QueueFull: 3,
} as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];

/** A committed or refused place on the schedule. */
export interface Placed {
  readonly outcome: Outcome;
  /** Cost units asked for. */
  readonly cost: number;
  /** Virtual time at which the request conforms. */
  readonly slot: bigint;
  /** The TAT this request wrote (needed to cancel it). */
  readonly next: bigint;
  /** cost × emission interval at the time of the request. */
  readonly costNs: bigint;
  /** Real ns to wait from `now` (≤ 0 when granted at once). */
  readonly delayNs: bigint;
}

/**
 * Sleeps (of `sleepMs`, default 0.05 ms) a backoff waits for the pause writer
 * lock before assuming its holder was terminated inside the section and
 * taking over: about 1 s.
 */
const PAUSE_WRITER_MAX_WAITS = 20_000;

export class LimiterState {
  readonly words: BigInt64Array;
  readonly i32: Int32Array;
  readonly burst: bigint;
  /** Max cost units waiting, -1n = unbounded. */
  readonly maxQueue: bigint;
  /** The adaptive-rate law, or null when the rate is fixed. */
  readonly law: AdaptiveLaw | null;

  // τ = burst·T, recomputed only when the shared interval changes.
  private cachedIntervalNs = -1n;
  private cachedToleranceNs = 0n;

  constructor(views: SharedViews) {
    this.words = views.words;
    this.i32 = views.i32;
    this.burst = Atomics.load(views.words, Word.BURST);
    this.maxQueue = Atomics.load(views.words, Word.MAX_QUEUE);
    const floorIntervalNs = Atomics.load(views.words, Word.FLOOR_INTERVAL_NS);
    this.law = floorIntervalNs < 0n ? null : {
      minIntervalNs: Atomics.load(views.words, Word.MAX_INTERVAL_NS),
      floorIntervalNs,
      decreasePpm: Atomics.load(views.words, Word.DECREASE_PPM),
      recoveryPpm: Atomics.load(views.words, Word.RECOVERY_PPM),
    };
  }

  /** Current emission interval T, ns per cost unit. */
  intervalNs(): bigint {
    return Atomics.load(this.words, Word.INTERVAL_NS);
  }

  private toleranceFor(intervalNs: bigint): bigint {
    if (intervalNs !== this.cachedIntervalNs) {
      this.cachedToleranceNs = this.burst * intervalNs;
      this.cachedIntervalNs = intervalNs;
    }
    return this.cachedToleranceNs;
  }

  /**
   * Grants `cost` at once or not at all; never reserves. The hot path: two
   * loads of read-mostly words, then one load and one CAS on TAT.
   */
  tryTake(now: bigint, cost: number): boolean {
    const w = this.words;
    const intervalNs = Atomics.load(w, Word.INTERVAL_NS);
    const toleranceNs = this.toleranceFor(intervalNs);
    const costNs = cost === 1 ? intervalNs : BigInt(cost) * intervalNs;
    // TAT loop. TAT only grows, except by cancel() of the latest reservation.
    // Grant iff next − v ≤ τ (slot ≤ v), then publish next with one CAS; a
    // failed CAS means another thread moved TAT: recompute from its value.
    // A clock read before the loop is only ever older (smaller v), which can
    // refuse a grant, never over-grant.
    for (;;) {
      const tat = Atomics.load(w, Word.TAT);
      // Unclamped virtual time: during a pause now − SHIFT_NS < PAUSE_START ≤
      // TAT − (burst−1)·T, so the test below refuses, exactly as with the
      // clamped max(PAUSE_START, now − SHIFT_NS) that reserve() needs for its
      // queue length; this path saves the third load.
      const v = now - Atomics.load(w, Word.SHIFT_NS);
      const next = (tat > v ? tat : v) + costNs;
      if (next - v > toleranceNs) return false;
      if (Atomics.compareExchange(w, Word.TAT, tat, next) === tat) {
        Atomics.add(w, Word.GRANTED_COST, cost === 1 ? 1n : BigInt(cost));
        return true;
      }
    }
  }

  /**
   * Places `cost` on the schedule: granted at once, or a future slot
   * reserved, or refused (nothing written) when the wait would exceed
   * `maxDelayNs` (-1n = unbounded) or the queue would exceed `maxQueue`.
   */
  reserve(now: bigint, cost: number, maxDelayNs: bigint): Placed {
    const w = this.words;
    const intervalNs = Atomics.load(w, Word.INTERVAL_NS);
    const toleranceNs = this.toleranceFor(intervalNs);
    const costNs = BigInt(cost) * intervalNs;
    const maxQueueNs = this.maxQueue < 0n ? -1n : this.maxQueue * intervalNs;
    // TAT loop, as in tryTake; the refusals return before any write, so a
    // refused request leaves no trace on the schedule.
    for (;;) {
      const tat = Atomics.load(w, Word.TAT);
      const shift = Atomics.load(w, Word.SHIFT_NS);
      const pauseStart = Atomics.load(w, Word.PAUSE_START);
      const rawV = now - shift;
      const v = rawV > pauseStart ? rawV : pauseStart;
      const { next, slot } = place(tat, v, costNs, toleranceNs);
      // Real delay: the slot becomes due at real time slot + shift.
      const delayNs = slot + shift - now;
      if (slot > v) {
        if (maxDelayNs >= 0n && delayNs > maxDelayNs) {
          return { outcome: Outcome.TooLate, cost, slot, next, costNs, delayNs };
        }
        // Queue length in cost units = how far the slot lies beyond the
        // present (or beyond the pause, during a pause).
        if (maxQueueNs >= 0n && slot - v > maxQueueNs) {
          return { outcome: Outcome.QueueFull, cost, slot, next, costNs, delayNs };
        }
      }
      if (Atomics.compareExchange(w, Word.TAT, tat, next) === tat) {
        Atomics.add(w, Word.GRANTED_COST, BigInt(cost));
        const outcome = slot > v ? Outcome.Delayed : Outcome.Granted;
        return { outcome, cost, slot, next, costNs, delayNs };
      }
    }
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
   * Gives back a reserved slot that is not yet due (x/time/rate's Cancel):
   * if no later request has been placed after it (TAT still equals its
   * `next`), TAT rolls back by its cost, exactly undoing it. Otherwise later
   * grants were scheduled behind it and depend on it, so the slot is left
   * empty: capacity is lost, never over-granted. Returns whether capacity came
   * back.
   */
  cancel(now: bigint, placed: Placed): boolean {
    if (this.remainingNs(now, placed.slot) === 0n) return false; // already granted
    const w = this.words;
    Atomics.add(w, Word.CANCELLED_COUNT, 1n);
    // One CAS, no loop: success means nothing was placed after us; failure
    // means something was, and then nothing may be given back.
    const restored = Atomics.compareExchange(w, Word.TAT, placed.next, placed.next - placed.costNs) === placed.next;
    if (restored) Atomics.sub(w, Word.GRANTED_COST, BigInt(placed.cost));
    return restored;
  }

  /**
   * Pauses every grant until real time `untilNs` (shared backoff).
   *
   * Order matters. (1) PAUSE_START := max(PAUSE_START, now − SHIFT_NS);
   * (2) SHIFT_NS := max(SHIFT_NS, untilNs − PAUSE_START); (3) TAT :=
   * max(TAT, PAUSE_START + (burst−1)·T) + 1. Step 3 drains the bucket so
   * grants resume one interval at a time (no burst after the pause), and
   * always changes TAT, so any request that read SHIFT_NS before step 2 fails
   * its CAS and re-reads: once backoff() returns no request can be granted
   * on a pre-pause view. Steps 1–2 run under a leased writer lock because two
   * backoffs interleaving them could publish a PAUSE_START computed from a
   * stale SHIFT_NS (a pause start later than the frozen present).
   * Monotone: a shorter or earlier backoff never shortens a pause.
   */
  backoff(now: bigint, untilNs: bigint, sleepMs = 0.05): void {
    const w = this.words;
    let newPause = false;
    this.lockPauseWriter(sleepMs);
    try {
      const shift = Atomics.load(w, Word.SHIFT_NS);
      const pauseStart = Atomics.load(w, Word.PAUSE_START);
      const v = now - shift;
      const newPauseStart = v > pauseStart ? v : pauseStart;
      // Not inside a pause (virtual time not frozen): this throttle starts one.
      newPause = v >= pauseStart;
      if (newPauseStart !== pauseStart) Atomics.store(w, Word.PAUSE_START, newPauseStart);
      const newShift = untilNs - newPauseStart;
      if (newShift > shift) Atomics.store(w, Word.SHIFT_NS, newShift);
    } finally {
      Atomics.store(w, Word.PAUSE_WRITER, 0n);
    }
    // A throttle that starts a new pause is a new congestion event: cut the
    // rate before the drain, so the drain spaces by the new interval.
    if (newPause && this.law !== null) this.adjustInterval(decreasedInterval);
    const pauseStart = Atomics.load(w, Word.PAUSE_START);
    const drainTo = pauseStart + (this.burst - 1n) * Atomics.load(w, Word.INTERVAL_NS);
    // TAT loop: TAT only grows here; the +1 guarantees a change (see above).
    for (;;) {
      const tat = Atomics.load(w, Word.TAT);
      const next = (tat > drainTo ? tat : drainTo) + 1n;
      if (Atomics.compareExchange(w, Word.TAT, tat, next) === tat) break;
    }
    Atomics.add(w, Word.THROTTLE_COUNT, 1n);
  }

  /** Adaptive rate: one success moves the shared rate back toward the configured rate. */
  recordSuccess(): void {
    if (this.law === null || Atomics.load(this.words, Word.INTERVAL_NS) === this.law.minIntervalNs) return;
    this.adjustInterval(recoveredInterval);
  }

  /**
   * INTERVAL_NS loop: the interval only moves by the law, always within
   * [minIntervalNs, floorIntervalNs]; a failed CAS means another thread applied
   * a step first, and ours is applied on top of it (no step is lost).
   */
  private adjustInterval(step: (intervalNs: bigint, law: AdaptiveLaw) => bigint): void {
    const w = this.words;
    const law = this.law!;
    for (;;) {
      const intervalNs = Atomics.load(w, Word.INTERVAL_NS);
      const next = step(intervalNs, law);
      if (next === intervalNs || Atomics.compareExchange(w, Word.INTERVAL_NS, intervalNs, next) === intervalNs) return;
    }
  }

  /** Real time at which the current pause ends (≤ now when not paused). */
  pausedUntilNs(): bigint {
    const shift = Atomics.load(this.words, Word.SHIFT_NS);
    return Atomics.load(this.words, Word.PAUSE_START) + shift;
  }

  private lockPauseWriter(sleepMs: number): void {
    const w = this.words;
    // Lock loop: 0 = free, 1 = held. The section it guards is four atomic
    // operations; if its holder was terminated inside it, take over after
    // ~PAUSE_WRITER_MAX_WAITS sleeps instead of waiting forever.
    for (let waits = 0; ; waits++) {
      if (Atomics.compareExchange(w, Word.PAUSE_WRITER, 0n, 1n) === 0n) return;
      if (waits >= PAUSE_WRITER_MAX_WAITS) return;
      Atomics.wait(this.i32, SLEEP_INDEX_I32, 0, sleepMs);
    }
  }
}
