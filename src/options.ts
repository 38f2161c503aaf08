/**
 * Option types, their defaults and ranges, and the validation that turns bad
 * input into an {@link InvalidOptionError} naming the field and the range.
 * Validation runs before anything touches shared memory.
 */
import type { Clock } from './clock.js';
import { CostTooLargeError, InvalidOptionError } from './errors.js';
import { MAX_LIMITS, MAX_PERMITS } from './layout.js';

/** A rate written as text: `'500/min'`, `'10/s'`, `'1/10s'`, `'90000/hour'`, `'1/day'`. */
export type RateString = `${number}/${string}`;

/** Largest accepted rate, grants per second: the emission interval must be ≥ 1 ns. */
export const MAX_RATE = 1e9;
/** Smallest accepted rate, grants per second (one grant per ~11.6 days). */
export const MIN_RATE = 1e-6;
/** Largest accepted burst. */
export const MAX_BURST = 1_000_000_000;
/** Largest accepted `backoff` pause, ms (24 h): longer asks are almost surely unit mistakes. */
export const MAX_BACKOFF_MS = 86_400_000;
/** Largest accepted wait limit, ms (about 24.8 days, the Node timer limit). */
export const MAX_TIMEOUT_MS = 2_147_483_647;

/** One named limit of a limiter with several (see {@link RateLimiterOptions.limits}). */
export interface LimitOptions {
  /** As {@link RateLimiterOptions.rate}. */
  rate: number | RateString;
  /** As {@link RateLimiterOptions.burst}. */
  burst?: number;
  /** As {@link RateLimiterOptions.maxQueue}, for this limit. */
  maxQueue?: number;
  /** Cost of this limit for a request that does not name it. Integer in 0..burst, default 1. */
  defaultCost?: number;
}

export interface RateLimiterOptions {
  /**
   * Grants per second (cost units per second), or a string such as
   * `'500/min'`. Finite, in 1e-6..1e9; fractions allowed: `0.1` is one grant
   * every 10 s. Give either `rate` (one limit) or `limits` (several).
   * @example { rate: 10 }  { rate: '3000/min' }  { rate: 0.1 }
   */
  rate?: number | RateString;
  /**
   * Several named limits enforced together, all-or-nothing: a grant takes its
   * cost from every limit or from none. Costs are then named per limit,
   * `acquire({ requests: 1, tokens: 1200 })`; a limit not named costs its
   * `defaultCost`. 1..16 limits; names are 1..64 characters.
   * @example { limits: { requests: { rate: '500/min' }, tokens: { rate: '90000/min', burst: 20000 } } }
   */
  limits?: Record<string, LimitOptions>;
  /**
   * Most requests in flight at once, across all threads: a grant from
   * `acquire`/`acquireSync` holds a permit until `grant.release()` (`run` and
   * `wrap` release for you). Integer in 1..4096; default none. Permits of a
   * thread that exits come back at once (seen by the thread that created it);
   * any permit held past `leaseMs` is taken back by the next waiter.
   */
  concurrency?: number;
  /**
   * Longest a concurrency permit may be held, ms, before other threads may
   * reclaim it: longer than your slowest call. In 1..2^31-1, default 600_000 (10 min).
   */
  leaseMs?: number;
  /**
   * Bucket capacity in cost units: how much may be granted at once after an
   * idle period. Integer in 1..1e9. Default 1: strict spacing of 1/rate
   * between grants, no bursts. A request's cost may not exceed it.
   */
  burst?: number;
  /**
   * Bound on the queue of waiting requests, in cost units (for cost-1
   * requests: the number of waiters). A wait that would be placed more than
   * `maxQueue` cost units behind the present rejects at once with
   * `QueueFullError`. Integer ≥ 0, or Infinity (default). `0` = never wait.
   * Shared by all threads; the bound is exact (checked in the same CAS that
   * reserves) and survives crashed waiters.
   */
  maxQueue?: number;
  /**
   * Longest any single grant may wait, ms, for every caller in every thread;
   * per-call `timeoutMs` can only shorten it. A wait that would exceed it
   * rejects at once with `WaitTimeoutError`. ≥ 0, or Infinity (default).
   */
  maxWaitMs?: number;
  /**
   * Learn the rate from throttles (AIMD): each `backoff()` that starts a new
   * pause multiplies the shared rate by `decrease`; each `success()` adds
   * `recovery × rate` back, up to `rate`. `true` = the defaults. Default off.
   */
  adaptive?: boolean | AdaptiveOptions;
  /**
   * Clock for deterministic tests: ns on a monotonic scale. Default the
   * process-wide `process.hrtime.bigint`. Per thread: not stored in the
   * shared state, so pass it to `attach` too.
   */
  clock?: Clock;
  /**
   * The last part of an async wait (`acquire`, `run`), in ms, slept with a
   * precise blocking sleep in this thread instead of a timer, so the grant
   * arrives ~0.01–0.1 ms after its time instead of up to ~2 ms (whole-ms
   * timers). Blocks this thread's event loop for at most this long per
   * waited grant (asleep, not spinning, but for the last 0.05 ms). 0 = never
   * block: timers only. In 0..20; default 2. Per thread: pass it to `attach`
   * too. Ignored with an injected `clock`.
   */
  finalWaitMs?: number;
}

