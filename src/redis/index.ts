/**
 * `atomic-pace/redis`: the limiter with its state in Redis, for processes and
 * hosts sharing one limit, and the leased front that hands out slots of that
 * limit at memory speed. ioredis is an optional peer: this module never
 * imports it; pass your own client.
 *
 * ```js
 * import { Redis } from 'ioredis';
 * import { RedisRateLimiter } from 'atomic-pace/redis';
 * const redis = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, commandTimeout: 1000 });
 * const limiter = new RedisRateLimiter({ redis, name: 'openai', limits: {
 *   requests: { rate: '500/min', burst: 10 }, tokens: { rate: '90000/min', burst: 20000 } } });
 * const grant = await limiter.acquire({ requests: 1, tokens: 1500 }, { timeoutMs: 30_000 });
 * ```
 *
 * What to know:
 * - Same semantics as the shared-memory `RateLimiter` (GCRA, weighted and
 *   several limits all-or-nothing, FIFO, `backoff` pausing every process,
 *   timeouts, abort, settle), decided by one Lua script per call on the
 *   server's clock. Resolution 1 µs per decision: a decision of cost c takes
 *   ceil(c·1e6/rate) µs of the schedule (never faster than asked).
 * - Configure ioredis to fail fast (`maxRetriesPerRequest: 1`,
 *   `enableOfflineQueue: false`, a `commandTimeout`), and connect before the
 *   first call: an outage then surfaces within a round trip as
 *   `RedisUnavailableError` (fail closed: never an over-grant), or — opt in —
 *   grants from a local `fallback` at a share of the rate. The global limit
 *   holds during an outage only if the shares of all instances sum to ≤ 1
 *   (per RedisRateLimiter instance: with one per worker thread, pass a shared
 *   `fallback.limiter` instead).
 * - Every key a script touches is declared and shares one hash tag
 *   (`<prefix>{<name>}`, `<prefix>{<name>}:q`): Redis Cluster and managed
 *   services that reject undeclared keys work. Needs Redis ≥ 5.
 * - A restart without persistence (or an evicted key) loses the state: the
 *   new state starts drained as of the server's start, so grants of the old
 *   one are never repeated; a pause in force is lost with it (persist with
 *   AOF if pauses must survive). A failover to a replica may lose the last
 *   writes (Redis replicates asynchronously): grants decided just before it
 *   may be decided again once — that bound is the server's, not the script's.
 * - Queue status: `acquire(cost, { id, onQueued })`, then `requestStatus(id)`
 *   from any process (position, eta), and `stats().waiting` (no key scans).
 * - `LeasedRateLimiter`: one owner per process leases stretches of the same
 *   schedule and its threads take them with one CAS. Strict up to the clock
 *   mapping (half a lease round trip: rate × RTT/2 extra at most, across
 *   hosts); a backoff from another process reaches it within `leaseAheadMs`.
 */
export { RedisRateLimiter } from './limiter.js';
export type {
  RedisAcquireOptions,
  RedisGrant,
  RedisLimiterStats,
  RedisLimitStats,
  RedisQueueStatus,
  RedisReservation,
  RedisSettleResult,
  RequestStatus,
} from './limiter.js';
export type { FallbackOptions, RedisRateLimiterOptions } from './options.js';
export { AttachedLeasedLimiter, LeasedLimiterView, LeasedRateLimiter } from './leased.js';
export type { LeasedGrant, LeasedRateLimiterOptions, LeasedStats, LeaseHandle } from './leased.js';
export type { RedisClientLike } from './client.js';
export { LEASE_AHEAD_MAX_MS } from './script.js';
export {
  AtomicPaceError,
  CostTooLargeError,
  GrantStateError,
  InvalidHandleError,
  InvalidOptionError,
  QueueFullError,
  RedisConfigMismatchError,
  RedisUnavailableError,
  WaitTimeoutError,
} from '../errors.js';
