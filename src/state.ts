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
 * Two words per limit: the queue and what was delivered. TAT is the queue
 * (x/time/rate's reservation schedule): a waiter takes the next place on it
 * in one CAS, which fixes FIFO order, queue length and its ETA. DELIVERED is
 * the theoretical arrival time of what was actually handed out: every
 * request leaves this library through one CAS on it at the instant it is
 * handed out (tryAcquire/acquire granting at once, a waiter whose place came
 * due, a reservation committing its slot), and only when that instant
 * conforms: max(DELIVERED, v) + c·T − v ≤ τ. The delivery instants of all
 * threads therefore form one GCRA-conforming sequence, so the promise
 * (at most burst + rate × L in any window of length L) holds for when calls
 * return, not only for the queue's slots. A waiter that wakes late (a
 * blocked event loop, a coarse timer, GC) delivers late, never on top of
 * what was delivered meanwhile: it finds DELIVERED moved and sleeps until it
 * conforms, holding its place in the queue meanwhile. Safety rests on
 * DELIVERED alone; TAT only orders and bounds the queue.
 *
 * One limit: lock-free. Each decision is one CAS (on TAT to queue, on
 * DELIVERED to hand out).
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

/**
 * One request's place on the schedule and, once delivered, on the delivered
 * timeline. Mutable: a waiter that holds its place while the deliveries
 * catch up, and its delivery, are recorded here by `state.ts` only.
 */
