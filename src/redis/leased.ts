/**
 * `LeasedRateLimiter`: strict global limits at memory speed. The process
 * leases stretches of the global Redis schedule (k consecutive slots in one
 * round trip) and its threads take them with one CAS each (`lease-front.ts`).
 *
 * Why the global limit stays strict. A lease moves the Redis TAT over the
 * stretch [base, end), so no other process is ever placed inside it; inside
 * it, threads place grants by the same GCRA rule (next − v ≤ τ, and
 * next ≤ end). Every grant — leased here, leased elsewhere, or placed by a
 * plain `RedisRateLimiter` — occupies [next − charge, next) ⊂ [v, v + τ] of
 * the one schedule, pairwise disjoint, where v is its decision time. So the
 * grants decided within any window [a, a + L] fit in [a, a + L + τ]:
 * charges ≤ τ + L, i.e. cost ≤ burst + rate × L — provided each process's v
 * is never ahead of the server's. It is this process's clock mapped to the
 * server's from the lease round trips (see #offsetFrom): the server read its
 * clock between our send and our receipt, so local − server ≤ received −
 * TIME; the smallest such bound of recent round trips is used. A stretched
 * round trip can only make the mapping later, never earlier: grants are late
 * by at most the fastest recent round trip, never early, on any host — as
 * long as both clocks run at the same rate (an allowance of 100 ppm of a
 * sample's age is added) and the server's clock is not stepped backwards.
 *
 * What leasing trades. A backoff reported by another process reaches this
 * one at its next lease: within `leaseAheadMs` (the stretch's last slot is
 * due at most that far after it was leased). FIFO holds within a process and
 * between leases, not between requests of different processes inside the
 * same lease period. Unused leased slots expire (time moves past them) or,
 * at `close()`, go back to Redis if no one was placed after them.
 */
import { performance } from 'node:perf_hooks';
import { InvalidHandleError, InvalidOptionError, RedisUnavailableError, WaitTimeoutError } from '../errors.js';
import { checkMs, MAX_BACKOFF_MS, type BackoffOptions } from '../options.js';
import { sleepAsync, waitForChange } from '../wait.js';
import { ScriptCaller, type RedisClientLike } from './client.js';
import {
  FOREVER,
  FrontOutcome,
  I32,
  LEASE_HANDLE_KIND,
  LEASE_LAYOUT_VERSION,
  LeaseFront,
  Mode,
  W,
  type FrontPlaced,
  type LeaseHandle,
} from './lease-front.js';
import { RedisRateLimiter, type RedisLimiterStats } from './limiter.js';
import { resolveRedisOptions, type FallbackOptions } from './options.js';
import { LEASE_AHEAD_MAX_MS, Op } from './script.js';

export type { LeaseHandle } from './lease-front.js';

const clock = process.hrtime.bigint;

/** How long to wait for the next install: what is left of the caller's wait (-1n: unbounded), at most 1 s, then look again. */
function leaseWaitNs(leftNs: bigint): bigint {
  return leftNs < 0n || leftNs > 1_000_000_000n ? 1_000_000_000n : leftNs + 1n;
}

export interface LeasedRateLimiterOptions {
  /** As {@link RedisRateLimiterOptions.redis}: an ioredis client you own, configured to fail fast. */
  redis: RedisClientLike;
  /** The shared limit's name (as `RedisRateLimiter`'s; a plain `RedisRateLimiter` with the same name, rate and burst shares the limit). */
  name: string;
  keyPrefix?: string;
  /** Grants per second, 1e-6..1e9, or a string like `'500/min'`. One limit only. */
  rate: number | `${number}/${string}`;
  /** Bucket capacity, integer ≥ 1, default 1. */
  burst?: number;
  /** Longest any grant may wait, ms (≥ 0 or Infinity, default). */
  maxWaitMs?: number;
  /**
   * How far ahead a lease may reach, ms, in 1..500 (default 100): the last
   * leased slot is due at most this long after the lease. Longer leases mean
   * fewer round trips; shorter ones mean an idle process holds less, and a
   * backoff from another process reaches this one sooner.
   */
  leaseAheadMs?: number;
  /** While Redis fails, grant locally at `share × rate` (see `RedisRateLimiter`'s `fallback`). */
  fallback?: FallbackOptions;
  commandTimeoutMs?: number;
}

/** A leased grant. */
export interface LeasedGrant {
  readonly cost: number;
  readonly waitedMs: number;
  /**
   * The stretch of the global schedule this grant occupies, [start, end) in
   * virtual ns of the Redis server's clock (µs × 1000); disjoint from every
   * other grant's. For a fallback grant, on this process's local schedule.
   */
  readonly segment: readonly [bigint, bigint];
  /** This process's estimate of the server's virtual time when the grant was decided, ns. */
  readonly decidedAtNs: bigint;
  readonly source: 'lease' | 'fallback';
}

