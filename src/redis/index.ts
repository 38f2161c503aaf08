/**
 * `atomic-pace/redis`: the limiter with its state in Redis, for processes and
 * hosts sharing one limit, and the leased front that hands out slots of that
 * limit at memory speed. ioredis is an optional peer: this module never
 * imports it; pass your own client.
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
  InvalidHandleError,
  InvalidOptionError,
  QueueFullError,
  RedisConfigMismatchError,
  RedisUnavailableError,
  WaitTimeoutError,
} from '../errors.js';