/** Parameters of the adaptive-rate law (see `adaptive.ts`). */
export interface AdaptiveOptions {
  /**
   * Lowest rate the law may cut to, grants per second or a string like '1/s'.
   * In 1e-6..rate. Default rate / 10. With several limits it refers to the
   * first, and every limit may fall to the same fraction of its own rate.
   */
  minRate?: number | RateString;
  /** Multiplier applied to the rate per congestion event, in 0.01..0.99. Default 0.5. */
  decrease?: number;
  /** Added to the rate per success, as a fraction of `rate`, in 0.000001..1. Default 0.01 (100 successes from 0 to full). */
  recovery?: number;
}

export interface AttachOptions {
  /** Clock for deterministic tests; see {@link RateLimiterOptions.clock}. */
  clock?: Clock;
  /** See {@link RateLimiterOptions.finalWaitMs}. */
  finalWaitMs?: number;
}

/** Most ms an async wait may finish with a blocking precise sleep. */
export const MAX_FINAL_WAIT_MS = 20;
/** Default of {@link RateLimiterOptions.finalWaitMs}. */
export const DEFAULT_FINAL_WAIT_MS = 2;

/** Validates `finalWaitMs`; returns ns. */
export function resolveFinalWaitNs(value: unknown): bigint {
  if (value === undefined) return BigInt(DEFAULT_FINAL_WAIT_MS * 1e6);
  return BigInt(Math.ceil(checkMs('finalWaitMs', value, MAX_FINAL_WAIT_MS, false) * 1e6));
}

/** Live position of a waiting request (see {@link AcquireOptions.onQueued}). */
export interface QueueStatus {
  /**
   * Estimated place in the queue, in cost units of the first limit ahead of
   * and including this request (for cost-1 requests: 1 = next in line).
   * 0 once granted or cancelled.
   */
  readonly position: number;
  /** Estimated ms until the grant (0 once granted or cancelled). */
  readonly etaMs: number;
  readonly state: 'queued' | 'granted' | 'cancelled';
}

export interface AcquireOptions {
  /** Cancels the wait: the promise rejects with `signal.reason` and the reserved slot is given back where possible. */
  signal?: AbortSignal;
  /**
   * Called once, synchronously, if the request has to wait, with a live
   * {@link QueueStatus}: keep it and read `position`/`etaMs` whenever you want
   * to show "queued, position 7, about 3 s".
   */
  onQueued?: (status: QueueStatus) => void;
  /**
   * Longest this call may wait, ms (≥ 0, or Infinity). If the schedule says
   * the grant is further away, the call fails at once with `WaitTimeoutError`
   * instead of sleeping first. `0` = only succeed without waiting.
   */
  timeoutMs?: number;
}

