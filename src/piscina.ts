/**
 * `atomic-pace/piscina`: one limiter shared by every thread of a Piscina pool.
 *
 * Piscina is not imported (it is an optional peer): a limiter only needs its
 * handle, which survives structured clone, so the pool carries it either in
 * its `workerData` or in each task.
 *
 * @example
 * // main.mjs
 * import { Piscina } from 'piscina';
 * import { RateLimiter } from 'atomic-pace';
 * const limiter = new RateLimiter({ rate: '600/min' });
 * const pool = new Piscina({ filename: new URL('./task.mjs', import.meta.url).href, workerData: limiter.handle });
 * await pool.run({ url: 'https://api.example.com/v1/embed' });
 *
 * // task.mjs
 * import { limiterFromWorkerData } from 'atomic-pace/piscina';
 * export default async ({ url }) => {
 *   const limiter = limiterFromWorkerData();        // attached once per worker
 *   const res = await limiter.run(() => fetch(url)); // acquire; 429/503: shared backoff + retry
 *   return res.status;
 * };
 *
 * What a pool changes, and what this module does about it:
 * - **Default `atomics: 'sync'`.** Between tasks a Piscina worker blocks in
 *   `Atomics.wait`, so its event loop does not run: timers and promises a
 *   task leaves behind are frozen until the next task arrives. Await every
 *   `acquire()`/`run()` inside the task. Waiting inside a running task is
 *   fine (its event loop runs), with `acquire` or `acquireSync` (which also
 *   blocks the worker's other tasks under `concurrentTasksPerWorker > 1`).
 * - **Recycling** (`idleTimeout`, `maxThreads`, crashed workers): the
 *   limiter's state lives in the shared buffer, not in any worker, so new
 *   workers attach to the same schedule and the limit stays strict.
 * - **Cancellation.** `pool.run(task, { signal })` removes a queued task; a
 *   running one is stopped by terminating its worker, and a grant it was
 *   waiting for is then lost (its slot stays empty: never an over-grant, but
 *   one interval of capacity is wasted and `stats().waiting` stays one too
 *   high). {@link runCancellable} with {@link taskSignal} cancels a running
 *   task cooperatively instead: the task's `acquire(…, { signal })` rejects
 *   and gives its slot back, and the worker lives on.
 * - **Fresh workers.** A request is in flight between its grant and its
 *   arrival. A new worker's first `fetch` loads the HTTP client (hundreds of
 *   ms on a busy machine), so its first request may reach the server long
 *   after its grant, after a 429 another worker has already received. Warm
 *   the client up in the task module (a top-level `await fetch(…)` to an
 *   endpoint that is not rate-limited) where that matters.
 *
 * @module
 */
import { isMainThread, workerData } from 'node:worker_threads';
import { InvalidHandleError, InvalidOptionError } from './errors.js';
import { RateLimiter, type LimiterHandle } from './limiter.js';

/** Limiters attached in this thread, by the `SharedArrayBuffer` object their handle arrived with. */
const attachedByBuffer = new WeakMap<SharedArrayBuffer, RateLimiter>();
/** Limiters attached from `workerData`, by key ('' = workerData itself). */
const attachedFromWorkerData = new Map<string, RateLimiter>();

/**
 * The limiter behind `handle` in this thread, attached at most once per
 * `SharedArrayBuffer` object. Validates like `RateLimiter.attach` (throws
 * `InvalidHandleError`).
 *
 * Use it in a task that receives the handle in its payload. Each task's
 * payload is a fresh structured clone, and a clone of a `SharedArrayBuffer`
 * is a new object over the same memory, so a handle sent with every task is
 * attached once per task (about 3 µs); the limit is the same either way.
 * Unlike `limiter ??= RateLimiter.attach(handle)`, it never hands back the
 * limiter of an earlier task's handle when tasks carry different limiters.
 *
 * @example
 * export default async ({ handle, url }) => {
 *   const res = await limiterFromHandle(handle).run(() => fetch(url));
 *   return res.status;
 * };
 */
export function limiterFromHandle(handle: LimiterHandle): RateLimiter {
  const buffer = bufferOf(handle);
  const cached = buffer === undefined ? undefined : attachedByBuffer.get(buffer);
  if (cached !== undefined) return cached;
  const limiter = RateLimiter.attach(handle);
  attachedByBuffer.set(limiter.handle.buffer, limiter);
  return limiter;
}

/**
 * The limiter whose handle this worker received as its `workerData` (as
 * Piscina passes its own `workerData` option), or as `workerData[key]`.
 * Attached once per worker thread; later calls return the same instance.
 * Throws `InvalidHandleError` in the main thread, or when the value there is
 * missing or not a handle.
 *
 * @example
 * new Piscina({ filename, workerData: { limiter: limiter.handle, apiKey } });
 * // in the task:
 * const limiter = limiterFromWorkerData('limiter');
 */
