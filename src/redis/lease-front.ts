/**
 * The leased front's shared memory: a stretch of the global Redis schedule
 * leased by this process, run as a local GCRA by every thread with one CAS.
 *
 * The lease. Redis moved its TAT from `base` to `END` for us: the stretch
 * [base, END) of the schedule (virtual ns of the server's clock, ×1000 from
 * its µs) belongs to this process. Threads place requests on it exactly as
 * the global script would — next = max(TAT, v) + charge, granted iff
 * next − v ≤ τ — with one more rule: next ≤ END. Every grant therefore
 * occupies [next − charge, next) ⊂ [v, v + τ] inside our stretch, disjoint
 * from every other process's grants, which is all the window invariant needs
 * (see `leased.ts`). Capacity we do not use in time is skipped by max(TAT, v):
 * unused leased slots expire.
 *
 * Two words, as `state.ts`: TAT is the queue (a waiter's place, FIFO);
 * DELIVERED is what was handed out. A grant's segment is taken from
 * DELIVERED at the instant it is handed out — [max(D, v), max(D, v) + charge)
 * with end − v ≤ τ and end ≤ END, by one CAS — so the segment lies in
 * [v, v + τ] of its own decision time v even for a waiter that woke late (a
 * segment taken at placement would lie in the past by its lateness, next to
 * segments handed out meanwhile).
 *
 * The clock. v(t) = max(PAUSE, t − OFFSET) maps this process's monotonic
 * clock to the server's virtual time; the owner sets OFFSET from each lease
 * (midpoint of the round trip) and PAUSE from the server's pause start. A
 * backoff in this process moves both at once, as `state.ts` does with
 * SHIFT_NS/PAUSE_START.
 *
 * | line | word | name           | written by          | meaning |
 * |------|------|----------------|---------------------|---------|
 * | 0    | 0..7 | config         | owner, once         | MAGIC, VERSION, TOLERANCE_NS, RATE_BITS, BURST, MAX_WAIT_NS, FALLBACK_RATE_BITS, FALLBACK_BURST |
 * | 1    | 16   | TAT            | waiters (CAS)       | the queue: theoretical arrival time of the places taken, virtual ns |
 * |      | 17   | DELIVERED      | every grant (CAS)   | theoretical arrival time of what was handed out, virtual ns |
 * | 2    | 32   | END            | owner               | end of the leased stretch; no grant's next may exceed it |
 * |      | 33   | OFFSET         | owner, backoff      | v = t − OFFSET (t: process.hrtime.bigint) |
 * |      | 34   | PAUSE          | owner, backoff      | virtual time frozen here during a pause |
 * |      | 35   | MODE           | owner               | 0 leasing, 1 local fallback, 2 Redis failing, 3 closed |
 * |      | 36   | EPOCH          | owner               | bumped when reservations become void (new Redis state, mode change) |
 * |      | 37   | REFILL_AT      | owner; a grant (CAS)| a grant whose next reaches it asks the owner for the next lease |
 * |      | 38   | EXHAUSTED_AT   | threads; owner      | the TAT at which a thread last found the stretch too short (-1 = none) |
 * | 3    | 48   | PAUSE_WRITER   | backoff (CAS lock)  | serialises writers of OFFSET/PAUSE |
 * |      | 49   | BACKOFF_REQ    | backoff (add)       | local backoffs so far; the owner forwards them to Redis |
 * |      | 50   | BACKOFF_UNTIL  | backoff (CAS max)   | latest pause end asked for locally, t ns |
 * | 4    | 64.. | counters       | (add)               | GRANTED, WAITING, STALLS, THROTTLES, LEASES, LEASED_NS |
 * | 5    | i32  | DEMAND, GEN    | threads / owner     | DEMAND: bumped (+notify) when a thread needs more; GEN: bumped (+notify) at each install |
 */
import { bitsFloat, floatBits } from '../layout.js';
import { Outcome } from '../state.js';

export const LEASE_HANDLE_KIND = 'atomic-pace/redis-lease';
export const LEASE_LAYOUT_VERSION = 2;
const MAGIC = 0x6170726c65617365n; // "aprlease"

