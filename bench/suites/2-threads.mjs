/**
 * Suite 2 — total throughput of one limit shared by 1, 2, 4, 8 worker threads.
 *
 * Each worker spins "may I take 1 unit now?" for a fixed time from a common
 * start; the figure is the sum of calls over all workers divided by the run
 * time. Contenders:
 *   - atomic-pace: every worker attaches the same limiter and calls tryAcquire;
 *   - the bare GCRA floor on the same shared buffer (the physical limit);
 *   - a central token bucket (limiter's TokenBucket) in the main thread,
 *     reached by postMessage request/reply over a MessagePort per worker,
 *     with 1 and with 16 requests in flight per worker: the best a user can
 *     do without shared memory;
 *   - atomic-pace's Redis store (RedisRateLimiter.tryAcquire over ioredis, a
 *     local redis-server started for the run, no persistence), 1 and 16
 *     calls in flight per worker: the limit shared through Redis instead of
 *     memory. "n/a" when the store, ioredis or redis-server is missing.
 * atomic-pace and the floor run twice: at a rate that never refuses, and
 * saturated at 1000/s (nearly every call refused). The postMessage path costs
 * the same whatever the answer, so it runs once, never refusing.
 *
 * The machine has 2 cores: beyond 2 workers, threads time-share the cores, so
 * totals can only stay flat or fall; what matters is that they do not collapse.
 */
import { MessageChannel } from 'node:worker_threads';
import { TokenBucket } from 'limiter';
import { RateLimiter } from '../../dist/index.js';
import { newFloorBuffer } from '../lib/floor.mjs';
import { fmtRate, fmtRatio, progress } from '../lib/env.mjs';
import { median } from '../lib/stats.mjs';
import { Pool } from '../lib/pool.mjs';
import { startRedisServer } from '../lib/redis-server.mjs';
import { axisRate, barChart, COLORS } from '../lib/svg.mjs';

const SUITE = '2 threads';
const WORKER_COUNTS = [1, 2, 4, 8];
const SAT_RATE = 1000;

const VARIANTS = [
  { id: 'ap', name: 'atomic-pace tryAcquire (shared)', color: COLORS.ours },
  { id: 'floor', name: 'bare GCRA floor (shared buffer)', color: COLORS.floor },
  { id: 'ap-sat', name: `atomic-pace tryAcquire, saturated ${SAT_RATE}/s`, color: COLORS.ours },
  { id: 'floor-sat', name: `bare GCRA floor, saturated ${SAT_RATE}/s`, color: COLORS.floor },
  { id: 'pm16', name: 'central bucket via postMessage, 16 in flight/worker', color: COLORS.slow },
  { id: 'pm1', name: 'central bucket via postMessage, 1 in flight/worker', color: COLORS.slow },
];
const REDIS_VARIANTS = [
  { id: 'redis16', name: 'atomic-pace Redis store, 16 in flight/worker', color: COLORS.peer },
  { id: 'redis1', name: 'atomic-pace Redis store, 1 in flight/worker', color: COLORS.peer },
];
let nameSeq = 0;

async function runVariant(pool, id, n, durationNs, redis) {
  if (id === 'redis16' || id === 'redis1') {
    const name = `bench-${process.pid}-${++nameSeq}`;
    const inFlight = id === 'redis16' ? 16 : 1;
    const { results } = await pool.run(n, () => ({ op: 'redis', port: redis.port, name, rate: 1e9, burst: 1e9, inFlight, durationNs }));
    return results;
  }
  if (id === 'ap' || id === 'ap-sat') {
    const limiter = id === 'ap' ? new RateLimiter({ rate: 1e9, burst: 1e9 }) : new RateLimiter({ rate: SAT_RATE, burst: 1 });
    const { results } = await pool.run(n, () => ({ op: 'ap', handle: limiter.handle, durationNs }));
    return results;
  }
  if (id === 'floor' || id === 'floor-sat') {
    const buffer = newFloorBuffer();
    const [intervalNs, burst] = id === 'floor' ? [1, 1e9] : [1e9 / SAT_RATE, 1];
    const { results } = await pool.run(n, () => ({ op: 'floor', buffer, intervalNs, burst, durationNs }));
    return results;
  }
  // postMessage: the main thread owns the bucket and answers each request.
  const bucket = new TokenBucket({ bucketSize: 1e12, tokensPerInterval: 1e12, interval: 'second' });
  const inFlight = id === 'pm16' ? 16 : 1;
  const channels = Array.from({ length: n }, () => new MessageChannel());
  for (const { port1 } of channels) port1.on('message', () => port1.postMessage(bucket.tryRemoveTokens(1)));
  try {
    const { results } = await pool.run(
      n,
      (i) => ({ op: 'pm', port: channels[i].port2, inFlight, durationNs }),
      { transferFor: (cmd) => [cmd.port] },
    );
    return results;
  } finally {
    for (const { port1 } of channels) port1.close();
  }
}

