/**
 * `RateLimiter`: the public verbs. Thin: options are validated here, the
 * schedule lives in `state.ts`, sleeping in `wait.ts`.
 */
import { monotonicClock, msToNsCeil, nsToMs, type Clock } from './clock.js';
import {
  InvalidHandleError,
  InvalidOptionError,
  QueueFullError,
  WaitTimeoutError,
} from './errors.js';
import { intervalNsFromRate, rateFromIntervalNs } from './gcra.js';
import { createShared, LAYOUT_BYTES, LAYOUT_VERSION, MAGIC, viewsOf, Word, readConfig } from './layout.js';
import {
  checkCost,
  checkMs,
  MAX_BACKOFF_MS,
  MAX_BURST,
  resolveOptions,
  type AcquireOptions,
  type AcquireSyncOptions,
  type AttachOptions,
  type BackoffOptions,
  type RateLimiterOptions,
  type ReserveOptions,
} from './options.js';
import { LimiterState, Outcome, type Placed } from './state.js';
import { runWithRetry, type RetryOptions } from './retry.js';
import { sleepAsync, sleepSync } from './wait.js';

const HANDLE_KIND = 'atomic-pace/rate-limiter';
/** burst × interval must stay below this many ns (~146 years) so schedule arithmetic cannot overflow 64 bits. */
const MAX_TOLERANCE_NS = 1n << 62n;

/**
 * A structured-clone-safe reference to a limiter's shared state. Pass it in
 * `workerData`, a Piscina task or `postMessage`, then call
 * `RateLimiter.attach(handle)` on the other side.
 */
export interface LimiterHandle {
  readonly kind: typeof HANDLE_KIND;
  readonly version: number;
  readonly buffer: SharedArrayBuffer;
}

/** A granted request. */
export interface Grant {
  /** Cost units granted. */
  readonly cost: number;
  /** Time spent in the call, ms. */
  readonly waitedMs: number;
  /**
   * Position of this grant on the limiter's shared schedule (virtual ns).
   * Grants become due in increasing `slotNs` order, across all threads: the
   * FIFO order. Between backoffs it differs from the clock by a constant.
   */
  readonly slotNs: bigint;
}

/**
 * A place on the schedule taken without waiting (as x/time/rate's Reserve):
 * act after `delayMs`, or `cancel()` to give the place back.
 */
export interface Reservation {
  /** False when the reservation was refused (wait over `timeoutMs`/`maxWaitMs`, or queue full): nothing is held. */
  readonly ok: boolean;
  /** Cost units reserved. */
  readonly cost: number;
  /**
   * Ms from now until the reservation is due: read it when you are about to
   * wait; a shared backoff after `reserve` moves it later. 0 when due,
   * Infinity when not `ok`.
   */
  readonly delayMs: number;
  /**
   * Gives the reservation back. If it is not yet due and nothing was reserved
   * after it, the capacity returns to the limiter; if later reservations were
   * scheduled behind it, its slot stays empty (they keep their times, so
   * nothing is over-granted). No effect once due, or on a second call.
   */
  cancel(): void;
}

/** A consistent-enough snapshot of the shared counters (each read atomically; read at one moment). */
export interface LimiterStats {
  /** Configured rate, grants per second. */
  readonly rate: number;
  /** Rate in effect now (below `rate` only while an adaptive law has cut it). */
  readonly currentRate: number;
  readonly burst: number;
  /** Cost units that could be granted right now without waiting. */
  readonly available: number;
  /** Cost units granted or reserved so far, minus cancellations that gave capacity back (= grants, when each costs 1). */
  readonly grantedCost: number;
  /** Requests sleeping in `acquire`/`acquireSync` now, in all threads. */
  readonly waiting: number;
  /** Their total cost. */
  readonly waitingCost: number;
  /** Waits refused: `WaitTimeoutError` or `QueueFullError` (tryAcquire misses are not counted). */
  readonly rejected: number;
  /** Waits and reservations cancelled before they were due. */
  readonly cancelled: number;
  /** `backoff()` calls. */
  readonly throttles: number;
  /** Ms until the current shared pause ends; 0 when not paused. */
  readonly pausedForMs: number;
}

