/**
 * `RedisRateLimiter`: the shared-memory limiter's semantics (GCRA, weighted
 * and several limits, FIFO, shared backoff, timeouts, abort) with the state
 * in Redis, for processes and hosts that share one limit. Every decision is
 * one EVALSHA of `script.ts`; waiting is a client-side timer until the slot
 * is due, then one re-check (another process's backoff may have moved it).
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { CostTooLargeError, GrantStateError, InvalidOptionError, QueueFullError, RedisUnavailableError, WaitTimeoutError } from '../errors.js';
import { RateLimiter } from '../limiter.js';
import type { Grant, LimiterStats } from '../limiter.js';
import { checkMs, MAX_BACKOFF_MS, resolveCosts, type BackoffOptions, type Cost, type ResolvedLimit } from '../options.js';
import { runWithRetry, type RetryOptions } from '../retry.js';
import { sleepAsync } from '../wait.js';
import { ScriptCaller } from './client.js';
import { fallbackLimits, resolveRedisOptions, type RedisRateLimiterOptions, type ResolvedRedisOptions } from './options.js';
import { Op, PlaceOutcome, STATE_LOST } from './script.js';

/** Cost units moved by {@link RedisGrant.settle}, per limit name (as the shared-memory `SettleResult`). */
export interface RedisSettleResult {
  readonly charged: Readonly<Record<string, number>>;
  readonly refunded: Readonly<Record<string, number>>;
  readonly forfeited: Readonly<Record<string, number>>;
}

/** A granted request. */
export interface RedisGrant {
  /** Cost units granted (of the first limit). */
  readonly cost: number;
  /** Cost granted per limit name. */
  readonly costs: Readonly<Record<string, number>>;
  /** Time spent in the call, ms. */
  readonly waitedMs: number;
  /**
   * Position on the shared schedule, virtual µs of the Redis server's
   * clock: grants become due in increasing `slotUs` order across every
   * process (the FIFO order). `null` for a grant of the local fallback.
   */
  readonly slotUs: number | null;
  /**
   * When Redis handed it out: µs on the Redis server's clock (TIME) of the
   * decision that delivered it — the instant the limit is enforced at; the
   * reply reaches this process one network trip later. `null` for a
   * fallback grant.
   */
  readonly decidedAtUs: number | null;
  /** `'redis'`, or `'fallback'` for a grant of the local limiter during an outage. */
  readonly source: 'redis' | 'fallback';
  /**
   * Settles the grant at its actual cost (as the shared-memory `Grant.settle`):
   * extra cost is charged at once; unused cost is refunded if no later request
   * was placed behind this one, else forfeited. Once per grant.
   */
  settle(actual: number | Readonly<Record<string, number>>): Promise<RedisSettleResult>;
  /** No effect (the Redis store has no concurrency permits); there for `run`/`wrap`. */
  release(): void;
}

/** Live status of a waiting request (see {@link RedisAcquireOptions.onQueued}). */
export interface RedisQueueStatus {
  /** The request's id in the Redis queue: readable from any process with `requestStatus(id)`. */
  readonly id: string;
  /** Its slot, virtual µs of the server's clock. */
  readonly slotUs: number;
  /** Requests waiting ahead of it, itself included, as of the last reply from Redis (1 = next). 0 once granted or cancelled. */
  readonly position: number;
  /** Estimated ms until the grant, from the last reply and the local clock. 0 once granted or cancelled. */
  readonly etaMs: number;
  readonly state: 'queued' | 'granted' | 'cancelled';
  /** Reads position and eta again from Redis. */
  refresh(): Promise<RedisQueueStatus>;
}

export interface RedisAcquireOptions {
  /** Cancels the wait: rejects with `signal.reason` and gives the slot back where no later request depends on it. */
  signal?: AbortSignal;
  /** Longest this call may wait, ms (≥ 0 or Infinity). A longer wait fails at once with `WaitTimeoutError`. */
  timeoutMs?: number;
  /** Called once, synchronously, if the request has to wait, with its live {@link RedisQueueStatus}. */
  onQueued?: (status: RedisQueueStatus) => void;
  /**
   * The request's id in the Redis queue while it waits, for
   * `requestStatus(id)` from any process (e.g. your gateway's request id).
   * Unique among waiting requests; 1..200 characters. Default: a random id.
   */
  id?: string;
}

