export { RateLimiter } from './limiter.js';
export type { Grant, LimiterHandle, LimiterStats, LimitStats, Reservation, SettleResult } from './limiter.js';
export type {
  AcquireOptions,
  AcquireSyncOptions,
  AttachOptions,
  BackoffOptions,
  Cost,
  LimitOptions,
  QueueStatus,
  RateLimiterOptions,
  RateString,
  ReserveOptions,
} from './options.js';
export type { AdaptiveOptions } from './options.js';
export type { Clock } from './clock.js';
export { RetriesExhaustedError, defaultIsThrottle, defaultRetryAfter } from './retry.js';
export type { RetryOptions, OutcomeKind, RetryCost } from './retry.js';
export {
  AtomicPaceError,
  CostTooLargeError,
  GrantStateError,
  InvalidHandleError,
  InvalidOptionError,
  QueueFullError,
  WaitTimeoutError,
} from './errors.js';
export { isThrottleStatus, parseDurationMs, retryDelayFromHeaders } from './headers.js';
export type { HeaderSource, RetryDelayOptions } from './headers.js';