export interface LeasedStats {
  readonly mode: 'leasing' | 'fallback' | 'failing' | 'closed';
  /** Cost units that could be granted now from what is leased. */
  readonly available: number;
  /** Cost granted by this process's front (all threads). */
  readonly grantedCost: number;
  /** Requests of this process sleeping until their leased slot. */
  readonly waiting: number;
  /** Times a thread found the lease used up and waited for the next one. */
  readonly stalls: number;
  readonly throttles: number;
  readonly leases: number;
  /** Schedule leased so far, ms (at full rate, rate × leasedMs/1000 cost units). */
  readonly leasedMs: number;
  /** Ms until this process's view of the shared pause ends. */
  readonly pausedForMs: number;
}

interface WaitStep {
  readonly ns: bigint;
  /** Wait for the install generation to change from this. */
  readonly gen?: number;
}

/** The verbs every thread uses: placements on the leased stretch, at memory speed. */
export class LeasedLimiterView {
  readonly handle: LeaseHandle;
  readonly rate: number;
  readonly burst: number;
  protected readonly front: LeaseFront;
  readonly #maxWaitNs: bigint;

  protected constructor(handle: LeaseHandle) {
    this.handle = handle;
    this.front = new LeaseFront(handle.buffer);
    this.rate = this.front.config.rate;
    this.burst = this.front.config.burst;
    this.#maxWaitNs = this.front.config.maxWaitNs;
  }

  /**
   * Grants `cost` now from the leased stretch, else returns false (and asks
   * the owner for more if the lease ran out). Never waits, never talks to
   * Redis. Throws `RedisUnavailableError` when the lease is used up and Redis
   * can not be reached (no fallback).
   */
  tryAcquire(cost = 1): boolean {
    checkCost(cost, this.burst);
    const placed = this.front.place(clock(), cost, 0n);
    if (placed.outcome === FrontOutcome.Granted) return true;
    if (placed.outcome === FrontOutcome.Exhausted) this.front.demand(placed);
    else if (placed.outcome === FrontOutcome.Failed) throw this.#failure(placed);
    return false;
  }

