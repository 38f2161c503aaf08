/**
 * Three processes × four worker threads share one Redis limit (children
 * forked from test/redis/mp-child.mjs, loading dist/). Guarantees defended,
 * each on the server's schedule or the host's wall clock (the server and the
 * processes share the host, so TIME and the wall clock are one clock):
 *
 * - the window invariant holds globally (exact, on the one schedule);
 * - a backoff reported in one process pauses the others;
 * - killing and restarting redis-server mid-run yields typed errors or
 *   fallback grants within the fallback share — never an over-grant, even
 *   across the restart (the new state starts drained).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { worstBracketWindow, type GrantRecord } from '../support/invariants.js';
import { countsAt, overlaps, uncontained, windowViolation, type LeaseRecord } from './support/checks.js';
import { redisAvailable, RedisServer } from './support/redis-server.js';

interface WorkerResult {
  records: number[];
  errors: Record<string, number | string>;
  backoff: { doneUs: number; pauseEndUs: number } | null;
  index: number;
}
interface ChildConfig {
  mode: 'plain' | 'leased';
  rate: number;
  burst: number;
  durationMs: number;
  workers?: number;
  leaseAheadMs?: number;
  backoff?: { process: number; atMs: number; retryAfterMs: number };
  /** Per process index: fallback options (plain mode). */
  fallback?: Record<number, { share: number; retryAfterMs?: number }>;
}

let server: RedisServer;
let runs = 0;

