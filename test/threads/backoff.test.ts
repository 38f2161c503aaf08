/**
 * Shared backoff across real threads: one worker calls backoff() in the middle
 * of a stream of acquires from 8 workers; the recorded grants of every thread
 * must respect the pause. Exact bounds (no margin) — each check compares
 * times the recording can only make later, never earlier.
 */
import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../src/index.js';
import { fifoInversions, worstScheduleWindow } from '../support/invariants.js';
import { runWorkers } from './run-workers.js';

const WORKERS = 8;
const TRIALS = 3;

describe('shared backoff binds every thread', () => {
  it(`${TRIALS} randomized trials: nothing granted during the pause, FIFO kept, no burst after`, async () => {
    for (let trial = 0; trial < TRIALS; trial++) {
      const rate = 500;
      const intervalNs = Math.ceil(1e9 / rate);
      const backoffAtMs = 200 + Math.floor(Math.random() * 300);
      const retryAfterMs = 100 + Math.floor(Math.random() * 300);
      const caller = Math.floor(Math.random() * WORKERS);
      const limiter = new RateLimiter({ rate, burst: 1 });
      const { records, results } = await runWorkers(limiter, WORKERS, {
        mode: 'acquire-async',
        durationMs: backoffAtMs + retryAfterMs + 400,
        concurrency: 2,
        perWorker: (i) => (i === caller ? { backoffAtMs, retryAfterMs } : {}),
      });
      const b = results[caller]!.backoff!;
      expect(b).not.toBeNull();
      const pauseEnd = b.before + retryAfterMs * 1e6; // the real end is at or after this

      // Requests made after backoff() returned: none granted before the pause end.
      const startedAfter = records.filter((r) => r.callStart > b.after);
      expect(startedAfter.length).toBeGreaterThan(0);
      expect(startedAfter.filter((r) => r.granted < pauseEnd)).toEqual([]);

      // Requests already queued whose slot was not yet due when backoff()
      // returned (slot = its pre-pause due time; no earlier pause) wait too.
      const pending = records.filter((r) => r.callStart < b.before && r.slot > b.after);
      expect(pending.length).toBeGreaterThan(0);
      expect(pending.filter((r) => r.granted < pauseEnd)).toEqual([]);

      // No burst after the pause: the k-th grant after it comes ≥ k intervals after its end.
      const after = records.filter((r) => r.slot > b.after).sort((x, y) => x.slot - y.slot);
      const bursty = after.filter((r, k) => r.granted < pauseEnd + k * intervalNs);
      expect(bursty).toEqual([]);

      // The schedule stays strict and FIFO across the pause.
      expect(worstScheduleWindow(records, 1, intervalNs)).toBeNull();
      expect(fifoInversions(records)).toBe(0);
      expect(limiter.stats().throttles).toBe(1);
    }
  });
});