  /** Waits for `cost` (FIFO within this process), then resolves with the {@link LeasedGrant}. Errors as `RedisRateLimiter.acquire`. */
  acquire(cost = 1, options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<LeasedGrant> {
    let limitNs: bigint;
    try {
      checkCost(cost, this.burst);
      limitNs = this.#waitLimitNs(options.timeoutMs);
      if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    } catch (error) {
      return Promise.reject(error);
    }
    // The common case, at memory speed: granted at once from the lease.
    const start = clock();
    const placed = this.front.place(start, cost, limitNs < 0n ? -1n : limitNs);
    if (placed.outcome === FrontOutcome.Granted) return Promise.resolve(this.#grant(placed, start, start));
    return this.#acquireWaiting(cost, limitNs, start, placed, options.signal);
  }

  async #acquireWaiting(cost: number, limitNs: bigint, start: bigint, first: FrontPlaced, signal: AbortSignal | undefined): Promise<LeasedGrant> {
    const steps = this.#steps(cost, limitNs, start, first);
    let step = steps.next();
    while (!step.done) {
      const wait = step.value;
      try {
        if (wait.gen === undefined) await sleepAsync(wait.ns, signal);
        else await waitForChange(this.front.i32, I32.GEN, wait.gen, wait.ns, signal);
      } catch (reason) {
        step = steps.throw(reason);
        continue;
      }
      step = steps.next();
    }
    return step.value;
  }

  /** As {@link acquire}, blocking the thread (`Atomics.wait`); for worker threads. Not on the owner's thread while it must renew leases. */
  acquireSync(cost = 1, options: { timeoutMs?: number } = {}): LeasedGrant {
    checkCost(cost, this.burst);
    const limitNs = this.#waitLimitNs(options.timeoutMs);
    const start = clock();
    const placed = this.front.place(start, cost, limitNs < 0n ? -1n : limitNs);
    if (placed.outcome === FrontOutcome.Granted) return this.#grant(placed, start, start);
    const steps = this.#steps(cost, limitNs, start, placed);
    const i32 = this.front.i32;
    for (let step = steps.next(); ; step = steps.next()) {
      if (step.done) return step.value;
      const ms = Number(step.value.ns) / 1e6;
      if (step.value.gen === undefined) Atomics.wait(i32, I32.SLEEP, 0, ms);
      else Atomics.wait(i32, I32.GEN, step.value.gen, ms);
    }
  }

  /**
   * Pauses every thread of this process at once for `retryAfterMs`
   * (default 1000), and asks the owner to report the pause to Redis, which
   * pauses every other process at its next lease.
   */
  backoff(options: BackoffOptions = {}): void | Promise<void> {
    const retryAfterMs = options.retryAfterMs === undefined ? 1000 : checkMs('retryAfterMs', options.retryAfterMs, MAX_BACKOFF_MS, false);
    const now = clock();
    this.front.backoff(now, now + BigInt(Math.ceil(retryAfterMs * 1e6)));
  }

  /** This process's figures (a few atomic loads). */
  stats(): LeasedStats {
    const w = this.front.words;
    const now = clock();
    const mode = Atomics.load(w, W.MODE);
    const pauseEnd = Atomics.load(w, W.PAUSE) + Atomics.load(w, W.OFFSET);
    return {
      mode: mode === Mode.LEASING ? 'leasing' : mode === Mode.FALLBACK ? 'fallback' : mode === Mode.FAILING ? 'failing' : 'closed',
      available: this.front.availableUnits(now),
      grantedCost: Number(Atomics.load(w, W.GRANTED)),
      waiting: Number(Atomics.load(w, W.WAITING)),
      stalls: Number(Atomics.load(w, W.STALLS)),
      throttles: Number(Atomics.load(w, W.THROTTLES)),
      leases: Number(Atomics.load(w, W.LEASES)),
      leasedMs: Number(Atomics.load(w, W.LEASED_NS)) / 1e6,
      pausedForMs: pauseEnd > now ? Number(pauseEnd - now) / 1e6 : 0,
    };
  }

  /**
   * The waiting algorithm for both drivers: place on the stretch; if it ran
   * out, ask for more and wait for the next install; if the slot is ahead,
   * sleep until due (re-reading the mapping: a pause moves it). A placement
   * whose epoch ended (new Redis state, fallback switch) is void: place again.
   */
  *#steps(cost: number, limitNs: bigint, start: bigint, first: FrontPlaced | null): Generator<WaitStep, LeasedGrant, void> {
    const front = this.front;
    let firstPlaced = first;
    for (;;) {
      // The install generation is read before placing, so an install between
      // the placement and the sleep ends the sleep at once.
      const gen = front.generation();
      let now = clock();
      const leftNs = limitNs < 0n ? -1n : limitNs - (now - start);
      if (limitNs >= 0n && leftNs < 0n) throw new WaitTimeoutError(Number(limitNs) / 1e6, Number(now - start) / 1e6);
      let placed: FrontPlaced;
      if (firstPlaced !== null && firstPlaced.outcome !== FrontOutcome.Exhausted) {
        placed = firstPlaced; // placed by the caller just now (an Exhausted one is retried: the generation was not read before it)
        now = start;
      } else {
        placed = front.place(now, cost, leftNs);
      }
      firstPlaced = null;
      switch (placed.outcome) {
        case FrontOutcome.Granted:
          return this.#grant(placed, start, now);
        case FrontOutcome.TooLate:
          throw new WaitTimeoutError(Number(limitNs) / 1e6, Number(now - start + placed.delayNs) / 1e6);
        case FrontOutcome.Failed:
          throw this.#failure(placed);
        case FrontOutcome.Exhausted:
          front.demand(placed);
          yield { gen, ns: leaseWaitNs(leftNs) };
          continue;
        default:
          break;
      }
      front.countWaiting(1n);
      try {
        for (;;) {
          const deliveryGen = front.generation();
          now = clock();
          const remaining = front.deliver(now, placed);
          if (remaining === -1n) break; // voided: place again
          if (remaining === 0n) return this.#grant(placed, start, now, true);
          if (remaining === -2n) {
            // The stretch ends before this delivery would: wait for the next lease, then try again.
            front.demand(placed);
            const leftWaitNs = limitNs < 0n ? -1n : limitNs - (now - start);
            if (limitNs >= 0n && leftWaitNs < 0n) {
              front.cancel(now, placed);
              throw new WaitTimeoutError(Number(limitNs) / 1e6, Number(now - start) / 1e6);
            }
            try {
              yield { gen: deliveryGen, ns: leaseWaitNs(leftWaitNs) };
            } catch (reason) {
              front.cancel(clock(), placed);
              throw reason;
            }
            continue;
          }
          if (limitNs >= 0n && now + remaining - start > limitNs) {
            front.cancel(now, placed);
            throw new WaitTimeoutError(Number(limitNs) / 1e6, Number(now + remaining - start) / 1e6);
          }
          try {
            yield { ns: remaining };
          } catch (reason) {
            front.cancel(clock(), placed);
            throw reason;
          }
        }
      } finally {
        front.countWaiting(-1n);
      }
    }
  }

  /** `delivered`: a waiter handed out by `front.deliver` (its segment and decision time are the front's last delivery in this thread). */
  #grant(placed: FrontPlaced, start: bigint, now: bigint, delivered = false): LeasedGrant {
    const from = placed.prev > placed.v ? placed.prev : placed.v;
    return {
      cost: placed.cost,
      waitedMs: Number(now - start) / 1e6,
      segment: delivered ? [this.front.delivered[0], this.front.delivered[1]] : [from, placed.next],
      decidedAtNs: delivered ? this.front.dueAtV : placed.v,
      source: placed.mode === Mode.FALLBACK ? 'fallback' : 'lease',
    };
  }

  /** The stretch is used up and the owner can not lease (Redis failing: it keeps trying, so ask again) or was closed. */
  #failure(placed: FrontPlaced): RedisUnavailableError {
    const closed = placed.mode === Mode.CLOSED;
    if (!closed) this.front.demand(placed);
    return new RedisUnavailableError(this.handle.key, 'lease', new Error(closed
      ? 'the LeasedRateLimiter was closed'
      : 'the leased slots are used up and a new lease could not be taken'));
  }

  #waitLimitNs(timeoutMs: number | undefined): bigint {
    const callMs = timeoutMs === undefined ? -1 : checkMs('timeoutMs', timeoutMs);
    const callNs = callMs < 0 ? -1n : BigInt(Math.ceil(callMs * 1e6));
    const maxNs = this.#maxWaitNs;
    if (callNs < 0n) return maxNs;
    return maxNs >= 0n && maxNs < callNs ? maxNs : callNs;
  }
}

