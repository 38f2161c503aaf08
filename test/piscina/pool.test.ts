/**
 * One limiter shared with a real Piscina pool: the handle in `workerData` or
 * in each task, the pool's default `atomics: 'sync'`, recycled workers, and
 * cancellation. Tasks load the built package (see tasks.mjs). Assertions are
 * invariants over the recorded schedule and times, never durations.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { Piscina } from 'piscina';
import { RateLimiter } from '../../src/index.js';
import { runCancellable } from '../../src/piscina.js';
import { worstBracketWindow, worstScheduleWindow, type GrantRecord } from '../support/invariants.js';

const TASKS = new URL('./tasks.mjs', import.meta.url).href;

interface AcquireResult {
  threadId: number;
  before: bigint;
  after: bigint;
  slotNs: bigint;
  attachedInThisThread: number;
}

let pool: Piscina | undefined;
afterEach(async () => {
  await pool?.destroy();
  pool = undefined;
});

function records(results: AcquireResult[], baseNs: bigint): GrantRecord[] {
  return results.map((r) => ({
    callStart: Number(r.before - baseNs),
    callReturned: Number(r.before - baseNs),
    granted: Number(r.after - baseNs),
    slot: Number(r.slotNs),
    cost: 1,
    worker: r.threadId,
  }));
}

/** Every window, from the schedule itself (exact) and from the times around each call (bracketed). */
function expectStrict(results: AcquireResult[], burst: number, rate: number): void {
  const intervalNs = Math.ceil(1e9 / rate);
  const recs = records(results, results.reduce((min, r) => (r.before < min ? r.before : min), results[0]!.before));
  expect(worstScheduleWindow(recs, burst, intervalNs)).toBeNull();
  expect(worstBracketWindow(recs, burst, intervalNs, [1, 2, 5, 20, 100].map((k) => k * intervalNs))).toBeNull();
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await sleep(2);
}

describe('a limiter shared with a Piscina pool (default atomics: sync)', () => {
  it('8 workers, handle in workerData and in each task: one strict schedule, attached once per worker', async () => {
    const rate = 400;
    const burst = 2;
    const limiter = new RateLimiter({ rate, burst });
    pool = new Piscina({ filename: TASKS, name: 'acquire', minThreads: 8, maxThreads: 8, workerData: { limiter: limiter.handle } });
    expect(pool.options.atomics).toBe('sync');
    const tasks = Array.from({ length: 320 }, (_, i) =>
      pool!.run(i % 2 === 0 ? { source: 'workerData' } : { source: 'task', handle: limiter.handle }) as Promise<AcquireResult>);
    const results = await Promise.all(tasks);

    expectStrict(results, burst, rate);
    expect(limiter.stats()).toMatchObject({ grantedCost: 320, waiting: 0 });
    expect(new Set(results.map((r) => r.threadId)).size).toBeGreaterThan(1);
    // limiterFromWorkerData attached once in each worker: one instance per thread, ever.
    expect(Math.max(...results.map((r) => r.attachedInThisThread))).toBe(1);
  });

  it('recycled workers (idleTimeout, maxThreads) attach to the same schedule: still strict', async () => {
    const rate = 200;
    const limiter = new RateLimiter({ rate });
    pool = new Piscina({ filename: TASKS, name: 'acquire', minThreads: 0, maxThreads: 2, idleTimeout: 5, workerData: { limiter: limiter.handle } });
    const results: AcquireResult[] = [];
    for (let wave = 0; wave < 4; wave++) {
      const batch = Array.from({ length: 12 }, (_, i) =>
        pool!.run(i % 2 === 0 ? { source: 'workerData' } : { source: 'task', handle: limiter.handle }) as Promise<AcquireResult>);
      results.push(...(await Promise.all(batch)));
      await until(() => pool!.threads.length === 0); // every worker of this wave has been retired
    }
    expect(new Set(results.map((r) => r.threadId)).size).toBeGreaterThan(2); // more workers than maxThreads: recycled
    expectStrict(results, 1, rate);
    expect(limiter.stats()).toMatchObject({ grantedCost: 48, waiting: 0 });
  });
  it('a pool created without the handle in workerData: the task fails with a message that says how to fix it', async () => {
    pool = new Piscina({ filename: TASKS, name: 'acquire', minThreads: 1, maxThreads: 1 });
    await expect(pool.run({ source: 'workerData' })).rejects.toThrow(
      'workerData.limiter is undefined; create the pool with new Piscina({ workerData: { limiter: limiter.handle } })',
    );
  });
});

