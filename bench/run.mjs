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
 * Build first (`npm run build`): suites import ../dist/. Progress goes to
 * stderr; stdout gets the path of the summary at the end.
 */
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
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
  const before = provenance(repoRoot);
  const mod = await import(suite.module);
  const data = await mod.run({ quick: args.quick, outDir });
  const distAfter = distFingerprint(path.join(repoRoot, 'dist'));
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
 * Each suite runs in its own Node process: a fresh JIT, and a fresh import of
 * dist/ (others may rebuild dist/ while we run; an ES module can not be
 * reloaded in place). If dist/ changed while a suite ran, its figures would
 * mix two builds: the suite is run again (twice at most), and the summary
 * says so if it still could not get a clean run.
 */
function spawnSuite(suite, args, outDir) {
  const childArgs = [fileURLToPath(import.meta.url), '--child', suite.name, '--out', outDir];
  if (args.quick) childArgs.push('--quick');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, childArgs, { stdio: ['ignore', 'inherit', 'inherit'] });
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
  for (const [i, suite] of selected.entries()) {
    const tag = `${suite.n} ${suite.name}`;
    progress(tag, `— suite ${i + 1}/${selected.length}: ${suite.title}${args.quick ? ' (quick)' : ''}`);
    for (let attempt = 1; ; attempt++) {
      const failure = await spawnSuite(suite, args, outDir);
      if (failure) {
        failures.push(suite.name);
        progress(tag, `FAILED (${failure})`);
        break;
      }
      const stored = readJsonIfExists(path.join(outDir, `${suite.name}.json`));
      if (!stored?.meta?.code?.distChangedDuringRun) {
        progress(tag, `done in ${stored?.meta?.durationS} s`);
        break;
      }
      if (attempt === 3) {
        progress(tag, 'WARNING: dist/ was rebuilt during every attempt; keeping the last one, marked in the summary');
        break;
      }
      progress(tag, `dist/ was rebuilt while the suite ran (figures would mix two builds): running it again (attempt ${attempt + 1}/3)`);
    }
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