/** A worker thread's view of a {@link LeasedRateLimiter} (from `LeasedRateLimiter.attach`). */
export class AttachedLeasedLimiter extends LeasedLimiterView {
  /** @internal */
  static open(handle: unknown): AttachedLeasedLimiter {
    return new AttachedLeasedLimiter(checkHandle(handle));
  }
}

/** The latest lease taken from Redis, kept for `close()` (give back the unused tail). */
interface Lease {
  readonly inc: number;
  /** Its undo token (the TAT it wrote). */
  readonly token: number;
  readonly end: number;
  readonly prevTat: number;
  /** It is the stretch the threads use now. */
  installed: boolean;
  /** It starts where the installed stretch ends (same state): the two form one stretch. */
  readonly continues: boolean;
}

/** A lease reply waiting to be installed once the current stretch is used up. */
interface PendingLease {
  readonly reply: number[];
  readonly offset: bigint;
  /** Backoffs forwarded when it was taken. */
  readonly forwarded: bigint;
}

/**
 * The owner: leases stretches of the global Redis schedule for every thread
 * of this process, adapting their length to demand, and forwards the
 * process's backoffs to Redis. Pass `handle` to worker threads and
 * `LeasedRateLimiter.attach(handle)` there. One limit per front (several
 * limits: use `RedisRateLimiter`). Call `close()` when done.
 *
 * @example
 * const limiter = new LeasedRateLimiter({ redis, name: 'embeddings', rate: 50_000 });
 * new Worker(url, { workerData: limiter.handle });
 * // worker: const limiter = LeasedRateLimiter.attach(workerData); limiter.acquireSync();
 */
export class LeasedRateLimiter extends LeasedLimiterView {
  /** The same limit as a plain `RedisRateLimiter` (one round trip per call), e.g. for shared `stats()`. */
  readonly redis: RedisRateLimiter;
  readonly #caller: ScriptCaller;
  readonly #aheadUs: number;
  readonly #unitNs: bigint;
  readonly #toleranceNs: bigint;
  readonly #retryAfterMs: number;
  readonly #hasFallback: boolean;
  #spanNs: bigint;
  #latest: Lease | null = null;
  #pending: PendingLease | null = null;
  #inc = -1;
  #forwarded = 0n;
  #backoffWaiters: { req: bigint; resolve: () => void; reject: (e: unknown) => void }[] = [];
  #downUntilMs = 0;
  /** performance.now() before which no lease is asked (Redis said the schedule is full to the horizon). */
  #retryAtMs = 0;
  /** Server time of the reply whose mapping is published. */
  #mappedAt = 0;
  /** A thread asked for more and no lease has answered it yet. */
  #wanted = false;
  #lastLeaseAtNs = 0n;
  #grantedAtLastLease = 0n;
  /** Lease round trip, ns (moving average). */
  #rttNs = 0n;
  /** Recent clock samples: bound = received − server TIME (ns), an upper bound of (local − server) when taken. */
  readonly #clockSamples: { boundNs: bigint; atNs: bigint }[] = [];
  #closed = false;
  readonly #loopDone: Promise<void>;

  constructor(options: LeasedRateLimiterOptions) {
    const o = options as unknown as Record<string, unknown>;
    if (typeof o === 'object' && o !== null) {
      if (o.limits !== undefined) throw new InvalidOptionError('limits', o.limits, 'absent: a leased front serves one limit (use RedisRateLimiter for several)');
      if (o.maxQueue !== undefined) throw new InvalidOptionError('maxQueue', o.maxQueue, 'absent: leased slots are never queued in Redis');
    }
    const { leaseAheadMs, ...redisOptions } = (options ?? {}) as LeasedRateLimiterOptions;
    const resolved = resolveRedisOptions(redisOptions);
    const aheadMs = leaseAheadMs === undefined ? 100 : checkMs('leaseAheadMs', leaseAheadMs, LEASE_AHEAD_MAX_MS, false);
    if (aheadMs < 1) throw new InvalidOptionError('leaseAheadMs', leaseAheadMs, `a number of ms in 1..${LEASE_AHEAD_MAX_MS}`);
    const limit = resolved.limits[0]!;
    const [, toleranceUs] = resolved.perLimit[0]!;
    const fallback = resolved.fallback;
    if (fallback?.limiter) throw new InvalidOptionError('fallback.limiter', fallback.limiter, 'absent: a leased front falls back on its own shared memory (give fallback.share)');
    const fallbackBurst = fallback === null ? 0 : fallback.burst ?? Math.max(1, Math.round(limit.burst * fallback.share));
    const buffer = LeaseFront.create({
      rate: limit.rate,
      burst: limit.burst,
      toleranceNs: BigInt(toleranceUs) * 1000n,
      maxWaitNs: resolved.maxWaitMs < 0 ? -1n : BigInt(Math.ceil(resolved.maxWaitMs * 1e6)),
      fallbackRate: fallback === null ? 0 : Math.max(limit.rate * fallback.share, 1e-6),
      fallbackBurst,
    });
    super(Object.freeze({ kind: LEASE_HANDLE_KIND, version: LEASE_LAYOUT_VERSION, buffer, key: resolved.key }));
    this.redis = new RedisRateLimiter(redisOptions as never);
    this.#caller = new ScriptCaller(options.redis, resolved.key, resolved.config, resolved.perLimit, resolved.commandTimeoutMs);
    this.#aheadUs = Math.round(aheadMs * 1000);
    this.#unitNs = BigInt(Math.ceil(1e9 / limit.rate));
    this.#toleranceNs = BigInt(toleranceUs) * 1000n;
    this.#spanNs = this.#unitNs;
    this.#retryAfterMs = fallback?.retryAfterMs ?? 1000;
    this.#hasFallback = fallback !== null;
    this.#loopDone = this.#loop();
  }

