/**
 * Suite 3 — wait precision: how late a waiting caller gets its grant.
 *
 * Lateness = (clock when the caller got the grant back) − (the grant's due
 * time, `grant.slotNs`; on the process clock, as no backoff runs). It covers
 * the sleep (Atomics.wait for acquireSync, a ref'd timer for acquire), the
 * wake-up and the return. Every grant counts, including those granted at once
 * (their lateness is just the call's own duration); the table says what share
 * actually waited.
 *
 * One limiter per configuration, burst 1 (strict spacing), rates 100, 1000 and
 * 5000/s, one waiting thread and 8 threads, in two loads:
 *   paced     — each thread pauses a random [0, 2g) after each grant, g set so
 *               that the offered load is 80 % of the rate: requests still
 *               wait (arrivals collide), but the queue drains now and then.
 *               This measures how precisely a wait ends; the targets apply here.
 *   saturated — threads call back to back. Deliveries are strict (a grant is
 *               never handed out less than 1/rate after the previous one, and
 *               burst 1 leaves no room to catch up), so once any grant is late
 *               every later one in the queue is at least as late: lateness
 *               past the slot then measures how far the queue fell behind.
 */
import { RateLimiter } from '../../dist/index.js';
import { fmtMs, progress } from '../lib/env.mjs';
import { summarize } from '../lib/stats.mjs';
import { Pool } from '../lib/pool.mjs';
import { barChart, COLORS } from '../lib/svg.mjs';

const SUITE = '3 wait';
const RATES = [100, 1000, 5000];
const THREADS = [1, 8];
const MODES = ['sync', 'async'];
const MODE_NAME = { sync: 'acquireSync', async: 'acquire (async)' };
const TARGET_MS = { sync: 0.2, async: 0.3 };
const LOADS = ['paced', 'saturated'];
const OFFERED = 0.8;

export async function run({ quick }) {
  const pool = await Pool.start(new URL('../workers/wait-worker.mjs', import.meta.url), Math.max(...THREADS));
  const configs = [];
  try {
    // Warm-up: JIT the wait paths in every worker.
    {
      const limiter = new RateLimiter({ rate: 20000, burst: 1 });
      for (const op of MODES) await pool.run(8, () => ({ op, handle: limiter.handle, durationNs: 50_000_000 }));
    }
    for (const load of LOADS) for (const mode of MODES) {
      for (const threads of THREADS) {
        for (const rate of RATES) {
          const durationMs = quick ? 300 : rate <= 100 ? 3000 : 2000;
          const limiter = new RateLimiter({ rate, burst: 1 });
          const gapNs = load === 'paced' ? (threads / (OFFERED * rate)) * 1e9 : 0;
          const { results } = await pool.run(threads, () => ({ op: mode, handle: limiter.handle, durationNs: durationMs * 1e6, concurrency: 1, gapNs }));
          const lateness = [];
          let waited = 0;
          for (const r of results) {
            for (let i = 0; i < r.grants; i++) lateness.push((r.seen[i] - r.lo[i]) / 1e6);
            waited += r.waited;
          }
          const s = summarize(lateness);
          configs.push({ load, mode, threads, rate, durationMs, grants: s.n, waitedShare: s.n ? waited / s.n : 0, latenessMs: s });
          progress(SUITE, `${load}, ${MODE_NAME[mode]}, ${threads} thread${threads > 1 ? 's' : ''}, ${rate}/s: ${s.n} grants, p50 ${fmtMs(s.p50)}, p99 ${fmtMs(s.p99)}, max ${fmtMs(s.max)}`);
        }
      }
    }
  } finally {
    await pool.close();
  }
  const worst = Object.fromEntries(MODES.map((mode) => {
    const c = configs.filter((x) => x.mode === mode && x.load === 'paced');
    const w = c.reduce((a, b) => (b.latenessMs.p99 > a.latenessMs.p99 ? b : a), c[0]);
    return [mode, { p99Ms: w.latenessMs.p99, threads: w.threads, rate: w.rate }];
  }));
  return { rates: RATES, threads: THREADS, configs, worstP99: worst, targetsMs: TARGET_MS };
}