/**
 * A GCRA rate limiter whose state lives in a `SharedArrayBuffer`: every
 * thread that attaches acquires against the same strictly enforced limit, at
 * the cost of a few atomic instructions.
 *
 * Guarantee: for every interval of length L, across all threads, the cost
 * granted within it is at most `burst + rate × L`; with `burst: 1`
 * consecutive grants are at least `1/rate` apart. Waiters are served first
 * come, first served across threads.
 *
 * @example
 * const limiter = new RateLimiter({ rate: 10, burst: 1 });
 * new Worker(url, { workerData: limiter.handle });
 * // in the worker:
 * const limiter = RateLimiter.attach(workerData);
 * await limiter.acquire();
 */
export class RateLimiter {
  /** Pass this to other threads; see {@link RateLimiter.attach}. */
  readonly handle: LimiterHandle;
  /** Configured rate, grants (cost units) per second. */
  readonly rate: number;
  /** Bucket capacity, cost units. */
  readonly burst: number;

  readonly #state: LimiterState;
  readonly #clock: Clock;
  /** Limiter-wide maximum wait, ns; -1n = unbounded. */
  readonly #maxWaitNs: bigint;

  constructor(options: RateLimiterOptions) {
    const attaching = pendingAttach;
    pendingAttach = undefined;
    if (attaching !== undefined) {
      // RateLimiter.attach(): adopt existing shared state.
      const views = viewsOf(attaching.buffer);
      const config = readConfig(views.words);
      this.handle = Object.freeze({ kind: HANDLE_KIND, version: LAYOUT_VERSION, buffer: attaching.buffer });
      this.#clock = attaching.clock;
      this.#state = new LimiterState(views);
      this.rate = rateFromIntervalNs(config.maxIntervalNs);
      this.burst = Number(config.burst);
      this.#maxWaitNs = config.maxWaitNs;
      return;
    }
    const resolved = resolveOptions(options);
    const clock = options.clock ?? monotonicClock;
    const intervalNs = intervalNsFromRate(resolved.rate);
    if (BigInt(resolved.burst) * intervalNs >= MAX_TOLERANCE_NS) {
      const maxBurst = Number(MAX_TOLERANCE_NS / intervalNs) - 1;
      throw new InvalidOptionError('burst', resolved.burst, `an integer in 1..${maxBurst} at rate ${resolved.rate}/s (burst/rate must stay under 146 years)`);
    }
    const views = createShared({
      burst: BigInt(resolved.burst),
      maxIntervalNs: intervalNs,
      maxQueue: BigInt(resolved.maxQueue),
      maxWaitNs: resolved.maxWaitMs < 0 ? -1n : msToNsCeil(resolved.maxWaitMs),
      createdAtNs: readClock(clock),
      floorIntervalNs: resolved.adaptive ? intervalNsFromRate(resolved.adaptive.minRate) : -1n,
      decreasePpm: resolved.adaptive ? BigInt(Math.round(resolved.adaptive.decrease * 1e6)) : 0n,
      recoveryPpm: resolved.adaptive ? BigInt(Math.round(resolved.adaptive.recovery * 1e6)) : 0n,
    });
    this.handle = Object.freeze({ kind: HANDLE_KIND, version: LAYOUT_VERSION, buffer: views.buffer });
    this.#clock = clock;
    this.#state = new LimiterState(views);
    this.rate = resolved.rate;
    this.burst = resolved.burst;
    this.#maxWaitNs = Atomics.load(views.words, Word.MAX_WAIT_NS);
  }

  /**
   * The limiter behind `handle`, in this thread: the very same shared state.
   * Throws {@link InvalidHandleError} for anything that is not a handle of
   * this version of atomic-pace (wrong type, size, magic, version or a
   * corrupted configuration).
   */
  static attach(handle: LimiterHandle, options: AttachOptions = {}): RateLimiter {
    const buffer = checkHandle(handle);
    if (options.clock !== undefined && typeof options.clock !== 'function') {
      throw new InvalidOptionError('clock', options.clock, 'a function returning bigint nanoseconds');
    }
    pendingAttach = { buffer, clock: options.clock ?? monotonicClock };
    return new RateLimiter(undefined as unknown as RateLimiterOptions);
  }

  /** Grants `cost` now if it conforms, else returns false. Never waits, never queues. */
  tryAcquire(cost = 1): boolean {
    if (cost !== 1) checkCost(cost, this.burst);
    return this.#state.tryTake(this.#clock(), cost);
  }

