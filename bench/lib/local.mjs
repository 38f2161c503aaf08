/**
 * Small pieces several benchmark files share: a free local port, and the
 * naive shared limiter the suites compare against.
 */
import net from 'node:net';

/** A free TCP port on 127.0.0.1 (asked of the OS, then released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The naive shared limiter: a spin-and-wait lock on a SharedArrayBuffer
 * (16 bytes: [0] lock, [1] a word nobody notifies, then the last grant in ms),
 * whose holder sleeps (Atomics.wait) until one interval after the previous
 * grant, then records when it went.
 */
export function naiveLockSleep(buffer, intervalMs) {
  const lock = new Int32Array(buffer, 0, 2);
  const last = new Float64Array(buffer, 8, 1);
  while (Atomics.compareExchange(lock, 0, 0, 1) !== 0) Atomics.wait(lock, 0, 1, 1);
  try {
    const now = Number(process.hrtime.bigint()) / 1e6;
    const due = last[0] + intervalMs;
    if (due > now) Atomics.wait(lock, 1, 0, due - now);
    last[0] = Math.max(due, now);
  } finally {
    Atomics.store(lock, 0, 0);
    Atomics.notify(lock, 0, 1);
  }
}
