/**
 * What every suite needs from its surroundings: the machine it runs on, a
 * progress line on stderr, and a place to write results.
 */
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';

/** Machine facts recorded next to every figure (figures mean nothing without them). */
export function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    node: process.version,
    v8: process.versions.v8,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    totalMemGiB: Math.round(os.totalmem() / 2 ** 30 * 10) / 10,
  };
}

/** The 1/5/15-minute load averages, rounded: how busy the machine was. */
export function loadAverage() {
  return os.loadavg().map((x) => Math.round(x * 100) / 100);
}

/** True when the 1-minute load average is below a quarter of a core per core (an "idle" machine). */
export function looksIdle(load = loadAverage(), cores = os.cpus().length) {
  return load[0] < 0.25 * cores;
}

const started = Date.now();

/** Progress goes to stderr so stdout stays clean for whoever pipes it. */
export function progress(suite, message) {
  const s = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[${s}s] ${suite.padEnd(15)} ${message}\n`);
}

export function writeJson(dir, name, data) {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify(data, (_, v) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n');
  return file;
}

export function readJsonIfExists(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Resolves after `ms` (the main thread must stay responsive while workers run). */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Number formatting for tables: 14.2 M/s, 612 k/s, 224 /s. */
export function fmtRate(x) {
  if (!Number.isFinite(x)) return 'n/a';
  if (x >= 1e6) return `${(x / 1e6).toFixed(x >= 1e8 ? 0 : x >= 1e7 ? 1 : 2)} M/s`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(x >= 1e5 ? 0 : x >= 1e4 ? 1 : 2)} k/s`;
  return `${x.toFixed(x >= 100 ? 0 : 1)} /s`;
}

export function fmtRatio(x) {
  if (!Number.isFinite(x)) return 'n/a';
  if (x >= 100) return `${x.toFixed(0)}x`;
  if (x >= 10) return `${x.toFixed(1)}x`;
  if (x >= 2) return `${x.toFixed(2)}x`;
  return `${x.toFixed(3)}x`; // near the 0.8x / 1.0x targets, two decimals can round a miss up to the target
}

export function fmtMs(ms) {
  if (!Number.isFinite(ms)) return 'n/a';
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  return `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
}

export function fmtBytes(b) {
  if (!Number.isFinite(b)) return 'n/a';
  if (Math.abs(b) >= 2 ** 20) return `${(b / 2 ** 20).toFixed(2)} MiB`;
  if (Math.abs(b) >= 10 * 1024) return `${(b / 1024).toFixed(1)} KiB`;
  return `${Math.round(b)} B`;
}

/**
 * Which code was measured: the git commit, whether src/ had uncommitted
 * changes, and a fingerprint of the built dist/*.js that was measured.
 */
export function provenance(repoRoot, distDir = path.join(repoRoot, 'dist')) {
  const git = (...args) => {
    try {
      return execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return undefined;
    }
  };
  const dirty = git('status', '--porcelain', '--', 'src');
  return { commit: git('rev-parse', '--short', 'HEAD'), srcUncommittedChanges: dirty === undefined ? undefined : dirty.length > 0, dist: distFingerprint(distDir) };
}

export function distFingerprint(distDir) {
  const hash = crypto.createHash('sha256');
  const walk = (dir) => {
    let entries;
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.js')) hash.update(e.name).update(fs.readFileSync(p));
    }
  };
  walk(distDir);
  return hash.digest('hex').slice(0, 12);
}
