/**
 * Retry loop that runs every attempt through a shared rate limiter and reports
 * throttles (HTTP 429 / 503 and friends) back to it, so that every thread
 * sharing the limiter pauses together instead of each one discovering the
 * throttle on its own.
 *
 * Zero runtime dependencies besides the sibling `headers` module.
 *
 * @module
 */

import { MAX_BACKOFF_MS } from './options.js';
import { AtomicPaceError, InvalidOptionError } from './errors.js';
import { isThrottleStatus, retryDelayFromHeaders } from './headers.js';

/** The part of a limiter the retry loop needs (RateLimiter satisfies it structurally). */
export interface RetryTarget {
  /**
   * Wait for permission to perform one attempt of the given cost. Should
   * reject with `options.signal.reason` when the signal aborts.
   */
  acquire(cost?: RetryCost, options?: { signal?: AbortSignal }): Promise<unknown>;
  /** Pause every thread sharing the limiter. */
  backoff(options: { retryAfterMs?: number; reason?: string }): void;
  /** Report a success (adaptive rate recovery); optional. */
  success?(): void;
}

/** A cost as the limiter takes it: one number, or costs per named limit. */
export type RetryCost = number | Readonly<Record<string, number>>;

/** Which way an attempt ended: it resolved with a value, or it threw. */
export type OutcomeKind = 'value' | 'error';

/**
 * Options for {@link runWithRetry}. `T` is the type `fn` resolves with; it is
 * there for symmetry with `runWithRetry<T>` (the hooks see outcomes as
 * `unknown` because they also receive thrown errors).
 */
// eslint-disable-next-line @typescript-eslint/no-unused-vars
export interface RetryOptions<T> {
  /** Retries after the first attempt. Integer 0..1000, default 5. */
  retries?: number;
  /**
   * Is this outcome a throttle? Called with the resolved value or, for a
   * thrown error, the error (second argument tells which).
   * Default: {@link defaultIsThrottle}.
   */
  isThrottle?: (outcome: unknown, kind: OutcomeKind) => boolean;
  /**
   * Server-requested delay in ms for a throttled outcome, or undefined.
   * Anything other than a finite number >= 0 is treated as undefined.
   * Default: {@link defaultRetryAfter}.
   */
  retryAfter?: (outcome: unknown, kind: OutcomeKind) => number | undefined;
  /**
   * Exponential backoff base delay, ms, finite > 0, default 100. Retry k
   * (0-based retry index) draws from full jitter: uniform in
   * `[0, min(maxDelayMs, baseDelayMs * 2^k))`.
   */
  baseDelayMs?: number;
  /**
   * Cap for the exponential term, ms, finite >= baseDelayMs, default 20_000
   * (or baseDelayMs, when that is larger and no cap is given).
   */
  maxDelayMs?: number;
  /**
   * Cost passed to acquire for each attempt, an integer >= 1, default 1 (the
   * limiter may further require cost <= its burst).
   */
  cost?: RetryCost;
  /** Aborts the whole loop; the returned promise rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Injected randomness in [0,1) for tests; default Math.random. */
  random?: () => number;
  /**
   * Injected sleep for tests; default a ref'd setTimeout that rejects with
   * signal.reason on abort and clears its timer. The loop also races the
   * returned promise against the signal, so a sleep that ignores the signal
   * still cannot delay an abort.
   */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/**
 * Every allowed attempt was throttled. `attempts` is `retries + 1`;
 * `lastOutcome`/`lastKind` describe the final throttled attempt. When the last
 * attempt threw, the error is also available as `cause`.
 */
export class RetriesExhaustedError extends AtomicPaceError {
  readonly attempts: number;
  readonly lastOutcome: unknown;
  readonly lastKind: OutcomeKind;