export async function run({ quick }) {
  const durationMs = quick ? 150 : 1000;
  const reps = quick ? 1 : 3;
  const durationNs = BigInt(durationMs) * 1_000_000n;
  const pool = await Pool.start(new URL('../workers/spin-worker.mjs', import.meta.url), Math.max(...WORKER_COUNTS));
  const redisServer = await startRedisServer();
  const redis = redisServer.unavailable ?? `redis-server ${redisServer.version} on 127.0.0.1 (same machine), ioredis, RedisRateLimiter.tryAcquire`;
  progress(SUITE, `Redis-backed limiting: ${redis}`);
  const variants = redisServer.unavailable ? VARIANTS : [...VARIANTS, ...REDIS_VARIANTS];
  try {
    progress(SUITE, 'warming up the workers…');
    for (const v of variants) await runVariant(pool, v.id, 8, quick ? 20_000_000n : 50_000_000n, redisServer);

    // raw[id][n] = list of { total calls/s, granted/s } per repetition
    const raw = Object.fromEntries(variants.map((v) => [v.id, Object.fromEntries(WORKER_COUNTS.map((n) => [n, []]))]));
    for (let rep = 0; rep < reps; rep++) {
      for (const n of WORKER_COUNTS) {
        for (const v of variants) {
          const results = await runVariant(pool, v.id, n, durationNs, redisServer);
          const calls = results.reduce((s, r) => s + r.calls, 0);
          const granted = results.reduce((s, r) => s + r.granted, 0);
          const seconds = durationMs / 1000;
          raw[v.id][n].push({ callsPerSec: calls / seconds, grantedPerSec: granted / seconds, perWorker: results.map((r) => r.calls / seconds) });
          progress(SUITE, `rep ${rep + 1}/${reps}, ${n} worker${n > 1 ? 's' : ''}, ${v.name}: ${fmtRate(calls / seconds)}`);
        }
      }
    }
    const table = variants.map((v) => ({
      id: v.id,
      name: v.name,
      color: v.color,
      byWorkers: Object.fromEntries(WORKER_COUNTS.map((n) => {
        const reps_ = raw[v.id][n];
        return [n, {
          callsPerSec: median(reps_.map((r) => r.callsPerSec)),
          grantedPerSec: median(reps_.map((r) => r.grantedPerSec)),
          reps: reps_.map((r) => Math.round(r.callsPerSec)),
        }];
      })),
    }));
    // Ratios per repetition (variants of one repetition ran seconds apart), then the median.
    const ratio = (a, b, n) => median(raw[a][n].map((r, i) => r.callsPerSec / raw[b][n][i].callsPerSec));
    const ratios = Object.fromEntries(WORKER_COUNTS.map((n) => [n, {
      apVsPm16: ratio('ap', 'pm16', n),
      apVsPm1: ratio('ap', 'pm1', n),
      apVsFloor: ratio('ap', 'floor', n),
      apSatVsFloorSat: ratio('ap-sat', 'floor-sat', n),
      ...(redisServer.unavailable ? {} : { apVsRedis16: ratio('ap', 'redis16', n), apVsRedis1: ratio('ap', 'redis1', n) }),
    }]));
    return { durationMs, reps, workerCounts: WORKER_COUNTS, saturatedRate: SAT_RATE, table, ratios, redis };
  } finally {
    await pool.close();
    if (redisServer.stop) await redisServer.stop();
  }
}

