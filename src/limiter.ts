/**
 * `RateLimiter`: the public verbs. Thin: options are validated here, the
 * schedule lives in `state.ts`, permits in `permits.ts`, sleeping in
 * `wait.ts`.
 */
import { threadId } from 'node:worker_threads';
import { monotonicClock, msToNsCeil, nsToMs, type Clock } from './clock.js';
import { InvalidOptionError, QueueFullError, WaitTimeoutError } from './errors.js';
import { intervalNsFromRate, rateFromIntervalNs } from './gcra.js';
import { GrantImpl, WaitStatus, type Grant } from './grant.js';
import { MAX_TOLERANCE_NS, makeHandle, openHandle, type LimiterHandle } from './handle.js';
import { LimitWord, Word, createShared, type SharedViews, type StoredConfig } from './layout.js';
import {
  checkMs,
  MAX_BACKOFF_MS,
  checkSignal,
  optionsArgument,
  ownValue,
  resolveCosts,
  resolveFinalWaitNs,
  resolveOptions,
  type AcquireOptions,
  type AcquireSyncOptions,
  type AttachOptions,
  type BackoffOptions,
  type Cost,
  type RateLimiterOptions,
  type ReserveOptions,
  type ResolvedLimit,
} from './options.js';
import { Permits, type PermitToken } from './permits.js';
import { runWithRetry, type RetryOptions } from './retry.js';
import { LimiterState, Outcome, type Placed } from './state.js';
import { SPIN_NS, sleepAsync, sleepSync, sleepUntilPrecise, sleepUntilSync, waitForChange } from './wait.js';

export type { LimiterHandle } from './handle.js';
export type { Grant, SettleResult } from './grant.js';

/**
 * A place on the schedule taken without waiting (as x/time/rate's Reserve):
 * act after `delayMs`, or `cancel()` to give the place back.
 */
export interface Reservation {
  /** False when the reservation was refused (wait over `timeoutMs`/`maxWaitMs`, or queue full): nothing is held. */
  readonly ok: boolean;
  /** Cost units reserved (of the first limit). */
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

/** One limit's figures in {@link LimiterStats}. */
export interface LimitStats {
  /** Configured rate, cost units per second. */
  readonly rate: number;
  /** Rate in effect now (below `rate` only while an adaptive law has cut it). */
  readonly currentRate: number;
  readonly burst: number;
  /** Cost units that could be granted right now without waiting. */
  readonly available: number;
  /** Cost units handed out (or reserved) so far, minus refunds and cancelled reservations, plus settled extra. Waiters count when they are handed out. */
  readonly grantedCost: number;
  /** Cost of this limit held by requests sleeping in `acquire`/`acquireSync`. */
  readonly waitingCost: number;
}

/**
 * The shared counters, each read atomically (not one atomic snapshot). The
 * top-level `rate` … `waitingCost` are the first limit's, for one-limit use.
 */
export interface LimiterStats extends LimitStats {
  /** Every limit by name. */
  readonly limits: Readonly<Record<string, LimitStats>>;
  /** Requests sleeping in `acquire`/`acquireSync` now, in all threads. */
  readonly waiting: number;
  /** Waits refused: `WaitTimeoutError` or `QueueFullError` (tryAcquire misses are not counted). */
  readonly rejected: number;
  /** Waits and reservations cancelled before they were due. */
  readonly cancelled: number;
  /** `backoff()` calls. */
  readonly throttles: number;
  /** Ms until the current shared pause ends; 0 when not paused. */
  readonly pausedForMs: number;
  /** Concurrency cap (0 = none) and permits held now. */
  readonly concurrency: number;
  readonly inFlight: number;
  /** Permits taken back from exited threads or expired leases. */
  readonly reclaimed: number;
}

/**
 * A GCRA rate limiter whose state lives in a `SharedArrayBuffer`: every
 * thread that attaches acquires against the same strictly enforced limits,
 * at the cost of a few atomic instructions.
 *
 * Guarantee: for every interval of length L, across all threads, the cost
 * granted within it is at most `burst + rate × L` in each limit; with
 * `burst: 1` consecutive grants are at least `1/rate` apart. Waiters are
 * served first come, first served across threads.
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
  /** Configured rate of the first limit, cost units per second. */
  readonly rate: number;
  /** Bucket capacity of the first limit, cost units. */
  readonly burst: number;