  constructor(attempts: number, lastOutcome: unknown, lastKind: OutcomeKind) {
    const status = statusOf(lastOutcome);
    const what =
      (status === undefined ? 'a throttled ' : `an HTTP ${status} `) +
      (lastKind === 'error' ? 'error' : 'result');
    const message =
      `gave up after ${attempts} attempt${attempts === 1 ? '' : 's'}: ` +
      `every attempt was throttled (the last one ended with ${what})`;
    super('E_RETRIES_EXHAUSTED', message, lastKind === 'error' ? { cause: lastOutcome } : undefined);
    this.attempts = attempts;
    this.lastOutcome = lastOutcome;
    this.lastKind = lastKind;
  }
}

/**
 * Default throttle test: true when the outcome (value or error alike) carries
 * a numeric HTTP status that {@link isThrottleStatus} accepts (429 and 503).
 * The status is the first number among `status`, `statusCode`,
 * `response.status` and `response.statusCode` (covers fetch Responses,
 * Node's `IncomingMessage`, axios- and got-style errors).
 */
export function defaultIsThrottle(outcome: unknown, _kind: OutcomeKind): boolean {
  const status = statusOf(outcome);
  return status !== undefined && isThrottleStatus(status);
}

/**
 * Default server delay: reads `headers` (or `response.headers`) of the
 * outcome — WHATWG `Headers` or a plain record — with
 * {@link retryDelayFromHeaders} (`Retry-After` and friends). Undefined when
 * the outcome has no headers or they name no delay.
 */
export function defaultRetryAfter(outcome: unknown, _kind: OutcomeKind): number | undefined {
  let headers = prop(outcome, 'headers');
  if (!isObject(headers)) headers = prop(prop(outcome, 'response'), 'headers');
  if (!isObject(headers)) return undefined;
  return retryDelayFromHeaders(headers as Parameters<typeof retryDelayFromHeaders>[0]);
}

/**
 * Runs `fn` through `target` with retries.
 *
 * Each attempt `k` (0, 1, 2, …):
 * 1. `await target.acquire(cost, { signal })`, then `fn(k, signal)`.
 * 2. A result that is not a throttle is returned, after `target.success?.()`
 *    has been called once for that attempt.
 * 3. An error that is not a throttle is rethrown untouched (same object),
 *    immediately, without retrying and without calling `backoff`.
 * 4. A throttle (value or error, judged by `isThrottle`) is reported with
 *    `target.backoff({ retryAfterMs, reason })`, even on the last attempt,
 *    so every thread sharing the limiter pauses. `retryAfterMs` is the
 *    server's delay (`retryAfter(outcome, kind)`) when it gives one, otherwise
 *    the jittered delay drawn for this retry.
 * 5. If that was attempt number `retries`, the loop rejects with
 *    {@link RetriesExhaustedError}. Otherwise it sleeps the full-jitter delay
 *    for retry index `k` — uniform in `[0, min(maxDelayMs, baseDelayMs * 2^k))`
 *    — and tries again.
 *
 * The server's delay is *not* slept locally: the limiter's shared pause
 * already holds the next `acquire` until the pause ends, so sleeping it here
 * too would only double it. The local sleep is just the jitter that keeps
 * threads from stampeding the moment the pause lifts.
 *
 * Abort: if `signal` is already aborted, or aborts while waiting in `acquire`
 * or in the sleep, the promise rejects promptly with `signal.reason`, and
 * `fn` is never called after the abort. An abort while `fn` runs is up to
 * `fn` (it receives the signal); if `fn` then reports a throttle, the
 * throttle is still passed to `backoff` before the loop rejects with
 * `signal.reason`.
 *
 * Options are validated before anything else happens; a bad one rejects with
 * {@link InvalidOptionError} (bad `target`/`fn` with `TypeError`).
 */
export async function runWithRetry<T, G = unknown>(
  target: RetryTarget,
  fn: (attempt: number, signal?: AbortSignal, grant?: G) => Promise<T> | T,
  options: RetryOptions<T> = {},
): Promise<T> {
  const o = resolveOptions(target, fn, options);
  const { signal } = o;

  for (let attempt = 0; ; attempt++) {
    throwIfAborted(signal);
    const acquiring = target.acquire(o.cost, signal === undefined ? {} : { signal }) as Promise<G>;
    let grant: G;
    try {
      grant = await raceAbort(acquiring, signal);
      throwIfAborted(signal);
    } catch (error) {
      // Aborted while the grant was on its way: give its permit back when it lands.
      acquiring.then(releaseGrant, () => {});
      throw error;
    }

    let outcome: unknown;
    let kind: OutcomeKind;
    try {
      outcome = await fn(attempt, signal, grant);
      kind = 'value';
    } catch (error) {
      outcome = error;
      kind = 'error';
    } finally {
      // A concurrency permit is held for exactly the duration of the call.
      releaseGrant(grant);
    }

    if (!o.isThrottle(outcome, kind)) {
      if (kind === 'error') throw outcome;
      target.success?.();
      return outcome as T;
    }

    // The shared pause is clamped to backoff()'s range (24 h): a custom
    // retryAfter or a maxDelayMs above it must not turn the first throttle
    // into a rejection. (This task's own sleep is not clamped.)
    const jitterMs = fullJitter(attempt, o.baseDelayMs, o.maxDelayMs, o.random);
    const serverMs = sanitizeDelay(o.retryAfter(outcome, kind));
    target.backoff({ retryAfterMs: Math.min(serverMs ?? jitterMs, MAX_BACKOFF_MS), reason: throttleReason(outcome) });

    throwIfAborted(signal);
    if (attempt >= o.retries) throw new RetriesExhaustedError(attempt + 1, outcome, kind);

    // A throttled fetch Response we are about to drop: free its connection now
    // rather than at GC (gateways answer 429 with large HTML pages).
    discardBody(outcome);
    await raceAbort(o.sleep(jitterMs, signal), signal);
  }
}

// ---------------------------------------------------------------------------
// Internals

/** Cancels an unread WHATWG body (fetch `Response`); anything else is left alone. */
function discardBody(outcome: unknown): void {
  if (typeof outcome !== 'object' || outcome === null) return;
  const r = outcome as { bodyUsed?: unknown; body?: { cancel?: unknown } | null };
  if (r.bodyUsed === false && r.body && typeof r.body.cancel === 'function') {
    (r.body.cancel as () => Promise<void>).call(r.body).catch(() => {});
  }
}

/** Releases a grant's concurrency permit, if the target's grants have one. */
function releaseGrant(grant: unknown): void {
  if (typeof grant === 'object' && grant !== null && typeof (grant as { release?: unknown }).release === 'function') {
    (grant as { release(): void }).release();
  }
}

interface ResolvedOptions {
  retries: number;
  isThrottle: (outcome: unknown, kind: OutcomeKind) => boolean;
  retryAfter: (outcome: unknown, kind: OutcomeKind) => number | undefined;
  baseDelayMs: number;
  maxDelayMs: number;
  cost: RetryCost;
  signal: AbortSignal | undefined;
  random: () => number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
}

function resolveOptions(
  target: RetryTarget,
  fn: unknown,
  options: RetryOptions<unknown> | null | undefined,
): ResolvedOptions {
  if (!isObject(target) || typeof target.acquire !== 'function' || typeof target.backoff !== 'function') {
    throw new TypeError(`target must have acquire() and backoff() methods, got ${describe(target)}`);
  }
  if (target.success !== undefined && typeof target.success !== 'function') {
    throw new TypeError(`target.success must be a function or undefined, got ${describe(target.success)}`);
  }
  if (typeof fn !== 'function') throw new TypeError(`fn must be a function, got ${describe(fn)}`);
  if (options === undefined || options === null) options = {};
  if (typeof options !== 'object') throw new TypeError(`options must be an object, got ${describe(options)}`);

  const retries = options.retries ?? 5;
  if (typeof retries !== 'number' || !Number.isInteger(retries) || retries < 0 || retries > 1000) {
    throw new InvalidOptionError('retries', retries, 'an integer in 0..1000');
  }
  const baseDelayMs = options.baseDelayMs ?? 100;
  if (typeof baseDelayMs !== 'number' || !Number.isFinite(baseDelayMs) || baseDelayMs <= 0) {
    throw new InvalidOptionError('baseDelayMs', baseDelayMs, 'a finite number > 0');
  }
  const maxDelayMs = options.maxDelayMs ?? Math.max(20_000, baseDelayMs);
  if (typeof maxDelayMs !== 'number' || !Number.isFinite(maxDelayMs) || maxDelayMs < baseDelayMs) {
    throw new InvalidOptionError('maxDelayMs', maxDelayMs, `a finite number >= baseDelayMs (${baseDelayMs})`);
  }
  const cost = options.cost ?? 1;
  if ((typeof cost !== 'number' || !Number.isSafeInteger(cost) || cost < 1) && (typeof cost !== 'object' || cost === null)) {
    throw new InvalidOptionError('cost', cost, 'an integer >= 1, or an object of costs per limit');
  }
  const signal = options.signal;
  if (signal !== undefined && !isAbortSignal(signal)) {
    throw new InvalidOptionError('signal', signal, 'an AbortSignal or undefined');
  }
  const isThrottle = fnOption(options.isThrottle, 'isThrottle') ?? defaultIsThrottle;
  const retryAfter = fnOption(options.retryAfter, 'retryAfter') ?? defaultRetryAfter;
  const random = fnOption(options.random, 'random') ?? Math.random;
  const sleep = fnOption(options.sleep, 'sleep') ?? defaultSleep;

  return { retries, isThrottle, retryAfter, baseDelayMs, maxDelayMs, cost, signal, random, sleep };
}

function fnOption<F>(value: F | undefined, field: string): F | undefined {
  if (value !== undefined && typeof value !== 'function') {
    throw new InvalidOptionError(field, value, 'a function or undefined');
  }
  return value;
}

/**
 * Full jitter for retry index `k`: uniform in `[0, min(maxMs, baseMs * 2^k))`.
 * A misbehaving `random` (NaN, < 0, >= 1) is clamped so the result always
 * stays inside that half-open range.
 */
function fullJitter(k: number, baseMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** k); // 2**k may overflow to Infinity; min() handles it
  let r = random();
  if (!(r >= 0)) r = 0; // NaN or negative
  const delay = r * ceiling;
  return delay < ceiling ? delay : nextDown(ceiling);
}