  /**
   * Waits for `cost`, first come first served across all threads. Resolves
   * with the {@link Grant}. Rejects at once with `CostTooLargeError` /
   * `InvalidOptionError` for a cost that can never be granted, with
   * `WaitTimeoutError` when the wait would exceed `timeoutMs` or `maxWaitMs`,
   * with `QueueFullError` when `maxQueue` is reached, and with
   * `signal.reason` on abort (the slot is given back where no later grant
   * depends on it). Keeps the event loop alive while waiting.
   */
  acquire(cost = 1, options: AcquireOptions = {}): Promise<Grant> {
    try {
      checkCost(cost, this.burst);
      const signal = options.signal;
      const limit = this.#waitLimit(options.timeoutMs);
      if (signal?.aborted) return Promise.reject(signal.reason);
      const start = this.#clock();
      const placed = this.#place(start, cost, limit);
      if (placed.outcome === Outcome.Granted) {
        return Promise.resolve({ cost, waitedMs: 0, slotNs: placed.slot });
      }
      return this.#waitAsync(placed, start, limit, signal);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * As {@link acquire}, but blocks the calling thread with `Atomics.wait`
   * (a real sleep, no spinning). For worker threads and scripts; errors are
   * thrown.
   */
  acquireSync(cost = 1, options: AcquireSyncOptions = {}): Grant {
    checkCost(cost, this.burst);
    const limit = this.#waitLimit(options.timeoutMs);
    const start = this.#clock();
    const placed = this.#place(start, cost, limit);
    if (placed.outcome === Outcome.Granted) return { cost, waitedMs: 0, slotNs: placed.slot };
    const state = this.#state;
    this.#countWaiting(cost, 1);
    try {
      for (;;) {
        const now = this.#clock();
        const remaining = state.remainingNs(now, placed.slot);
        if (remaining === 0n) return { cost, waitedMs: nsToMs(now - start), slotNs: placed.slot };
        this.#checkStillInTime(placed, start, now, remaining, limit);
        sleepSync(state.i32, remaining);
      }
    } finally {
      this.#countWaiting(cost, -1);
    }
  }

  /**
   * Takes a place on the schedule without waiting (x/time/rate's Reserve).
   * The caller waits `delayMs` itself, or cancels. Returns `ok: false` (and
   * holds nothing) when the delay would exceed `timeoutMs`/`maxWaitMs` or the
   * queue is full.
   */
  reserve(cost = 1, options: ReserveOptions = {}): Reservation {
    checkCost(cost, this.burst);
    const limit = this.#waitLimit(options.timeoutMs);
    const now = this.#clock();
    const placed = this.#state.reserve(now, cost, limit.ns);
    if (placed.outcome === Outcome.TooLate || placed.outcome === Outcome.QueueFull) {
      Atomics.add(this.#state.words, Word.REJECTED_COUNT, 1n);
      return { ok: false, cost, delayMs: Infinity, cancel() {} };
    }
    const state = this.#state;
    const clock = this.#clock;
    let cancelled = false;
    return {
      ok: true,
      cost,
      get delayMs() {
        return cancelled ? 0 : nsToMs(state.remainingNs(clock(), placed.slot));
      },
      cancel() {
        if (cancelled) return;
        cancelled = true;
        state.cancel(clock(), placed);
      },
    };
  }

  /**
   * Pauses every thread sharing this limiter for `retryAfterMs` (a throttle
   * reported by the server). Linearizable: once this returns, no thread is
   * granted until the pause ends, including requests already waiting and
   * reservations not yet due; they keep their FIFO order and resume one
   * interval apart, without a burst. Overlapping calls extend the pause to
   * the latest end; a shorter one never shortens it. Grants already made
   * (in flight) can not be recalled.
   */
  backoff(options: BackoffOptions = {}): void {
    const retryAfterMs = options.retryAfterMs === undefined
      ? 1000
      : checkMs('retryAfterMs', options.retryAfterMs, MAX_BACKOFF_MS, false);
    if (options.reason !== undefined && typeof options.reason !== 'string') {
      throw new InvalidOptionError('reason', options.reason, 'a string');
    }
    const now = this.#clock();
    this.#state.backoff(now, now + msToNsCeil(retryAfterMs));
  }

  /**
   * Reports a successful call. With `adaptive` on, moves the shared rate back
   * toward the configured rate by one recovery step; otherwise does nothing
   * (a few ns). `run`/`wrap` call it for you.
   */
  success(): void {
    this.#state.recordSuccess();
  }

  /**
   * Runs `fn` through this limiter with retries: each attempt acquires first;
   * a throttled outcome (default: HTTP 429/503, from a fetch `Response`, an
   * error with `status`, …) reports `backoff` with the server's delay
   * (`retry-after-ms`, `retry-after`, OpenAI/Anthropic reset headers), sleeps
   * a jittered exponential delay and tries again; any other error is rethrown
   * untouched. When retries run out, rejects with `RetriesExhaustedError`
   * carrying the last outcome and the attempt count. See {@link RetryOptions}.
   *
   * @example
   * const res = await limiter.run(() => fetch(url), { retries: 5 });
   */
  run<T>(fn: (attempt: number, signal?: AbortSignal) => Promise<T> | T, options?: RetryOptions<T>): Promise<T> {
    return runWithRetry(this, fn, options);
  }

  /** `fn` wrapped so that every call goes through {@link run} with `options`. */
  wrap<A extends unknown[], T>(fn: (...args: A) => Promise<T> | T, options?: RetryOptions<T>): (...args: A) => Promise<T> {
    return (...args: A) => runWithRetry(this, () => fn(...args), options);
  }

  /** Reads the shared counters. Cheap (a dozen atomic loads): fine to poll. */
  stats(): LimiterStats {
    const w = this.#state.words;
    const now = this.#clock();
    const intervalNs = Atomics.load(w, Word.INTERVAL_NS);
    const tat = Atomics.load(w, Word.TAT);
    const shift = Atomics.load(w, Word.SHIFT_NS);
    const pauseStart = Atomics.load(w, Word.PAUSE_START);
    const rawV = now - shift;
    const v = rawV > pauseStart ? rawV : pauseStart;
    const backlogNs = tat > v ? tat - v : 0n;
    const toleranceNs = BigInt(this.burst) * intervalNs;
    const available = backlogNs >= toleranceNs ? 0 : Number((toleranceNs - backlogNs) / intervalNs);
    const pausedUntil = pauseStart + shift;
    return {
      rate: this.rate,
      currentRate: rateFromIntervalNs(intervalNs),
      burst: this.burst,
      available,
      grantedCost: Number(Atomics.load(w, Word.GRANTED_COST)),
      waiting: Number(Atomics.load(w, Word.WAITING_COUNT)),
      waitingCost: Number(Atomics.load(w, Word.WAITING_COST)),
      rejected: Number(Atomics.load(w, Word.REJECTED_COUNT)),
      cancelled: Number(Atomics.load(w, Word.CANCELLED_COUNT)),
      throttles: Number(Atomics.load(w, Word.THROTTLE_COUNT)),
      pausedForMs: pausedUntil > now ? nsToMs(pausedUntil - now) : 0,
    };
  }

  async #waitAsync(placed: Placed, start: bigint, limit: WaitLimit, signal: AbortSignal | undefined): Promise<Grant> {
    const state = this.#state;
    this.#countWaiting(placed.cost, 1);
    try {
      for (;;) {
        const now = this.#clock();
        const remaining = state.remainingNs(now, placed.slot);
        if (remaining === 0n) return { cost: placed.cost, waitedMs: nsToMs(now - start), slotNs: placed.slot };
        this.#checkStillInTime(placed, start, now, remaining, limit);
        try {
          await sleepAsync(remaining, signal);
        } catch (reason) {
          state.cancel(this.#clock(), placed);
          throw reason;
        }
      }
    } finally {
      this.#countWaiting(placed.cost, -1);
    }
  }

  /** Places the request, turning refusals into typed errors. */
  #place(now: bigint, cost: number, limit: WaitLimit): Placed {
    const placed = this.#state.reserve(now, cost, limit.ns);
    if (placed.outcome === Outcome.TooLate) {
      Atomics.add(this.#state.words, Word.REJECTED_COUNT, 1n);
      throw new WaitTimeoutError(limit.ms, nsToMs(placed.delayNs));
    }
    if (placed.outcome === Outcome.QueueFull) {
      Atomics.add(this.#state.words, Word.REJECTED_COUNT, 1n);
      throw new QueueFullError(Number(this.#state.maxQueue));
    }
    return placed;
  }

  /** A backoff may push a waiting slot past the caller's limit: then give it up at once. */
  #checkStillInTime(placed: Placed, start: bigint, now: bigint, remaining: bigint, limit: WaitLimit): void {
    if (limit.ns >= 0n && now + remaining - start > limit.ns) {
      this.#state.cancel(now, placed);
      Atomics.add(this.#state.words, Word.REJECTED_COUNT, 1n);
      throw new WaitTimeoutError(limit.ms, nsToMs(now + remaining - start));
    }
  }

  #countWaiting(cost: number, sign: 1 | -1): void {
    const w = this.#state.words;
    Atomics.add(w, Word.WAITING_COUNT, BigInt(sign));
    Atomics.add(w, Word.WAITING_COST, BigInt(sign * cost));
  }

  /** The tighter of the call's `timeoutMs` and the limiter's `maxWaitMs`. */
  #waitLimit(timeoutMs: number | undefined): WaitLimit {
    const callMs = timeoutMs === undefined ? -1 : checkMs('timeoutMs', timeoutMs);
    const callNs = callMs < 0 ? -1n : msToNsCeil(callMs);
    const maxNs = this.#maxWaitNs;
    if (callNs < 0n || (maxNs >= 0n && maxNs < callNs)) {
      return maxNs < 0n ? NO_LIMIT : { ns: maxNs, ms: nsToMs(maxNs) };
    }
    return { ns: callNs, ms: callMs };
  }

}

interface WaitLimit {
  /** -1n = unbounded */
  readonly ns: bigint;
  readonly ms: number;
}
const NO_LIMIT: WaitLimit = { ns: -1n, ms: Infinity };

/** Set by attach() for the one constructor call it makes (constructors are synchronous: no interleaving). */
let pendingAttach: { buffer: SharedArrayBuffer; clock: Clock } | undefined;

function readClock(clock: Clock): bigint {
  const now = clock();
  if (typeof now !== 'bigint') {
    throw new InvalidOptionError('clock', now, 'a function returning bigint nanoseconds');
  }
  return now;
}

/** Validates a handle and returns its buffer; throws InvalidHandleError with the reason. */
function checkHandle(handle: unknown): SharedArrayBuffer {
  if (typeof handle !== 'object' || handle === null) throw new InvalidHandleError(`expected an object, got ${handle === null ? 'null' : typeof handle}`);
  const h = handle as Partial<LimiterHandle>;
  if (h.kind !== HANDLE_KIND) throw new InvalidHandleError(`kind must be '${HANDLE_KIND}'`);
  if (h.version !== LAYOUT_VERSION) throw new InvalidHandleError(`version ${String(h.version)} is not the supported layout version ${LAYOUT_VERSION}`);
  const buffer = h.buffer;
  if (Object.prototype.toString.call(buffer) !== '[object SharedArrayBuffer]') throw new InvalidHandleError('buffer must be a SharedArrayBuffer');
  const sab = buffer as SharedArrayBuffer;
  if (sab.byteLength !== LAYOUT_BYTES) throw new InvalidHandleError(`buffer must be ${LAYOUT_BYTES} bytes, got ${sab.byteLength}`);
  const w = new BigInt64Array(sab);
  if (Atomics.load(w, Word.MAGIC) !== MAGIC) throw new InvalidHandleError('buffer does not start with the atomic-pace magic number');
  if (Atomics.load(w, Word.VERSION) !== BigInt(LAYOUT_VERSION)) throw new InvalidHandleError('buffer layout version does not match');
  const config = readConfig(w);
  const interval = Atomics.load(w, Word.INTERVAL_NS);
  const corrupt =
    config.burst < 1n || config.burst > BigInt(MAX_BURST) ||
    config.maxIntervalNs < 1n || interval < config.maxIntervalNs ||
    config.burst * config.maxIntervalNs >= MAX_TOLERANCE_NS ||
    config.maxQueue < -1n || config.maxWaitNs < -1n ||
    (config.floorIntervalNs !== -1n && (config.floorIntervalNs < config.maxIntervalNs || interval > config.floorIntervalNs ||
      config.decreasePpm < 1n || config.decreasePpm >= 1_000_000n || config.recoveryPpm < 1n || config.recoveryPpm > 1_000_000n));
  if (corrupt) throw new InvalidHandleError('corrupted configuration words');
  return sab;
}