export const W = {
  MAGIC: 0, VERSION: 1, TOLERANCE_NS: 2, RATE_BITS: 3, BURST: 4, MAX_WAIT_NS: 5, FALLBACK_RATE_BITS: 6, FALLBACK_BURST: 7,
  TAT: 16, DELIVERED: 17,
  END: 32, OFFSET: 33, PAUSE: 34, MODE: 35, EPOCH: 36, REFILL_AT: 37, EXHAUSTED_AT: 38,
  PAUSE_WRITER: 48, BACKOFF_REQ: 49, BACKOFF_UNTIL: 50,
  GRANTED: 64, WAITING: 65, STALLS: 66, THROTTLES: 67, LEASES: 68, LEASED_NS: 69,
} as const;
export const I32 = { DEMAND: 160, GEN: 161, SLEEP: 162 } as const;
const BYTES = 6 * 128;

export const Mode = { LEASING: 0n, FALLBACK: 1n, FAILING: 2n, CLOSED: 3n } as const;
/** Larger than any time: "no bound". */
export const FOREVER = (1n << 62n);

/** How a placement on the leased stretch ended. */
export const FrontOutcome = {
  Granted: Outcome.Granted,
  Delayed: Outcome.Delayed,
  TooLate: Outcome.TooLate,
  /** The stretch is used up: ask the owner for more and wait. */
  Exhausted: 10,
  /** Used up, and the owner could not lease more (Redis failing, no fallback) or was closed. */
  Failed: 11,
} as const;

export interface FrontPlaced {
  readonly outcome: number;
  readonly slot: bigint;
  readonly next: bigint;
  readonly prev: bigint;
  readonly epoch: bigint;
  readonly delayNs: bigint;
  readonly cost: number;
  /** Virtual time at the placement (this process's estimate of the server's). */
  readonly v: bigint;
  /** The mode the placement was made in (Mode.FALLBACK: a grant of the local fallback). */
  readonly mode: bigint;
}

/** Structured-clone-safe reference to a leased front, for `LeasedRateLimiter.attach` in other threads. */
export interface LeaseHandle {
  readonly kind: typeof LEASE_HANDLE_KIND;
  readonly version: number;
  readonly buffer: SharedArrayBuffer;
  /** The Redis key, for error messages. */
  readonly key: string;
}

export interface FrontConfig {
  rate: number;
  burst: number;
  toleranceNs: bigint;
  maxWaitNs: bigint;
  fallbackRate: number;
  fallbackBurst: number;
}

/** Per-mode charges: Redis stretch or local fallback. */
interface Params {
  readonly perNs: number;
  readonly unitNs: bigint;
  readonly toleranceNs: bigint;
}

export class LeaseFront {
  readonly words: BigInt64Array;
  readonly i32: Int32Array;
  readonly config: FrontConfig;
  readonly #leasing: Params;
  readonly #fallback: Params | null;

  constructor(buffer: SharedArrayBuffer) {
    this.words = new BigInt64Array(buffer);
    this.i32 = new Int32Array(buffer);
    const w = this.words;
    this.config = {
      rate: bitsFloat(w[W.RATE_BITS]!),
      burst: Number(w[W.BURST]),
      toleranceNs: w[W.TOLERANCE_NS]!,
      maxWaitNs: w[W.MAX_WAIT_NS]!,
      fallbackRate: bitsFloat(w[W.FALLBACK_RATE_BITS]!),
      fallbackBurst: Number(w[W.FALLBACK_BURST]),
    };
    const perNs = 1e9 / this.config.rate;
    this.#leasing = { perNs, unitNs: BigInt(Math.ceil(perNs)), toleranceNs: this.config.toleranceNs };
    if (this.config.fallbackRate > 0) {
      const fPerNs = 1e9 / this.config.fallbackRate;
      this.#fallback = { perNs: fPerNs, unitNs: BigInt(Math.ceil(fPerNs)), toleranceNs: BigInt(Math.ceil(this.config.fallbackBurst * fPerNs)) };
    } else {
      this.#fallback = null;
    }
  }