/** Forks `count` processes, starts them together, runs `during(elapsedMs)` hooks meanwhile, returns each process's workers' results. */
async function runProcesses(count: number, config: ChildConfig, during?: (startedAt: number) => Promise<void>): Promise<WorkerResult[][]> {
  const name = `mp-${++runs}`;
  const [sec, usec] = await (async () => {
    const redis = await server.client();
    try {
      return (await redis.time()) as [number | string, number | string];
    } finally {
      redis.disconnect();
    }
  })();
  const baseNs = String((BigInt(sec) * 1_000_000n + BigInt(usec)) * 1000n);
  const children: ChildProcess[] = [];
  const ready: Promise<unknown>[] = [];
  const results: Promise<WorkerResult[]>[] = [];
  for (let p = 0; p < count; p++) {
    const childConfig = {
      ...config, name, port: server.port, workers: config.workers ?? 4, processIndex: p, baseNs,
      fallback: config.fallback?.[p],
    };
    const child = fork(new URL('./mp-child.mjs', import.meta.url), [JSON.stringify(childConfig)], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(child);
    ready.push(new Promise((resolve) => child.once('message', resolve)));
    results.push(new Promise((resolve, reject) => {
      child.on('message', (m: { results?: WorkerResult[] }) => { if (m.results) resolve(m.results); });
      child.once('exit', (code) => { if (code !== 0) reject(new Error(`child ${p} exited with ${code}`)); });
    }));
  }
  await Promise.all(ready);
  const startedAt = performance.now();
  for (const child of children) child.send('go');
  const hook = during?.(startedAt);
  const done = await Promise.all(results);
  await hook;
  return done;
}

function typedOnly(results: WorkerResult[][]): void {
  for (const worker of results.flat()) expect(worker.errors.untyped, String(worker.errors.untyped)).toBeUndefined();
}

describe.skipIf(!redisAvailable)('3 processes × 4 workers share one Redis limit', () => {
  beforeAll(async () => {
    server = await RedisServer.start();
    // A young server starts new limits drained (script.ts): let it age past τ + 1.5 s first.
    await new Promise((resolve) => setTimeout(resolve, 1700));
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('plain store: the window invariant holds globally; a backoff in one process pauses the others', async () => {
    const rate = 200;
    const burst = 4;
    const retryAfterMs = 300;
    const results = await runProcesses(3, { mode: 'plain', rate, burst, durationMs: 1500, backoff: { process: 0, atMs: 500, retryAfterMs } });
    typedOnly(results);
    const grants = results.flatMap((proc, p) => proc.flatMap((w) => chunk(w.records, 4).map(([slotUs, calledUs, returnedUs]) => ({ p, slotUs: slotUs!, calledUs: calledUs!, returnedUs: returnedUs! }))));
    expect(grants.length).toBeGreaterThan(150);
    expect(results.every((proc) => proc.every((w) => w.records.length > 0))).toBe(true); // all 12 workers were served
    // Exact: every grant's slot is on the one schedule; slots are the instants grants count at.
    expect(windowViolation(grants.map((g) => (g.slotUs - grants[0]!.slotUs) * 1000), burst, 1e9 / rate)).toBeNull(); // µs apart, then ns: exact
    // And on the wall clock, conservatively (a grant counts somewhere in its call).
    const bracket = brackets(grants);
    expect(worstBracketWindow(bracket, burst, 1e9 / rate, [50e6, 200e6, 1000e6])).toBeNull();
    // The backoff: calls of the other processes that began after it was reported
    // were not granted before the pause ended (5 ms for clock reads across processes).
    const backoff = results[0]!.find((w) => w.backoff)!.backoff!;
    expect(backoff.pauseEndUs - backoff.doneUs).toBeGreaterThan(retryAfterMs * 1000 - 100_000);
    const inPause = grants.filter((g) => g.p !== 0 && g.calledUs > backoff.doneUs + 5000 && g.returnedUs < backoff.pauseEndUs - 5000);
    expect(inPause).toEqual([]);
    expect(grants.filter((g) => g.p !== 0 && g.calledUs > backoff.doneUs).length).toBeGreaterThan(0); // they did run after it
  });

  it('Redis paused mid-run (CLIENT PAUSE): waiters that check in late are never granted on top of each other (delivery instants on the server clock)', async () => {
    const rate = 100;
    const burst = 2;
    const pauses: { sentUs: number; ms: number }[] = [];
    const admin = await server.client();
    const results = await runProcesses(3, { mode: 'plain', rate, burst, durationMs: 2200 }, async (startedAt) => {
      for (const [atMs, ms] of [[500, 400], [1300, 300]] as const) {
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, atMs - (performance.now() - startedAt))));
        pauses.push({ sentUs: wallUs(), ms });
        await admin.call('CLIENT', 'PAUSE', String(ms), 'ALL');
      }
    });
    admin.disconnect();
    typedOnly(results);
    const grants = results.flatMap((proc, p) => proc.flatMap((w) => chunk(w.records, 4).map(([slotUs, calledUs, returnedUs, decidedAtUs]) => ({ p, slotUs: slotUs!, calledUs: calledUs!, returnedUs: returnedUs!, decidedAtUs: decidedAtUs! }))));
    expect(grants.length).toBeGreaterThan(80);
    // Waiters were due while Redis was paused: some calls spanned a pause.
    const spanned = grants.filter((g) => pauses.some((x) => g.calledUs < x.sentUs && g.returnedUs > x.sentUs + x.ms * 1000));
    expect(spanned.length).toBeGreaterThan(5);
    // Exact, on the server's clock: the instants Redis handed grants out conform.
    const decided = grants.map((g) => g.decidedAtUs).sort((a, b) => a - b);
    expect(windowViolation(decided.map((t) => (t - decided[0]!) * 1000), burst, 1e9 / rate)).toBeNull();
    // The queue stays strict too.
    expect(windowViolation(grants.map((g) => (g.slotUs - grants[0]!.slotUs) * 1000), burst, 1e9 / rate)).toBeNull();
  });

  it('leased fronts: stretches never overlap across processes, the window holds, and a backoff reaches the others within leaseAheadMs', async () => {
    const rate = 2000;
    const burst = 5;
    const leaseAheadMs = 30;
    const retryAfterMs = 250;
    const results = await runProcesses(3, { mode: 'leased', rate, burst, leaseAheadMs, durationMs: 1000, backoff: { process: 1, atMs: 400, retryAfterMs } });
    typedOnly(results);
    const toleranceNs = BigInt(Math.ceil(burst * 1e6 / rate)) * 1000n;
    const records = results.flatMap((proc, p) => proc.flatMap((w) => chunk(w.records, 5).map(([s, e, d, c, r]) => ({
      start: BigInt(s!), end: BigInt(e!), decided: BigInt(d!), called: BigInt(Math.round(c!)), returned: BigInt(Math.round(r!)), worker: p,
    } satisfies LeaseRecord))));
    expect(records.length).toBeGreaterThan(500);
    expect(new Set(records.map((r) => r.worker)).size).toBe(3);
    expect(overlaps(records)).toBe(0);
    expect(uncontained(records, toleranceNs)).toBe(0);
    expect(windowViolation(records.map((r) => Number(countsAt(r, toleranceNs))), burst, 1e9 / rate)).toBeNull();
    // The backoff from process 1 stops processes 0 and 2 once their current
    // lease runs out: no call of theirs starting leaseAheadMs + 30 ms (round
    // trips, timers) after it returns before the pause ends.
    const backoff = results[1]!.find((w) => w.backoff)!.backoff!;
    const late = records.filter((r) => r.worker !== 1 && Number(r.called) > backoff.doneUs + (leaseAheadMs + 30) * 1000 && Number(r.returned) < backoff.pauseEndUs - 5000);
    expect(late).toEqual([]);
  });

  it('kill and restart redis-server mid-run: typed errors or fallback grants within the share, never an over-grant', async () => {
    const rate = 200;
    const burst = 20; // τ = 100 ms: a restart that forgot recent grants would show as a window violation
    const share = 0.3;
    let killedAt = 0;
    let restartedAt = 0;
    // The restarted server starts the limit drained for up to τ + 1.5 s: run long enough to see grants after it.
    const results = await runProcesses(3, { mode: 'plain', rate, burst, durationMs: 3000, fallback: { 2: { share, retryAfterMs: 200 } } }, async (startedAt) => {
      await new Promise((resolve) => setTimeout(resolve, 700 - (performance.now() - startedAt)));
      killedAt = wallUs();
      await server.kill();
      await server.restart();
      restartedAt = wallUs();
    });
    typedOnly(results);
    expect(killedAt).toBeGreaterThan(0);
    expect(restartedAt).toBeGreaterThan(killedAt);
    const all = results.flatMap((proc, p) => proc.flatMap((w) => chunk(w.records, 4).map(([slotUs, calledUs, returnedUs]) => ({ p, slotUs: slotUs!, calledUs: calledUs!, returnedUs: returnedUs! }))));
    const viaRedis = all.filter((g) => g.slotUs >= 0);
    const viaFallback = all.filter((g) => g.slotUs < 0);
    // Processes without a fallback saw typed errors; the one with a fallback kept granting locally.
    const errors = (p: number) => results[p]!.reduce((n, w) => n + Number(w.errors.E_REDIS_UNAVAILABLE ?? 0), 0);
    expect(errors(0) + errors(1)).toBeGreaterThan(0);
    expect(viaFallback.length).toBeGreaterThan(0);
    expect(viaFallback.every((g) => g.p === 2)).toBe(true);
    // Redis grants of both incarnations on one schedule (no backoff in this
    // run: virtual time = server time): exact window invariant across the restart.
    expect(viaRedis.some((g) => g.calledUs > restartedAt)).toBe(true);
    expect(windowViolation(viaRedis.map((g) => (g.slotUs - viaRedis[0]!.slotUs) * 1000), burst, 1e9 / rate)).toBeNull();
    // Fallback grants: the local limiter at share × rate (burst round(20 × 0.3) = 6), on the wall clock.
    const fallbackBracket = brackets(viaFallback);
    expect(worstBracketWindow(fallbackBracket, 6, 1e9 / (rate * share), [50e6, 200e6, 500e6])).toBeNull();
    // Together, on the wall clock: never more than the limit plus the fallback's own share.
    const together = brackets(all);
    expect(worstBracketWindow(together, burst + 6, 1e9 / (rate * (1 + share)), [100e6, 300e6, 1000e6])).toBeNull();
  });
});

/** Grants as [call start, return] brackets in ns from the first call (µs differences first: exact). */
function brackets(grants: readonly { p: number; calledUs: number; returnedUs: number }[]): GrantRecord[] {
  const base = Math.min(...grants.map((g) => g.calledUs));
  return grants.map((g) => ({
    callStart: (g.calledUs - base) * 1000, callReturned: (g.returnedUs - base) * 1000, granted: (g.returnedUs - base) * 1000,
    slot: 0, cost: 1, worker: g.p,
  }));
}

function chunk(values: number[], size: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < values.length; i += size) out.push(values.slice(i, i + size));
  return out;
}

function wallUs(): number {
  return (performance.timeOrigin + performance.now()) * 1000;
}
