/**
 * The rules of the mock API (`mock-api.ts`) as a pure state machine of
 * request arrivals: no server, no clock. Time is an argument (ns since any
 * fixed origin), so tests drive it with tables of arrival times.
 *
 * Every arrival is classified once into exactly one outcome, checked in this
 * order:
 *
 * | outcome      | when                                                               | answer |
 * |--------------|--------------------------------------------------------------------|--------|
 * | `violation`  | it arrives before the deadline of a 429 already issued             | 429 asking for the rest of that pause (the pause is not extended) |
 * | `over-limit` | `limit` requests were already accepted in the `windowMs` before it | 429 asking until the window frees a slot; starts a pause |
 * | `spurious`   | a seeded draw below `spuriousRate` (only arrivals within the limit) | 429; starts a pause |
 * | `accepted`   | otherwise                                                          | 200 after `latencyMs` |
 *
 * So the counters never double count: `total = accepted + overLimit +
 * spurious + violations`. Only accepted arrivals occupy the window.
 *
 * @module
 */
import { InvalidOptionError } from '../errors.js';

/** Options of `startMockApi`. Validated up front: a bad value throws `InvalidOptionError`. */
export interface MockApiOptions {
  /**
   * The rule that decides which requests are over the limit:
   * - `'sliding-window'` (default): at most `limit` requests in any sliding
   *   window of `windowMs`; 429s carry `retry-after`/`retry-after-ms`, and a
   *   request arriving while one runs is a violation (the penalty box).
   * - `'leaky-bucket'`: nginx `limit_req` exactly (`rate`, `burst`, no
   *   `delay`): a millisecond clock, `excess` in thousandths of a request
   *   drained at `rate`, a request rejected when it would push `excess`
   *   over `burst` — with `burst: 0`, any request sooner than 1/rate after
   *   the last accepted one. 429 with no `Retry-After`, no penalty box: the
   *   strictest servers there are.
   * @example { algorithm: 'leaky-bucket', rate: 50 } // nginx: limit_req_zone … rate=50r/s; limit_req zone=… (no burst)
   */
  algorithm?: 'sliding-window' | 'leaky-bucket';
  /**
   * Sliding window: most requests accepted in any sliding window of `windowMs`: in every
   * half-open interval `[a, a + windowMs)` at most `limit` requests are
   * accepted (exact, per arrival, on the monotonic clock). Integer in
   * 1..1_000_000. Required for `'sliding-window'`.
   * @example { limit: 20, windowMs: 1000 } // 20 requests per second, sliding
   */
  limit?: number;
  /** Sliding window: length of the window, ms. In 1..86_400_000, fractions allowed. Required for `'sliding-window'`. */
  windowMs?: number;
  /** Leaky bucket: requests per second, as nginx's `rate=`: in 0.001..1_000_000 (nginx keeps thousandths). Required for `'leaky-bucket'`. */
  rate?: number;
  /** Leaky bucket: nginx's `burst=`, an integer in 0..1_000_000. Default 0. */
  burst?: number;
  /**
   * Probability, in 0..1, that a request within the limit is throttled
   * anyway (real providers do this under load). One seeded draw per arrival
   * that passes the window check. Default 0.
   */
  spuriousRate?: number;
  /**
   * How long an accepted request takes before its 200 is sent, ms: a
   * constant, or `[min, max]` for a uniform seeded draw per request. In
   * 0..60_000. 429s are answered at once, as a gateway rejects before doing
   * any work. Default 0.
   * @example { latencyMs: [20, 60] }
   */
  latencyMs?: number | readonly [min: number, max: number];
  /**
   * The delay every 429 asks for, ms, in 0..86_400_000 (0 = no penalty box).
   * Default: for an over-limit request, until the window frees a slot (the
   * oldest accepted request in it leaves); for a spurious throttle, one
   * average slot, `windowMs / limit`. Both rounded up to whole ms, at least 1.
   */
  retryAfterMs?: number;
  /** Seed of the spurious and latency draws, an integer in 0..2^32-1. Default 1: runs are reproducible. */
  seed?: number;
  /** Interface to listen on. Default `'127.0.0.1'`; the port is always picked by the OS. */
  host?: string;
}