/** Largest double strictly below a positive finite `x` (0 for x <= 0). */
function nextDown(x: number): number {
  if (!(x > 0)) return 0;
  const f = new Float64Array([x]);
  const bits = new BigInt64Array(f.buffer);
  bits[0] = (bits[0] as bigint) - 1n;
  return f[0] as number;
}

function sanitizeDelay(ms: unknown): number | undefined {
  return typeof ms === 'number' && Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}

function throttleReason(outcome: unknown): string {
  const status = statusOf(outcome);
  return status === undefined ? 'throttle' : `throttle (HTTP ${status})`;
}

const MAX_TIMER_MS = 2_147_483_647;

/**
 * Default sleep: a ref'd setTimeout (keeps the process alive, as a pending
 * retry should). Rejects with `signal.reason` on abort and clears its timer.
 * Delays beyond setTimeout's 2^31-1 ms limit are slept in chunks.
 */
function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    let remaining = ms;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const tick = (): void => {
      if (remaining <= 0) {
        signal?.removeEventListener('abort', onAbort);
        resolve();
        return;
      }
      const step = Math.min(remaining, MAX_TIMER_MS);
      remaining -= step;
      timer = setTimeout(tick, step);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const step = Math.min(Math.max(remaining, 0), MAX_TIMER_MS);
    remaining -= step;
    timer = setTimeout(tick, step);
  });
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason;
}

