/**
 * Options of the Redis store, their defaults and ranges, and their
 * validation (reusing the shared-memory limiter's for rates, bursts, queues
 * and wait limits).
 */
import { InvalidOptionError } from '../errors.js';
import {
  checkMs,
  resolveOptions,
  type LimitOptions,
  type RateString,
  type ResolvedLimit,
} from '../options.js';
import type { RateLimiter } from '../limiter.js';
import type { RedisClientLike } from './client.js';

/** Largest tolerance (burst / rate) the store accepts, µs (~31.7 years): keeps every time below 2^53 µs. */
export const MAX_TOLERANCE_US = 1e15;
/** Default key prefix. */
export const DEFAULT_KEY_PREFIX = 'atomic-pace:';
/** Default {@link RedisRateLimiterOptions.commandTimeoutMs}. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 2000;

/**
 * Local limiter used while Redis is failing (see
 * {@link RedisRateLimiterOptions.fallback}): give `share` (a limiter at
 * share × rate is created for this instance) or `limiter` (a shared-memory
 * `RateLimiter` you created, e.g. one per process attached in every worker
 * thread, so all of a process's instances fall back to one local limit).
 */
export interface FallbackOptions {
  /**
   * Share of the global rate this instance may grant on its own while Redis
   * fails, in (0, 1]. The global limit still holds during an outage only if
   * the shares of all instances (every process, every thread with its own
   * RedisRateLimiter) sum to at most 1.
   * @example { share: 0.25 }  // four processes
   */
  share?: number;
  /** A shared-memory `RateLimiter` with the same limit names to grant from during outages (instead of `share`). */
  limiter?: RateLimiter;
  /** Burst of the local limiter, integer ≥ 1. Default max(1, round(burst × share)) per limit. */
  burst?: number;
  /** After a failure, ms to stay on the fallback before trying Redis again. 0..600_000, default 1000. */
  retryAfterMs?: number;
}

export interface RedisRateLimiterOptions {
  /**
   * An ioredis client (`Redis` or `Cluster`) that you own, connect and
   * close; the limiter only sends EVALSHA/EVAL on it. Configure it to fail
   * fast, e.g. `new Redis({ maxRetriesPerRequest: 1, enableOfflineQueue:
   * false, commandTimeout: 1000 })`, so an outage surfaces as
   * `RedisUnavailableError` (or the fallback) within a round trip instead of
   * after ioredis' default 20 retries. (With `enableOfflineQueue: false`,
   * calls before the connection is ready fail: await `connect()` first.)
   */
  redis: RedisClientLike;
  /**
   * The limit's name: every process using the same `keyPrefix` + `name`
   * shares one limit. 1..200 characters, no `{` or `}` (the name is the
   * Redis Cluster hash tag). Processes sharing a name must use the same
   * limits (rates, bursts, maxQueue): a different one is refused with
   * `RedisConfigMismatchError`.
   */
  name: string;
  /** Key prefix, default `'atomic-pace:'`; the keys are `<prefix>{<name>}` and `<prefix>{<name>}:q`. 0..200 characters, no braces. */
  keyPrefix?: string;
  /**
   * Grants per second, or a string like `'500/min'`; as the shared-memory
   * limiter, in 1e-6..1e9. Resolution: a decision of cost c takes
   * ceil(c·1e6/rate) µs of the schedule, so a single decision is never
   * granted faster than 1 per µs; leases take whole stretches at once.
   */
  rate?: number | RateString;
  /** Bucket capacity, integer ≥ 1, default 1. burst/rate must stay below ~31 years. */
  burst?: number;
  /** Most cost units queued behind the present, integer ≥ 0 or Infinity (default). `0` = never wait. */
  maxQueue?: number;
  /** Several limits, all-or-nothing (as the shared-memory limiter's `limits`). */
  limits?: Record<string, LimitOptions>;
  /** Longest any grant of this process may wait, ms (≥ 0 or Infinity, default). Per-call `timeoutMs` can only shorten it. */
  maxWaitMs?: number;
  /** Opt-in: grant from a local limiter at `share × rate` while Redis fails, instead of failing closed. */
  fallback?: FallbackOptions;
  /**
   * Longest wait for one Redis reply, ms, before the call fails with
   * `RedisUnavailableError` (or goes to the fallback). 1..600_000 or
   * Infinity; default 2000. When the client has its own ioredis
   * `commandTimeout` of at most this, the client's deadline is used
   * (cheaper: no second timer).
   */
  commandTimeoutMs?: number;
}

/** A validated configuration. */
export interface ResolvedRedisOptions {
  key: string;
  limits: ResolvedLimit[];
  /** Per limit: µs of schedule per cost unit (1e6/rate, a float), τ in µs, maxQueue (-1 = none). */
  perLimit: [number, number, number][];
  /** Canonical text of the shared configuration, compared by the script. */
  config: string;
  /** -1 = unbounded */
  maxWaitMs: number;
  /** -1 = none */
  commandTimeoutMs: number;
  fallback: { share: number; burst: number | undefined; retryAfterMs: number; limiter: RateLimiter | null } | null;
}

const UNSUPPORTED = ['concurrency', 'leaseMs', 'adaptive', 'clock'] as const;