describe('cancellation', () => {
  const rate = 2; // T = 500 ms: a waiting task is still waiting when the test aborts it
  const T = 500_000_000n;

  it("pool.run(task, { signal }) on a queued task: Piscina removes it, the limiter never sees it", async () => {
    const limiter = new RateLimiter({ rate });
    pool = new Piscina({ filename: TASKS, minThreads: 1, maxThreads: 1, workerData: { limiter: limiter.handle } });
    await limiter.acquire(); // empties the bucket: the next grant waits T
    const busy = pool.run({}, { name: 'waitUncancellable' });
    await until(() => limiter.stats().waiting === 1);
    const controller = new AbortController();
    const queued = pool.run({}, { name: 'waitUncancellable', signal: controller.signal });
    controller.abort(new Error('not needed'));
    await expect(queued).rejects.toMatchObject({ name: 'AbortError' });
    await busy;
    expect(limiter.stats()).toMatchObject({ grantedCost: 2, waiting: 0, cancelled: 0 });
  });

  it("pool.run(task, { signal }) on a running task terminates its worker: its slot is lost, never re-granted early", async () => {
    const limiter = new RateLimiter({ rate });
    pool = new Piscina({ filename: TASKS, minThreads: 1, maxThreads: 1, workerData: { limiter: limiter.handle } });
    const first = await limiter.acquire();
    const controller = new AbortController();
    const running = pool.run({}, { name: 'waitUncancellable', signal: controller.signal });
    await until(() => limiter.stats().waiting === 1);
    controller.abort(new Error('stop'));
    await expect(running).rejects.toMatchObject({ name: 'AbortError' });
    // The terminated worker never cancelled its reservation: the schedule keeps the hole.
    const next = await limiter.acquire();
    expect(next.slotNs - first.slotNs).toBeGreaterThanOrEqual(2n * T);
    // grantedCost counts what was handed out: the terminated waiter never was.
    expect(limiter.stats()).toMatchObject({ grantedCost: 2, cancelled: 0 });
    // The pool replaced the worker and keeps working.
    expect(await pool.run({}, { name: 'whoAmI' })).toHaveProperty('threadId');
  });

  it('runCancellable + taskSignal: the waiting task rejects, gives its slot back, and its worker survives', async () => {
    const limiter = new RateLimiter({ rate });
    pool = new Piscina({ filename: TASKS, minThreads: 1, maxThreads: 1, workerData: { limiter: limiter.handle } });
    const { threadId } = (await pool.run({}, { name: 'whoAmI' })) as { threadId: number };
    const first = await limiter.acquire();
    const controller = new AbortController();
    const reason = new Error('user cancelled');
    const running = runCancellable(pool, (cancel) => ({ cancel }), { signal: controller.signal, runOptions: { name: 'waitCancellable' } });
    await until(() => limiter.stats().waiting === 1);
    expect(limiter.stats().grantedCost).toBe(1); // the waiter counts once handed out
    controller.abort(reason);
    await expect(running).rejects.toBe(reason);
    // The slot came back: cancelled counted, the reservation undone, nobody waiting.
    expect(limiter.stats()).toMatchObject({ grantedCost: 1, cancelled: 1, waiting: 0 });
    // ...so the next grant takes that very slot (it would be ≥ first + 2T had the slot been lost).
    const next = (await pool.run({}, { name: 'waitUncancellable' })) as { threadId: number; slotNs: bigint };
    expect(next.slotNs - first.slotNs).toBeLessThan(2n * T);
    expect(next.threadId).toBe(threadId); // same worker: it was not terminated
    expectStrictPair(first.slotNs, next.slotNs, T);
  });

  it('runCancellable on a task still queued: removed by Piscina, never run', async () => {
    const limiter = new RateLimiter({ rate });
    pool = new Piscina({ filename: TASKS, minThreads: 1, maxThreads: 1, workerData: { limiter: limiter.handle } });
    await limiter.acquire();
    const busyController = new AbortController();
    const busy = runCancellable(pool, (cancel) => ({ cancel }), { signal: busyController.signal, runOptions: { name: 'waitCancellable' } });
    await until(() => limiter.stats().waiting === 1);
    const controller = new AbortController();
    const queued = runCancellable(pool, (cancel) => ({ cancel }), { signal: controller.signal, runOptions: { name: 'waitCancellable' } });
    const reason = new Error('queued one cancelled');
    controller.abort(reason);
    await expect(queued).rejects.toBe(reason);
    expect(limiter.stats()).toMatchObject({ grantedCost: 1, waiting: 1 }); // the queued task reserved nothing (the waiting one counts once handed out)
    busyController.abort(new Error('done'));
    await expect(busy).rejects.toThrow('done');
    expect(limiter.stats()).toMatchObject({ grantedCost: 1, waiting: 0, cancelled: 1 });
  });

  it('a task that ignores its signal is terminated after graceMs', async () => {
    const limiter = new RateLimiter({ rate });
    pool = new Piscina({ filename: TASKS, minThreads: 1, maxThreads: 1, workerData: { limiter: limiter.handle } });
    const { threadId } = (await pool.run({}, { name: 'whoAmI' })) as { threadId: number };
    const controller = new AbortController();
    const stuck = runCancellable(pool, (cancel) => ({ cancel, ms: 60_000 }), { signal: controller.signal, graceMs: 20, runOptions: { name: 'ignoreCancel' } });
    await sleep(50); // let it start and call taskSignal (if it has not, Piscina terminates it at once: same outcome)
    const reason = new Error('give up');
    controller.abort(reason);
    await expect(stuck).rejects.toBe(reason);
    const after = (await pool.run({}, { name: 'whoAmI' })) as { threadId: number };
    expect(after.threadId).not.toBe(threadId);
  });
});

/** burst 1: two grants' slots are at least one interval apart. */
function expectStrictPair(a: bigint, b: bigint, intervalNs: bigint): void {
  expect(b - a).toBeGreaterThanOrEqual(intervalNs);
}