  static create(config: FrontConfig): SharedArrayBuffer {
    const buffer = new SharedArrayBuffer(BYTES);
    const w = new BigInt64Array(buffer);
    w[W.VERSION] = BigInt(LEASE_LAYOUT_VERSION);
    w[W.TOLERANCE_NS] = config.toleranceNs;
    w[W.RATE_BITS] = floatBits(config.rate);
    w[W.BURST] = BigInt(config.burst);
    w[W.MAX_WAIT_NS] = config.maxWaitNs;
    w[W.FALLBACK_RATE_BITS] = floatBits(config.fallbackRate);
    w[W.FALLBACK_BURST] = BigInt(config.fallbackBurst);
    // Nothing leased yet: every placement is Exhausted until the first install.
    w[W.TAT] = 0n;
    w[W.DELIVERED] = 0n;
    w[W.END] = 0n;
    w[W.REFILL_AT] = FOREVER;
    w[W.EXHAUSTED_AT] = -1n;
    Atomics.store(w, W.MAGIC, MAGIC);
    return buffer;
  }

  static isFront(buffer: SharedArrayBuffer): boolean {
    if (buffer.byteLength !== BYTES) return false;
    const w = new BigInt64Array(buffer);
    return Atomics.load(w, W.MAGIC) === MAGIC && Atomics.load(w, W.VERSION) === BigInt(LEASE_LAYOUT_VERSION);
  }

