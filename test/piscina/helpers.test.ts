/**
 * The Piscina helpers without a pool: attaching, validation, and the
 * cancellation protocol of runCancellable/taskSignal driven by a fake pool in
 * this thread (the real-pool behaviour is in pool.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidHandleError, InvalidOptionError, RateLimiter } from '../../src/index.js';
import {
  limiterFromHandle,
  limiterFromWorkerData,
  runCancellable,
  taskSignal,
  type CancelToken,
  type PoolRunOptions,
} from '../../src/piscina.js';

describe('limiterFromHandle', () => {
  it('attaches once per SharedArrayBuffer object; a clone is attached again, to the same schedule', () => {
    const limiter = new RateLimiter({ rate: 1, burst: 2 });
    const a = limiterFromHandle(limiter.handle);
    expect(limiterFromHandle(limiter.handle)).toBe(a);
    const clone = structuredClone(limiter.handle);
    const b = limiterFromHandle(clone);
    expect(limiterFromHandle(clone)).toBe(b);
    expect(b).not.toBe(a);
    expect(a.tryAcquire()).toBe(true);
    expect(b.tryAcquire()).toBe(true);
    expect(a.tryAcquire()).toBe(false); // one bucket of 2 behind all three
    expect(limiter.stats().grantedCost).toBe(2);
  });

  it('never confuses two limiters', () => {
    const one = new RateLimiter({ rate: 1 });
    const two = new RateLimiter({ rate: 1 });
    limiterFromHandle(one.handle).tryAcquire();
    expect(limiterFromHandle(two.handle).tryAcquire()).toBe(true);
  });

  it.each([undefined, null, {}, { kind: 'atomic-pace/rate-limiter', version: 1, buffer: new SharedArrayBuffer(8) }])(
    'rejects %j with InvalidHandleError',
    (bad) => {
      expect(() => limiterFromHandle(bad as never)).toThrow(InvalidHandleError);
    },
  );
});

describe('limiterFromWorkerData', () => {
  it('explains that it runs in a worker thread', () => {
    expect(() => limiterFromWorkerData()).toThrow(InvalidHandleError);
    expect(() => limiterFromWorkerData('limiter')).toThrow('workerData.limiter exists only in a worker thread');
  });

  it('validates the key', () => {
    expect(() => limiterFromWorkerData(42 as never)).toThrow(InvalidOptionError);
  });
});

/** A pool that runs tasks in this thread, recording the options it was given. */
class FakePool {
  options: PoolRunOptions | undefined;
  started = false;
  constructor(private readonly body: (task: { cancel: CancelToken }, options: PoolRunOptions) => Promise<unknown>) {}
  run(task: { cancel: CancelToken }, options?: PoolRunOptions): Promise<unknown> {
    this.options = options;
    this.started = true;
    return this.body(task, options ?? {});
  }
}

/** Rejects when the pool's signal aborts, like Piscina (AbortError). */
function poolAborted(options: PoolRunOptions): Promise<never> {
  return new Promise((_, reject) => {
    const signal = options.signal!;
    signal.addEventListener('abort', () => reject(Object.assign(new Error('The task has been aborted'), { name: 'AbortError' })), { once: true });
  });
}

