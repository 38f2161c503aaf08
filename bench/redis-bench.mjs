#!/usr/bin/env node
/**
 * The Redis store's figures, standalone: `node bench/redis-bench.mjs [--quick]`
 * (build first: `npm run build`). Starts its own redis-server (free port, no
 * persistence) and writes bench/results/redis.json and bench/results/redis.md.
 *
 * 1. Serial acquire/s over Redis: atomic-pace RedisRateLimiter.acquire() vs
 *    rate-limiter-flexible RateLimiterRedis.consume(), on the same ioredis
 *    client (configured as our docs advise: fail fast, `commandTimeout`),
 *    in the same run, in a random order each round, medians.
 *    Neither limit binds (rates far above what one connection carries): this
 *    is the cost of one decision. Also 64 calls in flight on the connection.
 * 2. Leased slots vs plain Redis: LeasedRateLimiter.acquire() serially on the
 *    main thread, and acquireSync() from 4 worker threads (the owner leasing
 *    on the main thread), vs plain RedisRateLimiter.acquire() serially.
 *
 * Targets (issue 8): (1) ≥ 1.0× rate-limiter-flexible, serial; (2) ≥ 100×.
 * Ratios within one run are what to trust; absolute figures move with the
 * machine's load (recorded alongside).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { LeasedRateLimiter, RedisRateLimiter } from '../dist/redis/index.js';

const QUICK = process.argv.includes('--quick');
const ROUND_MS = QUICK ? 400 : 1000;
const ROUNDS = QUICK ? 3 : 9;

if (!isMainThread) {
  // A worker of the leased front: acquireSync until the deadline.
  const limiter = LeasedRateLimiter.attach(workerData.handle);
  Atomics.wait(workerData.start, 0, 0);
  const deadline = performance.now() + workerData.ms;
  let n = 0;
  while (performance.now() < deadline) {
    for (let i = 0; i < 256; i++) limiter.acquireSync();
    n += 256;
  }
  parentPort.postMessage(n);
} else {
  await main();
}

async function main() {
  const server = await startRedis();
  // The client as the Redis store's docs advise (fail fast; the client enforces the reply deadline), shared by both contenders.
  const redis = new Redis({ host: '127.0.0.1', port: server.port, maxRetriesPerRequest: 1, enableOfflineQueue: false, commandTimeout: 2000, lazyConnect: true });
  await redis.connect();
  const results = { machine: machine(), loadBefore: os.loadavg().map(round2), quick: QUICK, roundMs: ROUND_MS, rounds: ROUNDS, redis: server.version };
  try {
    log(`redis-server ${server.version} on 127.0.0.1:${server.port}; ${ROUNDS} rounds of ${ROUND_MS} ms`);

    // ---------------------------------------------------------------- 1.
    const ap = new RedisRateLimiter({ redis, name: 'bench-ap', rate: 1e9, burst: 1e9 });
    const rlf = new RateLimiterRedis({ storeClient: redis, keyPrefix: 'bench-rlf', points: 1e9, duration: 1 });
    await ap.acquire();
    await rlf.consume('k');
    const serial = { ap: [], rlf: [], apTry: [] };
    const inFlight = { ap: [], rlf: [] };
    const runs = {
      'serial ap': async () => serial.ap.push(await rate(() => ap.acquire())),
      'serial rlf': async () => serial.rlf.push(await rate(() => rlf.consume('k'))),
      'serial apTry': async () => serial.apTry.push(await rate(() => ap.tryAcquire())),
      'inFlight ap': async () => inFlight.ap.push(await rate(() => ap.acquire(), 64)),
      'inFlight rlf': async () => inFlight.rlf.push(await rate(() => rlf.consume('k'), 64)),
    };
    for (let r = 0; r < ROUNDS; r++) {
      // A fresh random order each round: no contender always follows the heavy 64-in-flight runs.
      for (const name of shuffled(Object.keys(runs))) await runs[name]();
      log(`round ${r + 1}: serial acquire ${fmt(serial.ap.at(-1))}/s vs RLF ${fmt(serial.rlf.at(-1))}/s; 64 in flight ${fmt(inFlight.ap.at(-1))}/s vs ${fmt(inFlight.rlf.at(-1))}/s`);
    }
    results.vsRateLimiterFlexible = {
      serialAcquirePerSec: median(serial.ap),
      serialTryAcquirePerSec: median(serial.apTry),
      rlfSerialConsumePerSec: median(serial.rlf),
      serialRatio: round2(median(serial.ap) / median(serial.rlf)),
      roundRatios: serial.ap.map((x, i) => round2(x / serial.rlf[i])),
      inFlight64AcquirePerSec: median(inFlight.ap),
      rlfInFlight64PerSec: median(inFlight.rlf),
      inFlight64Ratio: round2(median(inFlight.ap) / median(inFlight.rlf)),
      target: '>= 1.0x serial',
    };

    // ---------------------------------------------------------------- 2.
    const rate2 = 1e8;
    // Separate keys: plain placements must not queue behind the leased stretches.
    const plain = new RedisRateLimiter({ redis, name: 'bench-plain', rate: rate2, burst: 1000 });
    const leased = new LeasedRateLimiter({ redis, name: 'bench-lease', rate: rate2, burst: 1000, leaseAheadMs: 100 });
    await plain.acquire();
    await leased.acquire();
    const plainSerial = [];
    const leasedSerial = [];
    const leasedThreads = [];
    for (let r = 0; r < ROUNDS; r++) {
      plainSerial.push(await rate(async () => { await plain.acquire(); }));
      leasedSerial.push(await rate(async () => { await leased.acquire(); }));
      leasedThreads.push(await threads(leased.handle, 4, ROUND_MS));
      log(`round ${r + 1}: plain ${fmt(plainSerial.at(-1))}/s, leased serial ${fmt(leasedSerial.at(-1))}/s, leased 4 threads ${fmt(leasedThreads.at(-1))}/s`);
    }
    const stats = leased.stats();
    await leased.close();
    results.leasedVsPlain = {
      rate: rate2,
      plainSerialAcquirePerSec: median(plainSerial),
      leasedSerialAcquirePerSec: median(leasedSerial),
      leased4ThreadsAcquireSyncPerSec: median(leasedThreads),
      serialRatio: round2(median(leasedSerial) / median(plainSerial)),
      threadsRatio: round2(median(leasedThreads) / median(plainSerial)),
      leases: stats.leases,
      stalls: stats.stalls,
      target: '>= 100x',
    };
  } finally {
    redis.disconnect();
    await server.stop();
  }
  results.loadAfter = os.loadavg().map(round2);
  const dir = new URL('./results/', import.meta.url);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(new URL('redis.json', dir), `${JSON.stringify(results, null, 2)}\n`);
  fs.writeFileSync(new URL('redis.md', dir), markdown(results));
  process.stdout.write(markdown(results));
}

/** Calls/s of `fn` over one round, `parallel` loops at once. */
async function rate(fn, parallel = 1) {
  for (let i = 0; i < 50; i++) await fn(); // warm
  let calls = 0;
  const deadline = performance.now() + ROUND_MS;
  const start = performance.now();
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (performance.now() < deadline) {
      await fn();
      calls++;
    }
  }));
  return calls / ((performance.now() - start) / 1000);
}