/**
 * Settles like `promise`, except that it rejects with `signal.reason` as soon
 * as the signal aborts. A late rejection of `promise` is swallowed so it does
 * not surface as an unhandled rejection.
 */
function raceAbort<V>(promise: Promise<V> | V, signal: AbortSignal | undefined): Promise<V> {
  const p = Promise.resolve(promise);
  if (signal === undefined) return p;
  if (signal.aborted) {
    p.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<V>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

function statusOf(outcome: unknown): number | undefined {
  const response = prop(outcome, 'response');
  for (const candidate of [
    prop(outcome, 'status'),
    prop(outcome, 'statusCode'),
    prop(response, 'status'),
    prop(response, 'statusCode'),
  ]) {
    if (typeof candidate === 'number' && Number.isFinite(candidate)) return candidate;
  }
  return undefined;
}

/** Reads `value[key]` if value is an object; a throwing getter counts as absent. */
function prop(value: unknown, key: string): unknown {
  if (!isObject(value)) return undefined;
  try {
    return (value as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is object {
  return (typeof value === 'object' && value !== null) || typeof value === 'function';
}

function isAbortSignal(value: unknown): value is AbortSignal {
  return (
    isObject(value) &&
    typeof (value as AbortSignal).aborted === 'boolean' &&
    typeof (value as AbortSignal).addEventListener === 'function' &&
    typeof (value as AbortSignal).removeEventListener === 'function'
  );
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return 'a function';
  if (value === null || typeof value !== 'object') return String(value);
  if (Array.isArray(value)) return 'an array';
  return 'an object';
}
