// One API call per Piscina task, through the pool's shared limiter (plain JS:
// loaded by Piscina's workers, which vitest does not transform).
import { workerData } from 'node:worker_threads';
import { limiterFromWorkerData } from '../../dist/piscina.js';

/**
 * Once per worker before the measured run (a barrier puts one on each
 * worker): loads this module and warms the HTTP client. A fresh worker's
 * first fetch can take hundreds of ms on a busy machine, and would reach the
 * API late and out of grant order, possibly after a 429 issued meanwhile.
 */
export async function warmUp({ barrier, workers }) {
  const arrived = new Int32Array(barrier);
  Atomics.add(arrived, 0, 1);
  Atomics.notify(arrived, 0);
  for (let n; (n = Atomics.load(arrived, 0)) < workers; ) Atomics.wait(arrived, 0, n);
  for (let i = 0; i < 3; i++) await (await fetch(`${workerData.url}/_mock/health`, { method: 'POST', body: 'warm-up' })).arrayBuffer();
}

export default async function callApi({ id }) {
  const limiter = limiterFromWorkerData('limiter');
  const start = process.hrtime.bigint();
  let attempts = 0;
  const res = await limiter.run(
    () => {
      attempts++;
      return fetch(`${workerData.url}/v1/embed`, { method: 'POST', body: `chunk ${id}` });
    },
    { retries: 20 },
  );
  await res.arrayBuffer();
  return { id, status: res.status, attempts, start, end: process.hrtime.bigint() };
}