export function resolveRedisOptions(options: unknown, extraAllowed: readonly string[] = []): ResolvedRedisOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError('options', options, "an object like { redis, name: 'api', rate: 10 }");
  }
  const o = options as Partial<RedisRateLimiterOptions> & Record<string, unknown>;
  for (const field of UNSUPPORTED) {
    if (o[field] !== undefined && !extraAllowed.includes(field)) {
      throw new InvalidOptionError(field, o[field], 'absent: the Redis store does not support it (use the shared-memory RateLimiter for it)');
    }
  }
  const redis = o.redis as unknown as Record<string, unknown> | undefined;
  if (typeof redis !== 'object' || redis === null || typeof redis.evalsha !== 'function' || typeof redis.eval !== 'function') {
    throw new InvalidOptionError('redis', o.redis, 'an ioredis client (Redis or Cluster) with evalsha() and eval()');
  }
  if (typeof o.name !== 'string' || !/^[^{}]{1,200}$/.test(o.name)) {
    throw new InvalidOptionError('name', o.name, 'a string of 1..200 characters without { or }');
  }
  const prefix = o.keyPrefix === undefined ? DEFAULT_KEY_PREFIX : o.keyPrefix;
  if (typeof prefix !== 'string' || !/^[^{}]{0,200}$/.test(prefix)) {
    throw new InvalidOptionError('keyPrefix', o.keyPrefix, 'a string of 0..200 characters without { or }');
  }
  const core = resolveOptions({ rate: o.rate, burst: o.burst, maxQueue: o.maxQueue, limits: o.limits, maxWaitMs: o.maxWaitMs });
  const perLimit = core.limits.map((limit): [number, number, number] => {
    const perUs = 1e6 / limit.rate;
    const toleranceUs = Math.ceil(limit.burst * perUs);
    if (toleranceUs > MAX_TOLERANCE_US) {
      const field = core.limits.length > 1 ? `limits.${limit.name}.burst` : 'burst';
      throw new InvalidOptionError(field, limit.burst, `an integer in 1..${Math.floor(MAX_TOLERANCE_US / perUs)} at rate ${limit.rate}/s (burst/rate must stay under ~31 years in the Redis store)`);
    }
    return [perUs, toleranceUs, limit.maxQueue];
  });
  const config = JSON.stringify({ v: 2, limits: core.limits.map((l) => [l.name, l.rate, l.burst, l.maxQueue]) });
  const commandTimeoutMs = o.commandTimeoutMs === undefined ? DEFAULT_COMMAND_TIMEOUT_MS : checkMs('commandTimeoutMs', o.commandTimeoutMs, 600_000);
  if (commandTimeoutMs === 0) throw new InvalidOptionError('commandTimeoutMs', 0, 'a number of ms in 1..600000, or Infinity');
  return {
    key: `${prefix}{${o.name}}`,
    limits: core.limits,
    perLimit,
    config,
    maxWaitMs: core.maxWaitMs,
    commandTimeoutMs,
    fallback: resolveFallback(o.fallback, core.limits),
  };
}

function resolveFallback(fallback: unknown, limits: readonly ResolvedLimit[]): ResolvedRedisOptions['fallback'] {
  if (fallback === undefined || fallback === null || fallback === false) return null;
  if (typeof fallback !== 'object') throw new InvalidOptionError('fallback', fallback, 'an object like { share: 0.25 } or { limiter }');
  const f = fallback as Partial<FallbackOptions>;
  const retryAfterMs = f.retryAfterMs === undefined ? 1000 : checkMs('fallback.retryAfterMs', f.retryAfterMs, 600_000, false);
  if (f.limiter !== undefined) {
    const l = f.limiter as unknown as Partial<RateLimiter> | null;
    const names = limits.map((x) => x.name).join(',');
    if (typeof l !== 'object' || l === null || typeof l.acquire !== 'function' || typeof l.tryAcquire !== 'function' || (l.limitNames ?? []).join(',') !== names) {
      throw new InvalidOptionError('fallback.limiter', f.limiter, `a RateLimiter with the limits ${names}`);
    }
    if (f.share !== undefined) throw new InvalidOptionError('fallback.share', f.share, 'absent when fallback.limiter is given');
    return { share: 0, burst: undefined, retryAfterMs, limiter: f.limiter };
  }
  if (typeof f.share !== 'number' || !(f.share > 0 && f.share <= 1)) {
    throw new InvalidOptionError('fallback.share', f.share, 'a number in (0, 1]: this instance\'s share of the global rate during an outage');
  }
  if (f.burst !== undefined && (typeof f.burst !== 'number' || !Number.isInteger(f.burst) || f.burst < 1 || f.burst > 1e9)) {
    throw new InvalidOptionError('fallback.burst', f.burst, 'an integer in 1..1000000000');
  }
  return { share: f.share, burst: f.burst, retryAfterMs, limiter: null };
}

/** The shared-memory limiter's options for the fallback: every limit at `share` of its rate. */
export function fallbackLimits(limits: readonly ResolvedLimit[], fallback: NonNullable<ResolvedRedisOptions['fallback']>): Record<string, LimitOptions> {
  return Object.fromEntries(limits.map((l) => [l.name, {
    rate: Math.max(l.rate * fallback.share, 1e-6),
    burst: fallback.burst ?? Math.max(1, Math.round(l.burst * fallback.share)),
    ...(l.maxQueue >= 0 ? { maxQueue: l.maxQueue } : {}),
    defaultCost: Math.min(l.defaultCost, fallback.burst ?? Math.max(1, Math.round(l.burst * fallback.share))),
  }]));
}