/** Counters since start or the last `reset()`. Every request counts in `total` and in exactly one other field. */
export interface MockApiStats {
  /** Requests received. */
  readonly total: number;
  /** Answered 200. */
  readonly accepted: number;
  /** Answered 429 because the sliding window was full (arrivals in the penalty box are not counted here). */
  readonly overLimit: number;
  /** Answered 429 at random although within the limit (arrivals in the penalty box are not counted here). */
  readonly spurious: number;
  /** Arrived while a Retry-After the server had issued was still running; answered 429. */
  readonly violations: number;
}

/** How one request was classified; also sent as the `x-mock-outcome` header. */
export type MockOutcome = 'accepted' | 'over-limit' | 'spurious' | 'violation';

/** What to answer one request, decided at its arrival. */
export interface Decision {
  readonly outcome: MockOutcome;
  /** For a 429: the delay it asks for, ms (whole ms unless `retryAfterMs` says otherwise); -1 for a bare 429 (leaky bucket). 0 for a 200. */
  readonly retryAfterMs: number;
  /** For a 200: how long to wait before answering, ms. 0 for a 429. */
  readonly latencyMs: number;
  /** Number of the request since start or reset, from 1. */
  readonly seq: number;
}

/** Validated options. */
export interface MockConfig {
  readonly algorithm: 'sliding-window' | 'leaky-bucket';
  /** Leaky bucket: nginx's `ctx->rate` (requests per 1000 s) and `burst` in thousandths. */
  readonly rateMilli: number;
  readonly burstMilli: number;
  readonly limit: number;
  readonly windowNs: number;
  readonly spuriousRate: number;
  readonly latencyMs: readonly [number, number];
  /** -1 = the default rule. */
  readonly retryAfterMs: number;
  readonly seed: number;
  readonly host: string;
}

const MAX_LIMIT = 1_000_000;
const MAX_WINDOW_MS = 86_400_000;
const MAX_LATENCY_MS = 60_000;
const MAX_RETRY_AFTER_MS = 86_400_000;
/** Derives the latency stream's seed from the spurious stream's, so changing latency never changes which requests are spurious. */
const LATENCY_SEED_MIX = 0x9e3779b9;

/** The mock API's rules. `decide(t)` for each arrival, in arrival order (t never decreasing). */
export class ThrottlePolicy {
  readonly config: MockConfig;
  /** Arrival times of the accepted requests still in the window, oldest first: a ring of `limit` entries. */
  readonly #accepted: Float64Array;
  readonly #bucket: LeakyBucket | null;
  #head = 0;
  #size = 0;
  /** Arrivals before this time are violations; -Infinity until the first 429. */
  #penaltyUntilNs = -Infinity;
  #spuriousDraw = mulberry32(0);
  #latencyDraw = mulberry32(0);
  #counts = { total: 0, accepted: 0, overLimit: 0, spurious: 0, violations: 0 };

  constructor(options: MockApiOptions) {
    this.config = resolveMockOptions(options);
    this.#accepted = new Float64Array(this.config.limit);
    this.#bucket = this.config.algorithm === 'leaky-bucket' ? new LeakyBucket(this.config.rateMilli, this.config.burstMilli) : null;
    this.reset();
  }

