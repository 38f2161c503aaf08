/**
 * The end-to-end scenario: a real Piscina pool of 8 workers calls the
 * strict mock API through one shared limiter set to 90 % of the API's limit,
 * while the API throttles spuriously. Every request must succeed, none may
 * exceed the limit, none may arrive while a Retry-After is running, and
 * throughput must stay close to the configured rate.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Piscina } from 'piscina';
import { RateLimiter } from '../../src/index.js';
import { startMockApi, type MockApi } from '../../src/testing/index.js';

const LIMIT = 20; // requests per sliding second at the API
const RATE = LIMIT * 0.9; // the limiter: 18/s, burst 1, one request every 55.6 ms
const WORKERS = 8;
const REQUESTS = 150; // about 8.3 s at RATE, plus the pauses the API asks for
// Every 429 asks for 300 ms, over five slots of the schedule. A backoff that
// did not reach every worker would let the other workers' next requests into
// that penalty box, so zero violations shows the pause is shared.
const RETRY_AFTER_MS = 300;
// Margins, and what the limiter can not control. A request is in flight
// between its grant and its arrival: (1) a 429 is only known once it is back,
// so a request granted before that lands in the penalty box — that needs the
// 429's round trip to exceed one slot (55.6 ms); (2) at 90 % of the limit an
// over-limit 429 needs arrivals bunched by more than ~110 ms of jitter
// (19 slots must fit in a 1 s window). Both were seen only with the CPU
// saturated by other processes, never on a merely busy machine; the warm-up
// below removes the worst jitter, a fresh worker's first fetch.

interface CallResult {
  id: number;
  status: number;
  attempts: number;
  start: bigint;
  end: bigint;
}

let api: MockApi;
beforeAll(async () => {
  api = await startMockApi({ limit: LIMIT, windowMs: 1000, spuriousRate: 0.02, retryAfterMs: RETRY_AFTER_MS, latencyMs: [5, 25], seed: 2024 });
});
afterAll(() => api.close());

describe('end to end: Piscina pool of 8 workers, mock API at 90 % of its limit, spurious throttles', () => {
  it('every request succeeds, zero over-limit 429s, zero penalty-box violations, throughput close to the rate', async () => {
    const limiter = new RateLimiter({ rate: RATE, burst: 1 });
    const pool = new Piscina({
      filename: new URL('./e2e-task.mjs', import.meta.url).href,
      minThreads: WORKERS,
      maxThreads: WORKERS,
      workerData: { limiter: limiter.handle, url: api.url },
    });
    try {
      const barrier = new SharedArrayBuffer(4);
      await Promise.all(Array.from({ length: WORKERS }, () => pool.run({ barrier, workers: WORKERS }, { name: 'warmUp' })));
      expect(api.stats().total).toBe(0); // the warm-up is not counted

      const results = (await Promise.all(Array.from({ length: REQUESTS }, (_, id) => pool.run({ id })))) as CallResult[];

      // Every request eventually succeeded, once each.
      expect(results.every((r) => r.status === 200)).toBe(true);
      const server = api.stats();
      expect(server.accepted).toBe(REQUESTS);
      // Strict: the pool never exceeded the API's window, and after each 429
      // no worker sent anything until the pause it asked for was over.
      expect(server.overLimit).toBe(0);
      expect(server.violations).toBe(0);
      // Throttles did happen, and each 429 became exactly one shared backoff
      // and one retry.
      expect(server.spurious).toBeGreaterThan(0);
      expect(limiter.stats().throttles).toBe(server.spurious);
      expect(results.reduce((sum, r) => sum + r.attempts, 0)).toBe(REQUESTS + server.spurious);
      expect(server.total).toBe(REQUESTS + server.spurious);

      // Throughput over the run, first call to last answer. At best it is
      // REQUESTS / (REQUESTS / RATE + spurious × 300 ms), ~85 % of RATE with
      // the 5 spurious 429s this seed gives. A late wake-up on a busy
      // machine delays one request but not the shared schedule, so what is
      // lost beyond that is the last answer's latency and each retry's jitter.
      // 70 % of RATE leaves room for a loaded 2-core machine.
      const first = results.reduce((min, r) => (r.start < min ? r.start : min), results[0]!.start);
      const last = results.reduce((max, r) => (r.end > max ? r.end : max), results[0]!.end);
      const seconds = Number(last - first) / 1e9;
      const throughput = REQUESTS / seconds;
      expect(throughput).toBeGreaterThanOrEqual(0.7 * RATE);
      // burst 1: REQUESTS + spurious grants at least 1/RATE apart; never above the rate.
      expect(throughput).toBeLessThanOrEqual(RATE * (REQUESTS / (REQUESTS + server.spurious - 1)));
      console.log(`e2e: ${REQUESTS} requests in ${seconds.toFixed(1)} s, ${throughput.toFixed(1)}/s of ${RATE}/s, ${server.spurious} spurious 429s`);
    } finally {
      await pool.destroy();
    }
  });
});
