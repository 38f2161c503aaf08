// Two processes share one limit through Redis: 5 grants per second between
// them, first come first served, and a 429 seen by one pauses both.
// Run: npm run build && node examples/redis-shared-limit.mjs
// (REDIS_URL, default redis://127.0.0.1:6379; e.g. start one with
//  `redis-server --port 6379 --save '' --appendonly no`)
import { fork } from 'node:child_process';
import { Redis } from 'ioredis';
import { RedisRateLimiter } from '../dist/redis/index.js';

const role = process.argv[2] ?? 'A';
// Fail fast: an outage surfaces as RedisUnavailableError within one round trip.
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
  maxRetriesPerRequest: 1, enableOfflineQueue: false, commandTimeout: 1000, lazyConnect: true,
});
try {
  await redis.connect();
} catch (error) {
  console.error(`no Redis at ${process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'} (${error.message}); set REDIS_URL`);
  process.exit(1);
}
const limiter = new RedisRateLimiter({ redis, name: 'example-shared', rate: 5, burst: 1 });

if (role === 'A') {
  await limiter.reset(); // a clean state for the demo
  const other = fork(new URL(import.meta.url), ['B']);
  await work();
  await new Promise((resolve) => other.once('exit', resolve));
  const { throttles } = await limiter.stats();
  console.log(`done: one limit of 5/s across 2 processes, ${throttles} shared backoff`);
} else {
  await work();
}
redis.disconnect();

async function work() {
  for (let i = 1; i <= 6; i++) {
    const grant = await limiter.acquire(1, { timeoutMs: 10_000 });
    const at = new Date().toISOString().slice(17, 23); // seconds.ms of the wall clock, shared by both
    console.log(`${role} #${i} at :${at}  (waited ${grant.waitedMs.toFixed(0).padStart(4)} ms)`);
    // Pretend the API answered 429 once: both processes pause for 1 s.
    if (role === 'B' && i === 3) await limiter.backoff({ retryAfterMs: 1000, reason: 'HTTP 429' });
  }
}