/** A place taken on the schedule without waiting (as x/time/rate's Reserve). */
export interface RedisReservation {
  /** False when refused (wait over `timeoutMs`/`maxWaitMs`, or queue full): nothing is held. */
  readonly ok: boolean;
  readonly cost: number;
  /** The slot (virtual µs of the server's clock); NaN when not ok. */
  readonly slotUs: number;
  /** Estimated ms until due (local clock since the reply); a backoff elsewhere may move it: `refresh()` asks Redis. Infinity when not ok. */
  readonly delayMs: number;
  /** Ms until due, from Redis now (0 when due). Rejects with `RedisUnavailableError` if the state was lost since (the reservation is void). */
  refresh(): Promise<number>;
  /** Gives the place back if not yet due; returns whether capacity came back (it was the latest placement). */
  cancel(): Promise<boolean>;
}

/** One limit's figures in {@link RedisLimiterStats}. */
export interface RedisLimitStats {
  readonly rate: number;
  readonly burst: number;
  /** Cost units that could be granted right now without waiting. */
  readonly available: number;
  /** Cost units queued behind the present (the schedule's backlog). */
  readonly queuedCost: number;
}

export interface RedisLimiterStats extends RedisLimitStats {
  /** Where the figures come from: Redis, or the local fallback while Redis fails. */
  readonly source: 'redis' | 'fallback';
  readonly key: string;
  readonly limits: Readonly<Record<string, RedisLimitStats>>;
  /** Requests waiting in `acquire`, in every process. */
  readonly waiting: number;
  readonly rejected: number;
  readonly cancelled: number;
  readonly throttles: number;
  /** Ms until the shared pause ends; 0 when not paused. */
  readonly pausedForMs: number;
  /** The server's clock, µs since the epoch (null from the fallback). */
  readonly serverTimeUs: number | null;
}

/** A waiting request as seen from any process ({@link RedisRateLimiter.requestStatus}). */
export type RequestStatus =
  | { readonly state: 'queued'; readonly position: number; readonly etaMs: number; readonly slotUs: number }
  /** Not waiting: granted, cancelled, never queued, or dropped after its process died. */
  | { readonly state: 'unknown' };

/** What PLACE told us, kept for check, cancel and settle. */
interface Placement {
  readonly outcome: number;
  readonly slot: number;
  readonly delayUs: number;
  /** Undo token: valid while this is the latest placement (see script.ts). */
  readonly token: number;
  readonly inc: number;
  readonly position: number;
  /** Server µs of the decision. */
  readonly nowUs: number;
  readonly prevLast: number;
  readonly prevTats: readonly number[];
  readonly fullLimit: number;
  /** The reply itself (a grant keeps it for settle). */
  readonly reply: readonly number[];
}

const NO_WAIT_LIMIT = -1;
/** PLACE arguments of tryAcquire(1) on one limit: cost 1, no wait, try mode, no queue member. */
const TRY_ONE: readonly (string | number)[] = ['1', '0', '0', ''];
const ONE: readonly number[] = [1];
let idCounter = 0;

/**
 * A GCRA rate limiter whose state lives in Redis: every process (and every
 * host) using the same `name` acquires against one strictly enforced limit,
 * with the server's clock. Same verbs and errors as the shared-memory
 * `RateLimiter`, asynchronous; `RedisUnavailableError` when Redis can not
 * decide (fail closed), or the local `fallback` if configured.
 *
 * @example
 * const redis = new Redis({ maxRetriesPerRequest: 1, enableOfflineQueue: false });
 * const limiter = new RedisRateLimiter({ redis, name: 'openai', limits: {
 *   requests: { rate: '500/min', burst: 10 }, tokens: { rate: '90000/min', burst: 20000 } } });
 * const grant = await limiter.acquire({ requests: 1, tokens: 1500 }, { timeoutMs: 30_000 });
 */
export class RedisRateLimiter {
  /** The Redis key of the state hash (`<prefix>{<name>}`). */
  readonly key: string;
  /** Rate of the first limit, cost units per second. */
  readonly rate: number;
  /** Burst of the first limit. */
  readonly burst: number;