describe('runCancellable / taskSignal protocol', () => {
  it('a task listening with taskSignal is cancelled cooperatively: its signal aborts, the pool signal does not', async () => {
    let taskSide: AbortSignal | undefined;
    const pool = new FakePool(async ({ cancel }, options) => {
      taskSide = taskSignal(cancel);
      expect(taskSignal(cancel)).toBe(taskSide); // one signal per token
      await Promise.race([
        new Promise((_, reject) => taskSide!.addEventListener('abort', () => reject(taskSide!.reason), { once: true })),
        poolAborted(options),
      ]);
    });
    const controller = new AbortController();
    const reason = new Error('stop');
    const done = runCancellable(pool, (cancel) => ({ cancel }), { signal: controller.signal });
    await sleep(1);
    controller.abort(reason);
    await expect(done).rejects.toBe(reason);
    expect(taskSide!.aborted).toBe(true);
    expect(taskSide!.reason).toMatchObject({ name: 'AbortError' });
    expect(pool.options!.signal!.aborted).toBe(false);
  });

  it('before the task listens, the abort goes to the pool (Piscina dequeues or terminates), and a late taskSignal is already aborted', async () => {
    let token: CancelToken | undefined;
    const pool = new FakePool(({ cancel }, options) => {
      token = cancel;
      return poolAborted(options);
    });
    const controller = new AbortController();
    const done = runCancellable(pool, (cancel) => ({ cancel }), { signal: controller.signal });
    controller.abort(new Error('early'));
    await expect(done).rejects.toThrow('early');
    expect(pool.options!.signal!.aborted).toBe(true);
    expect(taskSignal(token!).aborted).toBe(true);
  });

  it('a task that ignores its signal is stopped through the pool after graceMs', async () => {
    const pool = new FakePool(async ({ cancel }, options) => {
      taskSignal(cancel);
      await poolAborted(options);
    });
    const controller = new AbortController();
    const done = runCancellable(pool, (cancel) => ({ cancel }), { signal: controller.signal, graceMs: 10 });
    await sleep(1);
    controller.abort(new Error('late'));
    expect(pool.options!.signal!.aborted).toBe(false);
    await expect(done).rejects.toThrow('late');
    expect(pool.options!.signal!.aborted).toBe(true);
  });

  it('a task that completes despite the abort resolves with its result; without a signal nothing is aborted', async () => {
    const controller = new AbortController();
    const pool = new FakePool(async ({ cancel }) => {
      taskSignal(cancel);
      controller.abort(new Error('too late'));
      return 'result';
    });
    await expect(runCancellable(pool, (cancel) => ({ cancel }), { signal: controller.signal })).resolves.toBe('result');
    let signal: AbortSignal | undefined;
    const plain = new FakePool(async ({ cancel }) => {
      signal = taskSignal(cancel);
      return 7;
    });
    await expect(runCancellable(plain, (cancel) => ({ cancel }))).resolves.toBe(7);
    expect(plain.options!.signal).toBeNull();
    await sleep(1);
    expect(signal!.aborted).toBe(false);
  });

  it('failures other than an abort pass through untouched', async () => {
    const failure = new Error('task failed');
    const pool = new FakePool(async () => {
      throw failure;
    });
    await expect(runCancellable(pool, (cancel) => ({ cancel }), { signal: new AbortController().signal })).rejects.toBe(failure);
  });

  it('an already aborted signal rejects with its reason without running anything', async () => {
    const pool = new FakePool(async () => 1);
    const reason = new Error('already');
    await expect(runCancellable(pool, (cancel) => ({ cancel }), { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(pool.started).toBe(false);
  });

  it.each<[string, () => Promise<unknown>]>([
    ['graceMs', () => runCancellable(new FakePool(async () => 1), (cancel) => ({ cancel }), { graceMs: -1 })],
    ['pool', () => runCancellable(null as never, (cancel) => ({ cancel }))],
    ['buildTask', () => runCancellable(new FakePool(async () => 1), 'task' as never)],
    ['signal', () => runCancellable(new FakePool(async () => 1), (cancel) => ({ cancel }), { signal: {} as never })],
  ])('rejects a bad %s with InvalidOptionError', async (field, call) => {
    await expect(call()).rejects.toMatchObject({ name: 'InvalidOptionError', field });
  });

  it('taskSignal rejects anything but a token', () => {
    expect(() => taskSignal({} as never)).toThrow(InvalidOptionError);
    expect(() => taskSignal(undefined as never)).toThrow('cancel must be a CancelToken passed to the task by runCancellable()');
  });
});
