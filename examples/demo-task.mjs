// One API call per Piscina task, with the strategy the demo is measuring.
import { workerData } from 'node:worker_threads';
import { RateLimiter } from '../dist/index.js';
import { limiterFromWorkerData } from '../dist/piscina.js';
import { NaiveSharedLimiter } from './naive-limiter.mjs';

const { strategy, url, clientRate, naiveBuffer } = workerData;
const retries = 50; // every strategy keeps retrying: we compare how, not whether, requests get through

// Per worker thread: what each strategy calls through.
const caller =
  strategy === 'per-thread' ? new RateLimiter({ rate: clientRate }) // "each thread limits itself"
  : strategy === 'naive' ? new NaiveSharedLimiter(naiveBuffer, clientRate)
  : limiterFromWorkerData('limiter'); // atomic-pace: one limiter for the whole pool

/**
 * Run once in every worker before the clock starts (the demo sends one per
 * worker; the barrier makes each land on a different worker): loads the task
 * module and warms the HTTP client, whose first fetch in a fresh worker can
 * take hundreds of ms and would reach the API late, out of grant order.
 */
export async function warmUp({ barrier, workers }) {
  const arrived = new Int32Array(barrier);
  Atomics.add(arrived, 0, 1);
  Atomics.notify(arrived, 0);
  for (let n; (n = Atomics.load(arrived, 0)) < workers; ) Atomics.wait(arrived, 0, n);
  for (let i = 0; i < 3; i++) await (await fetch(`${url}/_mock/health`, { method: 'POST', body: 'warm-up' })).arrayBuffer();
}

export default async function callApi({ id }) {
  const res = await caller.run(() => fetch(`${url}/v1/embed`, { method: 'POST', body: `request ${id}` }), { retries });
  await res.arrayBuffer();
  return res.status;
}