export function report(data, meta) {
  const r8 = data.ratios[8];
  const targets = [
    {
      id: 'threads-pm16',
      name: 'total tryAcquire, 8 workers: vs postMessage central limiter, 16 in flight/worker (its best)',
      target: '≥ 100x',
      measured: fmtRatio(r8.apVsPm16),
      pass: r8.apVsPm16 >= 100,
    },
    {
      id: 'threads-pm1',
      name: 'total tryAcquire, 8 workers: vs postMessage central limiter, 1 in flight/worker',
      target: '≥ 100x',
      measured: fmtRatio(r8.apVsPm1),
      pass: r8.apVsPm1 >= 100,
    },
  ];
  const row = (id) => data.table.find((t) => t.id === id);
  const lines = [];
  lines.push('## 2. Total throughput, one limit shared by N worker threads');
  lines.push('');
  lines.push(`Each worker spins "may I take 1 unit now?" for ${data.durationMs} ms from a common start; figures are total calls/s over all workers, ` +
    `median of ${data.reps} repetition${data.reps > 1 ? 's' : ''}. The machine has ${meta.machine.cores} cores, so above ${meta.machine.cores} workers threads time-share them.`);
  lines.push('');
  lines.push(`| contender | ${data.workerCounts.map((n) => `${n} worker${n > 1 ? 's' : ''}`).join(' | ')} |`);
  lines.push(`|---|${data.workerCounts.map(() => '---').join('|')}|`);
  for (const t of data.table) {
    lines.push(`| ${t.name} | ${data.workerCounts.map((n) => fmtRate(t.byWorkers[n].callsPerSec)).join(' | ')} |`);
  }
  if (!data.table.some((t) => t.id.startsWith('redis'))) lines.push(`| Redis-backed limiting | ${data.workerCounts.map(() => data.redis).join(' | ')} |`);
  lines.push('');
  lines.push(`| ratio (median of per-repetition ratios) | ${data.workerCounts.map((n) => `${n}`).join(' | ')} |`);
  lines.push(`|---|${data.workerCounts.map(() => '---').join('|')}|`);
  lines.push(`| atomic-pace / postMessage 16 in flight | ${data.workerCounts.map((n) => fmtRatio(data.ratios[n].apVsPm16)).join(' | ')} |`);
  lines.push(`| atomic-pace / postMessage 1 in flight | ${data.workerCounts.map((n) => fmtRatio(data.ratios[n].apVsPm1)).join(' | ')} |`);
  if (data.ratios[8].apVsRedis16 !== undefined) {
    lines.push(`| atomic-pace / Redis store 16 in flight | ${data.workerCounts.map((n) => fmtRatio(data.ratios[n].apVsRedis16)).join(' | ')} |`);
    lines.push(`| atomic-pace / Redis store 1 in flight | ${data.workerCounts.map((n) => fmtRatio(data.ratios[n].apVsRedis1)).join(' | ')} |`);
  }
  lines.push(`| atomic-pace / floor (always grants) | ${data.workerCounts.map((n) => fmtRatio(data.ratios[n].apVsFloor)).join(' | ')} |`);
  lines.push(`| atomic-pace / floor (saturated) | ${data.workerCounts.map((n) => fmtRatio(data.ratios[n].apSatVsFloorSat)).join(' | ')} |`);
  lines.push('');
  const sat = row('ap-sat');
  lines.push(`Granted in the saturated runs (should be ≈ ${data.saturatedRate}/s whatever the worker count): ` +
    data.workerCounts.map((n) => `${n}: ${sat.byWorkers[n].grantedPerSec.toFixed(0)}/s`).join(', ') + '.');
  lines.push('');

  const rows = [];
  for (const n of data.workerCounts) {
    rows.push({ heading: `${n} worker${n > 1 ? 's' : ''}` });
    for (const id of ['ap', 'floor', 'pm16', 'pm1', 'redis16', 'redis1']) {
      const t = row(id);
      if (!t) continue;
      rows.push({ label: t.name, value: t.byWorkers[n].callsPerSec, color: t.color });
    }
  }
  const charts = [{
    file: 'threads.svg',
    svg: barChart({
      title: 'One limit shared by N worker threads: total tryAcquire calls per second (log scale)',
      subtitle: `blue = atomic-pace (SharedArrayBuffer + CAS), grey = bare GCRA floor, red = central bucket in the main thread via postMessage, amber = atomic-pace's Redis store (local redis-server); ${meta.machine.cores}-core machine`,
      rows,
      log: true,
      format: fmtRate,
      axisFormat: axisRate,
      footer: `Redis-backed limiting (amber): ${data.redis}`,
    }),
  }];
  const headline = [
    { measure: 'tryAcquire across 8 workers, one shared limit (total)', value: fmtRate(row('ap').byWorkers[8].callsPerSec), vs: `central limiter via postMessage, 16 in flight/worker: ${fmtRate(row('pm16').byWorkers[8].callsPerSec)}`, ratio: fmtRatio(r8.apVsPm16) },
  ];
  if (row('redis16')) {
    headline.push({ measure: 'tryAcquire across 8 workers, one shared limit (total)', value: fmtRate(row('ap').byWorkers[8].callsPerSec), vs: `the same limit in Redis (atomic-pace/redis, local server), 16 in flight/worker: ${fmtRate(row('redis16').byWorkers[8].callsPerSec)}`, ratio: fmtRatio(r8.apVsRedis16) });
  }
  return { targets, markdown: lines.join('\n'), charts, headline };
}