export function report(data, meta) {
  const idle = meta.loadBefore[0] < 0.25 * meta.machine.cores;
  const targets = MODES.map((mode) => {
    const w = data.worstP99[mode];
    return {
      id: `lateness-${mode}`,
      name: `${MODE_NAME[mode]} lateness p99, paced to 80 % (worst of ${data.rates.join('/')}/s × ${data.threads.join(' and ')} threads)${idle ? '' : ' — machine NOT idle'}`,
      target: `≤ ${data.targetsMs[mode]} ms on an idle machine`,
      measured: `${fmtMs(w.p99Ms)} (at ${w.rate}/s, ${w.threads} thread${w.threads > 1 ? 's' : ''})`,
      pass: w.p99Ms <= data.targetsMs[mode],
    };
  });
  const lines = [];
  lines.push('## 3. Wait precision');
  lines.push('');
  lines.push('Lateness = when the caller got the grant back − its place on the schedule (`grant.slotNs`). Burst 1, one limiter per row; ' +
    '"waited" = share of grants that had to sleep (the others were granted at once and are late only by the call itself). ' +
    '**Paced**: each thread pauses a random [0, 2g) after each grant, offering 80 % of the rate — how precisely a wait ends (the targets). ' +
    '**Saturated**: back-to-back calls; deliveries stay strict, so after any late grant the whole queue is that late (burst 1 leaves no room to catch up): this measures how far the queue falls behind, see suite 4 for what it costs.');
  lines.push('');
  lines.push('| load | call | threads | rate | grants | waited | p50 | p90 | p99 | max |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const c of data.configs) {
    const s = c.latenessMs;
    lines.push(`| ${c.load ?? 'saturated'} | ${MODE_NAME[c.mode]} | ${c.threads} | ${c.rate}/s | ${c.grants} | ${(c.waitedShare * 100).toFixed(0)}% | ${fmtMs(s.p50)} | ${fmtMs(s.p90)} | ${fmtMs(s.p99)} | ${fmtMs(s.max)} |`);
  }
  lines.push('');
  if (!idle) lines.push(`The machine was not idle (1-min load ${meta.loadBefore[0]} on ${meta.machine.cores} cores): wake-up latency grows with CPU contention, so these figures are pessimistic.\n`);

  const rows = [];
  for (const mode of MODES) {
    rows.push({ heading: `${MODE_NAME[mode]}, paced to 80 % — p99 (p50 in the label); target ≤ ${data.targetsMs[mode]} ms` });
    for (const c of data.configs.filter((x) => x.mode === mode && (x.load ?? 'paced') === 'paced')) {
      rows.push({
        label: `${c.threads} thread${c.threads > 1 ? 's' : ''}, ${c.rate}/s (p50 ${fmtMs(c.latenessMs.p50)})`,
        value: c.latenessMs.p99,
        color: mode === 'sync' ? COLORS.ours : COLORS.alt,
        text: fmtMs(c.latenessMs.p99),
      });
    }
  }
  const charts = [{
    file: 'wait-precision.svg',
    svg: barChart({
      title: 'Wait precision: p99 lateness of grants past their due time (ms)',
      subtitle: `targets: acquireSync ≤ ${data.targetsMs.sync} ms, acquire ≤ ${data.targetsMs.async} ms (idle machine); 1-min load during run: ${meta.loadBefore[0]}`,
      rows,
      format: (v) => (v === 0 ? '0' : fmtMs(v)),
    }),
  }];
  const ws = data.worstP99.sync;
  const wa = data.worstP99.async;
  const headline = [{
    measure: `lateness past the slot, p99, paced to 80 %, worst of ${data.rates.length * data.threads.length} configs: acquireSync / acquire`,
    value: `${fmtMs(ws.p99Ms)} / ${fmtMs(wa.p99Ms)}`,
    vs: `targets ≤ ${data.targetsMs.sync} ms / ≤ ${data.targetsMs.async} ms on an idle machine${idle ? '' : ` (1-min load was ${meta.loadBefore[0]} on ${meta.machine.cores} cores)`}`,
    ratio: `${ws.p99Ms <= data.targetsMs.sync ? 'PASS' : 'MISS'} / ${wa.p99Ms <= data.targetsMs.async ? 'PASS' : 'MISS'}`,
  }];
  return { targets, markdown: lines.join('\n'), charts, headline };
}