export interface Placed {
  readonly outcome: Outcome;
  /** Cost per limit, by limit index. */
  readonly costs: readonly number[];
  /**
   * Virtual time at which the request conforms on the schedule: its FIFO
   * position. Strictly increasing between waiters with one limit,
   * non-decreasing with several. For a request delivered at once it is the
   * instant its delivery conformed (next − τ, which can lie in the past).
   */
  readonly slot: bigint;
  /** Real ns to wait from `now` (≤ 0 when due at once). */
  readonly delayNs: bigint;
  /** Index of the limit whose `maxQueue` refused it (QueueFull only). */
  readonly fullLimit: number;
  /** The emission interval used per limit, ns. */
  readonly intervals: readonly bigint[];
  /** TAT written per limit by this request; null if it never took a place on the schedule. */
  scheduleNexts: bigint[] | null;
  /** TATs before the placement (several limits: a full undo restores them). */
  readonly prevs: readonly bigint[];
  readonly prevLastSlot: bigint;
  /** MULTI_SEQ after this placement (several limits); -1n = its schedule place can no longer be undone. */
  seq: bigint;
  /** DELIVERED written per limit by its delivery; null until delivered. */
  deliveredNexts: bigint[] | null;
  /** MULTI_DSEQ after its delivery (several limits), else -1n. */
  dseq: bigint;
  /** One limit: counted in QUEUED (placed, not yet handed out or given back). */
  queued: boolean;
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

const TAT = LimitWord.TAT;
const DELIVERED = LimitWord.DELIVERED;

/**
 * How far ahead of the present any TAT may run: 2^62 ns (~146 years). With
 * the present below 2^62 ns and τ < 2^62 (checked at creation), every
 * schedule word stays below 2^63: no placement, reservation, charge or drain
 * can wrap the 64-bit words. A queue that would reach past it is refused
 * (QueueFull) as if `maxQueue` said so; a charge saturates at it.
 */
export const SCHEDULE_HORIZON_NS = 1n << 62n;

/**
 * The longest queue (ns of schedule beyond the present) a placement may
 * reach: `maxQueue` cost units, and never so far that its TAT (slot + τ)
 * would pass the horizon.
 */
function queueBoundNs(maxQueue: bigint, intervalNs: bigint, toleranceNs: bigint): bigint {
  const horizon = SCHEDULE_HORIZON_NS - toleranceNs;
  if (maxQueue < 0n) return horizon;
  const configured = maxQueue * intervalNs;
  return configured < horizon ? configured : horizon;
}

function placedAt(outcome: Outcome, costs: readonly number[], slot: bigint, delayNs: bigint, intervals: readonly bigint[], fullLimit = -1): Placed {
  return {
    outcome, costs, slot, delayNs, fullLimit, intervals,
    scheduleNexts: null, prevs: [], prevLastSlot: 0n, seq: -1n, deliveredNexts: null, dseq: -1n, queued: false,
  };
}

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
  /** Int32 index of limit 0's QUEUED counter. */
  private readonly queued0: number;
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
    this.queued0 = (this.base0 + LimitWord.QUEUED) * 2;
    this.granted0 = this.limits[0]!.granted;
    this.burst0 = config.limits[0]!.burst;
    this.cachedIntervalNs = Atomics.load(this.words, this.base0 + LimitWord.INTERVAL_NS);
    this.cachedToleranceNs = this.burst0 * this.cachedIntervalNs;
  }

  /** The DELIVERED value written by this thread's latest successful {@link tryTakeSingle} (a typed slot: storing a BigInt there allocates nothing). */
  readonly #lastDelivered = new BigInt64Array(1);
  get lastDelivered(): bigint {
    return this.#lastDelivered[0]!;
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

  /** The queue bound of limit `i` in cost units now: its `maxQueue`, or the schedule's horizon when nearer (for QueueFullError). */
  queueLimitUnits(i: number): number {
    const limit = this.limits[i]!;
    const intervalNs = this.intervalNs(i);
    return Number(queueBoundNs(limit.maxQueue, intervalNs, limit.burst * intervalNs) / intervalNs);
  }

  /** The later of limit `i`'s schedule and delivered TATs: how far its capacity is spoken for. */
  committedTat(i: number): bigint {
    const base = this.limits[i]!.base;
    const s = Atomics.load(this.words, base + TAT);
    const d = Atomics.load(this.words, base + DELIVERED);
    return s > d ? s : d;
  }

  // ---------------------------------------------------------------- one limit

  /**
   * One limit, delivered now or not at all; never queues. The hot path: a
   * load of the read-mostly SHIFT_NS, then two loads and one CAS on the
   * limit's line. Returns whether it was granted; the DELIVERED value it
   * wrote is left in {@link lastDelivered} (a boolean result keeps the hot
   * path free of BigInt comparisons, which V8 does not inline).
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
    // DELIVERED loop. A delivery at virtual time v conforms iff
    //   max(DELIVERED, v) + c·T − v ≤ τ          (GCRA on delivery instants)
    // and, so that it never passes a waiter, iff TAT + c·T − v ≤ τ as well
    // (the queue's places are spoken for). It publishes
    // DELIVERED := max(DELIVERED, v) + c·T with one CAS; a failed CAS means
    // another delivery moved it: recompute. DELIVERED only grows, except by a
    // refund of the latest delivery. `now` read before the loop is only ever
    // older (smaller v): it can refuse, never over-grant. Unclamped v: during
    // a pause v < PAUSE_START ≤ DELIVERED − (burst−1)·T, so the test refuses,
    // as the clamped max(PAUSE_START, v) would.
    for (;;) {
      const delivered = Atomics.load(w, base + DELIVERED);
      const v = now - Atomics.load(w, Word.SHIFT_NS);
      const next = (delivered > v ? delivered : v) + costNs;
      if (next - v > toleranceNs) return false;
      // The queue (TAT) matters only while someone waits in it: a plain
      // Int32 read (no BigInt made, no fence) skips it otherwise. It may be
      // stale; then a waiter placed an instant ago is passed once — a FIFO
      // nuance, never an over-grant: safety rests on the DELIVERED CAS.
      if (this.i32[this.queued0] !== 0 && Atomics.load(w, base) + costNs - v > toleranceNs) return false;
      if (Atomics.compareExchange(w, base + DELIVERED, delivered, next) === delivered) {
        Atomics.add(w, this.granted0, cost === 1 ? 1n : BigInt(cost));
        this.#lastDelivered[0] = next;
        return true;
      }
    }
  }

  /**
   * Takes a place after both timelines (base = max(TAT, DELIVERED, v)) and
   * publishes it on one word: TAT for a waiter (the queue: it is handed out
   * later, by deliver), DELIVERED for a reservation (handed out by its
   * caller at its slot, so committed now). Refusals return before any write.
   */
  private placeSingle(now: bigint, cost: number, maxDelayNs: bigint, word: typeof TAT | typeof DELIVERED = TAT): Placed {
    const w = this.words;
    const limit = this.limits[0]!;
    const intervalNs = Atomics.load(w, limit.base + LimitWord.INTERVAL_NS);
    const toleranceNs = limit.burst * intervalNs;
    const costNs = BigInt(cost) * intervalNs;
    const maxQueueNs = queueBoundNs(limit.maxQueue, intervalNs, toleranceNs);
    // A waiter counts itself in QUEUED before it takes its place (see tryTakeSingle).
    if (word === TAT) Atomics.add(this.i32, this.queued0, 1);
    // TAT (or DELIVERED) loop: the word only grows, except by the undo of the
    // latest placement (and TAT by the collapse when no one waits, see
    // leaveQueue). A failed CAS means another placement, delivery or a drain
    // moved it: recompute.
    for (;;) {
      const tat = Atomics.load(w, limit.base);
      const delivered = Atomics.load(w, limit.base + DELIVERED);
      const { shift, v } = this.timeline(now);
      const committed = tat > delivered ? tat : delivered;
      const next = (committed > v ? committed : v) + costNs;
      const slot = next - toleranceNs;
      const delayNs = slot + shift - now;
      if (slot > v) {
        const refusal = this.refusal(slot - v, delayNs, maxDelayNs, maxQueueNs, 0, [cost], slot);
        if (refusal !== null) {
          if (word === TAT) Atomics.sub(this.i32, this.queued0, 1);
          return refusal;
        }
      }
      const seen = word === TAT ? tat : delivered;
      if (Atomics.compareExchange(w, limit.base + word, seen, next) === seen) {
        if (word === DELIVERED) Atomics.add(w, limit.granted, BigInt(cost)); // waiters count when handed out
        const placed = placedAt(slot > v ? Outcome.Delayed : Outcome.Granted, [cost], slot, delayNs, [intervalNs]);
        if (word === TAT) {
          placed.scheduleNexts = [next];
          placed.queued = true;
        } else {
          placed.deliveredNexts = [next];
        }
        return placed;
      }
    }
  }

  /**
   * Delivers a placed request at `now` if it may be delivered now; else
   * returns the real ns to sleep before asking again. Two conditions, both
   * read fresh at every call (a backoff can move either later):
   *
   * 1. its place is due: slot ≤ max(PAUSE_START, now − SHIFT_NS);
   * 2. the delivery conforms on the delivered timeline (GCRA on the instants
   *    at which requests are actually handed out, whoever hands them out):
   *    max(DELIVERED, v) + c·T − v ≤ τ. Deliveries are published by CAS on
   *    DELIVERED, so the instants of all deliveries, in every thread, form
   *    one conforming sequence: in every window of length L at most
   *    burst + L/T cost units are delivered.
   *
   * A waiter that wakes late delivers late, but never on top of what was
   * delivered meanwhile: condition 2 sees every delivery since. When it does
   * not conform yet it holds its place (TAT := max(TAT, its delivered next)),
   * so tryAcquire and newcomers stay behind it and it keeps its turn, and
   * sleeps until it conforms. Only DELIVERED decides safety; TAT only orders.
   */
  deliver(now: bigint, placed: Placed): bigint {
    return this.multi ? this.deliverMulti(now, placed) : this.deliverSingle(now, placed);
  }

  private deliverSingle(now: bigint, placed: Placed): bigint {
    const w = this.words;
    const limit = this.limits[0]!;
    const base = limit.base;
    const cost = BigInt(placed.costs[0]!);
    // DELIVERED loop, as in tryTakeSingle (without the queue test: this
    // request is the queue's head when its place is due).
    for (;;) {
      const { shift, v } = this.timeline(now);
      if (placed.slot > v) return placed.slot + shift - now;
      const intervalNs = Atomics.load(w, base + LimitWord.INTERVAL_NS);
      const toleranceNs = limit.burst * intervalNs;
      const delivered = Atomics.load(w, base + DELIVERED);
      const next = (delivered > v ? delivered : v) + cost * intervalNs;
      const conformsAt = next - toleranceNs;
      if (conformsAt > v) {
        this.holdPlaceSingle(placed, next);
        return conformsAt + shift - now;
      }
      if (Atomics.compareExchange(w, base + DELIVERED, delivered, next) === delivered) {
        placed.deliveredNexts = [next];
        Atomics.add(w, limit.granted, cost);
        this.leaveQueue(placed);
        return 0n;
      }
    }
  }

  /**
   * TAT := max(TAT, next): newcomers are placed after this waiter's delivery,
   * and tryAcquire refuses until it is out. TAT only grows here. If TAT still
   * held this waiter's own value, the waiter now owns the new one (its undo
   * follows it); otherwise its old place stays spoken for (capacity lost,
   * never over-granted).
   */
  private holdPlaceSingle(placed: Placed, next: bigint): void {
    const w = this.words;
    const base = this.limits[0]!.base;
    for (;;) {
      const tat = Atomics.load(w, base);
      if (tat >= next) return;
      if (Atomics.compareExchange(w, base, tat, next) === tat) {
        if (placed.scheduleNexts !== null && placed.scheduleNexts[0] === tat) placed.scheduleNexts = [next];
        return;
      }
    }
  }

  // ----------------------------------------------------------- several limits

  /**
   * Places a request over every limit at once (see the module comment). Under
   * MULTI_LOCK only lock holders write TATs, DELIVEREDs and LAST_SLOT, so
   * plain stores suffice; MULTI_SEQ counts placements so an undo can tell
   * whether it is still the latest.
   */
  private placeMulti(now: bigint, costs: readonly number[], maxDelayNs: bigint): Placed {
    const w = this.words;
    const n = this.limits.length;
    this.lock();
    try {
      const { shift, v } = this.timeline(now);
      const prevLastSlot = Atomics.load(w, Word.LAST_SLOT);
      const tats: bigint[] = new Array(n);
      const committed: bigint[] = new Array(n);
      const intervals: bigint[] = new Array(n);
      // Joint slot g: the earliest virtual time ≥ v, ≥ LAST_SLOT (FIFO) at
      // which every limit conforms: for limit i, with C_i = max(TAT_i, DELIVERED_i),
      // max(C_i, g) + c_i·T_i − g ≤ τ_i ⟺ g ≥ C_i + c_i·T_i − τ_i (as c_i ≤ burst_i).
      let g = v > prevLastSlot ? v : prevLastSlot;
      for (let i = 0; i < n; i++) {
        const limit = this.limits[i]!;
        const tat = Atomics.load(w, limit.base);
        const delivered = Atomics.load(w, limit.base + DELIVERED);
        const intervalNs = Atomics.load(w, limit.base + LimitWord.INTERVAL_NS);
        tats[i] = tat;
        committed[i] = tat > delivered ? tat : delivered;
        intervals[i] = intervalNs;
        const earliest = committed[i]! + BigInt(costs[i]!) * intervalNs - limit.burst * intervalNs;
        if (earliest > g) g = earliest;
      }
      const delayNs = g + shift - now;
      if (g > v) {
        for (let i = 0; i < n; i++) {
          const limit = this.limits[i]!;
          const maxQueueNs = queueBoundNs(limit.maxQueue, intervals[i]!, limit.burst * intervals[i]!);
          const refusal = this.refusal(g - v, delayNs, maxDelayNs, maxQueueNs, i, costs, g);
          if (refusal !== null) return refusal;
        }
      }
      Atomics.add(this.i32, this.queued0, 1); // under the lock: counted before anyone can see its place
      const nexts: bigint[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const limit = this.limits[i]!;
        const c = committed[i]!;
        nexts[i] = (c > g ? c : g) + BigInt(costs[i]!) * intervals[i]!;
        Atomics.store(w, limit.base, nexts[i]!);
      }
      Atomics.store(w, Word.LAST_SLOT, g);
      const seq = Atomics.add(w, Word.MULTI_SEQ, 1n) + 1n;
      return {
        outcome: g > v ? Outcome.Delayed : Outcome.Granted,
        costs, slot: g, delayNs, fullLimit: -1, intervals,
        scheduleNexts: nexts, prevs: tats, prevLastSlot, seq, deliveredNexts: null, dseq: -1n, queued: true,
      };
    } finally {
      this.unlock();
    }
  }

  /**
   * Several limits, delivered now or not at all: under the lock, every limit
   * must conform on its delivered timeline and no waiter may be passed (each
   * TAT_i + c_i·T_i − v ≤ τ_i, and LAST_SLOT ≤ v). Returns the placement, or
   * null when refused.
   */
  private takeMulti(now: bigint, costs: readonly number[]): Placed | null {
    const w = this.words;
    const n = this.limits.length;
    this.lock();
    try {
      const { shift, v } = this.timeline(now);
      // Its slot, as a placement's: the joint earliest instant at which every
      // limit conforms, never before LAST_SLOT (FIFO: not before a waiter).
      let slot = Atomics.load(w, Word.LAST_SLOT);
      if (slot > v) return null;
      const nexts: bigint[] = new Array(n);
      const intervals: bigint[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const limit = this.limits[i]!;
        const intervalNs = Atomics.load(w, limit.base + LimitWord.INTERVAL_NS);
        const toleranceNs = limit.burst * intervalNs;
        const costNs = BigInt(costs[i]!) * intervalNs;
        const delivered = Atomics.load(w, limit.base + DELIVERED);
        intervals[i] = intervalNs;
        nexts[i] = (delivered > v ? delivered : v) + costNs;
        if (nexts[i]! - v > toleranceNs || Atomics.load(w, limit.base) + costNs - v > toleranceNs) return null;
        if (costs[i]! > 0 && nexts[i]! - toleranceNs > slot) slot = nexts[i]! - toleranceNs;
      }
      for (let i = 0; i < n; i++) {
        if (costs[i]! === 0) continue;
        Atomics.store(w, this.limits[i]!.base + DELIVERED, nexts[i]!);
        Atomics.add(w, this.limits[i]!.granted, BigInt(costs[i]!));
      }
      const placed = placedAt(Outcome.Granted, costs, slot, slot + shift - now, intervals);
      placed.deliveredNexts = nexts;
      placed.dseq = Atomics.add(w, Word.MULTI_DSEQ, 1n) + 1n;
      return placed;
    } finally {
      this.unlock();
    }
  }

  /** {@link deliver} over several limits, under the lock, all limits or none. */
  private deliverMulti(now: bigint, placed: Placed): bigint {
    const w = this.words;
    const n = this.limits.length;
    this.lock();
    try {
      const { shift, v } = this.timeline(now);
      if (placed.slot > v) return placed.slot + shift - now;
      const nexts: bigint[] = new Array(n);
      let conformsAt = v;
      for (let i = 0; i < n; i++) {
        const limit = this.limits[i]!;
        const intervalNs = Atomics.load(w, limit.base + LimitWord.INTERVAL_NS);
        const delivered = Atomics.load(w, limit.base + DELIVERED);
        nexts[i] = (delivered > v ? delivered : v) + BigInt(placed.costs[i]!) * intervalNs;
        const at = nexts[i]! - limit.burst * intervalNs;
        if (placed.costs[i]! > 0 && at > conformsAt) conformsAt = at;
      }
      if (conformsAt > v) {
        // Hold the place in every limit (see holdPlaceSingle); the schedule
        // changed, so no earlier placement may undo itself any more.
        for (let i = 0; i < n; i++) {
          const base = this.limits[i]!.base;
          if (placed.costs[i]! > 0 && Atomics.load(w, base) < nexts[i]!) Atomics.store(w, base, nexts[i]!);
        }
        if (Atomics.load(w, Word.LAST_SLOT) < conformsAt) Atomics.store(w, Word.LAST_SLOT, conformsAt);
        Atomics.add(w, Word.MULTI_SEQ, 1n);
        placed.seq = -1n;
        return conformsAt + shift - now;
      }
      for (let i = 0; i < n; i++) {
        if (placed.costs[i]! === 0) continue;
        Atomics.store(w, this.limits[i]!.base + DELIVERED, nexts[i]!);
        Atomics.add(w, this.limits[i]!.granted, BigInt(placed.costs[i]!));
      }
      placed.deliveredNexts = nexts;
      placed.dseq = Atomics.add(w, Word.MULTI_DSEQ, 1n) + 1n;
      if (placed.queued) {
        placed.queued = false;
        if (Atomics.sub(this.i32, this.queued0, 1) === 1) this.collapseLocked();
      }
      return 0n;
    } finally {
      this.unlock();
    }
  }

  // ------------------------------------------------------------- both shapes

  /** SHIFT_NS, and v = max(PAUSE_START, now − SHIFT_NS) — read in that order (see remainingNs). */
  private timeline(now: bigint): { shift: bigint; v: bigint } {
    const shift = Atomics.load(this.words, Word.SHIFT_NS);
    const pauseStart = Atomics.load(this.words, Word.PAUSE_START);
    const rawV = now - shift;
    return { shift, v: rawV > pauseStart ? rawV : pauseStart };
  }

  /** Delivers at once or not at all; never queues. */
  tryTake(now: bigint, costs: readonly number[]): boolean {
    if (!this.multi) return this.tryTakeSingle(now, costs[0]!);
    return this.takeMulti(now, costs) !== null;
  }

  /** As {@link tryTake}, returning the delivered placement (for a Grant), or null. */
  takeNow(now: bigint, costs: readonly number[]): Placed | null {
    if (this.multi) return this.takeMulti(now, costs);
    if (!this.tryTakeSingle(now, costs[0]!)) return null;
    const next = this.lastDelivered;
    const intervalNs = this.intervalNs(0);
    const slot = next - this.limits[0]!.burst * intervalNs;
    const placed = placedAt(Outcome.Granted, costs, slot, 0n, [intervalNs]);
    placed.deliveredNexts = [next];
    return placed;
  }

  /**
   * Places a waiter in the queue: due at once, or a future slot reserved, or
   * refused (nothing written) when the wait would exceed `maxDelayNs` (-1n =
   * unbounded) or a limit's queue would exceed its `maxQueue`. Nothing is
   * delivered until {@link deliver} says so.
   */
  place(now: bigint, costs: readonly number[], maxDelayNs: bigint): Placed {
    return this.multi ? this.placeMulti(now, costs, maxDelayNs) : this.placeSingle(now, costs[0]!, maxDelayNs);
  }

  /**
   * A reservation (x/time/rate's Reserve): the caller, not this library,
   * hands the request out when its slot comes, so its delivery is committed
   * now, at its slot: DELIVERED := max(DELIVERED, slot) + c·T with the slot
   * the earliest at which that conforms and no earlier than the queue's end
   * (base = max(TAT, DELIVERED, v), as a placement). Every later delivery
   * then conforms around it.
   */
  reserve(now: bigint, costs: readonly number[], maxDelayNs: bigint): Placed {
    if (this.multi) {
      const placed = this.placeMulti(now, costs, maxDelayNs);
      if (placed.outcome === Outcome.TooLate || placed.outcome === Outcome.QueueFull) return placed;
      this.commitMulti(placed);
      this.leaveQueue(placed); // committed: not a waiter
      return placed;
    }
    return this.placeSingle(now, costs[0]!, maxDelayNs, DELIVERED);
  }

  /** Commits a multi-limit reservation's delivery at its slot (under the lock). */
  private commitMulti(placed: Placed): void {
    const w = this.words;
    this.lock();
    try {
      // Its schedule place (just written) is the latest or later ones were
      // placed after it; either way every DELIVERED_i ≤ its TAT_i here, so
      // max(DELIVERED_i, g) + c_i·T_i conforms at g.
      const nexts = this.limits.map((limit, i) => {
        const delivered = Atomics.load(w, limit.base + DELIVERED);
        const next = (delivered > placed.slot ? delivered : placed.slot) + BigInt(placed.costs[i]!) * placed.intervals[i]!;
        if (placed.costs[i]! > 0) {
          Atomics.store(w, limit.base + DELIVERED, next);
          Atomics.add(w, limit.granted, BigInt(placed.costs[i]!));
        }
        return next;
      });
      placed.deliveredNexts = nexts;
      placed.dseq = Atomics.add(w, Word.MULTI_DSEQ, 1n) + 1n;
    } finally {
      this.unlock();
    }
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
    return placedAt(outcome, costs, slot, delayNs, [], limit);
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
    return this.timeline(now).v;
  }

  /**
   * Gives back a request that was not delivered (a waiter that timed out or
   * was aborted), or a reservation not yet due (x/time/rate's Cancel): if no
   * later request has been placed after it, the schedule rolls back exactly.
   * Otherwise later requests were scheduled behind it and depend on it, so
   * its slot is left empty: capacity is lost, never over-granted, and with
   * several limits it is lost in all of them alike. Returns whether capacity
   * came back.
   */
  cancel(now: bigint, placed: Placed): boolean {
    if (placed.deliveredNexts !== null) {
      // A reservation: once due, the caller may have acted on it.
      if (this.remainingNs(now, placed.slot) === 0n) return false;
      Atomics.add(this.words, Word.CANCELLED_COUNT, 1n);
      return this.undo(placed, placed.costs);
    }
    Atomics.add(this.words, Word.CANCELLED_COUNT, 1n);
    const back = this.undoPlace(placed, placed.costs);
    this.leaveQueue(placed);
    return back;
  }

  /**
   * A waiter is out of the queue (handed out or given back): once per
   * waiter. The last one out collapses the queue onto what was delivered
   * (TAT := DELIVERED): places of waiters that gave up in any order — a mass
   * abort in FIFO order, where each cancel but the last finds a later place
   * behind it — come back at once instead of staying empty. Safe: with no
   * waiter left, TAT holds nothing DELIVERED does not; a newcomer counts
   * itself before it places, so the collapse either sees it and stops, or
   * fails its CAS on the TAT the newcomer moved.
   */
  private leaveQueue(placed: Placed): void {
    if (!placed.queued) return;
    placed.queued = false;
    if (Atomics.sub(this.i32, this.queued0, 1) !== 1) return;
    if (!this.multi) {
      const w = this.words;
      const base = this.base0;
      const tat = Atomics.load(w, base);
      const delivered = Atomics.load(w, base + DELIVERED);
      if (tat > delivered && Atomics.load(this.i32, this.queued0) === 0) Atomics.compareExchange(w, base, tat, delivered);
      return;
    }
    this.lock();
    try {
      this.collapseLocked();
    } finally {
      this.unlock();
    }
  }

  /** Several limits, under the lock: the queue collapse of {@link leaveQueue}. */
  private collapseLocked(): void {
    const w = this.words;
    if (Atomics.load(this.i32, this.queued0) !== 0) return;
    for (const limit of this.limits) {
      const delivered = Atomics.load(w, limit.base + DELIVERED);
      if (Atomics.load(w, limit.base) > delivered) Atomics.store(w, limit.base, delivered);
    }
    // No waiter left: the FIFO floor may drop to the present (PAUSE_START ≤ v).
    const pauseStart = Atomics.load(w, Word.PAUSE_START);
    if (Atomics.load(w, Word.LAST_SLOT) > pauseStart) Atomics.store(w, Word.LAST_SLOT, pauseStart);
    // MULTI_SEQ stays: no waiter is left to undo a place, and the latest
    // reservation's undo (TAT_i − its cost, TAT_i now = DELIVERED_i) stays exact.
  }

  /**
   * Rolls `amounts` of a waiter's place back off the schedule iff nothing was
   * placed after it. Single limit: one CAS — success means TAT still equals
   * what this placement wrote. Several: under the lock, MULTI_SEQ still
   * equals this placement's sequence number.
   */
  private undoPlace(placed: Placed, amounts: readonly number[]): boolean {
    const w = this.words;
    const nexts = placed.scheduleNexts;
    if (nexts === null) return false;
    if (!this.multi) {
      const base = this.limits[0]!.base;
      const next = nexts[0]!;
      const back = BigInt(amounts[0]!) * placed.intervals[0]!;
      if (Atomics.compareExchange(w, base, next, next - back) !== next) return false;
      placed.scheduleNexts = [next - back];
      return true;
    }
    this.lock();
    try {
      if (placed.seq < 0n || Atomics.load(w, Word.MULTI_SEQ) !== placed.seq) return false;
      // Nothing was placed, charged or drained since: TAT_i still equals
      // nexts[i], so subtracting amount·T_i is exactly "placed with less".
      const full = amounts.every((a, i) => a === placed.costs[i]);
      for (let i = 0; i < this.limits.length; i++) {
        const base = this.limits[i]!.base;
        const amount = BigInt(amounts[i]!);
        Atomics.store(w, base, full ? placed.prevs[i]! : nexts[i]! - amount * placed.intervals[i]!);
      }
      if (full) Atomics.store(w, Word.LAST_SLOT, placed.prevLastSlot);
      placed.seq = -1n;
      return true;
    } finally {
      this.unlock();
    }
  }

  /**
   * Rolls `amounts` of a delivered request (or committed reservation) back
   * off the delivered timeline iff it is still the latest delivery and no
   * waiter was placed behind it (one would keep its later time, and the
   * capacity would help nobody): DELIVERED_i still equals what it wrote, so
   * subtracting amount·T_i is exactly "delivered with less". Its own place
   * on the schedule, if it is still the latest, shrinks alike.
   */
  private undo(placed: Placed, amounts: readonly number[]): boolean {
    const w = this.words;
    const delivered = placed.deliveredNexts!;
    const own = placed.scheduleNexts;
    if (!this.multi) {
      const base = this.limits[0]!.base;
      const next = delivered[0]!;
      const back = BigInt(amounts[0]!) * placed.intervals[0]!;
      const tat = Atomics.load(w, base);
      const ownTat = own !== null && tat === own[0];
      if (tat > next && !ownTat) return false; // a waiter is placed behind it
      if (Atomics.compareExchange(w, base + DELIVERED, next, next - back) !== next) return false;
      if (ownTat) Atomics.compareExchange(w, base, tat, tat - back);
      placed.deliveredNexts = [next - back];
      Atomics.sub(w, this.granted0, BigInt(amounts[0]!));
      return true;
    }
    this.lock();
    try {
      if (Atomics.load(w, Word.MULTI_DSEQ) !== placed.dseq) return false;
      const ownTat = placed.seq >= 0n && Atomics.load(w, Word.MULTI_SEQ) === placed.seq;
      if (!ownTat && this.limits.some((limit, i) => Atomics.load(w, limit.base) > delivered[i]!)) return false;
      for (let i = 0; i < this.limits.length; i++) {
        const base = this.limits[i]!.base;
        const back = BigInt(amounts[i]!) * placed.intervals[i]!;
        if (back === 0n) continue;
        Atomics.store(w, base + DELIVERED, delivered[i]! - back);
        if (ownTat) Atomics.store(w, base, Atomics.load(w, base) - back);
        Atomics.sub(w, this.limits[i]!.granted, BigInt(amounts[i]!));
      }
      placed.dseq = Atomics.add(w, Word.MULTI_DSEQ, 1n) + 1n;
      if (ownTat) placed.seq = Atomics.add(w, Word.MULTI_SEQ, 1n) + 1n;
      placed.deliveredNexts = delivered.map((d, i) => d - BigInt(amounts[i]!) * placed.intervals[i]!);
      return true;
    } finally {
      this.unlock();
    }
  }

  /**
   * Gives back a waiter that got its rate slot but never its concurrency
   * permit: its place in the queue if it was not delivered, its delivery if
   * it was (only where nothing depends on it, as cancel).
   */
  giveBack(placed: Placed): void {
    if (placed.deliveredNexts !== null) this.undo(placed, placed.costs);
    else {
      this.undoPlace(placed, placed.costs);
      this.leaveQueue(placed);
    }
  }

  /**
   * Settles a delivered request at its actual costs. More than estimated:
   * the extra is charged now on the delivered timeline
   * (DELIVERED_i := max(DELIVERED_i, v) + extra·T_i) — it delays later
   * deliveries so the long-run rate holds; it can not undo a window already
   * spent. Less: the unused part is refunded only if nothing was delivered
   * or placed after this grant (a refund behind later requests could let new
   * grants collide with them), else it is forfeited.
   */
  settle(now: bigint, placed: Placed, actual: readonly number[]): Settled {
    const n = this.limits.length;
    const charged = new Array<number>(n).fill(0);
    const refunded = new Array<number>(n).fill(0);
    const refunds = placed.costs.map((c, i) => Math.max(0, c - actual[i]!));
    if (refunds.some((r) => r > 0) && placed.deliveredNexts !== null && this.undo(placed, refunds)) {
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
    // Saturating: a debt beyond the horizon stops at it (the limit then
    // refuses for ~146 years: never a wrapped, too-early word).
    const charged = (i: number, delivered: bigint, v: bigint): bigint => {
      const next = (delivered > v ? delivered : v) + BigInt(extras[i]!) * Atomics.load(w, this.limits[i]!.base + LimitWord.INTERVAL_NS);
      return next - v > SCHEDULE_HORIZON_NS ? v + SCHEDULE_HORIZON_NS : next;
    };
    if (!this.multi) {
      const index = this.limits[0]!.base + DELIVERED;
      // DELIVERED loop: only grows (a debt appended to what was delivered).
      for (;;) {
        const delivered = Atomics.load(w, index);
        const next = charged(0, delivered, this.virtualNow(now));
        if (Atomics.compareExchange(w, index, delivered, next) === delivered) break;
      }
      Atomics.add(w, this.granted0, BigInt(extras[0]!));
      return;
    }
    this.lock();
    try {
      const v = this.virtualNow(now);
      for (let i = 0; i < this.limits.length; i++) {
        if (extras[i] === 0) continue;
        const index = this.limits[i]!.base + DELIVERED;
        Atomics.store(w, index, charged(i, Atomics.load(w, index), v));
        Atomics.add(w, this.limits[i]!.granted, BigInt(extras[i]!));
      }
      Atomics.add(w, Word.MULTI_DSEQ, 1n); // earlier deliveries can no longer be refunded
    } finally {
      this.unlock();
    }
  }

  /**
   * Pauses every grant until real time `untilNs` (shared backoff).
   *
   * Order matters. (1) PAUSE_START := max(PAUSE_START, now − SHIFT_NS);
   * (2) SHIFT_NS := max(SHIFT_NS, untilNs − PAUSE_START); (3) per limit,
   * X := max(X, PAUSE_START + (burst−1)·T) + 1 for X = DELIVERED and TAT.
   * Step 3 drains the buckets so grants resume one interval at a time (no
   * burst after the pause), puts every new slot strictly after PAUSE_START,
   * and always changes DELIVERED, so any delivery that read SHIFT_NS before
   * step 2 fails its CAS and re-reads (several limits: step 3 runs under MULTI_LOCK, which
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
      // DELIVERED loop, then TAT loop: each only grows here; the +1 always
      // changes it (see above) and puts every new slot strictly after
      // PAUSE_START. DELIVERED first: it is the word every delivery CASes.
      for (const index of [base + DELIVERED, base + TAT]) {
        for (;;) {
          const tat = Atomics.load(w, index);
          const next = (tat > target ? tat : target) + 1n;
          if (Atomics.compareExchange(w, index, tat, next) === tat) break;
        }
      }
    } else {
      this.lock();
      try {
        this.limits.forEach((limit, i) => {
          const target = drainTo(i);
          for (const index of [limit.base + DELIVERED, limit.base + TAT]) {
            const tat = Atomics.load(w, index);
            Atomics.store(w, index, (tat > target ? tat : target) + 1n);
          }
        });
        Atomics.add(w, Word.MULTI_SEQ, 1n); // no undo may cross a backoff
        Atomics.add(w, Word.MULTI_DSEQ, 1n);
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
