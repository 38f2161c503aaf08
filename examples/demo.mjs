// npm run demo [-- --workers 8 --rate 20 --requests 200 --spurious 0.02 --retry-after 1000]
//
// One strict API (the mock from atomic-pace/testing: at most --rate requests
// in any sliding second, 429 + Retry-After beyond it, spurious 429s, and a
// penalty box counting requests that arrive during a Retry-After it issued),
// one Piscina pool of --workers threads, and the same workload three ways:
//   1. no shared limit: each thread has its own limiter at the full rate;
//   2. the naive shared lock-and-sleep limiter (examples/naive-limiter.mjs);
//   3. atomic-pace: one RateLimiter shared by every thread.
// Every client runs at 90 % of the API's limit and retries until it succeeds.
import { parseArgs } from 'node:util';
import { Piscina } from 'piscina';
import { RateLimiter } from '../dist/index.js';
import { startMockApi } from '../dist/testing/index.js';
import { createNaiveShared } from './naive-limiter.mjs';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '8' },
    rate: { type: 'string', default: '20' },
    requests: { type: 'string', default: '200' },
    spurious: { type: 'string', default: '0.02' },
    'retry-after': { type: 'string', default: '1000' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log('usage: npm run demo -- [--workers 8] [--rate 20] [--requests 200] [--spurious 0.02] [--retry-after 1000]');
  process.exit(0);
}
const workers = positiveInt('workers', values.workers);
const rate = positiveNumber('rate', values.rate); // the API's limit, requests per sliding second
const requests = positiveInt('requests', values.requests);
const spuriousRate = Number(values.spurious);
const retryAfterMs = Number(values['retry-after']); // what every 429 asks for: most providers answer in whole seconds
const clientRate = rate * 0.9;

const api = await startMockApi({
  limit: Math.max(1, Math.floor(rate)),
  windowMs: 1000 * (Math.max(1, Math.floor(rate)) / rate),
  spuriousRate,
  retryAfterMs,
  latencyMs: [20, 60],
  seed: 7,
});
console.log(
  `Mock API ${api.url}: ${rate} requests per sliding second, ${spuriousRate * 100}% spurious 429s, ` +
    `Retry-After ${retryAfterMs} ms, latency 20-60 ms.\n` +
    `${workers} Piscina workers, ${requests} requests per strategy, every client at ${clientRate.toFixed(1)}/s (90 %).\n`,
);

const strategies = [
  { key: 'per-thread', label: 'no shared limit (limiter per thread)' },
  { key: 'naive', label: 'naive shared lock-and-sleep' },
  { key: 'atomic-pace', label: 'atomic-pace (one shared limiter)' },
];
const rows = [];
for (const strategy of strategies) rows.push(await runStrategy(strategy));
await api.close();
printTable(rows);

async function runStrategy({ key, label }) {
  api.reset();
  const limiter = new RateLimiter({ rate: clientRate });
  const pool = new Piscina({
    filename: new URL('./demo-task.mjs', import.meta.url).href,
    minThreads: workers,
    maxThreads: workers,
    workerData: { strategy: key, url: api.url, clientRate, limiter: limiter.handle, naiveBuffer: createNaiveShared() },
  });
  const barrier = new SharedArrayBuffer(4);
  await Promise.all(Array.from({ length: workers }, () => pool.run({ barrier, workers }, { name: 'warmUp' })));
  const started = performance.now();
  let done = 0;
  let failed = 0;
  const progress = startProgress(label, pool, () => done, started);
  const tasks = Array.from({ length: requests }, (_, id) =>
    pool.run({ id }).then(
      (status) => { done++; if (status !== 200) failed++; },
      () => { done++; failed++; },
    ));
  await Promise.all(tasks);
  const wallMs = performance.now() - started;
  progress.stop();
  await pool.destroy();
  const s = api.stats();
  return { label, ok: s.accepted, failed, throughput: s.accepted / (wallMs / 1000), overLimit: s.overLimit, spurious: s.spurious, violations: s.violations, wallMs };
}

/** A live progress line on stderr: rewritten in place on a terminal, one line a second otherwise. */
function startProgress(label, pool, doneCount, started) {
  const tty = process.stderr.isTTY;
  const samples = [{ t: started, accepted: 0 }];
  let lastPrinted = 0;
  const tick = () => {
    const now = performance.now();
    const s = api.stats();
    samples.push({ t: now, accepted: s.accepted });
    while (samples.length > 2 && samples[0].t < now - 1000) samples.shift();
    const perSecond = ((s.accepted - samples[0].accepted) * 1000) / Math.max(1, now - samples[0].t);
    const line =
      `${label.padEnd(38)} ${String(doneCount()).padStart(5)}/${requests}  ${perSecond.toFixed(1).padStart(5)} req/s  ` +
      `429s ${String(s.overLimit + s.spurious + s.violations).padStart(5)}  violations ${String(s.violations).padStart(5)}  ` +
      `queue ${String(pool.queueSize).padStart(4)}  ${((now - started) / 1000).toFixed(1)} s`;
    if (tty) process.stderr.write(`\r${line}\x1b[K`);
    else if (now - lastPrinted >= 1000) {
      process.stderr.write(`${line}\n`);
      lastPrinted = now;
    }
  };
  const timer = setInterval(tick, 250);
  return {
    stop() {
      clearInterval(timer);
      tick();
      process.stderr.write(tty ? '\n' : '');
    },
  };
}

function printTable(rows) {
  const header = ['strategy', 'ok', 'failed', 'req/s', 'over-limit 429s', 'spurious 429s', 'violations', 'wall time'];
  const cells = rows.map((r) => [
    r.label, String(r.ok), String(r.failed), r.throughput.toFixed(1), String(r.overLimit), String(r.spurious),
    String(r.violations), `${(r.wallMs / 1000).toFixed(1)} s`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c) => c.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ');
  console.log(`\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const c of cells) console.log(line(c));
  console.log(
    `\nover-limit 429s: requests beyond ${rate}/s. violations: requests that arrived while a Retry-After the API had issued was running;\n` +
      'real providers answer those with longer bans. atomic-pace spaces every thread on one schedule and pauses all of them on a 429.',
  );
}

function positiveInt(name, text) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`--${name} must be an integer >= 1, got ${text}`);
  return n;
}

function positiveNumber(name, text) {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new RangeError(`--${name} must be a number > 0, got ${text}`);
  return n;
}
