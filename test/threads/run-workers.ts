import { Worker } from 'node:worker_threads';
import type { RateLimiter } from '../../src/index.js';
import { toRecords, type GrantRecord } from '../support/invariants.js';

export interface WorkerResult {
  records: number[];
  granted: number;
  /** multi-async: tokens per grant, in record order */
  costs?: number[];
  /** permits: most permit holders this worker saw at once */
  maxSeen?: number;
  /** acquire-blocked: how many times the event loop was blocked */
  blocks?: number;
  backoff: { before: number; after: number; retryAfterMs: number } | null;
}

export interface RunOptions {
  mode: 'try-spin' | 'lost-update' | 'acquire-sync' | 'acquire-async' | 'acquire-blocked' | 'multi-async' | 'permits';
  durationMs?: number;
  concurrency?: number;
  cost?: number;
  iterations?: number;
  inFlight?: Int32Array;
  /** Per-worker extra data, by worker index. */
  perWorker?: (index: number) => Record<string, unknown>;
}

/**
 * Starts `count` workers on one limiter, releases them at the same instant,
 * and collects what each recorded. Times are ns since `baseNs`.
 */
export async function runWorkers(limiter: Pick<RateLimiter, 'handle'>, count: number, options: RunOptions) {
  const baseNs = process.hrtime.bigint();
  const start = new Int32Array(new SharedArrayBuffer(4));
  const workers = Array.from({ length: count }, (_, index) =>
    new Worker(new URL('./worker.mjs', import.meta.url), {
      workerData: { handle: limiter.handle, baseNs, start, ...options, ...(options.perWorker?.(index) ?? {}), perWorker: undefined },
    }));
  const results = workers.map((worker) => new Promise<WorkerResult>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => { if (code !== 0) reject(new Error(`worker exited with ${code}`)); });
  }));
  await Promise.all(workers.map((worker) => new Promise((resolve) => worker.once('online', resolve))));
  const startedAt = Number(process.hrtime.bigint() - baseNs);
  Atomics.store(start, 0, 1);
  Atomics.notify(start, 0);
  const done = await Promise.all(results);
  const endedAt = Number(process.hrtime.bigint() - baseNs);
  await Promise.all(workers.map((worker) => worker.terminate()));
  const records: GrantRecord[] = done.flatMap((r, i) => toRecords(r.records, options.cost ?? 1, i));
  return { results: done, records, startedAt, endedAt, baseNs };
}