export interface AcquireSyncOptions {
  /** As {@link AcquireOptions.timeoutMs}. */
  timeoutMs?: number;
}

export interface ReserveOptions {
  /** The reservation fails (`ok: false`) instead of being made when its delay would exceed this, ms. */
  timeoutMs?: number;
}

export interface BackoffOptions {
  /**
   * How long every thread pauses, ms from now: the server's Retry-After.
   * Finite, 0..86_400_000 (24 h). Default 1000.
   */
  retryAfterMs?: number;
  /** Why, for logs and stats (e.g. `'HTTP 429 from api.example.com'`). */
  reason?: string;
}

/** A validated limit. */
export interface ResolvedLimit {
  name: string;
  rate: number;
  burst: number;
  /** -1 = unbounded */
  maxQueue: number;
  defaultCost: number;
}

/** Validated limiter configuration. */
export interface ResolvedOptions {
  limits: ResolvedLimit[];
  /** 0 = no concurrency cap */
  concurrency: number;
  leaseMs: number;
  /** -1 = unbounded */
  maxWaitMs: number;
  /** minFraction: lowest rate as a fraction of each limit's rate */
  adaptive: { minFraction: number; decrease: number; recovery: number } | null;
}

const UNIT_SECONDS: Record<string, number> = {
  ms: 0.001,
  s: 1, sec: 1, second: 1, seconds: 1,
  m: 60, min: 60, minute: 60, minutes: 60,
  h: 3600, hr: 3600, hour: 3600, hours: 3600,
  d: 86_400, day: 86_400, days: 86_400,
};
const RATE_TEXT = /^\s*(\d+(?:\.\d+)?)\s*\/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$/i;

/** Grants per second from a number or a string like `'500/min'` or `'1/10s'`. */
export function parseRate(rate: unknown, field = 'rate'): number {
  let perSecond: number;
  if (typeof rate === 'number') {
    perSecond = rate;
  } else if (typeof rate === 'string') {
    const m = RATE_TEXT.exec(rate);
    const unit = m?.[3] ? UNIT_SECONDS[m[3].toLowerCase()] : undefined;
    if (!m || unit === undefined) {
      throw new InvalidOptionError(field, rate, "a number or a string like '500/min', '10/s', '1/10s' (units ms, s, min, h, day)");
    }
    perSecond = Number(m[1]) / (Number(m[2] ?? 1) * unit);
  } else {
    throw new InvalidOptionError(field, rate, `a finite number in ${MIN_RATE}..${MAX_RATE} (grants per second) or a string like '500/min'`);
  }
  if (!Number.isFinite(perSecond) || perSecond < MIN_RATE || perSecond > MAX_RATE) {
    throw new InvalidOptionError(field, rate, `a finite number of grants per second in ${MIN_RATE}..${MAX_RATE}`);
  }
  return perSecond;
}

function checkInteger(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(field, value, `an integer in ${min}..${max}`);
  }
  return value;
}

/** `object[key]` if it is the object's own property, else undefined (never the prototype's). */
export function ownValue(object: object, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(object, key) ? (object as Record<string, unknown>)[key] : undefined;
}

/**
 * A call's options argument: `undefined` → `{}`; anything but a plain object
 * (null, a number, an array…) is an `InvalidOptionError` naming `field`.
 */
export function optionsArgument<T extends object>(value: T | undefined | null, field = 'options'): T {
  if (value === undefined) return {} as T;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError(field, value, 'an object of options, or nothing');
  }
  return value;
}