  /** Classifies an arrival at `tNs` (ns since the caller's origin) and updates the state. */
  decide(tNs: number): Decision {
    const c = this.#counts;
    const seq = ++c.total;
    if (tNs < this.#penaltyUntilNs) {
      c.violations++;
      return { outcome: 'violation', retryAfterMs: ceilMs(this.#penaltyUntilNs - tNs), latencyMs: 0, seq };
    }
    const { limit, windowNs, retryAfterMs, spuriousRate } = this.config;
    if (this.#bucket !== null) {
      // nginx: a 429 without Retry-After and without a penalty box.
      if (!this.#bucket.admit(tNs)) {
        c.overLimit++;
        return { outcome: 'over-limit', retryAfterMs: -1, latencyMs: 0, seq };
      }
      return this.#accept(seq);
    }
    // The window before t is (t − W, t]: forget accepted arrivals at or before t − W.
    while (this.#size > 0 && this.#accepted[this.#head]! <= tNs - windowNs) {
      this.#head = (this.#head + 1) % limit;
      this.#size--;
    }
    if (this.#size >= limit) {
      c.overLimit++;
      // The oldest accepted arrival leaves the window at oldest + W: a slot frees then.
      const delayMs = retryAfterMs >= 0 ? retryAfterMs : ceilMs(this.#accepted[this.#head]! + windowNs - tNs);
      return this.#throttle('over-limit', tNs, delayMs, seq);
    }
    if (spuriousRate > 0 && this.#spuriousDraw() < spuriousRate) {
      c.spurious++;
      const delayMs = retryAfterMs >= 0 ? retryAfterMs : ceilMs(windowNs / limit);
      return this.#throttle('spurious', tNs, delayMs, seq);
    }
    this.#accepted[(this.#head + this.#size) % limit] = tNs;
    this.#size++;
    return this.#accept(seq);
  }

  #accept(seq: number): Decision {
    this.#counts.accepted++;
    const [min, max] = this.config.latencyMs;
    const latencyMs = min === max ? min : min + (max - min) * this.#latencyDraw();
    return { outcome: 'accepted', retryAfterMs: 0, latencyMs, seq };
  }

  stats(): MockApiStats {
    return { ...this.#counts };
  }

  /** Back to the initial state: counters 0, window empty, no penalty, draws re-seeded. */
  reset(): void {
    this.#head = 0;
    this.#size = 0;
    this.#penaltyUntilNs = -Infinity;
    this.#bucket?.reset();
    this.#spuriousDraw = mulberry32(this.config.seed);
    this.#latencyDraw = mulberry32((this.config.seed ^ LATENCY_SEED_MIX) >>> 0);
    this.#counts = { total: 0, accepted: 0, overLimit: 0, spurious: 0, violations: 0 };
  }

  /** A 429 that starts (or extends) the penalty box: arrivals before t + delay are violations. */
  #throttle(outcome: MockOutcome, tNs: number, delayMs: number, seq: number): Decision {
    const until = tNs + delayMs * 1e6;
    if (until > this.#penaltyUntilNs) this.#penaltyUntilNs = until;
    return { outcome, retryAfterMs: delayMs, latencyMs: 0, seq };
  }
}

/**
 * nginx's `limit_req` decision (ngx_http_limit_req_module.c,
 * `ngx_http_limit_req_lookup`), for one key: a millisecond clock, and
 * `excess` in thousandths of a request. A request at ms `now` computes
 * `excess = max(0, excess − rate·(now − last)/1000 + 1000)` (integer
 * division, as nginx) and is rejected iff `excess > burst`, leaving the state
 * as it was; else it is accepted and the state becomes (excess, now) — `last`
 * only moves when whole ms have passed. `rate` is requests per 1000 s
 * (nginx's `ctx->rate`, 50 r/s = 50000); `burst` in thousandths.
 *
 * Exported for benchmarks that replay recorded times through nginx's rule.
 */
export class LeakyBucket {
  #excess = 0;
  #lastMs = Number.NaN;
  constructor(readonly rateMilli: number, readonly burstMilli: number) {}

  /** Decides an arrival at `tNs` (ns on any fixed origin; nginx's clock is whole ms). */
  admit(tNs: number): boolean {
    const nowMs = Math.floor(tNs / 1e6);
    if (Number.isNaN(this.#lastMs)) {
      this.#excess = 0;
      this.#lastMs = nowMs;
      return true;
    }
    let ms = nowMs - this.#lastMs;
    if (ms < -60000) ms = 1;
    else if (ms < 0) ms = 0;
    let excess = this.#excess - Math.trunc((this.rateMilli * ms) / 1000) + 1000;
    if (excess < 0) excess = 0;
    if (excess > this.burstMilli) return false;
    this.#excess = excess;
    if (ms !== 0) this.#lastMs = nowMs;
    return true;
  }

  reset(): void {
    this.#excess = 0;
    this.#lastMs = Number.NaN;
  }
}

/** ns → whole ms, rounded up, at least 1 (a 429 never asks for "now"). */
function ceilMs(ns: number): number {
  return Math.max(1, Math.ceil(ns / 1e6));
}

/** A small seedable PRNG (mulberry32): uniform in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Validates {@link MockApiOptions}; throws `InvalidOptionError` naming the field, the value and the range. */
export function resolveMockOptions(options: unknown): MockConfig {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError('options', options, 'an object like { limit: 20, windowMs: 1000 }');
  }
  const o = options as Partial<MockApiOptions>;
  const algorithm = o.algorithm ?? 'sliding-window';
  if (algorithm !== 'sliding-window' && algorithm !== 'leaky-bucket') {
    throw new InvalidOptionError('algorithm', algorithm, "'sliding-window' or 'leaky-bucket'");
  }
  let rateMilli = 0;
  let burstMilli = 0;
  if (algorithm === 'leaky-bucket') {
    if (typeof o.rate !== 'number' || !(o.rate >= 0.001 && o.rate <= MAX_LIMIT)) {
      throw new InvalidOptionError('rate', o.rate, `requests per second in 0.001..${MAX_LIMIT}`);
    }
    const burst = o.burst ?? 0;
    if (typeof burst !== 'number' || !Number.isInteger(burst) || burst < 0 || burst > MAX_LIMIT) {
      throw new InvalidOptionError('burst', burst, `an integer in 0..${MAX_LIMIT}`);
    }
    if (o.limit !== undefined || o.windowMs !== undefined) {
      throw new InvalidOptionError('limit', o.limit ?? o.windowMs, "absent with algorithm 'leaky-bucket' (it takes rate and burst)");
    }
    rateMilli = Math.round(o.rate * 1000);
    burstMilli = burst * 1000;
  } else if (o.rate !== undefined || o.burst !== undefined) {
    throw new InvalidOptionError('rate', o.rate ?? o.burst, "absent with the sliding window (it takes limit and windowMs; rate and burst are for algorithm: 'leaky-bucket')");
  }
  const limit = algorithm === 'leaky-bucket' ? 1 : o.limit;
  const windowMs = algorithm === 'leaky-bucket' ? 1000 : o.windowMs;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw new InvalidOptionError('limit', limit, `an integer in 1..${MAX_LIMIT}`);
  }
  if (typeof windowMs !== 'number' || !(windowMs >= 1 && windowMs <= MAX_WINDOW_MS)) {
    throw new InvalidOptionError('windowMs', windowMs, `a number of ms in 1..${MAX_WINDOW_MS}`);
  }
  const spuriousRate = o.spuriousRate ?? 0;
  if (typeof spuriousRate !== 'number' || !(spuriousRate >= 0 && spuriousRate <= 1)) {
    throw new InvalidOptionError('spuriousRate', spuriousRate, 'a probability in 0..1');
  }
  const latencyMs = resolveLatency(o.latencyMs ?? 0);
  let retryAfterMs = -1;
  if (o.retryAfterMs !== undefined) {
    if (typeof o.retryAfterMs !== 'number' || !(o.retryAfterMs >= 0 && o.retryAfterMs <= MAX_RETRY_AFTER_MS)) {
      throw new InvalidOptionError('retryAfterMs', o.retryAfterMs, `a number of ms in 0..${MAX_RETRY_AFTER_MS}`);
    }
    retryAfterMs = o.retryAfterMs;
  }
  const seed = o.seed ?? 1;
  if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) {
    throw new InvalidOptionError('seed', seed, 'an integer in 0..4294967295');
  }
  const host = o.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host.length === 0) {
    throw new InvalidOptionError('host', host, "a non-empty host name or address, e.g. '127.0.0.1'");
  }
  return { algorithm, rateMilli, burstMilli, limit, windowNs: windowMs * 1e6, spuriousRate, latencyMs, retryAfterMs, seed, host };
}

function resolveLatency(latency: unknown): readonly [number, number] {
  const inRange = (v: unknown): v is number => typeof v === 'number' && v >= 0 && v <= MAX_LATENCY_MS;
  if (inRange(latency)) return [latency, latency];
  if (Array.isArray(latency) && latency.length === 2 && inRange(latency[0]) && inRange(latency[1]) && latency[0] <= latency[1]) {
    return [latency[0], latency[1]];
  }
  throw new InvalidOptionError(
    'latencyMs',
    latency,
    `a number of ms in 0..${MAX_LATENCY_MS}, or [min, max] with 0 <= min <= max <= ${MAX_LATENCY_MS}`,
  );
}