export function limiterFromWorkerData(key?: string): RateLimiter {
  if (key !== undefined && typeof key !== 'string') {
    throw new InvalidOptionError('key', key, 'a property name of workerData, or undefined for workerData itself');
  }
  const cacheKey = key ?? '';
  const cached = attachedFromWorkerData.get(cacheKey);
  if (cached !== undefined) return cached;
  const where = key === undefined ? 'workerData' : `workerData.${key}`;
  if (isMainThread) {
    throw new InvalidHandleError(`${where} exists only in a worker thread; in the main thread use the limiter itself`);
  }
  const data: unknown = workerData;
  const value = key === undefined ? data : (data as Record<string, unknown> | null | undefined)?.[key];
  if (value === undefined || value === null) {
    const example = key === undefined ? 'limiter.handle' : `{ ${key}: limiter.handle }`;
    throw new InvalidHandleError(`${where} is ${String(value)}; create the pool with new Piscina({ workerData: ${example} })`);
  }
  const limiter = RateLimiter.attach(value as LimiterHandle);
  attachedFromWorkerData.set(cacheKey, limiter);
  return limiter;
}

// ---------------------------------------------------------------------------
// Cooperative cancellation

const TOKEN_KIND = 'atomic-pace/cancel-token';

/**
 * Carries a cancellation from the thread that runs a task to the task.
 * Structured-clone safe: put it in the task payload. Made by
 * {@link runCancellable}; read in the task with {@link taskSignal}.
 */
export interface CancelToken {
  readonly kind: typeof TOKEN_KIND;
  /** One Int32: the task's {@link TaskState}. */
  readonly buffer: SharedArrayBuffer;
}

/**
 * The states of a token's word. Transitions, each one CAS:
 * QUEUED → RUNNING (the task calls `taskSignal`), QUEUED → ABORTED and
 * RUNNING → ABORTED (the caller's signal aborts), QUEUED/RUNNING → SETTLED
 * (the task's promise settled). Whoever moves it first decides: a task that
 * finds ABORTED never starts waiting; an abort that finds RUNNING is left to
 * the task.
 */
const TaskState = { QUEUED: 0, RUNNING: 1, ABORTED: 2, SETTLED: 3 } as const;

/** The part of a Piscina pool {@link runCancellable} uses (Piscina satisfies it). */
export interface CancellablePool<Task, Result> {
  run(task: Task, options?: PoolRunOptions): Promise<Result>;
}

/** Piscina's `run` options that {@link runCancellable} forwards; it sets `signal` itself. */
export interface PoolRunOptions {
  signal?: AbortSignal | null;
  /** Passed through untouched. `any` so that a pool typed with its own transfer-list type (Piscina's) accepts it. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  transferList?: any;
  filename?: string | null;
  name?: string | null;
}

export interface RunCancellableOptions {
  /** Cancels the task. The returned promise then rejects with `signal.reason` (unless the task completed anyway). */
  signal?: AbortSignal;
  /**
   * How long a running task that called {@link taskSignal} may take to stop
   * after an abort before Piscina terminates its worker anyway, ms, in
   * 0..2_147_483_647 or Infinity (never). Default 5000.
   */
  graceMs?: number;
  /** Other options for `pool.run` (`transferList`, `filename`, `name`). */
  runOptions?: Omit<PoolRunOptions, 'signal'>;
}

/**
 * `pool.run(buildTask(token))` whose cancellation reaches inside the task:
 *
 * - abort before the task started, or before it called
 *   {@link taskSignal}: handled by Piscina (a queued task is removed; a
 *   running one has its worker terminated);
 * - abort after the task called `taskSignal(token)`: that signal aborts in
 *   the worker, so an `acquire(cost, { signal })` waiting there rejects and
 *   gives its slot back (`stats().cancelled`), and the worker survives. If
 *   the task has not settled within `graceMs`, Piscina terminates it.
 *
 * Resolves with the task's result. If `signal` aborted and the task did not
 * complete, rejects with `signal.reason` (a worker's own error object does
 * not survive the trip back intact). Other failures reject with what
 * `pool.run` rejected with.
 *
 * @example
 * const controller = new AbortController();
 * const done = runCancellable(pool, (cancel) => ({ url, cancel }), { signal: controller.signal });
 * controller.abort();
 * // task.mjs
 * export default async ({ url, cancel }) => {
 *   const signal = taskSignal(cancel);
 *   await limiterFromWorkerData().acquire(1, { signal });
 *   return (await fetch(url, { signal })).status;
 * };
 */