/** An AbortSignal (checked by shape: signals from other realms qualify), or undefined. */
export function checkSignal(signal: unknown): AbortSignal | undefined {
  if (signal === undefined) return undefined;
  const s = signal as Partial<AbortSignal> | null;
  if (typeof s !== 'object' || s === null || typeof s.aborted !== 'boolean' || typeof s.addEventListener !== 'function' || typeof s.removeEventListener !== 'function') {
    throw new InvalidOptionError('signal', signal, 'an AbortSignal');
  }
  return signal as AbortSignal;
}

/** A duration in ms: finite ≥ 0 up to `max`, or Infinity when `allowInfinity`. Returns -1 for Infinity. */
export function checkMs(field: string, value: unknown, max = MAX_TIMEOUT_MS, allowInfinity = true): number {
  if (value === Infinity && allowInfinity) return -1;
  if (typeof value !== 'number' || !(value >= 0 && value <= max)) {
    throw new InvalidOptionError(field, value, `a number of ms in 0..${max}${allowInfinity ? ', or Infinity' : ''}`);
  }
  return value;
}

export function resolveOptions(options: unknown): ResolvedOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError('options', options, "an object like { rate: 10, burst: 1 }");
  }
  const o = options as Partial<RateLimiterOptions>;
  let limits: ResolvedLimit[];
  if (o.limits !== undefined) {
    if (o.rate !== undefined) throw new InvalidOptionError('rate', o.rate, 'absent when `limits` is given (put each rate in its limit)');
    if (typeof o.limits !== 'object' || o.limits === null) {
      throw new InvalidOptionError('limits', o.limits, "an object of named limits like { requests: { rate: '500/min' } }");
    }
    const entries = Object.entries(o.limits);
    if (entries.length < 1 || entries.length > MAX_LIMITS) {
      throw new InvalidOptionError('limits', o.limits, `an object with 1..${MAX_LIMITS} named limits`);
    }
    limits = entries.map(([name, limit]) => resolveLimit(name, limit, `limits.${name}.`));
  } else {
    limits = [resolveLimit('default', { rate: o.rate as number, burst: o.burst, maxQueue: o.maxQueue }, '')];
  }
  if (o.limits !== undefined && (o.burst !== undefined || o.maxQueue !== undefined)) {
    throw new InvalidOptionError(o.burst !== undefined ? 'burst' : 'maxQueue', o.burst ?? o.maxQueue, 'absent when `limits` is given (set it per limit)');
  }
  const concurrency = o.concurrency === undefined ? 0 : checkInteger('concurrency', o.concurrency, 1, MAX_PERMITS);
  const leaseMs = o.leaseMs === undefined ? 600_000 : checkInteger('leaseMs', o.leaseMs, 1, MAX_TIMEOUT_MS);
  const maxWaitMs = o.maxWaitMs === undefined ? -1 : checkMs('maxWaitMs', o.maxWaitMs);
  if (o.clock !== undefined && typeof o.clock !== 'function') {
    throw new InvalidOptionError('clock', o.clock, 'a function returning bigint nanoseconds');
  }
  return { limits, concurrency, leaseMs, maxWaitMs, adaptive: resolveAdaptive(o.adaptive, limits) };
}

const LIMIT_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

function resolveLimit(name: string, limit: unknown, prefix: string): ResolvedLimit {
  if (!LIMIT_NAME.test(name)) throw new InvalidOptionError('limits', name, 'limit names of 1..64 characters from A-Z a-z 0-9 _ . : -');
  if (typeof limit !== 'object' || limit === null) throw new InvalidOptionError(`${prefix.slice(0, -1)}`, limit, "an object like { rate: '500/min', burst: 1 }");
  const l = limit as Partial<LimitOptions>;
  const rate = parseRate(l.rate, `${prefix}rate`);
  const burst = l.burst === undefined ? 1 : checkInteger(`${prefix}burst`, l.burst, 1, MAX_BURST);
  let maxQueue = -1;
  if (l.maxQueue !== undefined && l.maxQueue !== Infinity) {
    maxQueue = checkInteger(`${prefix}maxQueue`, l.maxQueue, 0, Number.MAX_SAFE_INTEGER);
  }
  const defaultCost = l.defaultCost === undefined ? 1 : checkInteger(`${prefix}defaultCost`, l.defaultCost, 0, burst);
  return { name, rate, burst, maxQueue, defaultCost };
}

