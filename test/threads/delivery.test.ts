/**
 * Delivery-time strictness with real threads whose event loops are blocked
 * by CPU work (30–300 ms at random) while their grants come due: the window
 * invariant must hold on the instants acquire() resolved, not only on the
 * schedule. Each grant's instant is bracketed by a proven lower bound (the
 * end of the thread's latest block, or the call's start) and the moment the
 * caller saw it; a violation counts only when the brackets prove it.
 */
import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../src/index.js';
import { worstProvenWindow, worstScheduleWindow } from '../support/invariants.js';
import { runWorkers } from './run-workers.js';

describe('delivery-time strictness across blocked event loops', () => {
  it.each([
    { rate: 200, burst: 1, concurrency: 4 },
    { rate: 500, burst: 4, concurrency: 6 },
  ])('rate $rate, burst $burst: no window of delivered grants over burst + rate×length', async ({ rate, burst, concurrency }) => {
    const limiter = new RateLimiter({ rate, burst });
    const intervalNs = Math.ceil(1e9 / rate);
    const { records, results } = await runWorkers(limiter, 6, {
      mode: 'acquire-blocked', durationMs: 2500, concurrency,
      perWorker: (i) => ({ seed: 17 + i * 7919 }),
    });
    const blocks = results.reduce((s, r) => s + (r.blocks ?? 0), 0);
    // The run is meaningful: blocks happened, and grants came out right after them.
    expect(blocks).toBeGreaterThan(20);
    const afterBlock = records.filter((r) => r.callReturned > r.callStart);
    expect(afterBlock.length).toBeGreaterThan(20);

    const lengths = [0.25, 0.5, 1, 2, 5, 20].map((k) => Math.floor(k * intervalNs));
    // callReturned holds the proven lower bound of each delivery (worker.mjs).
    expect(worstProvenWindow(records, burst, intervalNs, lengths, (r) => r.callReturned, (r) => r.granted)).toBeNull();
    // The queue itself stays strict, and nobody is handed a grant before its place is due.
    expect(worstScheduleWindow(records, burst, intervalNs)).toBeNull();
    expect(records.filter((r) => r.granted < r.slot)).toEqual([]);
    expect(limiter.stats().waiting).toBe(0);
  });
});