  readonly #caller: ScriptCaller;
  readonly #limits: readonly ResolvedLimit[];
  readonly #options: ResolvedRedisOptions;
  readonly #idPrefix = randomBytes(6).toString('base64url');
  /** One limit: cost-1 calls skip cost resolution. */
  readonly #single: boolean;
  readonly #grantContext: GrantContext;
  #fallback: RateLimiter | null = null;
  /** performance.now() until which calls go straight to the fallback (after a failure). */
  #downUntilMs = 0;

  constructor(options: RedisRateLimiterOptions) {
    const resolved = resolveRedisOptions(options);
    this.#options = resolved;
    this.#limits = resolved.limits;
    this.key = resolved.key;
    this.rate = resolved.limits[0]!.rate;
    this.burst = resolved.limits[0]!.burst;
    this.#single = resolved.limits.length === 1;
    this.#caller = new ScriptCaller(options.redis, resolved.key, resolved.config, resolved.perLimit, resolved.commandTimeoutMs);
    this.#grantContext = { caller: this.#caller, limits: this.#limits, resolveActual: this.#resolveActual };
  }

  /** Names of the limits, in order. */
  get limitNames(): readonly string[] {
    return this.#limits.map((l) => l.name);
  }

  /** Grants `cost` now if it conforms in every limit, else resolves false. Never waits or queues. */
  tryAcquire(cost: Cost = 1): Promise<boolean> {
    let args: readonly (string | number)[];
    try {
      args = cost === 1 && this.#single ? TRY_ONE : [...resolveCosts(cost, this.#limits), 0, 0, ''];
      if (this.#onFallbackNow()) return Promise.resolve(this.#fallbackTry(cost, null));
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#caller.call(Op.PLACE, args, 'place').then(
      (reply) => {
        this.#downUntilMs = 0;
        return reply[0] === PlaceOutcome.Granted;
      },
      (error: unknown) => this.#fallbackTry(cost, error),
    );
  }

  /**
   * Waits for `cost`, first come first served across every process, then
   * resolves with the {@link RedisGrant}. Rejects at once with
   * `CostTooLargeError`/`InvalidOptionError` for a cost that can never be
   * granted, `WaitTimeoutError` when the wait would exceed `timeoutMs` or
   * `maxWaitMs`, `QueueFullError` at `maxQueue`, `signal.reason` on abort
   * (the slot is given back where no later grant depends on it), and
   * `RedisUnavailableError` when Redis can not decide (unless `fallback`).
   */
  acquire(cost: Cost = 1, options: RedisAcquireOptions = {}): Promise<RedisGrant> {
    let costs: readonly number[];
    let limitMs: number;
    let id: string;
    try {
      costs = cost === 1 && this.#single ? ONE : resolveCosts(cost, this.#limits);
      limitMs = this.#waitLimit(options.timeoutMs);
      id = options.id === undefined ? this.#idPrefix + (++idCounter).toString(36) : checkId(options.id);
      if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    } catch (error) {
      return Promise.reject(error);
    }
    const startMs = performance.now();
    if (this.#onFallbackNow()) return this.#fallbackAcquire(cost, options, startMs, limitMs, null);
    // The common case in one promise step: granted at once.
    return this.#caller.call(Op.PLACE, this.#placeArgs(costs, limitMs, startMs, id, 1), 'place').then(
      (reply) => {
        this.#downUntilMs = 0;
        if (reply[0] === PlaceOutcome.Granted && !options.signal?.aborted) {
          return new Granted(this.#grantContext, costs, reply, performance.now() - startMs);
        }
        return this.#acquireSlow(cost, costs, options, startMs, limitMs, id, this.#placement(reply, limitMs, startMs, id, 1));
      },
    ).catch((error: unknown) => this.#acquireFailed(cost, options, startMs, limitMs, error));
  }

  /** acquire() beyond an immediate grant: abort, waiting until due, placing again after a lost state. */
  async #acquireSlow(cost: Cost, costs: readonly number[], options: RedisAcquireOptions, startMs: number, limitMs: number, id: string, first: Placement): Promise<RedisGrant> {
    const { signal } = options;
    try {
      // A placement whose state was lost (server restarted without
      // persistence) is void: place again with what is left of the wait.
      for (let placed = first; ; placed = await this.#place(costs, limitMs, startMs, id, 1)) {
        if (placed.outcome === PlaceOutcome.Granted) {
          if (signal?.aborted) throw signal.reason;
          return this.#grant(costs, placed, startMs);
        }
        if (signal?.aborted) {
          void this.#cancel(placed, costs, id).catch(() => {});
          throw signal.reason;
        }
        const delivered = await this.#waitDue(placed, costs, id, startMs, limitMs, options);
        if (delivered !== null) return this.#grant(costs, placed, startMs, delivered);
      }
    } catch (error) {
      return this.#acquireFailed(cost, options, startMs, limitMs, error);
    }
  }

  /** With a fallback, an outage goes to the local limiter; anything else stands. */
  #acquireFailed(cost: Cost, options: RedisAcquireOptions, startMs: number, limitMs: number, error: unknown): Promise<RedisGrant> {
    if (!(error instanceof RedisUnavailableError) || this.#options.fallback === null) return Promise.reject(error);
    return this.#fallbackAcquire(cost, options, startMs, limitMs, error);
  }

  /**
   * Takes a place on the schedule without waiting (x/time/rate's Reserve):
   * act when it is due, or `cancel()`. `ok: false` (nothing held) when the
   * delay would exceed `timeoutMs`/`maxWaitMs` or a queue is full.
   */
  async reserve(cost: Cost = 1, options: { timeoutMs?: number } = {}): Promise<RedisReservation> {
    const costs = resolveCosts(cost, this.#limits);
    const limitMs = this.#waitLimit(options.timeoutMs);
    const startMs = performance.now();
    // Mode 2: the caller hands it out at its slot, so its delivery is committed now (see script.ts).
    const placed = await this.#place(costs, limitMs, startMs, '', 2);
    if (placed.outcome === PlaceOutcome.TooLate || placed.outcome === PlaceOutcome.QueueFull) {
      return { ok: false, cost: costs[0]!, slotUs: NaN, delayMs: Infinity, refresh: async () => Infinity, cancel: async () => false };
    }
    let dueAtMs = performance.now() + Math.max(0, placed.delayUs) / 1000;
    let cancelled = false;
    return {
      ok: true,
      cost: costs[0]!,
      slotUs: placed.slot,
      get delayMs() {
        return cancelled ? 0 : Math.max(0, dueAtMs - performance.now());
      },
      refresh: async () => {
        if (cancelled) return 0;
        // Cost 0: its delivery was committed when it was reserved; this only reads the timeline.
        const check = await this.#caller.call(Op.CHECK, [placed.slot, placed.inc, '', ...costs.map(() => 0)], 'check');
        if (check[0] === STATE_LOST) {
          throw new RedisUnavailableError(this.key, 'check', new Error('the limit\'s state in Redis was lost (server restarted without persistence, or key deleted): this reservation is void, reserve again'));
        }
        const remainingMs = check[0] === 1 ? check[1]! / 1000 : 0;
        dueAtMs = performance.now() + remainingMs;
        return remainingMs;
      },
      cancel: async () => {
        if (cancelled) return false;
        cancelled = true;
        return this.#cancel(placed, costs, '');
      },
    };
  }

  /**
   * Pauses every process sharing this limit for `retryAfterMs` (default
   * 1000; 0..86_400_000), as the shared-memory `backoff`: once it resolves,
   * no process is granted until the pause ends, including requests already
   * waiting; they resume in FIFO order one interval apart. Overlapping
   * backoffs extend to the latest end. Rejects with `RedisUnavailableError`
   * if Redis can not be reached (with `fallback`, pauses the local fallback instead).
   */
  async backoff(options: BackoffOptions = {}): Promise<void> {
    const retryAfterMs = options.retryAfterMs === undefined ? 1000 : checkMs('retryAfterMs', options.retryAfterMs, MAX_BACKOFF_MS, false);
    if (options.reason !== undefined && typeof options.reason !== 'string') {
      throw new InvalidOptionError('reason', options.reason, 'a string');
    }
    this.#fallback?.backoff({ retryAfterMs });
    try {
      await this.#caller.call(Op.BACKOFF, [Math.ceil(retryAfterMs * 1000)], 'backoff');
    } catch (error) {
      if (!(error instanceof RedisUnavailableError) || this.#options.fallback === null) throw error;
      this.#markDown();
      this.#fallbackLimiter().backoff({ retryAfterMs });
    }
  }

  /** Runs `fn` with retries through this limiter, as the shared-memory `run` (throttles call `backoff` for every process). */
  run<T>(fn: (attempt: number, signal?: AbortSignal, grant?: RedisGrant) => Promise<T> | T, options?: RetryOptions<T>): Promise<T> {
    return runWithRetry<T, RedisGrant>(this.#retryTarget, fn, options);
  }

  /** `fn` wrapped so that every call goes through {@link run}. */
  wrap<A extends unknown[], T>(fn: (...args: A) => Promise<T> | T, options?: RetryOptions<T>): (...args: A) => Promise<T> {
    return (...args: A) => runWithRetry(this.#retryTarget, () => fn(...args), options);
  }

  readonly #retryTarget = {
    acquire: (cost?: Cost, options?: { signal?: AbortSignal }) => this.acquire(cost, options),
    // run() reports throttles without awaiting; the next acquire follows it
    // on the same connection. A failure surfaces in that acquire.
    backoff: (options: BackoffOptions) => { void this.backoff(options).catch(() => {}); },
  };

  /** One round trip: the shared figures (waiting requests in every process, pause, per-limit availability). */
  async stats(): Promise<RedisLimiterStats> {
    let r: number[];
    try {
      r = await this.#caller.call(Op.STATS, [''], 'stats');
    } catch (error) {
      if (!(error instanceof RedisUnavailableError) || this.#options.fallback === null) throw error;
      this.#markDown();
      return this.#fallbackStats(this.#fallbackLimiter().stats());
    }
    const [now, v, sh, ps, , thr, rej, can, waiting] = r as [number, number, number, number, number, number, number, number, number];
    const limits = Object.fromEntries(this.#limits.map((limit, i) => {
      const [perUs, toleranceUs] = this.#options.perLimit[i]!;
      const tat = r[11 + i]!;
      const backlogUs = Math.max(0, tat - v);
      const stats: RedisLimitStats = {
        rate: limit.rate,
        burst: limit.burst,
        available: backlogUs >= toleranceUs ? 0 : Math.min(limit.burst, Math.floor((toleranceUs - backlogUs) / perUs + 1e-9)),
        queuedCost: Math.max(0, Math.ceil((backlogUs - toleranceUs) / perUs - 1e-9)),
      };
      return [limit.name, stats];
    }));
    const pausedUntil = ps + sh;
    return {
      ...limits[this.#limits[0]!.name]!,
      source: 'redis',
      key: this.key,
      limits,
      waiting,
      rejected: rej,
      cancelled: can,
      throttles: thr,
      pausedForMs: pausedUntil > now ? (pausedUntil - now) / 1000 : 0,
      serverTimeUs: now,
    };
  }

  /**
   * Where a waiting request stands, read from Redis by any process: its
   * position (requests ahead, itself included) and estimated ms until its
   * grant, from the id given to `acquire` (or shown by `onQueued`).
   * One round trip; no key scan.
   */
  async requestStatus(id: string): Promise<RequestStatus> {
    const r = await this.#caller.call(Op.STATS, [checkId(id)], 'stats');
    const slot = r[9]!;
    if (slot < 0) return { state: 'unknown' };
    const [now, , sh] = r as [number, number, number];
    return { state: 'queued', position: r[10]!, etaMs: Math.max(0, slot + sh - now) / 1000, slotUs: slot };
  }

  /**
   * Deletes this limit's state in Redis (schedule, pause, queue, stored
   * configuration); the next call from any process starts a new one. For
   * deployments that change the configuration: run it once every process
   * uses the new one.
   */
  async reset(): Promise<void> {
    await this.#caller.reset();
  }

  // ------------------------------------------------------------- internals

  /** PLACE: one round trip; the reply as a {@link Placement} (refusals of `acquire` thrown as typed errors). */
  #place(costs: readonly number[], limitMs: number, startMs: number, id: string, mode: 0 | 1 | 2): Promise<Placement> {
    return this.#caller.call(Op.PLACE, this.#placeArgs(costs, limitMs, startMs, id, mode), 'place')
      .then((r) => this.#placement(r, limitMs, startMs, id, mode));
  }

  #placeArgs(costs: readonly number[], limitMs: number, startMs: number, id: string, mode: 0 | 1 | 2): (string | number)[] {
    let maxDelayUs = -1;
    if (limitMs >= 0) maxDelayUs = Math.max(0, Math.floor((limitMs - (performance.now() - startMs)) * 1000));
    return costs.length === 1 ? [costs[0]!, maxDelayUs, mode, id] : [...costs, maxDelayUs, mode, id];
  }

  #placement(r: number[], limitMs: number, startMs: number, id: string, mode: 0 | 1 | 2): Placement {
    const outcome = r[0]!;
    if (outcome === PlaceOutcome.TooLate && mode === 1 && id !== '') {
      throw new WaitTimeoutError(limitMs, (performance.now() - startMs) + r[2]! / 1000);
    }
    if (outcome === PlaceOutcome.QueueFull && mode === 1 && id !== '') {
      const full = this.#limits[r[3]!]!;
      throw new QueueFullError(full.maxQueue, full.name);
    }
    const refused = outcome === PlaceOutcome.TooLate || outcome === PlaceOutcome.QueueFull;
    return {
      outcome, slot: r[1]!, delayUs: r[2]!, token: refused ? -1 : r[3]!, inc: refused ? -1 : r[4]!,
      position: refused ? 0 : r[5]!, prevLast: refused ? 0 : r[6]!, prevTats: refused ? [] : r.slice(7, 7 + this.#limits.length),
      nowUs: refused ? 0 : r[8 + this.#limits.length] ?? 0,
      fullLimit: outcome === PlaceOutcome.QueueFull ? r[3]! : -1,
      reply: r,
    };
  }

  /**
   * Sleeps until the slot is due by the server's clock: a timer for the
   * delay Redis gave, then one CHECK (a backoff from any process may have
   * moved the slot; it can only move later), again until due. Returns false
   * when the state was lost meanwhile (the caller places again).
   */
  /** Resolves [deliveryToken, decided at (server µs)] once delivered, null when the state was lost. */
  async #waitDue(placed: Placement, costs: readonly number[], id: string, startMs: number, limitMs: number, options: RedisAcquireOptions): Promise<[number, number] | null> {
    const { signal } = options;
    const status = new WaitStatus(this, id, placed.slot, placed.position, placed.delayUs);
    options.onQueued?.(status);
    let remainingUs = placed.delayUs;
    try {
      for (;;) {
        const elapsedMs = performance.now() - startMs;
        if (limitMs >= 0 && elapsedMs + remainingUs / 1000 > limitMs) {
          void this.#cancel(placed, costs, id).catch(() => {});
          throw new WaitTimeoutError(limitMs, elapsedMs + remainingUs / 1000);
        }
        try {
          await sleepAsync(BigInt(Math.ceil(remainingUs)) * 1000n, signal);
        } catch (reason) {
          void this.#cancel(placed, costs, id).catch(() => {});
          throw reason;
        }
        // The final confirmation decides on the server's clock: granted only
        // if the slot is due and the delivery conforms to what was handed out
        // meanwhile (a late check-in is told to come back, holding its place).
        const check = await this.#caller.call(Op.CHECK, [placed.slot, placed.inc, id, ...costs], 'check');
        if (check[0] === STATE_LOST) {
          status.state = 'cancelled';
          return null;
        }
        if (check[0] === 0) {
          if (signal?.aborted) throw signal.reason; // delivered: the slot is spent either way
          status.state = 'granted';
          return [check[6]!, check[2]!];
        }
        remainingUs = check[1]!;
        status.update(check[5]!, remainingUs);
        if (signal?.aborted) {
          void this.#cancel(placed, costs, id).catch(() => {});
          throw signal.reason;
        }
      }
    } catch (error) {
      status.state = 'cancelled';
      throw error;
    }
  }

  /** Gives back a placement not yet due: the capacity returns if it is still the latest placement. */
  async #cancel(placed: Placement, costs: readonly number[], id: string): Promise<boolean> {
    const deliveryToken = placed.reply[7 + costs.length] ?? 0; // a reservation's committed delivery, else 0
    const r = await this.#caller.call(Op.CANCEL, [placed.slot, placed.inc, id, placed.token, placed.prevLast, ...placed.prevTats, ...costs, deliveryToken], 'cancel');
    return r[0] === 1;
  }

  /** `delivered`: [deliveryToken, decided at] from the CHECK that delivered it (else PLACE's reply holds them). */
  #grant(costs: readonly number[], placed: Placement, startMs: number, delivered?: [number, number]): RedisGrant {
    const reply = delivered === undefined ? placed.reply : [...placed.reply.slice(0, 7 + costs.length), ...delivered];
    return new Granted(this.#grantContext, costs, reply, performance.now() - startMs);
  }

  readonly #resolveActual = (actual: unknown, granted: readonly number[]): number[] => {
    if (typeof actual === 'number' && this.#limits.length === 1) {
      if (!Number.isInteger(actual) || actual < 0) throw new InvalidOptionError('actual', actual, 'an integer ≥ 0');
      return [actual];
    }
    if (typeof actual !== 'object' || actual === null) throw new InvalidOptionError('actual', actual, 'an object of actual costs per limit');
    const named = actual as Record<string, unknown>;
    for (const key of Object.keys(named)) {
      if (!this.#limits.some((l) => l.name === key)) throw new InvalidOptionError('actual', key, `costs named after the limits (${this.limitNames.join(', ')})`);
    }
    return this.#limits.map((l, i) => {
      const value = named[l.name];
      if (value === undefined) return granted[i]!;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw new InvalidOptionError(`actual.${l.name}`, value, 'an integer ≥ 0');
      return value;
    });
  };

  #waitLimit(timeoutMs: number | undefined): number {
    const callMs = timeoutMs === undefined ? NO_WAIT_LIMIT : checkMs('timeoutMs', timeoutMs);
    const maxMs = this.#options.maxWaitMs;
    if (callMs < 0) return maxMs;
    return maxMs >= 0 && maxMs < callMs ? maxMs : callMs;
  }

