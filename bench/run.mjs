#!/usr/bin/env node
/**
 * Runs the benchmark suites and writes bench/results/.
 *
 *   node bench/run.mjs                 all suites, full length (a few minutes)
 *   node bench/run.mjs --quick         every suite short (< 60 s in all), for CI smoke;
 *                                      results go to bench/results/quick/
 *   node bench/run.mjs --only 1,3      just suites 1 and 3 (numbers or names)
 *   node bench/run.mjs --out DIR       write results elsewhere
 *   node bench/run.mjs --report        only re-render summary, charts and snippet from stored JSON
 *
 * Build first (`npm run build`): suites import ../dist/, pinned for the whole
 * run by a snapshot (see snapshotDist). Progress goes to stderr; stdout gets
 * the path of the summary at the end.
 */
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { distFingerprint, loadAverage, machine, progress, provenance, readJsonIfExists, writeJson } from './lib/env.mjs';
import { buildReport } from './lib/report.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.join(here, '..');

export const SUITES = [
  { n: 1, name: 'tryacquire', title: 'tryAcquire throughput, one thread', module: './suites/1-tryacquire.mjs' },
  { n: 2, name: 'threads', title: 'Total throughput across worker threads', module: './suites/2-threads.mjs' },
  { n: 3, name: 'wait-precision', title: 'Wait precision', module: './suites/3-wait-precision.mjs' },
  { n: 4, name: 'saturation', title: 'Accuracy at saturation', module: './suites/4-saturation.mjs' },
  { n: 5, name: 'end-to-end', title: 'End to end: Piscina pool against the mock API', module: './suites/5-end-to-end.mjs' },
  { n: 6, name: 'memory', title: 'Memory', module: './suites/6-memory.mjs' },
  { n: 7, name: 'nginx', title: 'A real strict server: nginx limit_req', module: './suites/7-nginx.mjs' },
];