export function runCancellable<Task, Result>(
  pool: CancellablePool<Task, Result>,
  buildTask: (cancel: CancelToken) => Task,
  options: RunCancellableOptions = {},
): Promise<Result> {
  try {
    if (typeof pool !== 'object' || pool === null || typeof pool.run !== 'function') {
      throw new InvalidOptionError('pool', pool, 'a Piscina pool (an object with a run(task, options) method)');
    }
    if (typeof buildTask !== 'function') {
      throw new InvalidOptionError('buildTask', buildTask, 'a function (cancel: CancelToken) => task payload');
    }
    const { signal, runOptions } = options;
    const graceMs = options.graceMs ?? 5000;
    if (graceMs !== Infinity && (typeof graceMs !== 'number' || !(graceMs >= 0 && graceMs <= 2_147_483_647))) {
      throw new InvalidOptionError('graceMs', graceMs, 'a number of ms in 0..2147483647, or Infinity');
    }
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new InvalidOptionError('signal', signal, 'an AbortSignal or undefined');
    }
    if (signal?.aborted) return Promise.reject(signal.reason);

    const buffer = new SharedArrayBuffer(4);
    const word = new Int32Array(buffer);
    const task = buildTask(Object.freeze({ kind: TOKEN_KIND, buffer }));
    const poolAbort = new AbortController();
    let graceTimer: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      if (signal === undefined) return;
      if (Atomics.compareExchange(word, 0, TaskState.QUEUED, TaskState.ABORTED) === TaskState.QUEUED) {
        poolAbort.abort(signal.reason); // not listening yet: Piscina dequeues or terminates it
      } else if (Atomics.compareExchange(word, 0, TaskState.RUNNING, TaskState.ABORTED) === TaskState.RUNNING) {
        Atomics.notify(word, 0);
        if (graceMs !== Infinity) graceTimer = setTimeout(() => poolAbort.abort(signal.reason), graceMs);
      }
    };
    const settle = (): void => {
      signal?.removeEventListener('abort', onAbort);
      clearTimeout(graceTimer);
      // Releases the task's pending Atomics.waitAsync (it sees SETTLED, not ABORTED).
      Atomics.compareExchange(word, 0, TaskState.QUEUED, TaskState.SETTLED);
      if (Atomics.compareExchange(word, 0, TaskState.RUNNING, TaskState.SETTLED) === TaskState.RUNNING) Atomics.notify(word, 0);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    return pool.run(task, { ...runOptions, signal: signal === undefined ? null : poolAbort.signal }).then(
      (result) => {
        settle();
        return result;
      },
      (error: unknown) => {
        settle();
        throw signal?.aborted ? signal.reason : error;
      },
    );
  } catch (error) {
    return Promise.reject(error);
  }
}

/** Cached per token in this thread, so a task may call taskSignal(cancel) more than once. */
const signalsByToken = new WeakMap<SharedArrayBuffer, AbortSignal>();

/**
 * Inside a task started by {@link runCancellable}: an `AbortSignal` that
 * aborts when the caller's signal does. Calling it tells the caller the task
 * handles cancellation itself (its worker is then not terminated on abort,
 * unless `graceMs` runs out). Pass it to `acquire`, `run`, `fetch`…
 * Already aborted if the caller aborted before the task called it. The
 * reason is a `DOMException` named `'AbortError'`.
 */
export function taskSignal(cancel: CancelToken): AbortSignal {
  const buffer = tokenBuffer(cancel);
  const cached = signalsByToken.get(buffer);
  if (cached !== undefined) return cached;
  const word = new Int32Array(buffer);
  const previous = Atomics.compareExchange(word, 0, TaskState.QUEUED, TaskState.RUNNING);
  let signal: AbortSignal;
  if (previous === TaskState.ABORTED) {
    signal = AbortSignal.abort(cancelledReason());
  } else {
    const controller = new AbortController();
    signal = controller.signal;
    if (previous !== TaskState.SETTLED) {
      const onWake = (): void => {
        if (Atomics.load(word, 0) === TaskState.ABORTED) controller.abort(cancelledReason());
      };
      // Does not keep the event loop alive (the task's own awaits do), and is
      // released by the caller's notify when the task settles.
      const waiting = waitAsync(word, 0, TaskState.RUNNING);
      if (waiting.async) void waiting.value.then(onWake);
      else onWake();
    }
  }
  signalsByToken.set(buffer, signal);
  return signal;
}

function cancelledReason(): DOMException {
  return new DOMException('the task was cancelled by the thread that started it', 'AbortError');
}

function tokenBuffer(cancel: unknown): SharedArrayBuffer {
  const buffer = (cancel as Partial<CancelToken> | null | undefined)?.buffer;
  if (
    (cancel as Partial<CancelToken> | null | undefined)?.kind !== TOKEN_KIND ||
    Object.prototype.toString.call(buffer) !== '[object SharedArrayBuffer]' ||
    (buffer as SharedArrayBuffer).byteLength !== 4
  ) {
    throw new InvalidOptionError('cancel', cancel, 'a CancelToken passed to the task by runCancellable()');
  }
  return buffer as SharedArrayBuffer;
}

function bufferOf(handle: unknown): SharedArrayBuffer | undefined {
  const buffer = (handle as { buffer?: unknown } | null | undefined)?.buffer;
  return buffer instanceof SharedArrayBuffer ? buffer : undefined;
}

/** `Atomics.waitAsync` (ES2024, Node ≥ 16), typed here because the project targets the ES2022 library. */
function waitAsync(
  array: Int32Array,
  index: number,
  value: number,
): { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> } {
  return (Atomics as unknown as { waitAsync: typeof waitAsync }).waitAsync(array, index, value);
}
