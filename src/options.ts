/**
 * Option types, their defaults and ranges, and the validation that turns bad
 * input into an {@link InvalidOptionError} naming the field and the range.
 * Validation runs before anything touches shared memory.
 */
import type { Clock } from './clock.js';
import { CostTooLargeError, InvalidOptionError } from './errors.js';

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

export interface RateLimiterOptions {
  /**
   * Grants per second (cost units per second), or a string such as
   * `'500/min'`. Finite, in 1e-6..1e9; fractions allowed: `0.1` is one grant
   * every 10 s.
   * @example { rate: 10 }  { rate: '3000/min' }  { rate: 0.1 }
   */
  rate: number | RateString;
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
}

/** Parameters of the adaptive-rate law (see `adaptive.ts`). */
export interface AdaptiveOptions {
  /** Lowest rate the law may cut to, grants per second or a string like '1/s'. In 1e-6..rate. Default rate / 10. */
  minRate?: number | RateString;
  /** Multiplier applied to the rate per congestion event, in 0.01..0.99. Default 0.5. */
  decrease?: number;
  /** Added to the rate per success, as a fraction of `rate`, in 0.000001..1. Default 0.01 (100 successes from 0 to full). */
  recovery?: number;
}

export interface AttachOptions {
  /** Clock for deterministic tests; see {@link RateLimiterOptions.clock}. */
  clock?: Clock;
}

export interface AcquireOptions {
  /** Cancels the wait: the promise rejects with `signal.reason` and the reserved slot is given back where possible. */
  signal?: AbortSignal;
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

/** Validated limiter configuration. */
export interface ResolvedOptions {
  rate: number;
  burst: number;
  /** -1 = unbounded */
  maxQueue: number;
  /** -1 = unbounded */
  maxWaitMs: number;
  adaptive: { minRate: number; decrease: number; recovery: number } | null;
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
  const rate = parseRate(o.rate);
  const burst = o.burst === undefined ? 1 : checkInteger('burst', o.burst, 1, MAX_BURST);
  let maxQueue = -1;
  if (o.maxQueue !== undefined && o.maxQueue !== Infinity) {
    maxQueue = checkInteger('maxQueue', o.maxQueue, 0, Number.MAX_SAFE_INTEGER);
  }
  const maxWaitMs = o.maxWaitMs === undefined ? -1 : checkMs('maxWaitMs', o.maxWaitMs);
  if (o.clock !== undefined && typeof o.clock !== 'function') {
    throw new InvalidOptionError('clock', o.clock, 'a function returning bigint nanoseconds');
  }
  return { rate, burst, maxQueue, maxWaitMs, adaptive: resolveAdaptive(o.adaptive, rate) };
}

function checkFraction(field: string, value: unknown, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= min && value <= max)) {
    throw new InvalidOptionError(field, value, `a number in ${min}..${max}`);
  }
  return value;
}

function resolveAdaptive(adaptive: unknown, rate: number): ResolvedOptions['adaptive'] {
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
    minRate,
    decrease: checkFraction('adaptive.decrease', a.decrease, 0.01, 0.99, 0.5),
    recovery: checkFraction('adaptive.recovery', a.recovery, 0.000001, 1, 0.01),
  };
}

/** Validates a request's cost: an integer in 1..burst; above burst is a {@link CostTooLargeError}. */
export function checkCost(cost: unknown, burst: number): number {
  if (typeof cost !== 'number' || !Number.isInteger(cost) || cost < 1) {
    throw new InvalidOptionError('cost', cost, `an integer in 1..${burst} (burst)`);
  }
  if (cost > burst) throw new CostTooLargeError(cost, burst);
  return cost;
}