  /** The limiter behind `handle` in this thread (a worker): same leased slots, no Redis connection. */
  static attach(handle: LeaseHandle): AttachedLeasedLimiter {
    return AttachedLeasedLimiter.open(handle);
  }

  /**
   * Pauses every thread of this process at once and resolves when Redis has
   * the pause (every other process then pauses at its next lease). Rejects
   * with `RedisUnavailableError` if Redis could not be told (the local pause holds).
   */
  override backoff(options: BackoffOptions = {}): Promise<void> {
    try {
      super.backoff(options);
    } catch (error) {
      return Promise.reject(error);
    }
    const req = Atomics.load(this.front.words, W.BACKOFF_REQ);
    return new Promise((resolve, reject) => this.#backoffWaiters.push({ req, resolve, reject }));
  }

  /** Shared figures from Redis (one round trip), as `RedisRateLimiter.stats()`. */
  redisStats(): Promise<RedisLimiterStats> {
    return this.redis.stats();
  }

  /**
   * Stops leasing and gives the unused tail of the current lease back to
   * Redis (if no one was placed after it). Threads of this process then get
   * `RedisUnavailableError` once what they already hold is used.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const w = this.front.words;
    Atomics.store(w, W.MODE, Mode.CLOSED);
    // Take what is left of the stretch away from the threads: both timelines := END.
    const end = Atomics.load(w, W.END);
    let used = 0n;
    this.front.moveTimelines((x) => {
      if (x > used) used = x;
      return x >= end ? x : end;
    });
    Atomics.add(this.front.i32, I32.GEN, 1);
    Atomics.notify(this.front.i32, I32.GEN);
    Atomics.notify(this.front.i32, I32.DEMAND);
    await this.#loopDone;
    for (const waiter of this.#backoffWaiters.splice(0)) waiter.resolve();
    const latest = this.#latest;
    if (latest === null) return;
    // What may go back: from what the threads used, if the latest lease
    // continues the installed stretch (or is it); else just the latest lease.
    const usedUs = Number((used + 999n) / 1000n);
    const returnTo = latest.installed || latest.continues ? usedUs : latest.prevTat;
    if (returnTo >= latest.end) return;
    try {
      await this.#caller.call(Op.UNLEASE, [latest.inc, latest.token, returnTo], 'unlease');
    } catch {
      // The tail simply expires.
    }
  }

  // ------------------------------------------------------------------ owner

  /**
   * The owner's loop, one step at a time: forward local backoffs to Redis;
   * install a pending lease once the current stretch is done; lease when a
   * thread asked for more (it ran out, or a grant passed REFILL_AT), or, on
   * the fallback, to get back to Redis; otherwise sleep until asked.
   */
  async #loop(): Promise<void> {
    let seen = Atomics.load(this.front.i32, I32.DEMAND);
    while (!this.#closed) {
      try {
        seen = await this.#step(seen);
      } catch (error) {
        // Not an outage (those are handled where they happen): a bug. Keep
        // the threads failing closed rather than the process crashing.
        this.#fail(error);
        await sleepOnDemand(this.front.i32, seen, 100);
      }
    }
  }