  // -------------------------------------------------------------- fallback

  #onFallbackNow(): boolean {
    return this.#options.fallback !== null && performance.now() < this.#downUntilMs;
  }

  #markDown(): void {
    this.#downUntilMs = performance.now() + this.#options.fallback!.retryAfterMs;
  }

  #fallbackLimiter(): RateLimiter {
    const fallback = this.#options.fallback!;
    this.#fallback ??= fallback.limiter ?? new RateLimiter({ limits: fallbackLimits(this.#limits, fallback) });
    return this.#fallback;
  }

  /** With a fallback, a Redis failure (or a call inside the cool-down) goes to the local limiter; without, the error stands. */
  #fallbackTry(cost: Cost, error: unknown): boolean {
    if (error !== null && (!(error instanceof RedisUnavailableError) || this.#options.fallback === null)) throw error;
    if (error !== null) this.#markDown();
    try {
      return this.#fallbackLimiter().tryAcquire(this.#namedCost(cost));
    } catch (cause) {
      throw this.#fallbackRefusal(cause, error);
    }
  }

  async #fallbackAcquire(cost: Cost, options: RedisAcquireOptions, startMs: number, limitMs: number, error: unknown): Promise<RedisGrant> {
    if (error !== null) this.#markDown();
    const leftMs = limitMs < 0 ? undefined : Math.max(0, limitMs - (performance.now() - startMs));
    let grant: Grant;
    try {
      grant = await this.#fallbackLimiter().acquire(this.#namedCost(cost), {
        ...(options.signal ? { signal: options.signal } : {}),
        ...(leftMs === undefined ? {} : { timeoutMs: leftMs }),
      });
    } catch (cause) {
      throw this.#fallbackRefusal(cause, error);
    }
    return {
      cost: grant.cost,
      costs: grant.costs,
      decidedAtUs: null,
      waitedMs: performance.now() - startMs,
      slotUs: null,
      source: 'fallback',
      settle: async (actual) => grant.settle(actual),
      release: () => grant.release(),
    };
  }

  /** The fallback's burst may be below a cost Redis would grant: report the outage, not a cost error. */
  #fallbackRefusal(cause: unknown, error: unknown): unknown {
    if (!(cause instanceof CostTooLargeError)) return cause;
    return error ?? new RedisUnavailableError(this.key, 'fallback', new Error(`Redis is down and cost exceeds the fallback burst (${cause.message})`));
  }

  /** Costs for the fallback limiter: ours has named limits; a given one takes what we take. */
  #namedCost(cost: Cost): Cost {
    if (this.#options.fallback!.limiter !== null) return cost;
    return typeof cost === 'number' ? { [this.#limits[0]!.name]: cost } : cost;
  }

  #fallbackStats(local: LimiterStats): RedisLimiterStats {
    const limits = Object.fromEntries(this.#limits.map((l) => {
      const s = local.limits[l.name]!;
      return [l.name, { rate: s.rate, burst: s.burst, available: s.available, queuedCost: s.waitingCost }];
    }));
    return {
      ...limits[this.#limits[0]!.name]!,
      source: 'fallback', key: this.key, limits,
      waiting: local.waiting, rejected: local.rejected, cancelled: local.cancelled, throttles: local.throttles,
      pausedForMs: local.pausedForMs, serverTimeUs: null,
    };
  }
}