function parseArgs(argv) {
  const args = { quick: false, only: null, out: null, reportOnly: false, child: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') args.quick = true;
    else if (a === '--child') args.child = argv[++i]; // internal: run one suite in this process
    else if (a === '--report') args.reportOnly = true;
    else if (a === '--only') args.only = argv[++i];
    else if (a.startsWith('--only=')) args.only = a.slice(7);
    else if (a === '--out') args.out = argv[++i];
    else if (a.startsWith('--out=')) args.out = a.slice(6);
    else if (a === '--help' || a === '-h') {
      process.stdout.write(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0].replace(/^#!.*\n\/\*\*\n/, '').replace(/^ \* ?/gm, ''));
      process.exit(0);
    } else {
      process.stderr.write(`unknown argument: ${a} (try --help)\n`);
      process.exit(2);
    }
  }
  return args;
}

function selectSuites(only) {
  if (!only) return SUITES;
  const wanted = only.split(',').map((s) => s.trim()).filter(Boolean);
  const picked = SUITES.filter((s) => wanted.includes(String(s.n)) || wanted.includes(s.name));
  if (picked.length !== wanted.length) {
    process.stderr.write(`--only ${only}: known suites are ${SUITES.map((s) => `${s.n}/${s.name}`).join(', ')}\n`);
    process.exit(2);
  }
  return picked;
}

/** Runs one suite in this process and stores its JSON (the parent spawns one process per suite). */
async function runChild(suite, args, outDir) {
  const loadBefore = loadAverage();
  const t0 = Date.now();
  // The build measured: the run's snapshot of dist/ (see snapshotDist), else the live dist/.
  const distDir = process.env.ATOMIC_PACE_BENCH_DIST ?? path.join(repoRoot, 'dist');
  const before = provenance(repoRoot, distDir);
  const mod = await import(suite.module);
  const data = await mod.run({ quick: args.quick, outDir });
  const distAfter = distFingerprint(distDir);
  const meta = {
    suite: suite.name,
    date: new Date().toISOString(),
    quick: args.quick,
    durationS: Math.round((Date.now() - t0) / 100) / 10,
    machine: machine(),
    loadBefore,
    loadAfter: loadAverage(),
    code: { ...before, distChangedDuringRun: distAfter !== before.dist },
  };
  writeJson(outDir, suite.name, { meta, data });
}

/**
 * Pins the build for the whole run: copies dist/ to bench/.dist-snapshot/
 * once it has been stable for a second (others may be rebuilding it), and
 * returns the copy's path. Every suite process is started with
 * lib/dist-hook.mjs, which resolves imports of dist/ to this copy, in worker
 * threads too, so every figure of the run measures the same code.
 */
async function snapshotDist() {
  const live = path.join(repoRoot, 'dist');
  const dir = path.join(here, '.dist-snapshot', String(process.pid));
  for (let attempt = 1; ; attempt++) {
    const before = distFingerprint(live);
    await new Promise((r) => setTimeout(r, 1000));
    if (distFingerprint(live) === before) {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.cpSync(live, path.join(dir, 'dist'), { recursive: true });
      if (distFingerprint(live) === before && distFingerprint(path.join(dir, 'dist')) === before) return path.join(dir, 'dist');
    }
    if (attempt === 20) throw new Error('dist/ kept changing for 20 s: could not take a consistent snapshot');
    progress('setup', 'dist/ is being rebuilt: waiting for it to settle…');
  }
}

/** Each suite runs in its own Node process: a fresh JIT and a fresh heap, the build pinned by the snapshot. */
function spawnSuite(suite, args, outDir, snapshot) {
  const hook = path.join(here, 'lib', 'dist-hook.mjs');
  const childArgs = ['--import', pathToFileURL(hook).href, fileURLToPath(import.meta.url), '--child', suite.name, '--out', outDir];
  if (args.quick) childArgs.push('--quick');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, childArgs, {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, ATOMIC_PACE_BENCH_DIST: snapshot },
    });
    child.on('exit', (code, signal) => resolve(code === 0 ? null : `exit ${code ?? signal}`));
  });
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const outDir = path.resolve(args.out ?? path.join(here, 'results', args.quick ? 'quick' : ''));
  fs.mkdirSync(outDir, { recursive: true });
  if (!fs.existsSync(path.join(repoRoot, 'dist', 'index.js'))) {
    process.stderr.write('dist/index.js is missing: run `npm run build` first (npm run bench does it for you).\n');
    process.exit(1);
  }
  if (args.child) {
    await runChild(SUITES.find((s) => s.name === args.child), args, outDir);
    return;
  }
  const selected = args.reportOnly ? [] : selectSuites(args.only);
  const failures = [];
  const snapshot = selected.length > 0 ? await snapshotDist() : undefined;
  try {
    for (const [i, suite] of selected.entries()) {
      const tag = `${suite.n} ${suite.name}`;
      progress(tag, `— suite ${i + 1}/${selected.length}: ${suite.title}${args.quick ? ' (quick)' : ''}`);
      const failure = await spawnSuite(suite, args, outDir, snapshot);
      if (failure) {
        failures.push(suite.name);
        progress(tag, `FAILED (${failure})`);
      } else {
        progress(tag, `done in ${readJsonIfExists(path.join(outDir, `${suite.name}.json`))?.meta?.durationS} s`);
      }
    }
  } finally {
    if (snapshot) fs.rmSync(path.dirname(snapshot), { recursive: true, force: true });
  }
  const stored = [];
  for (const suite of SUITES) {
    const json = readJsonIfExists(path.join(outDir, `${suite.name}.json`));
    if (json) stored.push({ suite, ...json, module: await import(suite.module) });
  }
  const summaryFile = buildReport({ outDir, stored, quick: args.quick, repoRoot });
  progress('report', `wrote ${path.relative(process.cwd(), summaryFile)}`);
  process.stdout.write(`${summaryFile}\n`);
  if (failures.length > 0) {
    process.stderr.write(`suites failed: ${failures.join(', ')}\n`);
    process.exitCode = 1;
  }
}

await main();
