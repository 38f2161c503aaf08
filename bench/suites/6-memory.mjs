/**
 * Suite 6 — memory: shared bytes per limiter, and the heap a thread pays to
 * use one. Runs workers/memory-probe.mjs in a child `node --expose-gc`
 * (precise heap figures need a forced GC; `npm run bench` itself runs
 * without flags).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { fmtBytes, progress } from '../lib/env.mjs';
import { median } from '../lib/stats.mjs';

const SUITE = '6 memory';

export async function run({ quick }) {
  const trials = quick ? 3 : 7;
  const n = 1000;
  const probe = fileURLToPath(new URL('../workers/memory-probe.mjs', import.meta.url));
  const out = await new Promise((resolve, reject) => {
    execFile(process.execPath, [...process.execArgv, '--expose-gc', probe, String(trials), String(n)], { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
  const { sharedBytes, samples } = JSON.parse(out.trim().split('\n').pop());
  const m = (f) => median(samples.map(f));
  const result = {
    sharedBytesPerLimiter: sharedBytes,
    trials,
    attachedPerTrial: n,
    bareWorkerHeap: m((s) => s.h0),
    moduleHeap: m((s) => s.h1 - s.h0),
    firstLimiterHeap: m((s) => s.h2 - s.h1),
    perThreadHeap: m((s) => s.h2 - s.h0),
    perExtraLimiterHeap: m((s) => (s.h3 - s.h2) / n),
    samples,
  };
  progress(SUITE, `shared ${sharedBytes} B per limiter; per thread: module ${fmtBytes(result.moduleHeap)} + first limiter ${fmtBytes(result.firstLimiterHeap)}; each further attach ${fmtBytes(result.perExtraLimiterHeap)}`);
  return result;
}

export function report(data) {
  const lines = ['## 6. Memory', ''];
  lines.push('Heap figures: `process.memoryUsage().heapUsed` after forced GCs inside a fresh worker thread, median of ' +
    `${data.trials} workers (child process with --expose-gc).`);
  lines.push('');
  lines.push('| what | bytes |');
  lines.push('|---|---|');
  lines.push(`| shared memory per limiter (\`handle.buffer.byteLength\`, one SharedArrayBuffer for all threads) | ${data.sharedBytesPerLimiter} B |`);
  lines.push(`| heap of a worker thread that loads nothing (for scale) | ${fmtBytes(data.bareWorkerHeap)} |`);
  lines.push(`| + loading atomic-pace in that thread (\`import\`) | ${fmtBytes(data.moduleHeap)} |`);
  lines.push(`| + attaching the first limiter (and one tryAcquire) | ${fmtBytes(data.firstLimiterHeap)} |`);
  lines.push(`| = per-thread heap cost of using atomic-pace | ${fmtBytes(data.perThreadHeap)} |`);
  lines.push(`| each further \`RateLimiter.attach\` in the same thread (${data.attachedPerTrial} attached) | ${fmtBytes(data.perExtraLimiterHeap)} |`);
  lines.push('');
  const headline = [{
    measure: 'memory: shared per limiter / heap per attached thread',
    value: `${data.sharedBytesPerLimiter} B / ${fmtBytes(data.perThreadHeap)}`,
    vs: `of which ${fmtBytes(data.moduleHeap)} is the library's code; each further limiter ${fmtBytes(data.perExtraLimiterHeap)}`,
    ratio: '—',
  }];
  return { targets: [], markdown: lines.join('\n'), charts: [], headline };
}