/** What every grant of one limiter shares (one object, not one copy per grant). */
interface GrantContext {
  readonly caller: ScriptCaller;
  readonly limits: readonly ResolvedLimit[];
  readonly resolveActual: (actual: unknown, granted: readonly number[]) => number[];
}

/** A grant from Redis; keeps PLACE's reply (slot, undo token, incarnation, previous TATs) for settle. */
class Granted implements RedisGrant {
  readonly cost: number;
  readonly waitedMs: number;
  readonly slotUs: number;
  readonly source = 'redis' as const;
  #settled = false;
  get decidedAtUs(): number {
    return this.#reply[8 + this.#costs.length] ?? 0;
  }
  readonly #context: GrantContext;
  readonly #costs: readonly number[];
  readonly #reply: readonly number[];

  constructor(context: GrantContext, costs: readonly number[], reply: readonly number[], waitedMs: number) {
    this.#context = context;
    this.#costs = costs;
    this.#reply = reply;
    this.cost = costs[0]!;
    this.slotUs = reply[1]!;
    this.waitedMs = waitedMs;
  }

  get costs(): Readonly<Record<string, number>> {
    return this.#byName(this.#costs);
  }

  async settle(actual: number | Readonly<Record<string, number>>): Promise<RedisSettleResult> {
    if (this.#settled) throw new GrantStateError('this grant was already settled; settle() runs once per grant');
    const costs = this.#costs;
    const r = this.#reply;
    const actualCosts = this.#context.resolveActual(actual, costs);
    this.#settled = true;
    // PLACE's reply: outcome, slot, delay, token, inc, position, prevLast, prevTat…, deliveryToken
    const n = costs.length;
    const args = [r[4]!, r[3]!, r[6]!, ...r.slice(7, 7 + n), ...costs, ...actualCosts, r[7 + n] ?? 0];
    const reply = await this.#context.caller.call(Op.SETTLE, args, 'settle');
    const refunded = reply[0] === 1;
    return {
      charged: this.#byName(costs.map((c, i) => Math.max(0, actualCosts[i]! - c))),
      refunded: this.#byName(costs.map((c, i) => (refunded ? Math.max(0, c - actualCosts[i]!) : 0))),
      forfeited: this.#byName(costs.map((c, i) => (refunded ? 0 : Math.max(0, c - actualCosts[i]!)))),
    };
  }

  release(): void {}

  #byName(values: readonly number[]): Readonly<Record<string, number>> {
    return Object.freeze(Object.fromEntries(this.#context.limits.map((l, i) => [l.name, values[i]!])));
  }
}

/** The live {@link RedisQueueStatus} of one waiting request. */
class WaitStatus implements RedisQueueStatus {
  state: 'queued' | 'granted' | 'cancelled' = 'queued';
  readonly id: string;
  readonly slotUs: number;
  #position: number;
  #dueAtMs: number;
  readonly #limiter: RedisRateLimiter;

  constructor(limiter: RedisRateLimiter, id: string, slotUs: number, position: number, delayUs: number) {
    this.#limiter = limiter;
    this.id = id;
    this.slotUs = slotUs;
    this.#position = position;
    this.#dueAtMs = performance.now() + delayUs / 1000;
  }

  get position(): number {
    return this.state === 'queued' ? this.#position : 0;
  }

  get etaMs(): number {
    return this.state === 'queued' ? Math.max(0, this.#dueAtMs - performance.now()) : 0;
  }

  update(position: number, remainingUs: number): void {
    this.#position = position;
    this.#dueAtMs = performance.now() + remainingUs / 1000;
  }

  async refresh(): Promise<RedisQueueStatus> {
    if (this.state !== 'queued') return this;
    const status = await this.#limiter.requestStatus(this.id);
    if (status.state === 'queued' && this.state === 'queued') this.update(status.position, status.etaMs * 1000);
    return this;
  }
}

function checkId(id: unknown): string {
  if (typeof id !== 'string' || id.length < 1 || id.length > 200) throw new InvalidOptionError('id', id, 'a string of 1..200 characters');
  return id;
}
