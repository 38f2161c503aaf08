/**
 * Suite 5 — end to end: a Piscina pool calls the strict mock API
 * (`atomic-pace/testing`'s startMockApi: at most `limit` requests in any
 * sliding window, 429 + Retry-After otherwise, and it counts requests that
 * arrive while a Retry-After it issued is still running as violations).
 *
 * Same pool, same load (a steady 16 tasks in flight), same budget for every
 * variant (90 % of the API's limit, the usual headroom for network jitter);
 * only the limiter changes — see workers/piscina-task.mjs:
 *   shared (atomic-pace), per-thread (full rate in each thread),
 *   split (rate / threads in each thread), lock-sleep (naive shared lock).
 * Figures: accepted requests/s, 429s, violations, and how many attempts
 * each completed task needed.
 *
 * Skips with a message when dist/testing/index.js (the mock API) is missing.
 */
import fs from 'node:fs';
import { RateLimiter } from '../../dist/index.js';
import { progress } from '../lib/env.mjs';
import { barChart, COLORS } from '../lib/svg.mjs';

const SUITE = '5 end-to-end';
const LIMIT = 50;
const WINDOW_MS = 1000;
const HEADROOM = 0.9;
const THREADS = 4;
const IN_FLIGHT = 16;
const LATENCY_MS = [5, 20];
const VARIANTS = [
  { id: 'shared', name: 'atomic-pace, one limiter shared by all threads', color: COLORS.ours },
  { id: 'per-thread', name: 'a limiter per thread, full rate each', color: COLORS.slow },
  { id: 'split', name: 'a limiter per thread, rate / threads each', color: COLORS.peer },
  { id: 'lock-sleep', name: 'naive shared lock-and-sleep limiter', color: COLORS.peer },
];

async function loadMockApi() {
  const file = new URL('../../dist/testing/index.js', import.meta.url);
  if (!fs.existsSync(file)) return { skip: 'dist/testing/index.js not found: the mock API (startMockApi) is not built yet; run `npm run build` once src/testing exists' };
  const mod = await import(file.href);
  if (typeof mod.startMockApi !== 'function') return { skip: 'dist/testing/index.js does not export startMockApi yet' };
  return { startMockApi: mod.startMockApi };
}

export async function run({ quick }) {
  const loaded = await loadMockApi();
  if (loaded.skip) {
    progress(SUITE, `skipped: ${loaded.skip}`);
    return { skipped: loaded.skip };
  }
  const { Piscina } = await import('piscina');
  const durationMs = quick ? 1000 : 6000;
  const rate = (LIMIT / WINDOW_MS) * 1000 * HEADROOM;
  const api = await loaded.startMockApi({ limit: LIMIT, windowMs: WINDOW_MS, latencyMs: LATENCY_MS, seed: 7 });
  const pool = new Piscina({
    filename: new URL('../workers/piscina-task.mjs', import.meta.url).href,
    minThreads: THREADS,
    maxThreads: THREADS,
    concurrentTasksPerWorker: 4,
  });
  const url = `${api.url}/v1/embed`;
  const rows = [];
  try {
    // Warm-up: start the threads and open connections (not measured).
    await Promise.all(Array.from({ length: THREADS * 2 }, () => pool.run({ variant: 'split', url, rate: 1000, threads: 1, id: 0 })));
    for (const [i, v] of VARIANTS.entries()) {
      api.reset(); // counters 0, sliding window empty, penalty box lifted
      const shared = new RateLimiter({ rate, burst: 1 });
      const lockBuffer = new SharedArrayBuffer(16);
      const input = { variant: v.id, url, handle: shared.handle, lockBuffer, rate, threads: THREADS, id: i + 1 };
      const start = performance.now();
      let completed = 0;
      let attempts = 0;
      let failed = 0;
      await new Promise((resolve) => {
        let inFlight = 0;
        const submit = () => {
          inFlight++;
          pool.run(input).then((r) => {
            completed++;
            attempts += r.attempts;
            if (r.status !== 200) failed++;
          }, () => { failed++; }).finally(() => {
            inFlight--;
            if (performance.now() - start < durationMs) submit();
            else if (inFlight === 0) resolve();
          });
        };
        for (let k = 0; k < IN_FLIGHT; k++) submit();
      });
      const elapsedS = (performance.now() - start) / 1000;
      const s = api.stats();
      rows.push({
        id: v.id, name: v.name, color: v.color, elapsedS,
        acceptedPerSec: s.accepted / elapsedS,
        tasksPerSec: (completed - failed) / elapsedS,
        completed, failed, attemptsPerTask: completed ? attempts / completed : 0,
        stats: s,
      });
      progress(SUITE, `${v.name}: ${(s.accepted / elapsedS).toFixed(1)} accepted/s, ${s.overLimit} over-limit 429s, ${s.violations} violations, ${failed} tasks failed`);
    }
  } finally {
    await pool.destroy();
    await api.close();
  }
  return { limit: LIMIT, windowMs: WINDOW_MS, budgetRate: rate, threads: THREADS, inFlight: IN_FLIGHT, latencyMs: LATENCY_MS, durationMs, rows };
}