  /** One turn of the loop; returns the DEMAND value it has seen. */
  async #step(seenBefore: number): Promise<number> {
    const w = this.front.words;
    const i32 = this.front.i32;
    let seen = seenBefore;
    const req = Atomics.load(w, W.BACKOFF_REQ);
    if (req !== this.#forwarded) {
      await this.#forwardBackoff(req);
      return seen;
    }
    if (this.#pending !== null && this.#stretchDone()) {
      // A backoff reported since the lease was taken published a newer
      // pause mapping: the pending stretch's own reply predates it. Drop it.
      if (this.#pending.forwarded === this.#forwarded) this.#install(this.#pending.reply, this.#pending.offset);
      else this.#wanted = true;
      this.#pending = null;
      return seen;
    }
    const demand = Atomics.load(i32, I32.DEMAND);
    if (demand !== seen) {
      seen = demand;
      this.#wanted = true;
    }
    const wants = this.#pending === null && (this.#wanted || Atomics.load(w, W.MODE) === Mode.FALLBACK);
    const notBeforeMs = Math.max(this.#downUntilMs, this.#retryAtMs);
    const nowMs = performance.now();
    if (wants && nowMs >= notBeforeMs) {
      await this.#takeLease();
      return seen;
    }
    let sleepMs = wants ? Math.max(1, notBeforeMs - nowMs) : 1000;
    if (this.#pending !== null) sleepMs = Math.min(sleepMs, this.#msUntilStretchEnds());
    await sleepOnDemand(i32, seen, sleepMs);
    return seen;
  }

  /**
   * OFFSET (local ns − server virtual ns) that is never too small, so the
   * front's v(t) = t − OFFSET is never ahead of the server's virtual time:
   * a grant handed out here is never early, on any host, however a round
   * trip was stretched. The server read TIME after this process sent and
   * before it received the reply, so local − server ≤ received − TIME at
   * that moment. The tightest of the recent samples (the fastest round
   * trip's) is used, each aged by 100 ppm of its age (clock-rate drift
   * between hosts); a slow round trip only adds a loose sample. Grants are
   * late by at most that round trip (plus the drift allowance), never early.
   */
  #offsetFrom(received: bigint, serverNowUs: number, shiftUs: number): bigint {
    const samples = this.#clockSamples;
    samples.push({ boundNs: received - BigInt(serverNowUs) * 1000n, atNs: received });
    if (samples.length > 64) samples.shift();
    let best = 0n;
    let first = true;
    for (const sample of samples) {
      const bound = sample.boundNs + (received - sample.atNs) / 10_000n;
      if (first || bound < best) best = bound;
      first = false;
    }
    return best + BigInt(shiftUs) * 1000n;
  }

  /** Leases the next stretch; installs it now if contiguous or the current one is done, else keeps it pending. */
  async #takeLease(): Promise<void> {
    const w = this.front.words;
    this.#adaptSpan(clock());
    const req = Atomics.load(w, W.BACKOFF_REQ);
    // The part of a stretch that passes while the lease is on its way back
    // is lost (the front only uses it from its own now on): ask for a round
    // trip more than demand, and refuse stretches too short to be used.
    const rttNs = this.#rttNs;
    const wantUs = Math.max(1, Math.ceil(Number(this.#spanNs + 2n * rttNs) / 1000));
    const minUs = Math.max(1, Math.ceil(Number(this.#unitNs + rttNs) / 1000));
    const sent = clock();
    let reply: number[];
    try {
      reply = await this.#caller.call(Op.LEASE, [wantUs, this.#aheadUs, minUs], 'lease');
    } catch (error) {
      this.#fail(error);
      return;
    }
    const received = clock();
    this.#rttNs = this.#rttNs === 0n ? received - sent : (this.#rttNs * 7n + (received - sent)) / 8n;
    this.#downUntilMs = 0;
    const serverNow = reply[3]!;
    const shift = reply[4]!;
    const offset = this.#offsetFrom(received, serverNow, shift);
    if (reply[0] === 1 && Atomics.load(w, W.BACKOFF_REQ) !== req) {
      // A local pause arrived meanwhile: forward it first; this stretch is lost.
      this.#latest = { inc: reply[6]!, token: reply[7]!, end: reply[2]!, prevTat: reply[8]!, installed: false, continues: false };
      return;
    }
    if (this.#closed && reply[0] !== 1) return;
    if (reply[0] !== 1) {
      // The schedule is taken beyond the horizon (a long queue elsewhere, or
      // a pause): try again when a stretch would fit. Back from the fallback,
      // stop granting locally now: an empty stretch until then.
      this.#retryAtMs = performance.now() + Math.min(1000, Math.max(1, reply[1]! / 1000));
      if (Atomics.load(w, W.MODE) !== Mode.LEASING) this.#enterLeasing(offset, reply[5]!, reply[6]!, serverNow);
      return;
    }
    this.#wanted = false;
    const sameRegime = reply[6] === this.#inc && Atomics.load(w, W.MODE) === Mode.LEASING;
    const contiguous = sameRegime && BigInt(reply[1]!) * 1000n === Atomics.load(w, W.END);
    this.#latest = { inc: reply[6]!, token: reply[7]!, end: reply[2]!, prevTat: reply[8]!, installed: false, continues: contiguous };
    if (this.#closed) return; // close() gives it back
    if (!sameRegime || contiguous || this.#stretchDone()) this.#install(reply, offset);
    else this.#pending = { reply, offset, forwarded: this.#forwarded };
  }

  /**
   * Lease length follows demand: the schedule this process consumed since
   * the last lease, as a fraction of the time that passed, times the horizon
   * — an idle process leases one slot at a time, a saturating one the whole
   * horizon. It grows fast: a lease used up within one round trip makes the
   * next one horizon/RTT times longer. It does not shrink right after a
   * thread used the lease up before its end, and a busy process (back within
   * about one stretch) leases at least an eighth of the horizon (and two
   * round trips).
   */
  #adaptSpan(now: bigint): void {
    const w = this.front.words;
    const granted = Atomics.load(w, W.GRANTED);
    const maxSpan = BigInt(this.#aheadUs) * 1000n + this.#toleranceNs;
    if (this.#lastLeaseAtNs > 0n && now > this.#lastLeaseAtNs) {
      const elapsedNs = now - this.#lastLeaseAtNs;
      const consumedNs = BigInt(Math.ceil(Number(granted - this.#grantedAtLastLease) * 1e9 / this.rate));
      let span = (consumedNs * BigInt(this.#aheadUs) * 1000n) / elapsedNs;
      // Used up before its time (not merely expired): demand outpaced the lease.
      const usedUp = Atomics.load(w, W.EXHAUSTED_AT) !== -1n && Atomics.load(w, W.END) > this.front.virtualNow(now);
      if (usedUp && span < this.#spanNs) span = this.#spanNs;
      // A busy process — back for more within about one stretch — keeps its
      // stretch long even when the limit is far above its demand (it then
      // expires by time, not by use): an eighth of the horizon (and two
      // round trips), so a thread waits for a lease at most once per
      // stretch. (Others wait at most that long behind it: leaseAheadMs
      // bounds both.) An idle process, back after a long gap, does not.
      const busy = consumedNs > 0n && elapsedNs <= this.#spanNs + 2n * this.#rttNs + 2_000_000n;
      const floor = this.#rttNs * 2n > BigInt(this.#aheadUs) * 125n ? this.#rttNs * 2n : BigInt(this.#aheadUs) * 125n;
      if (busy && span < floor) span = floor;
      this.#spanNs = span < this.#unitNs ? this.#unitNs : span > maxSpan ? maxSpan : span;
    }
    this.#lastLeaseAtNs = now;
    this.#grantedAtLastLease = granted;
  }

  /**
   * Publishes a lease to the threads. Order (see `LeaseFront.place`):
   * mapping and MODE, then TAT, then EPOCH, then END — a thread whose CAS
   * succeeds on the new TAT reads the new mapping and END; a placement made
   * in an ended epoch (new Redis incarnation, leaving the fallback) is void.
   */
  #install(reply: number[], offset: bigint): void {
    const w = this.front.words;
    const [, base, end, serverNow, , pauseStart, inc, token] = reply as [number, number, number, number, number, number, number, number];
    const newRegime = inc !== this.#inc || Atomics.load(w, W.MODE) !== Mode.LEASING;
    const baseNs = BigInt(base) * 1000n;
    const endNs = BigInt(end) * 1000n;
    const oldEnd = Atomics.load(w, W.END);
    const contiguous = !newRegime && baseNs === oldEnd;
    this.#publishMapping(offset, pauseStart, serverNow);
    Atomics.store(w, W.MODE, Mode.LEASING);
    this.front.moveTimelines((tat) => {
      if (newRegime) return tat === baseNs ? baseNs + 1n : baseNs; // always a change: stale CAS fail
      if (contiguous) return tat; // keep what is left of the stretch
      return tat > baseNs ? tat : baseNs; // skip the gap others were placed in
    });
    if (newRegime) Atomics.add(w, W.EPOCH, 1n);
    Atomics.store(w, W.EXHAUSTED_AT, -1n);
    Atomics.store(w, W.END, endNs);
    const from = contiguous ? oldEnd : baseNs;
    Atomics.store(w, W.REFILL_AT, from + (endNs - from) / 2n);
    Atomics.add(w, W.LEASES, 1n);
    Atomics.add(w, W.LEASED_NS, endNs - baseNs);
    this.#inc = inc;
    if (this.#latest !== null && this.#latest.token === token && this.#latest.inc === inc) this.#latest.installed = true;
    this.#bumpGeneration();
  }

  /** Back on Redis without a stretch yet (it is full up to the horizon): nothing grantable until the next lease. */
  #enterLeasing(offset: bigint, pauseStart: number, inc: number, serverNow: number): void {
    const w = this.front.words;
    this.#publishMapping(offset, pauseStart, serverNow);
    Atomics.store(w, W.MODE, Mode.LEASING);
    // Nothing grantable: both timelines move past the old values, END at their maximum.
    const top = this.front.committed() + 1n;
    this.front.moveTimelines((x) => (x > top ? x + 1n : top));
    Atomics.add(w, W.EPOCH, 1n);
    Atomics.store(w, W.END, this.front.committed());
    Atomics.store(w, W.REFILL_AT, FOREVER);
    this.#inc = inc;
    this.#bumpGeneration();
  }

  /**
   * OFFSET and PAUSE from a Redis reply, under the pause-writer lock —
   * unless a local pause is still to be forwarded, or a newer reply (a later
   * server time) was published already: a lease kept pending must not undo
   * the pause a later backoff reply published.
   */
  #publishMapping(offset: bigint, pauseStart: number, serverNow: number): void {
    const w = this.front.words;
    if (Atomics.load(w, W.BACKOFF_REQ) !== this.#forwarded || serverNow < this.#mappedAt) return;
    this.#mappedAt = serverNow;
    this.front.lockPause();
    try {
      Atomics.store(w, W.OFFSET, offset);
      Atomics.store(w, W.PAUSE, BigInt(pauseStart) * 1000n);
    } finally {
      this.front.unlockPause();
    }
  }

  /** Reports the process's latest local pause to Redis, and publishes Redis's pause when it is the newest. */
  async #forwardBackoff(req: bigint): Promise<void> {
    const w = this.front.words;
    const untilNs = Atomics.load(w, W.BACKOFF_UNTIL);
    const sent = clock();
    const retryAfterUs = untilNs > sent ? Number((untilNs - sent + 999n) / 1000n) : 0;
    let failure: unknown = null;
    try {
      const reply = await this.#caller.call(Op.BACKOFF, [retryAfterUs], 'backoff');
      const received = clock();
      this.#forwarded = req;
      const [, , serverNow, shift, pauseStart, inc] = reply as [number, number, number, number, number, number];
      if (inc === this.#inc && Atomics.load(w, W.MODE) === Mode.LEASING) {
        this.#publishMapping(this.#offsetFrom(received, serverNow, shift), pauseStart, serverNow);
        this.#bumpGeneration();
      }
    } catch (error) {
      failure = error;
      this.#forwarded = req; // the local pause holds; Redis is failing anyway
      this.#fail(error);
    }
    const done = this.#backoffWaiters.filter((x) => x.req <= req);
    this.#backoffWaiters = this.#backoffWaiters.filter((x) => x.req > req);
    for (const waiter of done) {
      if (failure === null) waiter.resolve();
      else waiter.reject(failure);
    }
  }

  /** Redis failed: switch to the local fallback schedule, or let the threads fail once the stretch is used up. */
  #fail(_error: unknown): void {
    const w = this.front.words;
    this.#downUntilMs = performance.now() + this.#retryAfterMs;
    const mode = Atomics.load(w, W.MODE);
    if (mode === Mode.CLOSED || mode === Mode.FALLBACK) return;
    if (this.#hasFallback) {
      this.#pending = null;
      Atomics.store(w, W.MODE, Mode.FALLBACK);
      // A fresh local schedule at the fallback rate, from now.
      const v = this.front.virtualNow(clock());
      this.front.moveTimelines((tat) => (tat > v ? tat : v) + 1n);
      Atomics.add(w, W.EPOCH, 1n);
      Atomics.store(w, W.END, FOREVER);
      Atomics.store(w, W.REFILL_AT, FOREVER);
    } else {
      Atomics.store(w, W.MODE, Mode.FAILING);
    }
    this.#bumpGeneration();
  }

  /** The current stretch can not serve a request any more: used up, too short for a waiting request, or past. */
  #stretchDone(): boolean {
    const w = this.front.words;
    const tat = this.front.committed();
    if (Atomics.load(w, W.EXHAUSTED_AT) === Atomics.load(w, W.TAT)) return true;
    const v = this.front.virtualNow(clock());
    return Atomics.load(w, W.END) - (tat > v ? tat : v) < this.#unitNs;
  }

  #msUntilStretchEnds(): number {
    const end = Atomics.load(this.front.words, W.END);
    const v = this.front.virtualNow(clock());
    return end > v ? Math.max(1, Number(end - v) / 1e6) : 1;
  }

  #bumpGeneration(): void {
    Atomics.add(this.front.i32, I32.GEN, 1);
    Atomics.notify(this.front.i32, I32.GEN);
  }
}

/** Sleeps until DEMAND changes from `seen` (a thread asked for more, or close), or `ms` pass; holds no ref on the event loop. */
function sleepOnDemand(i32: Int32Array, seen: number, ms: number): Promise<void> {
  const waitAsync = (Atomics as unknown as { waitAsync: (a: Int32Array, i: number, v: number, t: number) => { async: boolean; value: Promise<string> | string } }).waitAsync;
  const result = waitAsync(i32, I32.DEMAND, seen, ms);
  return result.async ? (result.value as Promise<string>).then(() => {}) : Promise.resolve();
}

function checkCost(cost: unknown, burst: number): void {
  if (typeof cost !== 'number' || !Number.isInteger(cost) || cost < 1 || cost > burst) {
    throw new InvalidOptionError('cost', cost, `an integer in 1..${burst} (burst)`);
  }
}

function checkHandle(handle: unknown): LeaseHandle {
  if (typeof handle !== 'object' || handle === null) throw new InvalidHandleError(`expected an object, got ${handle === null ? 'null' : typeof handle}`);
  const h = handle as Partial<LeaseHandle>;
  if (h.kind !== LEASE_HANDLE_KIND) throw new InvalidHandleError(`kind must be '${LEASE_HANDLE_KIND}'`);
  if (h.version !== LEASE_LAYOUT_VERSION) throw new InvalidHandleError(`version ${String(h.version)} is not the supported lease layout version ${LEASE_LAYOUT_VERSION}`);
  if (Object.prototype.toString.call(h.buffer) !== '[object SharedArrayBuffer]' || !LeaseFront.isFront(h.buffer as SharedArrayBuffer)) {
    throw new InvalidHandleError('buffer is not a leased front');
  }
  if (typeof h.key !== 'string') throw new InvalidHandleError('key must be a string');
  return h as LeaseHandle;
}