  readonly #state: LimiterState;
  readonly #clock: Clock;
  readonly #limits: readonly ResolvedLimit[];
  readonly #permits: Permits | null;
  /** One limit: tryAcquire(1) goes straight to the lock-free path. */
  readonly #single: boolean;
  /** Limiter-wide maximum wait, ns; -1n = unbounded. */
  readonly #maxWaitNs: bigint;
  /** Precise waits (real clock only): the final part of an async wait, ns, slept precisely; sync waits always precise. */
  readonly #precise: boolean;
  readonly #finalWaitNs: bigint;

  constructor(options: RateLimiterOptions) {
    let views: SharedViews;
    let config: StoredConfig;
    let clock: Clock;
    const attaching = pendingAttach;
    pendingAttach = undefined;
    let finalWaitNs: bigint;
    if (attaching !== undefined) {
      ({ views, config } = attaching);
      clock = attaching.clock;
      finalWaitNs = attaching.finalWaitNs;
    } else {
      finalWaitNs = resolveFinalWaitNs((options as { finalWaitMs?: unknown } | null)?.finalWaitMs);
      const resolved = resolveOptions(options);
      clock = options.clock ?? monotonicClock;
      const createdAtNs = readClock(clock);
      const adaptive = resolved.adaptive;
      config = {
        limits: resolved.limits.map((limit, i) => {
          const maxIntervalNs = intervalNsFromRate(limit.rate);
          const floorIntervalNs = adaptive ? intervalNsFromRate(Math.max(limit.rate * adaptive.minFraction, 1e-6)) : maxIntervalNs;
          if (BigInt(limit.burst) * floorIntervalNs >= MAX_TOLERANCE_NS) {
            const field = resolved.limits.length > 1 ? `limits.${limit.name}.burst` : 'burst';
            const maxBurst = Number((MAX_TOLERANCE_NS - 1n) / floorIntervalNs);
            throw new InvalidOptionError(field, limit.burst, `an integer in 1..${maxBurst} at rate ${i === 0 && adaptive ? 'floor ' : ''}${limit.rate}/s (burst/rate must stay under 146 years)`);
          }
          return {
            name: limit.name, burst: BigInt(limit.burst), maxIntervalNs, floorIntervalNs,
            maxQueue: BigInt(limit.maxQueue), defaultCost: BigInt(limit.defaultCost), rate: limit.rate,
          };
        }),
        permitCount: resolved.concurrency,
        maxWaitNs: resolved.maxWaitMs < 0 ? -1n : msToNsCeil(resolved.maxWaitMs),
        createdAtNs,
        decreasePpm: adaptive ? BigInt(Math.round(adaptive.decrease * 1e6)) : 0n,
        recoveryPpm: adaptive ? BigInt(Math.round(adaptive.recovery * 1e6)) : 0n,
        leaseNs: msToNsCeil(resolved.leaseMs),
      };
      views = createShared(config);
    }
    this.handle = makeHandle(views.buffer);
    this.#clock = clock;
    this.#state = new LimiterState(views, config);
    this.#limits = config.limits.map((l) => ({
      name: l.name, rate: l.rate, burst: Number(l.burst),
      maxQueue: Number(l.maxQueue), defaultCost: Number(l.defaultCost),
    }));
    this.rate = this.#limits[0]!.rate;
    this.burst = this.#limits[0]!.burst;
    this.#maxWaitNs = config.maxWaitNs;
    this.#precise = clock === monotonicClock;
    this.#finalWaitNs = finalWaitNs;
    this.#single = config.limits.length === 1;
    this.#permits = config.permitCount > 0
      ? new Permits(views.words, views.i32, config.limits.length, config.permitCount, config.leaseNs, config.createdAtNs, threadId)
      : null;
    if (this.#permits !== null) reclaimOnWorkerExit(this.#permits);
  }

  /**
   * The limiter behind `handle`, in this thread: the very same shared state.
   * Throws {@link InvalidHandleError} for anything that is not a handle of
   * this version of atomic-pace (wrong type, size, magic, version or a
   * corrupted configuration).
   */
  static attach(handle: LimiterHandle, attachOptions?: AttachOptions): RateLimiter {
    const options = optionsArgument(attachOptions);
    const opened = openHandle(handle);
    if (options.clock !== undefined && typeof options.clock !== 'function') {
      throw new InvalidOptionError('clock', options.clock, 'a function returning bigint nanoseconds');
    }
    // Read it once now: a clock that returns something else fails here, not at every call.
    if (options.clock !== undefined) readClock(options.clock);
    const finalWaitNs = resolveFinalWaitNs(options.finalWaitMs);
    pendingAttach = { ...opened, clock: options.clock ?? monotonicClock, finalWaitNs };
    return new RateLimiter(undefined as unknown as RateLimiterOptions);
  }

  /** Names of the limits, in order. */
  get limitNames(): readonly string[] {
    return this.#limits.map((l) => l.name);
  }

  /** Grants `cost` now if it conforms in every limit, else returns false. Never waits, never queues; takes no concurrency permit. */
  tryAcquire(cost: Cost = 1): boolean {
    if (cost === 1 && this.#single) return this.#state.tryTakeSingle(this.#clock(), 1);
    return this.#state.tryTake(this.#clock(), resolveCosts(cost, this.#limits));
  }

  /**
   * Waits for `cost`, first come first served across all threads, then (with
   * `concurrency`) for a permit. Resolves with the {@link Grant}. Rejects at
   * once with `CostTooLargeError` / `InvalidOptionError` for a cost that can
   * never be granted, with `WaitTimeoutError` when the wait would exceed
   * `timeoutMs` or `maxWaitMs`, with `QueueFullError` when a `maxQueue` is
   * reached, and with `signal.reason` on abort (the slot is given back where
   * no later grant depends on it). Keeps the event loop alive while waiting.
   */
  acquire(cost: Cost = 1, acquireOptions?: AcquireOptions): Promise<Grant> {
    try {
      const options = optionsArgument(acquireOptions);
      const costs = resolveCosts(cost, this.#limits);
      const signal = checkSignal(options.signal);
      const { onQueued } = options;
      const limit = this.#waitLimit(options.timeoutMs);
      if (signal?.aborted) return Promise.reject(signal.reason);
      if (onQueued !== undefined && typeof onQueued !== 'function') {
        throw new InvalidOptionError('onQueued', onQueued, 'a function');
      }
      const start = this.#clock();
      if (this.#permits === null) {
        const now = this.#state.takeNow(start, costs);
        if (now !== null) return Promise.resolve(this.#grant(now, start, start, null));
      }
      const placed = this.#place(start, costs, limit);
      return this.#waitAsync(placed, start, limit, signal, onQueued);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * As {@link acquire}, but blocks the calling thread with `Atomics.wait`
   * (a real sleep, no spinning). For worker threads and scripts; errors are
   * thrown.
   */
  acquireSync(cost: Cost = 1, syncOptions?: AcquireSyncOptions): Grant {
    const options = optionsArgument(syncOptions);
    const costs = resolveCosts(cost, this.#limits);
    const limit = this.#waitLimit(options.timeoutMs);
    const start = this.#clock();
    if (this.#permits === null) {
      const now = this.#state.takeNow(start, costs);
      if (now !== null) return this.#grant(now, start, start, null);
    }
    const steps = this.#waitSteps(this.#place(start, costs, limit), start, limit, null);
    const i32 = this.#state.i32;
    for (let step = steps.next(); ; step = steps.next()) {
      if (step.done) return step.value;
      const wait = step.value;
      if ('permitsSeen' in wait) Atomics.wait(i32, this.#permits!.releaseIndex, wait.permitsSeen, nsToMs(wait.ns));
      else if (this.#precise) sleepUntilSync(i32, wait.untilNs, this.#clock);
      else sleepSync(i32, wait.untilNs - this.#clock());
    }
  }

  /**
   * Takes a place on the schedule without waiting (x/time/rate's Reserve).
   * The caller waits `delayMs` itself, or cancels. Returns `ok: false` (and
   * holds nothing) when the delay would exceed `timeoutMs`/`maxWaitMs` or a
   * queue is full. Takes no concurrency permit.
   */
  reserve(cost: Cost = 1, reserveOptions?: ReserveOptions): Reservation {
    const options = optionsArgument(reserveOptions);
    const costs = resolveCosts(cost, this.#limits);
    const limit = this.#waitLimit(options.timeoutMs);
    const placed = this.#state.reserve(this.#clock(), costs, limit.ns);
    if (placed.outcome === Outcome.TooLate || placed.outcome === Outcome.QueueFull) {
      Atomics.add(this.#state.words, Word.REJECTED_COUNT, 1n);
      return { ok: false, cost: costs[0]!, delayMs: Infinity, cancel() {} };
    }
    const state = this.#state;
    const clock = this.#clock;
    let cancelled = false;
    return {
      ok: true,
      cost: costs[0]!,
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
  backoff(backoffOptions?: BackoffOptions): void {
    const options = optionsArgument(backoffOptions);
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
   * Runs `fn` through this limiter with retries: each attempt acquires first
   * (and holds a concurrency permit for exactly the duration of `fn`); a
   * throttled outcome (default: HTTP 429/503, from a fetch `Response`, an
   * error with `status`, …) reports `backoff` with the server's delay
   * (`retry-after-ms`, `retry-after`, OpenAI/Anthropic reset headers), sleeps
   * a jittered exponential delay and tries again; any other error is rethrown
   * untouched. When retries run out, rejects with `RetriesExhaustedError`
   * carrying the last outcome and the attempt count. `fn` receives the
   * attempt number, the signal and the {@link Grant} (to `settle` the actual
   * cost). See {@link RetryOptions}.
   *
   * @example
   * const res = await limiter.run(() => fetch(url), { retries: 5 });
   */
  run<T>(fn: (attempt: number, signal?: AbortSignal, grant?: Grant) => Promise<T> | T, options?: RetryOptions<T>): Promise<T> {
    return runWithRetry<T, Grant>(this, fn, options);
  }

  /** `fn` wrapped so that every call goes through {@link run} with `options`. */
  wrap<A extends unknown[], T>(fn: (...args: A) => Promise<T> | T, options?: RetryOptions<T>): (...args: A) => Promise<T> {
    return (...args: A) => runWithRetry(this, () => fn(...args), options);
  }

  /** Reads the shared counters. Cheap (a few dozen atomic loads): fine to poll. */
  stats(): LimiterStats {
    const state = this.#state;
    const w = state.words;
    const now = this.#clock();
    const v = state.virtualNow(now);
    const limits = Object.fromEntries(state.limits.map((limit, i) => {
      const intervalNs = state.intervalNs(i);
      const tat = state.committedTat(i);
      const backlogNs = tat > v ? tat - v : 0n;
      const toleranceNs = limit.burst * intervalNs;
      const stats: LimitStats = {
        rate: this.#limits[i]!.rate,
        currentRate: intervalNs === limit.law?.minIntervalNs || !state.adaptive ? this.#limits[i]!.rate : rateFromIntervalNs(intervalNs),
        burst: Number(limit.burst),
        available: backlogNs >= toleranceNs ? 0 : Number((toleranceNs - backlogNs) / intervalNs),
        grantedCost: Number(state.grantedCost(i)),
        waitingCost: Number(Atomics.load(w, limit.base + LimitWord.WAITING_COST)),
      };
      return [limit.name, stats];
    }));
    const pausedUntil = state.pausedUntilNs();
    return {
      ...limits[state.limits[0]!.name]!,
      limits,
      waiting: Number(Atomics.load(w, Word.WAITING_COUNT)),
      rejected: Number(Atomics.load(w, Word.REJECTED_COUNT)),
      cancelled: Number(Atomics.load(w, Word.CANCELLED_COUNT)),
      throttles: Number(Atomics.load(w, Word.THROTTLE_COUNT)),
      pausedForMs: pausedUntil > now ? nsToMs(pausedUntil - now) : 0,
      concurrency: this.#permits?.count ?? 0,
      inFlight: Number(Atomics.load(w, Word.IN_FLIGHT)),
      reclaimed: Number(Atomics.load(w, Word.RECLAIMED_COUNT)),
    };
  }

  async #waitAsync(
    placed: Placed, start: bigint, limit: WaitLimit, signal: AbortSignal | undefined,
    onQueued: AcquireOptions['onQueued'],
  ): Promise<Grant> {
    const steps = this.#waitSteps(placed, start, limit, onQueued ?? null);
    const i32 = this.#state.i32;
    let step = steps.next();
    while (!step.done) {
      const wait = step.value;
      try {
        if ('permitsSeen' in wait) await waitForChange(i32, this.#permits!.releaseIndex, wait.permitsSeen, wait.ns, signal);
        else await this.#sleepUntilAsync(wait.untilNs, signal);
      } catch (reason) {
        step = steps.throw(reason); // gives the place back, then rethrows
        continue;
      }
      step = steps.next();
    }
    return step.value;
  }

  /** Until `untilNs`: see `wait.ts` (precise with the real clock, else timers). One step; the caller re-checks. */
  async #sleepUntilAsync(untilNs: bigint, signal: AbortSignal | undefined): Promise<void> {
    const remaining = untilNs - this.#clock();
    if (remaining <= 0n) return;
    if (!this.#precise || this.#finalWaitNs === 0n) await sleepAsync(remaining, signal);
    else await sleepUntilPrecise(this.#state.i32, untilNs, this.#finalWaitNs, this.#clock, signal);
  }

  /**
   * The waiting algorithm, once for both `acquireSync` and `acquire`: it
   * yields each sleep it needs and its driver performs it with
   * `Atomics.wait` or timers. With a concurrency cap: until the place is
   * due, then until a permit is free. Then, always: until the delivery
   * conforms (`state.deliver`), which hands the grant out at that instant.
   * The permit comes before the delivery so that the instant handed out is
   * the instant the call returns. A sleep that ends by abort is thrown back
   * in, and the place (and permit) given back where nothing depends on it.
   */
  *#waitSteps(placed: Placed, start: bigint, limit: WaitLimit, onQueued: AcquireOptions['onQueued'] | null): Generator<WaitStep, Grant, void> {
    const state = this.#state;
    const permits = this.#permits;
    const delayed = placed.outcome === Outcome.Delayed;
    let status: WaitStatus | null = null;
    let token: PermitToken | null = null;
    let now = start;
    if (delayed) {
      status = new WaitStatus(state, placed.slot, this.#clock);
      try {
        onQueued?.(status);
      } catch (error) {
        state.cancel(this.#clock(), placed); // a throwing callback must not keep the place
        throw error;
      }
      this.#countWaiting(placed, 1);
    }
    try {
      if (permits !== null) {
        for (;;) {
          now = this.#clock();
          const remaining = state.remainingNs(now, placed.slot);
          if (remaining === 0n) break;
          this.#checkStillInTime(placed, start, now, remaining, limit);
          try {
            yield { untilNs: now + remaining };
          } catch (reason) {
            state.cancel(this.#clock(), placed);
            throw reason;
          }
        }
        // Permit loop: read the release counter before trying, so a release
        // between the try and the sleep changes the counter and the sleep returns.
        for (;;) {
          now = this.#clock();
          const permitsSeen = permits.releases();
          token = permits.tryTake(now);
          if (token !== null) break;
          try {
            yield { ns: this.#permitWaitNs(placed, start, now, limit), permitsSeen };
          } catch (reason) {
            state.giveBack(placed);
            throw reason;
          }
        }
      }
      // Delivery loop. With the real clock the final approach is a spin right
      // here, so the CAS comes within ~0.1 µs of the instant it conforms: the
      // next delivery is anchored to this one's CAS, and any delay between
      // the instant and the CAS would add up at saturation.
      for (;;) {
        now = this.#clock();
        const remaining = state.deliver(now, placed);
        if (remaining === 0n) break;
        this.#checkStillInTime(placed, start, now, remaining, limit);
        if (this.#precise && remaining <= SPIN_NS) {
          sleepUntilSync(state.i32, now + remaining, this.#clock); // at most SPIN_NS: a spin
          continue;
        }
        try {
          yield { untilNs: now + remaining - (this.#precise ? SPIN_NS : 0n) };
        } catch (reason) {
          state.cancel(this.#clock(), placed);
          throw reason;
        }
      }
      if (status !== null) status.state = 'granted';
    } catch (error) {
      if (token !== null) permits!.release(token);
      if (status !== null) status.state = 'cancelled';
      throw error;
    } finally {
      if (delayed) this.#countWaiting(placed, -1);
    }
    return this.#grant(placed, start, now, token);
  }

  /**
   * How long a permit waiter may sleep before looking again: until its
   * deadline (throwing WaitTimeoutError once it has passed), the earliest
   * lease expiry, or 1 s, whichever comes first.
   */
  #permitWaitNs(placed: Placed, start: bigint, now: bigint, limit: WaitLimit): bigint {
    let waitNs = 1_000_000_000n;
    if (limit.ns >= 0n) {
      const leftNs = start + limit.ns - now;
      if (leftNs <= 0n) {
        this.#giveBack(placed);
        Atomics.add(this.#state.words, Word.REJECTED_COUNT, 1n);
        throw new WaitTimeoutError(limit.ms, Infinity);
      }
      if (leftNs < waitNs) waitNs = leftNs;
    }
    const expiry = this.#permits!.earliestExpiryNs();
    if (expiry >= 0n && expiry - now < waitNs) waitNs = expiry > now ? expiry - now : 1_000_000n;
    return waitNs;
  }

  /** A rate grant whose permit never came: refund it if nothing was placed after it. */
  #giveBack(placed: Placed): void {
    this.#state.giveBack(placed);
  }

  #grant(placed: Placed, start: bigint, now: bigint, token: PermitToken | null): Grant {
    return new GrantImpl(this.#state, placed, this.#clock, now - start, this.#resolveActual, this.#permits, token);
  }

  /** Actual costs for settle: a number (one limit) or per-limit costs; unnamed limits keep their granted cost. */
  readonly #resolveActual = (actual: unknown, granted: readonly number[]): number[] => {
    if (typeof actual === 'number' && this.#limits.length === 1) {
      if (!Number.isInteger(actual) || actual < 0) throw new InvalidOptionError('actual', actual, 'an integer ≥ 0');
      return [actual];
    }
    if (typeof actual !== 'object' || actual === null || Array.isArray(actual)) {
      throw new InvalidOptionError('actual', actual, 'an object of actual costs per limit');
    }
    const named = actual as Record<string, unknown>;
    for (const key of Object.keys(named)) {
      if (!this.#limits.some((l) => l.name === key)) throw new InvalidOptionError('actual', key, `costs named after the limits (${this.limitNames.join(', ')})`);
    }
    return this.#limits.map((l, i) => {
      const value = ownValue(named, l.name);
      if (value === undefined) return granted[i]!;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
        throw new InvalidOptionError(`actual.${l.name}`, value, 'an integer ≥ 0');
      }
      return value;
    });
  };

  /** Places the request, turning refusals into typed errors. */
  #place(now: bigint, costs: readonly number[], limit: WaitLimit): Placed {
    const placed = this.#state.place(now, costs, limit.ns);
    if (placed.outcome === Outcome.TooLate) {
      Atomics.add(this.#state.words, Word.REJECTED_COUNT, 1n);
      throw new WaitTimeoutError(limit.ms, nsToMs(placed.delayNs));
    }
    if (placed.outcome === Outcome.QueueFull) {
      Atomics.add(this.#state.words, Word.REJECTED_COUNT, 1n);
      const full = this.#limits[placed.fullLimit]!;
      // The configured bound, or the schedule's horizon when that is nearer (state.ts).
      throw new QueueFullError(this.#state.queueLimitUnits(placed.fullLimit), full.name);
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

  #countWaiting(placed: Placed, sign: 1 | -1): void {
    const state = this.#state;
    const w = state.words;
    Atomics.add(w, Word.WAITING_COUNT, BigInt(sign));
    state.limits.forEach((limit, i) => {
      if (placed.costs[i]! > 0) Atomics.add(w, limit.base + LimitWord.WAITING_COST, BigInt(sign * placed.costs[i]!));
    });
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

/** One sleep of a waiter: until the clock reads `untilNs`, or until a permit is released (the counter moves past `permitsSeen`) or ~ns pass. */
type WaitStep = { readonly untilNs: bigint } | { readonly ns: bigint; readonly permitsSeen: number };

interface WaitLimit {
  /** -1n = unbounded */
  readonly ns: bigint;
  readonly ms: number;
}
const NO_LIMIT: WaitLimit = { ns: -1n, ms: Infinity };

/** Set by attach() for the one constructor call it makes (constructors are synchronous: no interleaving). */
let pendingAttach: { views: SharedViews; config: StoredConfig; clock: Clock; finalWaitNs: bigint } | undefined;

/** Largest clock reading accepted: the schedule's words hold now + 2^62 (state.ts SCHEDULE_HORIZON_NS) in 63 bits. */
const MAX_CLOCK_NS = (1n << 62n) - 1n;

function readClock(clock: Clock): bigint {
  const now = clock();
  if (typeof now !== 'bigint' || now < -MAX_CLOCK_NS || now > MAX_CLOCK_NS) {
    throw new InvalidOptionError('clock', now, `a function returning bigint nanoseconds in -(2^62-1)..2^62-1`);
  }
  return now;
}

/**
 * Permits held by a worker that exits come back at once. Node emits
 * `process` 'worker' in the thread that creates a Worker (the main thread for
 * a Piscina pool); its id is read there, since `threadId` reads -1 once the
 * worker has stopped.
 */
const watchedPermits = new Set<WeakRef<Permits>>();
let watchingWorkers = false;
function reclaimOnWorkerExit(permits: Permits): void {
  watchedPermits.add(new WeakRef(permits));
  if (watchingWorkers) return;
  watchingWorkers = true;
  process.on('worker', (worker) => {
    const id = worker.threadId;
    worker.once('exit', () => {
      for (const ref of watchedPermits) {
        const live = ref.deref();
        if (live === undefined) watchedPermits.delete(ref);
        else live.reclaimThread(id);
      }
    });
  });
}
