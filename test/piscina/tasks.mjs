// Piscina tasks for the pool tests. Plain JS on purpose: Piscina loads this
// file in its workers, which vitest does not transform, so it imports the
// built package (dist/, built by `npm test`'s pretest step).
import { threadId } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { limiterFromHandle, limiterFromWorkerData, taskSignal } from '../../dist/piscina.js';

/** Every limiter instance this worker thread was handed, to show it attaches once. */
const seen = new Set();

/** Acquires once; reports the grant with the times around the call (ns, process-wide clock). */
export async function acquire({ source, handle }) {
  const limiter = source === 'workerData' ? limiterFromWorkerData('limiter') : limiterFromHandle(handle);
  if (source === 'workerData') seen.add(limiter);
  const before = process.hrtime.bigint();
  const grant = await limiter.acquire();
  const after = process.hrtime.bigint();
  return { threadId, before, after, slotNs: grant.slotNs, attachedInThisThread: seen.size };
}

/** Waits for a grant with no signal: only Piscina's own abort (terminating the worker) can stop it. */
export async function waitUncancellable() {
  const grant = await limiterFromWorkerData('limiter').acquire();
  return { threadId, slotNs: grant.slotNs };
}

/** Waits for a grant with the signal of runCancellable's token. */
export async function waitCancellable({ cancel }) {
  const signal = taskSignal(cancel);
  const grant = await limiterFromWorkerData('limiter').acquire(1, { signal });
  return { threadId, slotNs: grant.slotNs };
}

/** Calls taskSignal but ignores it: only the grace period (worker terminated) can stop it. */
export async function ignoreCancel({ cancel, ms }) {
  taskSignal(cancel);
  await sleep(ms);
  return { threadId };
}

export function whoAmI() {
  return { threadId };
}
