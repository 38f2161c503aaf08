/**
 * Suite 7 — a real strict server: nginx `limit_req` without burst (Debian's
 * nginx, installed by bench/lib/nginx.mjs when missing, on 127.0.0.1), at
 * RATE r/s, driven by a Piscina pool of THREADS threads keeping IN_FLIGHT
 * requests queued, at 100 %, 95 % and 90 % of nginx's rate. Each limiter is
 * asked for the same rate; only the limiter changes (workers/nginx-task.mjs):
 * atomic-pace `acquire` and `run`, a naive shared lock-and-sleep, and a
 * limiter per thread at rate / threads.
 *
 * nginx counts a request when it arrives: at burst 0 it rejects one that
 * arrives sooner than 1/rate (on its millisecond clock) after the last one
 * it accepted. Every 429 is attributed by replaying nginx's own rule
 * (`LeakyBucket` from atomic-pace/testing) on the recorded times:
 *   schedule  — rejected by the replay on the limiter's slots (the limiter planned it too close);
 *   delivery  — not on the slots, but on the instants the limiter let the request go;
 *   transport — neither: the request left in time and arrived too close (fetch, loopback, nginx's event loop).
 * The replays use our clock with an arbitrary ms phase; nginx reads a cached
 * ms clock per event-loop turn, so borderline cases can differ by one ms.
 */
import { RateLimiter } from '../../dist/index.js';
import { LeakyBucket } from '../../dist/testing/index.js';
import { progress, sleep } from '../lib/env.mjs';
import { startNginx } from '../lib/nginx.mjs';
import { barChart, COLORS } from '../lib/svg.mjs';

const SUITE = '7 nginx';
const RATE = 50;
const THREADS = 8;
const IN_FLIGHT = 32;
const LEVELS = [1.0, 0.95, 0.9];
const VARIANTS = [
  { id: 'acquire', name: 'atomic-pace await acquire()', color: COLORS.ours },
  { id: 'run', name: 'atomic-pace limiter.run()', color: COLORS.ours },
  { id: 'lock-sleep', name: 'naive shared lock-and-sleep', color: COLORS.peer },
  { id: 'per-thread', name: 'a limiter per thread, rate / threads', color: COLORS.slow },
];

/** Replays nginx's rule on times (ns), returning the set of indexes it rejects. */
function replay(items, timeOf) {
  const order = items.map((_, i) => i).filter((i) => Number.isFinite(timeOf(items[i]))).sort((a, b) => timeOf(items[a]) - timeOf(items[b]));
  const bucket = new LeakyBucket(RATE * 1000, 0);
  const rejected = new Set();
  for (const i of order) if (!bucket.admit(timeOf(items[i]))) rejected.add(i);
  return rejected;
}

