/**
 * Typed errors. Every outcome a caller may want to handle has its own class and
 * a stable `code`, so callers branch on `instanceof` or `err.code`, never on
 * message text.
 *
 * Two families:
 * - "never": the call can not succeed as written ({@link InvalidOptionError},
 *   {@link CostTooLargeError}, {@link InvalidHandleError}). Retrying is pointless.
 * - "not now": the limiter refused this wait ({@link WaitTimeoutError},
 *   {@link QueueFullError}). Retrying later may succeed.
 *
 * An aborted wait rejects with the `AbortSignal`'s own `reason`, as platform
 * APIs do.
 */

/** Base class of every error atomic-pace throws. */
export class AtomicPaceError extends Error {
  /** Stable machine-readable code, e.g. `'E_QUEUE_FULL'`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** An option or argument is outside its allowed range. Names the field, the value and the range. */
export class InvalidOptionError extends AtomicPaceError {
  readonly field: string;
  readonly value: unknown;
  /** Human-readable allowed range, e.g. `'an integer in 1..1000000000'`. */
  readonly allowed: string;

  constructor(field: string, value: unknown, allowed: string) {
    super('E_INVALID_OPTION', `${field} must be ${allowed}, got ${describeValue(value)}`);
    this.field = field;
    this.value = value;
    this.allowed = allowed;
  }
}

/** The requested cost exceeds the burst: no amount of waiting could ever grant it. */
export class CostTooLargeError extends AtomicPaceError {
  readonly cost: number;
  readonly burst: number;
  /** `'cost'`, or `'cost.<limit>'` for a named limit. */
  readonly field: string;

  constructor(cost: number, burst: number, field = 'cost') {
    super(
      'E_COST_TOO_LARGE',
      `${field} ${cost} can never be granted: it exceeds burst ${burst} (${field} must be an integer up to ${burst})`,
    );
    this.cost = cost;
    this.burst = burst;
    this.field = field;
  }
}

/** `RateLimiter.attach` was given something that is not a handle of this version of atomic-pace. */
export class InvalidHandleError extends AtomicPaceError {
  constructor(reason: string) {
    super('E_INVALID_HANDLE', `not an atomic-pace limiter handle: ${reason}`);
  }
}

/**
 * The wait needed for this grant exceeds the caller's `timeoutMs` (or the
 * limiter's `maxWaitMs`). Raised as soon as that is known, not after sleeping:
 * at the call when the schedule already says so, or at a wake-up when a shared
 * backoff has pushed the grant beyond the deadline. Nothing stays reserved.
 */
export class WaitTimeoutError extends AtomicPaceError {
  /** The limit that was exceeded, ms. */
  readonly timeoutMs: number;
  /** How long the grant would still have taken, ms. */
  readonly wouldWaitMs: number;

  constructor(timeoutMs: number, wouldWaitMs: number) {
    super(
      'E_WAIT_TIMEOUT',
      `rate limit wait of ${formatMs(wouldWaitMs)} ms exceeds timeoutMs ${formatMs(timeoutMs)}`,
    );
    this.timeoutMs = timeoutMs;
    this.wouldWaitMs = wouldWaitMs;
  }
}

/** The limiter's queue (`maxQueue`, in cost units) is full; the request was not queued. */
export class QueueFullError extends AtomicPaceError {
  readonly maxQueue: number;
  /** The limit whose queue is full (`'default'` for a one-limit limiter). */
  readonly limit: string;

  constructor(maxQueue: number, limit = 'default') {
    super('E_QUEUE_FULL', `rate limiter queue is full (${limit === 'default' ? '' : `limit ${limit}: `}maxQueue ${maxQueue} cost units waiting)`);
    this.maxQueue = maxQueue;
    this.limit = limit;
  }
}

/** A grant was settled twice, or after it was refunded. */
export class GrantStateError extends AtomicPaceError {
  constructor(message: string) {
    super('E_GRANT_STATE', message);
  }
}

function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  if (typeof value === 'function') return 'a function';
  return Array.isArray(value) ? 'an array' : `an object`;
}

function formatMs(ms: number): string {
  return Number.isFinite(ms) ? String(Math.round(ms * 1000) / 1000) : String(ms);
}

/**
 * The Redis store could not make a decision: connection refused or lost, a
 * command timed out, ioredis gave up (`maxRetriesPerRequest`), or the server
 * refused the script. Fail-closed: nothing was granted by this call (a request
 * that reached Redis before the failure may hold a slot that is never used —
 * capacity lost, never over-granted). "Not now": retry later, or configure
 * `fallback` to use a local limiter during outages.
 */
export class RedisUnavailableError extends AtomicPaceError {
  /** The Redis key of the limiter. */
  readonly key: string;
  /** What was being done: `'place'`, `'check'`, `'backoff'`, `'lease'`, … */
  readonly operation: string;

  constructor(key: string, operation: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(
      'E_REDIS_UNAVAILABLE',
      `Redis unavailable for rate limiter ${JSON.stringify(key)} (${operation}): ${reason}; failing closed, nothing was granted`,
      { cause },
    );
    this.key = key;
    this.operation = operation;
  }
}

/**
 * Another process already stores a different configuration (limits, rates,
 * bursts, queue bounds) under this Redis key. "Never" for this configuration:
 * give each configuration its own `name`, or call `reset()` to replace the
 * stored state once every process runs the new configuration.
 */
export class RedisConfigMismatchError extends AtomicPaceError {
  readonly key: string;
  /** The configuration stored in Redis, canonical text. */
  readonly stored: string;
  /** This limiter's configuration, canonical text. */
  readonly expected: string;

  constructor(key: string, stored: string, expected: string) {
    super(
      'E_REDIS_CONFIG_MISMATCH',
      `Redis key ${JSON.stringify(key)} holds a limiter configured as ${stored}, not ${expected}: use a different name per configuration, or reset() the key once every process uses the new one`,
    );
    this.key = key;
    this.stored = stored;
    this.expected = expected;
  }
}