async function threads(handle, count, ms) {
  const start = new Int32Array(new SharedArrayBuffer(4));
  const workers = Array.from({ length: count }, () => new Worker(new URL(import.meta.url), { workerData: { handle, start, ms } }));
  await Promise.all(workers.map((w) => new Promise((resolve) => w.once('online', resolve))));
  const t0 = performance.now();
  Atomics.store(start, 0, 1);
  Atomics.notify(start, 0);
  const counts = await Promise.all(workers.map((w) => new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); })));
  const elapsed = (performance.now() - t0) / 1000;
  await Promise.all(workers.map((w) => w.terminate()));
  return counts.reduce((a, b) => a + b, 0) / elapsed;
}

function markdown(r) {
  const a = r.vsRateLimiterFlexible;
  const b = r.leasedVsPlain;
  const mark = (ok) => (ok ? 'met' : '**missed**');
  return [
    '# Redis store',
    '',
    `${r.machine.cpu}, ${r.machine.cores} cores, Node ${r.machine.node}, redis-server ${r.redis} on the same machine; load ${r.loadBefore.join(' / ')} before, ${r.loadAfter.join(' / ')} after. ${r.rounds} interleaved rounds of ${r.roundMs} ms, medians${r.quick ? ' (--quick)' : ''}.`,
    '',
    '## One decision per round trip: vs rate-limiter-flexible',
    '',
    '| calls/s (same ioredis connection) | atomic-pace RedisRateLimiter | rate-limiter-flexible RateLimiterRedis | ratio |',
    '|---|---|---|---|',
    `| serial \`await acquire()\` / \`consume()\` | ${fmt(a.serialAcquirePerSec)} | ${fmt(a.rlfSerialConsumePerSec)} | **${a.serialRatio}×** (rounds: ${a.roundRatios.join(', ')}) |`,
    `| serial \`await tryAcquire()\` | ${fmt(a.serialTryAcquirePerSec)} | | |`,
    `| 64 in flight | ${fmt(a.inFlight64AcquirePerSec)} | ${fmt(a.rlfInFlight64PerSec)} | ${a.inFlight64Ratio}× |`,
    '',
    `Target ≥ 1.0× serial: ${mark(a.serialRatio >= 1)}. Both are one EVALSHA per call on the same connection. RLF's script is a fixed-window counter (SET NX, INCRBY, PTTL); atomic-pace's reads the server clock (TIME) and the schedule (HMGET), decides GCRA with pauses and FIFO, and writes one field — its client path is the lighter one (~1 µs vs ~2 µs per call without I/O), the script the heavier.`,
    '',
    `## Leased slots vs plain Redis (rate ${fmt(b.rate)}/s, so the limit does not bind)`,
    '',
    '| grants/s | |',
    '|---|---|',
    `| plain RedisRateLimiter, serial \`await acquire()\` | ${fmt(b.plainSerialAcquirePerSec)} |`,
    `| LeasedRateLimiter, serial \`await acquire()\` on the owner's thread | ${fmt(b.leasedSerialAcquirePerSec)} (**${b.serialRatio}×**) |`,
    `| LeasedRateLimiter, \`acquireSync()\` in 4 worker threads, total | ${fmt(b.leased4ThreadsAcquireSyncPerSec)} (**${b.threadsRatio}×**) |`,
    '',
    `Target ≥ 100×: ${mark(b.serialRatio >= 100)} (serial), ${mark(b.threadsRatio >= 100)} (threads). ${b.leases} leases, ${b.stalls} stalls (a thread waiting for the next lease) in the leased runs.`,
    '',
  ].join('\n');
}

async function startRedis() {
  const port = await new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port: p } = s.address(); s.close(() => resolve(p)); });
  });
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited: ${out}`);
    const up = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write('PING\r\n'));
      socket.once('data', (d) => { socket.destroy(); resolve(String(d).startsWith('+PONG')); });
      socket.once('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error('redis-server did not start');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const version = /version=([\d.]+)/.exec(out)?.[1] ?? "unknown";
  return { port, version, stop: () => new Promise((resolve) => { child.once('exit', resolve); child.kill(); }) };
}

function machine() {
  return { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, node: process.version, platform: `${os.platform()} ${os.release()}` };
}
function shuffled(xs) {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.floor(s.length / 2)]);
}
function round2(x) { return Math.round(x * 100) / 100; }
function fmt(x) { return x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} k` : x.toFixed(0); }
function log(message) { process.stderr.write(`[redis-bench] ${message}\n`); }