export async function run({ quick }) {
  const nginx = await startNginx({ rate: RATE });
  if (nginx.skip) {
    progress(SUITE, `skipped: ${nginx.skip}`);
    return { skipped: nginx.skip };
  }
  const { Piscina } = await import('piscina');
  const durationMs = quick ? 1500 : 8000;
  // atomics: 'disabled' — Piscina's default 'sync' freezes an idle worker's
  // event loop between tasks, which would hold back its timers.
  const pool = new Piscina({
    filename: new URL('../workers/nginx-task.mjs', import.meta.url).href,
    minThreads: THREADS, maxThreads: THREADS, concurrentTasksPerWorker: IN_FLIGHT, atomics: 'disabled',
  });
  const baseNs = process.hrtime.bigint();
  const rows = [];
  let id = 0;
  try {
    const warmUrl = `${nginx.url}/warm`;
    await Promise.all(Array.from({ length: THREADS * 4 }, () => pool.run({ variant: 'warm', url: warmUrl, id: 0, baseNs })));
    for (const level of LEVELS) {
      for (const v of VARIANTS) {
        id++;
        const rate = RATE * level;
        const shared = new RateLimiter({ rate, burst: 1 });
        const input = { variant: v.id, url: `${nginx.url}/limited`, handle: shared.handle, lockBuffer: new SharedArrayBuffer(16), rate, threads: THREADS, id, baseNs };
        await sleep(300); // nginx's excess drains to 0 in 1/rate; leave it idle a while
        const attempts = [];
        const start = performance.now();
        await new Promise((resolve) => {
          let inFlight = 0;
          const submit = () => {
            inFlight++;
            pool.run(input).then((r) => { attempts.push(...r); }, () => {}).finally(() => {
              inFlight--;
              if (performance.now() - start < durationMs) submit();
              else if (inFlight === 0) resolve();
            });
          };
          for (let k = 0; k < IN_FLIGHT; k++) submit();
        });
        const elapsedS = (performance.now() - start) / 1000;
        const rejected = attempts.map((a, i) => (a.status === 429 ? i : -1)).filter((i) => i >= 0);
        const onSlots = replay(attempts, (a) => a.slotNs);
        const onSent = replay(attempts, (a) => a.sentNs);
        const cause = { schedule: 0, delivery: 0, transport: 0 };
        for (const i of rejected) {
          if (onSlots.has(i)) cause.schedule++;
          else if (onSent.has(i)) cause.delivery++;
          else cause.transport++;
        }
        const accepted = attempts.filter((a) => a.status === 200).length;
        const lags = attempts.filter((a) => a.handedNs !== undefined).map((a) => a.sentNs - a.handedNs).sort((a, b) => a - b);
        const lagUs = lags.length ? { p50: lags[lags.length >> 1] / 1e3, p99: lags[Math.floor(lags.length * 0.99)] / 1e3, max: lags[lags.length - 1] / 1e3 } : null;
        // The span the limiter was asked to fill: from the first to the last request sent.
        const sent = attempts.map((a) => a.sentNs).sort((a, b) => a - b);
        const spanS = sent.length > 1 ? (sent[sent.length - 1] - sent[0]) / 1e9 : elapsedS;
        const other = attempts.length - accepted - rejected.length;
        const row = {
          level, id: v.id, name: v.name, color: v.color, rate, requests: attempts.length, accepted, rejected: rejected.length,
          otherStatus: other, cause, replayRejectsOnSent: onSent.size, replayRejectsOnSlots: onSlots.size,
          acceptedPerSec: accepted / spanS, spanS, elapsedS, returnLagUs: lagUs,
        };
        rows.push(row);
        progress(SUITE, `${Math.round(level * 100)} %, ${v.name}: ${attempts.length} requests, ${rejected.length} × 429 ` +
          `(schedule ${cause.schedule}, delivery ${cause.delivery}, transport ${cause.transport}), ${row.acceptedPerSec.toFixed(1)} accepted/s` +
          (lagUs ? `; hand-out → caller p50 ${lagUs.p50.toFixed(0)} µs, p99 ${lagUs.p99.toFixed(0)} µs, max ${lagUs.max.toFixed(0)} µs` : ''));
      }
    }
  } finally {
    await pool.destroy();
    await nginx.stop();
  }
  return { nginxRate: RATE, nginxVersion: nginx.version, threads: THREADS, inFlight: IN_FLIGHT, durationMs, levels: LEVELS, rows };
}