export function report(data) {
  const lines = ['## 5. End to end: Piscina pool against the strict mock API', ''];
  if (data.skipped) {
    lines.push(`Skipped: ${data.skipped}.`, '');
    return { targets: [], markdown: lines.join('\n'), charts: [], headline: [] };
  }
  const limitPerSec = (data.limit / data.windowMs) * 1000;
  lines.push(`Mock API: at most ${data.limit} requests per sliding ${data.windowMs} ms (${limitPerSec}/s), latency ${data.latencyMs.join('–')} ms. ` +
    `Piscina, ${data.threads} threads × 4 concurrent tasks, ${data.inFlight} tasks kept in flight for ${data.durationMs / 1000} s. ` +
    `Every limiter gets the same budget, ${data.budgetRate}/s (${Math.round((data.budgetRate / limitPerSec) * 100)} % of the limit). ` +
    'A 429 is retried: atomic-pace via `limiter.run` (shared backoff), the others by sleeping Retry-After in that task only.');
  lines.push('');
  lines.push('| limiter | accepted/s | % of API limit | over-limit 429s | violations (ignored a Retry-After) | tasks failed (5 × 429) | attempts per task |');
  lines.push('|---|---|---|---|---|---|---|');
  for (const r of data.rows) {
    lines.push(`| ${r.name} | ${r.acceptedPerSec.toFixed(1)} | ${((r.acceptedPerSec / limitPerSec) * 100).toFixed(0)} % | ${r.stats.overLimit} | ${r.stats.violations} | ${r.failed} | ${r.attemptsPerTask.toFixed(2)} |`);
  }
  lines.push('');
  const chartRows = [];
  chartRows.push({ heading: 'accepted requests per second' });
  for (const r of data.rows) chartRows.push({ label: r.name, value: r.acceptedPerSec, color: r.color, text: `${r.acceptedPerSec.toFixed(1)}/s` });
  chartRows.push({ heading: '429 answers (over-limit + violations) per second' });
  for (const r of data.rows) {
    const per = (r.stats.overLimit + r.stats.violations + r.stats.spurious) / r.elapsedS;
    chartRows.push({ label: r.name, value: per, color: r.color, text: `${per.toFixed(1)}/s` });
  }
  const charts = [{
    file: 'end-to-end.svg',
    svg: barChart({
      title: `Piscina pool (${data.threads} threads) against a strict ${limitPerSec}/s API`,
      subtitle: `same budget (${data.budgetRate}/s) for every limiter; blue = atomic-pace shared limiter`,
      rows: chartRows,
      format: (v) => `${v.toFixed(0)}/s`,
    }),
  }];
  const shared = data.rows.find((r) => r.id === 'shared');
  const perThread = data.rows.find((r) => r.id === 'per-thread');
  const headline = shared ? [{
    measure: `Piscina pool, ${data.threads} threads, strict ${limitPerSec}/s API, budget ${data.budgetRate}/s: accepted/s and 429s`,
    value: `${shared.acceptedPerSec.toFixed(1)}/s, ${shared.stats.overLimit + shared.stats.violations} × 429`,
    vs: perThread ? `a limiter per thread: ${perThread.acceptedPerSec.toFixed(1)}/s, ${perThread.stats.overLimit + perThread.stats.violations} × 429` : '',
    ratio: perThread ? `${shared.stats.overLimit + shared.stats.violations} vs ${perThread.stats.overLimit + perThread.stats.violations} × 429` : '',
  }] : [];
  return { targets: [], markdown: lines.join('\n'), charts, headline };
}
