// One process of the multi-process Redis test (forked by multiprocess.test.ts),
// and, in its worker threads, the workers. Loads the built library (dist/).
//
// Process: argv[2] is the JSON config; it starts `workers` worker threads,
// releases them together, and sends back what each recorded.
// Worker (plain): its own ioredis client and RedisRateLimiter; with a
// fallback, all of the process's workers fall back on one shared-memory
// RateLimiter at share × rate (created here, attached in each worker).
// Worker (leased): attaches to the process's LeasedRateLimiter (one Redis
// client in the process's main thread, which leases for all its workers).
//
// A grant is recorded as numbers:
//   plain:  [slotUs or -1 (fallback grant), calledUs, returnedUs, decidedAtUs (server clock) or -1]
//   leased: [segmentStartNs, segmentEndNs, decidedAtNs (all − baseNs), calledUs, returnedUs]
// with calledUs/returnedUs on the wall clock (µs), comparable across processes
// of one host and with the Redis server's TIME.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { RateLimiter } from '../../dist/index.js';
import { LeasedRateLimiter, RedisRateLimiter } from '../../dist/redis/index.js';

const wallUs = () => (performance.timeOrigin + performance.now()) * 1000;

function client(port) {
  const redis = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, enableOfflineQueue: false, retryStrategy: () => 20, lazyConnect: true });
  redis.on('error', () => {});
  return redis;
}

if (isMainThread) {
  const config = JSON.parse(process.argv[2]);
  let owner = null;
  let ownerClient = null;
  if (config.mode === 'leased') {
    ownerClient = client(config.port);
    await ownerClient.connect();
    owner = new LeasedRateLimiter({ redis: ownerClient, name: config.name, rate: config.rate, burst: config.burst, leaseAheadMs: config.leaseAheadMs });
  }
  const fallback = config.fallback
    ? new RateLimiter({ rate: config.rate * config.fallback.share, burst: Math.max(1, Math.round(config.burst * config.fallback.share)) })
    : null;
  const start = new Int32Array(new SharedArrayBuffer(4));
  const workers = Array.from({ length: config.workers }, (_, index) => new Worker(new URL(import.meta.url), {
    workerData: { ...config, index, start, handle: owner?.handle, fallbackHandle: fallback?.handle },
  }));
  await Promise.all(workers.map((w) => new Promise((resolve) => w.once('message', resolve)))); // ready
  process.send({ ready: true });
  process.once('message', async () => {
    Atomics.store(start, 0, 1);
    Atomics.notify(start, 0);
    const results = await Promise.all(workers.map((w) => new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    })));
    await owner?.close();
    ownerClient?.disconnect();
    process.send({ results }, () => process.exit(0));
  });
} else {
  const cfg = workerData;
  const records = [];
  const errors = {};
  let backoff = null;
  let redis = null;
  let plain = null;
  let leased = null;
  if (cfg.mode === 'leased') {
    leased = LeasedRateLimiter.attach(cfg.handle);
  } else {
    redis = client(cfg.port);
    await redis.connect();
    const fallback = cfg.fallbackHandle ? { limiter: RateLimiter.attach(cfg.fallbackHandle), retryAfterMs: cfg.fallback.retryAfterMs } : undefined;
    plain = new RedisRateLimiter({ redis, name: cfg.name, rate: cfg.rate, burst: cfg.burst, ...(fallback ? { fallback } : {}) });
  }
  parentPort.postMessage('ready');
  Atomics.wait(cfg.start, 0, 0);
  const t0 = performance.now();
  const wantsBackoff = cfg.backoff && cfg.backoff.process === cfg.processIndex && cfg.index === 0;
  while (performance.now() - t0 < cfg.durationMs) {
    if (wantsBackoff && backoff === null && performance.now() - t0 >= cfg.backoff.atMs) {
      if (plain) {
        await plain.backoff({ retryAfterMs: cfg.backoff.retryAfterMs });
        const doneUs = wallUs();
        const s = await plain.stats();
        backoff = { doneUs, pauseEndUs: s.serverTimeUs + s.pausedForMs * 1000 };
      } else {
        leased.backoff({ retryAfterMs: cfg.backoff.retryAfterMs });
        const doneUs = wallUs();
        backoff = { doneUs, pauseEndUs: doneUs + cfg.backoff.retryAfterMs * 1000 };
      }
    }
    const calledUs = wallUs();
    try {
      if (plain) {
        const g = await plain.acquire(1, { timeoutMs: 3000 });
        records.push(g.slotUs ?? -1, calledUs, wallUs(), g.decidedAtUs ?? -1);
      } else {
        const g = leased.acquireSync(1, { timeoutMs: 3000 });
        const base = BigInt(cfg.baseNs);
        records.push(Number(g.segment[0] - base), Number(g.segment[1] - base), Number(g.decidedAtNs - base), calledUs, wallUs());
      }
    } catch (error) {
      const code = error?.code ?? String(error);
      errors[code] = (errors[code] ?? 0) + 1;
      if (code !== 'E_REDIS_UNAVAILABLE' && code !== 'E_WAIT_TIMEOUT') errors.untyped = String(error?.stack ?? error);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
  redis?.disconnect();
  parentPort.postMessage({ records, errors, backoff, index: cfg.index });
}