export function report(data) {
  const lines = ['## 7. A real strict server: nginx limit_req without burst', ''];
  if (data.skipped) {
    lines.push(`Skipped: ${data.skipped}.`, '');
    return { targets: [], markdown: lines.join('\n'), charts: [], headline: [] };
  }
  lines.push(`nginx ${data.nginxVersion}, \`limit_req_zone … rate=${data.nginxRate}r/s; limit_req zone=one;\` (no burst: a request sooner than 1/rate after the last accepted one is rejected, on nginx's ms clock). ` +
    `Piscina, ${data.threads} threads, ${data.inFlight} requests kept queued, ${data.durationMs / 1000} s per run; every limiter is set to the stated share of nginx's rate with burst 1. ` +
    'Each 429 is attributed by replaying nginx\'s rule on the recorded times: **schedule** (the limiter\'s own slots were too close), ' +
    '**delivery** (the slots were fine but the instants the limiter let requests go were too close), **transport** (left in time, arrived too close: fetch, loopback, nginx\'s event loop).');
  lines.push('');
  lines.push('| rate | limiter | requests | 429s | schedule | delivery | transport | 429 share | accepted/s |');
  lines.push('|---|---|---|---|---|---|---|---|---|');
  for (const r of data.rows) {
    lines.push(`| ${Math.round(r.level * 100)} % (${r.rate}/s) | ${r.name} | ${r.requests} | ${r.rejected} | ${r.cause.schedule} | ${r.cause.delivery} | ${r.cause.transport} | ${((r.rejected / Math.max(1, r.requests)) * 100).toFixed(1)} % | ${r.acceptedPerSec.toFixed(1)} |`);
  }
  lines.push('');
  const at = (level, id) => data.rows.find((r) => r.level === level && r.id === id);
  const targets = [];
  const ours = ['acquire', 'run'];
  const at95 = ours.map((id) => at(0.95, id)).filter(Boolean);
  targets.push({
    name: 'nginx, no burst, 8 threads, 95 % of its rate: 429s (acquire and run)',
    goal: '0', measured: at95.map((r) => `${r.id}: ${r.rejected}`).join(', '),
    pass: at95.length === 2 && at95.every((r) => r.rejected === 0),
  });
  const at100 = ours.map((id) => at(1.0, id)).filter(Boolean);
  targets.push({
    name: 'nginx at 100 %: 429s attributable to delivery (acquire and run)',
    goal: '0', measured: at100.map((r) => `${r.id}: ${r.cause.delivery}`).join(', '),
    pass: at100.length === 2 && at100.every((r) => r.cause.delivery === 0),
  });
  const naive = at(1.0, 'lock-sleep');
  if (naive) {
    targets.push({
      name: 'nginx at 100 %: total 429s vs the naive lock-and-sleep',
      goal: 'fewer', measured: `${at100.map((r) => `${r.id}: ${r.rejected}`).join(', ')} vs ${naive.rejected}`,
      pass: at100.length === 2 && at100.every((r) => r.rejected < naive.rejected),
    });
  }
  targets.push({
    name: 'nginx at 100 %: accepted/s (acquire and run)',
    goal: `≥ 0.9 × ${data.nginxRate} = ${0.9 * data.nginxRate}/s`, measured: at100.map((r) => `${r.id}: ${r.acceptedPerSec.toFixed(1)}/s`).join(', '),
    pass: at100.length === 2 && at100.every((r) => r.acceptedPerSec >= 0.9 * data.nginxRate),
  });
  const chartRows = [];
  for (const level of data.levels) {
    chartRows.push({ heading: `429 share at ${Math.round(level * 100)} % of nginx's rate` });
    for (const r of data.rows.filter((x) => x.level === level)) {
      const share = (r.rejected / Math.max(1, r.requests)) * 100;
      chartRows.push({ label: r.name, value: share, color: r.color, text: `${share.toFixed(1)} % (${r.rejected})` });
    }
  }
  const charts = [{
    file: 'nginx.svg',
    svg: barChart({
      title: `nginx limit_req ${data.nginxRate} r/s, no burst, ${data.threads} Piscina threads`,
      subtitle: 'share of requests rejected with 429; blue = atomic-pace',
      rows: chartRows,
      format: (v) => `${v.toFixed(0)} %`,
    }),
  }];
  const a100 = at(1.0, 'acquire');
  const headline = a100 && naive ? [{
    measure: `real nginx limit_req ${data.nginxRate} r/s, no burst, ${data.threads} threads at 100 % / 95 %: 429s`,
    value: `acquire ${a100.rejected} (delivery ${a100.cause.delivery}) / ${at(0.95, 'acquire')?.rejected ?? '?'}`,
    vs: `naive lock-and-sleep ${naive.rejected} / ${at(0.95, 'lock-sleep')?.rejected ?? '?'}`,
    ratio: `of ${a100.requests} / ${at(0.95, 'acquire')?.requests ?? '?'} requests`,
  }] : [];
  return { targets, markdown: lines.join('\n'), charts, headline };
}
