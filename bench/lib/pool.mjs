/**
 * A few long-lived worker threads driven by commands, with a start barrier so
 * that every worker begins its timed run at the same instant on the process
 * clock.
 *
 * Protocol: main posts { op, ctrl, ... } to each worker; the worker answers
 * { ready: true } and blocks on the barrier (ctrl word 0); main then writes a
 * start time 2 ms ahead into ctrl word 1 (BigInt64), opens the barrier, and
 * each worker spins until that start time and runs until start + duration,
 * then posts its result.
 */
import { Worker } from 'node:worker_threads';

export class Pool {
  /** @param {URL} file worker script; @param {number} size */
  static async start(file, size, options = {}) {
    const workers = Array.from({ length: size }, () => new Worker(file, options));
    await Promise.all(workers.map((w) => new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    })));
    return new Pool(workers);
  }

  constructor(workers) {
    this.workers = workers;
  }

  /**
   * Runs `commandFor(i)` on the first `n` workers from a common start.
   * @returns {Promise<{ startNs: bigint, results: any[] }>}
   */
  async run(n, commandFor, { leadNs = 2_000_000n, transferFor } = {}) {
    const ctrl = new SharedArrayBuffer(16);
    const gate = new Int32Array(ctrl);
    const start = new BigInt64Array(ctrl);
    const active = this.workers.slice(0, n);
    const ready = [];
    const done = [];
    for (const [i, w] of active.entries()) {
      let onReady;
      let onNotReady;
      ready.push(new Promise((resolve, reject) => { onReady = resolve; onNotReady = reject; }));
      const finished = new Promise((resolve, reject) => {
        const fail = (error) => {
          w.off('message', onMessage);
          w.off('error', fail);
          onNotReady(error); // a worker that fails before the barrier must not leave us waiting
          reject(error);
        };
        const onMessage = (m) => {
          if (m && m.ready) return onReady();
          if (m && m.error) return fail(new Error(`worker ${i}: ${m.error}`));
          w.off('message', onMessage);
          w.off('error', fail);
          resolve(m);
        };
        w.on('message', onMessage);
        w.once('error', fail);
      });
      finished.catch(() => {}); // observed below; avoid an unhandled rejection while waiting for `ready`
      done.push(finished);
      const command = { ...commandFor(i), ctrl };
      w.postMessage(command, transferFor ? transferFor(command) : []);
    }
    try {
      await Promise.all(ready);
    } catch (error) {
      Atomics.store(gate, 0, 1); // release the others: they run a short while and report
      Atomics.store(start, 1, process.hrtime.bigint());
      Atomics.notify(gate, 0);
      await Promise.allSettled(done);
      throw error;
    }
    const startNs = process.hrtime.bigint() + leadNs;
    Atomics.store(start, 1, startNs);
    Atomics.store(gate, 0, 1);
    Atomics.notify(gate, 0);
    const results = await Promise.all(done);
    return { startNs, results };
  }

  async close() {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** Worker side of the barrier: announce readiness, block until opened, spin to the start time. Returns startNs. */
export function awaitStart(ctrl, post) {
  const gate = new Int32Array(ctrl);
  const start = new BigInt64Array(ctrl);
  post({ ready: true });
  Atomics.wait(gate, 0, 0);
  const startNs = Atomics.load(start, 1);
  while (process.hrtime.bigint() < startNs);
  return startNs;
}