  /** Charge of `cost` units in the current mode, ns, rounded up once per decision. */
  #charge(p: Params, cost: number): bigint {
    return cost === 1 ? p.unitNs : BigInt(Math.ceil(cost * p.perNs));
  }

  #params(mode: bigint): Params {
    return mode === Mode.FALLBACK && this.#fallback !== null ? this.#fallback : this.#leasing;
  }

  /** v(t) = max(PAUSE, t − OFFSET): the server's virtual time as this process estimates it. */
  virtualNow(now: bigint): bigint {
    const w = this.words;
    const v = now - Atomics.load(w, W.OFFSET);
    const pause = Atomics.load(w, W.PAUSE);
    return v > pause ? v : pause;
  }

  /**
   * Places `cost` on the leased stretch (or, in fallback mode, on the local
   * schedule at the fallback rate). TAT loop: TAT only grows, except by the
   * undo of the latest placement; grant iff next − v ≤ τ and next ≤ END;
   * publish next with one CAS. Load order matters (the owner writes OFFSET,
   * PAUSE, MODE, then TAT, then EPOCH, then END): EPOCH before TAT, the
   * mapping after TAT, END last — a CAS that succeeds proves TAT did not
   * change since it was read, so every value read after it is at least as
   * new as the install that produced that TAT, and an EPOCH read before it
   * is at most as new (a placement may be voided needlessly, never kept
   * across a change it did not see).
   */
  place(now: bigint, cost: number, maxDelayNs: bigint): FrontPlaced {
    const w = this.words;
    for (;;) {
      const epoch = Atomics.load(w, W.EPOCH);
      const delivered = Atomics.load(w, W.DELIVERED);
      const tat = Atomics.load(w, W.TAT);
      const mode = Atomics.load(w, W.MODE);
      const offset = Atomics.load(w, W.OFFSET);
      const pause = Atomics.load(w, W.PAUSE);
      const raw = now - offset;
      const v = raw > pause ? raw : pause;
      const p = this.#params(mode);
      const charge = this.#charge(p, cost);
      const end = Atomics.load(w, W.END);
      // Handed out now (DELIVERED loop, as state.ts tryTakeSingle): conforms
      // on what was delivered, passes no waiter, fits in the stretch.
      const nextD = (delivered > v ? delivered : v) + charge;
      if (nextD - v <= p.toleranceNs && tat + charge - v <= p.toleranceNs && nextD <= end) {
        if (Atomics.compareExchange(w, W.DELIVERED, delivered, nextD) !== delivered) continue;
        Atomics.add(w, W.GRANTED, BigInt(cost));
        if (nextD >= Atomics.load(w, W.REFILL_AT)) this.#askForMore(true);
        return { outcome: FrontOutcome.Granted, slot: nextD - p.toleranceNs, next: nextD, prev: delivered, epoch, delayNs: 0n, cost, v, mode };
      }
      // Else a place in the queue, after both timelines.
      const committed = tat > delivered ? tat : delivered;
      const next = (committed > v ? committed : v) + charge;
      const slot = next - p.toleranceNs;
      if (next > end) {
        const outcome = mode === Mode.FAILING || mode === Mode.CLOSED ? FrontOutcome.Failed : FrontOutcome.Exhausted;
        return { outcome, slot, next, prev: tat, epoch, delayNs: 0n, cost, v, mode };
      }
      // Not paused at a future slot: due at t = slot + OFFSET.
      const delayNs = slot > v ? slot + offset - now : 0n;
      if (slot > v && maxDelayNs >= 0n && delayNs > maxDelayNs) {
        return { outcome: FrontOutcome.TooLate, slot, next, prev: tat, epoch, delayNs, cost, v, mode };
      }
      if (Atomics.compareExchange(w, W.TAT, tat, next) === tat) {
        Atomics.add(w, W.GRANTED, BigInt(cost));
        if (next >= Atomics.load(w, W.REFILL_AT)) this.#askForMore(true);
        // Due now or later: handed out by deliver() either way.
        return { outcome: FrontOutcome.Delayed, slot, next, prev: tat, epoch, delayNs, cost, v, mode };
      }
    }
  }

  /**
   * Hands a placed waiter out if it may go now: -1n when its epoch ended
   * (voided: place again), -2n when the stretch ends before its delivery
   * would (ask for more, then try again), 0n when delivered (its segment in
   * {@link delivered}), else the real ns to sleep. Due iff slot ≤ v; then,
   * as state.ts deliver, only if max(D, v) + charge − v ≤ τ: a late waiter
   * never takes a segment next to ones handed out meanwhile; until it
   * conforms it holds its place (TAT := max(TAT, its delivery end)).
   */
  deliver(now: bigint, placed: FrontPlaced): bigint {
    const w = this.words;
    for (;;) {
      if (Atomics.load(w, W.EPOCH) !== placed.epoch) return -1n;
      const delivered = Atomics.load(w, W.DELIVERED);
      const offset = Atomics.load(w, W.OFFSET);
      const pause = Atomics.load(w, W.PAUSE);
      const raw = now - offset;
      const v = raw > pause ? raw : pause;
      if (placed.slot > v) return placed.slot + offset - now; // > 0: slot > v ≥ now − offset
      const p = this.#params(placed.mode);
      const nextD = (delivered > v ? delivered : v) + this.#charge(p, placed.cost);
      if (nextD > Atomics.load(w, W.END)) return -2n;
      const conformsAt = nextD - p.toleranceNs;
      if (conformsAt > v) {
        for (;;) {
          const tat = Atomics.load(w, W.TAT);
          if (tat >= nextD || Atomics.compareExchange(w, W.TAT, tat, nextD) === tat) break;
        }
        return conformsAt + offset - now;
      }
      if (Atomics.compareExchange(w, W.DELIVERED, delivered, nextD) === delivered) {
        this.dueAtV = v;
        this.delivered = [nextD - this.#charge(p, placed.cost), nextD];
        if (nextD >= Atomics.load(w, W.REFILL_AT)) this.#askForMore(true);
        return 0n;
      }
    }
  }

  /** The segment of this thread's latest {@link deliver} that returned 0n. */
  delivered: [bigint, bigint] = [0n, 0n];

  /**
   * Applies `move` to DELIVERED, then TAT, each by CAS (the owner's installs,
   * mode changes and close move both timelines alike). `move` must never
   * lower a value below what was handed out in the same regime.
   */
  moveTimelines(move: (value: bigint, which: 'delivered' | 'tat') => bigint): void {
    const w = this.words;
    for (const [index, which] of [[W.DELIVERED, 'delivered'], [W.TAT, 'tat']] as const) {
      for (;;) {
        const value = Atomics.load(w, index);
        const next = move(value, which);
        if (next === value || Atomics.compareExchange(w, index, value, next) === value) break;
      }
    }
  }

  /** max(TAT, DELIVERED): how far this process's stretch is spoken for. */
  committed(): bigint {
    const tat = Atomics.load(this.words, W.TAT);
    const delivered = Atomics.load(this.words, W.DELIVERED);
    return tat > delivered ? tat : delivered;
  }

  /**
   * Virtual time at which this thread's last {@link deliver} that returned
   * 0n handed its waiter out: the grant's decision time, on the same reads of
   * the mapping as the decision (a concurrent re-mapping must not make a
   * grant look early).
   */
  dueAtV = 0n;

  /** Gives back a waiter's place, if it is still the latest (TAT unchanged since): one CAS. */
  cancel(_now: bigint, placed: FrontPlaced): boolean {
    // A waiter not handed out (deliver() never returned 0n for it): its place may go back.
    if (Atomics.compareExchange(this.words, W.TAT, placed.next, placed.prev) !== placed.next) return false;
    Atomics.sub(this.words, W.GRANTED, BigInt(placed.cost));
    return true;
  }

  /**
   * Signals the owner that this process needs more of the schedule. With
   * `refill`, only the first grant past REFILL_AT does (one CAS to FOREVER).
   */
  #askForMore(refill: boolean): void {
    const w = this.words;
    if (refill) {
      const at = Atomics.load(w, W.REFILL_AT);
      if (at === FOREVER || Atomics.compareExchange(w, W.REFILL_AT, at, FOREVER) !== at) return;
    }
    Atomics.add(this.i32, I32.DEMAND, 1);
    Atomics.notify(this.i32, I32.DEMAND);
  }

  /** A thread found the stretch too short for its request (placed.prev = the TAT it saw). */
  demand(placed: FrontPlaced): void {
    Atomics.store(this.words, W.EXHAUSTED_AT, placed.prev);
    Atomics.add(this.words, W.STALLS, 1n);
    this.#askForMore(false);
  }

  /**
   * Pauses this process's grants until `untilNs` (t) at once, as `state.ts`:
   * PAUSE := v(now), OFFSET := untilNs − PAUSE (both only grow), then drain
   * TAT so grants resume one interval apart and every reader of the old
   * mapping fails its CAS. The owner forwards the pause to Redis.
   */
  backoff(now: bigint, untilNs: bigint): void {
    const w = this.words;
    this.lockPause();
    let pauseStart: bigint;
    try {
      const offset = Atomics.load(w, W.OFFSET);
      const pause = Atomics.load(w, W.PAUSE);
      const raw = now - offset;
      pauseStart = raw > pause ? raw : pause;
      if (pauseStart !== pause) Atomics.store(w, W.PAUSE, pauseStart);
      const newOffset = untilNs - pauseStart;
      if (newOffset > offset) Atomics.store(w, W.OFFSET, newOffset);
    } finally {
      this.unlockPause();
    }
    const p = this.#params(Atomics.load(w, W.MODE));
    const target = pauseStart + p.toleranceNs - p.unitNs;
    // Drain both timelines; the +1 always changes DELIVERED, so a grant on the old mapping fails its CAS.
    this.moveTimelines((x) => (x > target ? x : target) + 1n);
    for (;;) {
      const seen = Atomics.load(w, W.BACKOFF_UNTIL);
      if (seen >= untilNs || Atomics.compareExchange(w, W.BACKOFF_UNTIL, seen, untilNs) === seen) break;
    }
    Atomics.add(w, W.THROTTLES, 1n);
    Atomics.add(w, W.BACKOFF_REQ, 1n);
    this.#askForMore(false);
  }

  /** Lock loop on PAUSE_WRITER: held for a few stores only; spin, then yield in 20 µs sleeps. */
  lockPause(): void {
    for (let tries = 0; ; tries++) {
      if (Atomics.compareExchange(this.words, W.PAUSE_WRITER, 0n, 1n) === 0n) return;
      if (tries > 64) Atomics.wait(this.i32, I32.SLEEP, 0, 0.02);
      if (tries > 50_000) return; // holder died inside a few stores: take over
    }
  }

  unlockPause(): void {
    Atomics.store(this.words, W.PAUSE_WRITER, 0n);
  }

  countWaiting(sign: 1n | -1n): void {
    Atomics.add(this.words, W.WAITING, sign);
  }

  /** Install generation (changes at every install / mode change). */
  generation(): number {
    return Atomics.load(this.i32, I32.GEN);
  }

  /** Units of leased schedule left ahead of now, in cost units of the current mode (an estimate, for stats). */
  availableUnits(now: bigint): number {
    const w = this.words;
    const mode = Atomics.load(w, W.MODE);
    const p = this.#params(mode);
    const v = this.virtualNow(now);
    const tat = this.committed();
    const from = tat > v ? tat : v;
    const end = Atomics.load(w, W.END);
    const limit = v + p.toleranceNs < end ? v + p.toleranceNs : end;
    return limit > from ? Math.floor(Number(limit - from) / p.perNs) : 0;
  }
}