function checkFraction(field: string, value: unknown, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= min && value <= max)) {
    throw new InvalidOptionError(field, value, `a number in ${min}..${max}`);
  }
  return value;
}

function resolveAdaptive(adaptive: unknown, limits: ResolvedLimit[]): ResolvedOptions['adaptive'] {
  const rate = limits[0]!.rate;
  if (adaptive === undefined || adaptive === false) return null;
  if (adaptive !== true && (typeof adaptive !== 'object' || adaptive === null)) {
    throw new InvalidOptionError('adaptive', adaptive, 'a boolean or an object { minRate?, decrease?, recovery? }');
  }
  const a = (adaptive === true ? {} : adaptive) as AdaptiveOptions;
  let minRate = rate / 10;
  if (a.minRate !== undefined) {
    minRate = parseRate(a.minRate, 'adaptive.minRate');
    if (minRate > rate) throw new InvalidOptionError('adaptive.minRate', a.minRate, `a rate in ${MIN_RATE}..${rate} (not above rate)`);
  }
  if (minRate < MIN_RATE) minRate = MIN_RATE;
  return {
    // The law scales every limit alike: each may fall to the same fraction
    // of its own rate as minRate is of the first limit's.
    minFraction: minRate / rate,
    decrease: checkFraction('adaptive.decrease', a.decrease, 0.01, 0.99, 0.5),
    recovery: checkFraction('adaptive.recovery', a.recovery, 0.000001, 1, 0.01),
  };
}

/** Validates a request's cost: an integer in min..burst; above burst is a {@link CostTooLargeError}. */
export function checkCost(cost: unknown, burst: number, field = 'cost', min = 1): number {
  if (typeof cost !== 'number' || !Number.isInteger(cost) || cost < min) {
    throw new InvalidOptionError(field, cost, `an integer in ${min}..${burst} (burst)`);
  }
  if (cost > burst) throw new CostTooLargeError(cost, burst, field);
  return cost;
}

/** What a request asks for: one cost (one limit), or a cost per named limit. */
export type Cost = number | Readonly<Record<string, number>>;

/**
 * A request's cost per limit index. A number is the cost of the only limit
 * (several limits need named costs); names not given cost their default.
 */
export function resolveCosts(cost: unknown, limits: readonly ResolvedLimit[]): number[] {
  if (limits.length === 1 && typeof cost === 'number') return [checkCost(cost, limits[0]!.burst)];
  if (typeof cost !== 'object' || cost === null || Array.isArray(cost)) {
    const names = limits.map((l) => l.name).join(', ');
    throw new InvalidOptionError('cost', cost, limits.length === 1
      ? `an integer in 1..${limits[0]!.burst} (burst)`
      : `an object of costs per limit (${names}), e.g. { ${limits[0]!.name}: 1 }`);
  }
  const named = cost as Record<string, unknown>;
  for (const key of Object.keys(named)) {
    if (!limits.some((l) => l.name === key)) {
      throw new InvalidOptionError('cost', key, `costs named after the limits (${limits.map((l) => l.name).join(', ')})`);
    }
  }
  // Own properties only: a limit named 'constructor' or 'toString' must not read Object.prototype.
  const costs = limits.map((l) => ownValue(named, l.name) === undefined ? l.defaultCost : checkCost(named[l.name], l.burst, `cost.${l.name}`, 0));
  if (costs.every((c) => c === 0)) throw new InvalidOptionError('cost', cost, 'a cost of at least 1 in some limit');
  return costs;
}
