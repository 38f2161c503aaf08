/**
 * Real worker_threads against one shared limiter, through the public API only
 * (workers load the built package). Every assertion is an invariant that the
 * recorded times can prove broken; none depends on how fast this machine is,
 * except the utilization floors, which leave a wide margin.
 */
import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../src/index.js';
import { fifoInversions, worstBracketWindow, worstScheduleWindow } from '../support/invariants.js';
import { runWorkers } from './run-workers.js';

const WORKERS = 8;

describe('strictness across 8 worker threads', () => {
  it.each([
    { rate: 5000, burst: 1 },
    { rate: 2000, burst: 10 },
  ])('tryAcquire at saturation never exceeds burst + rate×window (rate $rate, burst $burst)', async ({ rate, burst }) => {
    const limiter = new RateLimiter({ rate, burst });
    const intervalNs = Math.ceil(1e9 / rate);
    const { records, results, startedAt, endedAt } = await runWorkers(limiter, WORKERS, { mode: 'try-spin', durationMs: 1500 });
    const total = results.reduce((sum, r) => sum + r.granted, 0);

    // Every window of every length, bracketing each grant by [before, after] its call.
    const lengths = [1, 2, 5, 10, 100, 1000].map((k) => k * intervalNs);
    expect(worstBracketWindow(records, burst, intervalNs, lengths)).toBeNull();
    // No lost update: all grants together fit in the schedule since the start
    // (the bucket was full at creation, before startedAt).
    const created = startedAt - 1e9; // generous: creation happened before the workers started
    expect(total).toBeLessThanOrEqual(burst + Math.floor((endedAt - created) / intervalNs));
    expect(limiter.stats().grantedCost).toBe(total);
    // Not starved: tryAcquire can not bank a slot while every worker is
    // descheduled, so under outside load this ratio measures the machine,
    // not the limiter (0.53 seen with load average 5 on 2 cores; ~0.99 idle,
    // see bench/). The floor still catches a limiter granting at a fraction
    // of its rate; the waiting tests below check saturation precisely.
    const ideal = burst + (1500 * 1e6) / intervalNs;
    expect(total / ideal).toBeGreaterThan(0.4);
  });

  it('CAS loses no update: 8 threads × 50 000 immediate grants all land in the shared word', async () => {
    // rate 1/1000 s with burst 1e6: every tryAcquire fits, and each one moves TAT by exactly T.
    const burst = 1_000_000;
    const limiter = new RateLimiter({ rate: 0.001, burst });
    const { results } = await runWorkers(limiter, WORKERS, { mode: 'lost-update', iterations: 50_000 });
    const total = results.reduce((sum, r) => sum + r.granted, 0);
    expect(total).toBe(WORKERS * 50_000);
    expect(limiter.stats().grantedCost).toBe(total);
    expect(limiter.stats().available).toBe(burst - total);
  });
});

describe('waiting across 8 worker threads', () => {
  it.each([
    { mode: 'acquire-async' as const, concurrency: 16, rate: 1000, burst: 1 },
    { mode: 'acquire-async' as const, concurrency: 12, rate: 400, burst: 5 },
    { mode: 'acquire-sync' as const, concurrency: 1, rate: 100, burst: 1 },
  ])('$mode (rate $rate, burst $burst): strict schedule, never early, FIFO, saturated', async ({ mode, concurrency, rate, burst }) => {
    const limiter = new RateLimiter({ rate, burst });
    const intervalNs = Math.ceil(1e9 / rate);
    const durationMs = 1500;
    const { records, startedAt } = await runWorkers(limiter, WORKERS, { mode, durationMs, concurrency });

    // The shared schedule itself obeys GCRA exactly.
    expect(worstScheduleWindow(records, burst, intervalNs)).toBeNull();
    // No caller sees its grant before it is due (no shift: slot = real due time).
    const early = records.filter((r) => r.granted < r.slot);
    expect(early).toEqual([]);
    // First come, first served across threads.
    if (mode === 'acquire-async') expect(fifoInversions(records)).toBe(0);
    // Saturated: the queue holds 80–128 ms of grants (async) or 80 ms (sync),
    // so slots go unused only when every worker is starved of CPU for longer
    // than that. Loose enough for a loaded 2-core machine; an idle one
    // measures ~100 % (bench/).
    const slotsInRun = records.filter((r) => r.slot >= startedAt && r.slot <= startedAt + durationMs * 1e6);
    const used = slotsInRun.reduce((sum, r) => sum + r.cost, 0);
    expect(used / ((durationMs * 1e6) / intervalNs)).toBeGreaterThan(0.75);
    expect(limiter.stats().waiting).toBe(0);
  });
});
