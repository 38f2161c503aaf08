/**
 * Suite 1 — single-thread "may I take 1 unit now?" throughput.
 *
 * Every contender is asked for one unit, one call at a time, in two regimes:
 *   - always grants: a limit so high it never refuses (the grant path);
 *   - saturated: 1000/s while we call millions of times a second, so ~all
 *     calls are refused (the refusal path, which is what a busy caller hits).
 *
 * Measured with benny (Benchmark.js underneath), one case after another. On a
 * noisy shared machine, cases run seconds apart can see different loads, so
 * the two ratios the targets rest on (vs the floor, vs the fastest peer) are
 * also measured by an interleaved cross-check: short timed blocks of each
 * contender in rotating order, many rounds, median of per-round ratios.
 * Finally an overhead ladder adds atomic-pace's bookkeeping to the floor one
 * step at a time, to show where the time goes.
 */
import b from 'benny';
import Bottleneck from 'bottleneck';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import pThrottle from 'p-throttle';
import { TokenBucket, RateLimiter as LimiterRateLimiter } from 'limiter';
import path from 'node:path';
import { RateLimiter } from '../../dist/index.js';
import { floorOver, newFloorBuffer } from '../lib/floor.mjs';
import { fmtRate, fmtRatio, progress } from '../lib/env.mjs';
import { median } from '../lib/stats.mjs';
import { axisRate, barChart, COLORS } from '../lib/svg.mjs';

const SUITE = '1 tryacquire';
const SAT_RATE = 1000; // grants/s in the saturated regime

/**
 * The contenders. `kind`: 'try' = a synchronous try-API (like for like);
 * 'promise' = answers through a promise (one await per call is part of the
 * cost); 'scheduler' = runs a function under its schedule, has no try/refuse
 * call (not like for like: shown for what it offers).
 */
function contenders(regime) {
  const always = regime === 'always';
  const floorTry = always ? floorOver(newFloorBuffer(), 1, 1e9) : floorOver(newFloorBuffer(), 1e9 / SAT_RATE, 1);
  const ap = always ? new RateLimiter({ rate: 1e9, burst: 1e9 }) : new RateLimiter({ rate: SAT_RATE, burst: 1 });
  const apAsync = always ? new RateLimiter({ rate: 1e9, burst: 1e9 }) : new RateLimiter({ rate: SAT_RATE, burst: 1 });
  const tb = always
    ? new TokenBucket({ bucketSize: 1e12, tokensPerInterval: 1e12, interval: 'second' })
    : new TokenBucket({ bucketSize: 1, tokensPerInterval: SAT_RATE, interval: 'second' });
  const lrl = new LimiterRateLimiter({ tokensPerInterval: always ? 1e12 : SAT_RATE, interval: 'second' });
  const rlf = new RateLimiterMemory({ points: always ? 1e12 : SAT_RATE, duration: 1 });
  const bn = always
    ? new Bottleneck()
    : new Bottleneck({
        reservoir: SAT_RATE,
        reservoirRefreshAmount: SAT_RATE,
        reservoirRefreshInterval: 1000,
        highWater: 0,
        strategy: Bottleneck.strategy.OVERFLOW,
      });
  const noop = () => undefined;
  const throttled = pThrottle({ limit: 1e12, interval: 1000 })(noop);
  const apAsyncOptions = always ? {} : { timeoutMs: 0 };

  const counts = {};
  const count = (name) => (counts[name] = { calls: 0, granted: 0 });
  const list = [
    {
      name: 'bare GCRA floor (inline CAS)',
      id: 'floor',
      kind: 'try',
      api: 'inline: hrtime.bigint(), Atomics.load + compareExchange on one BigInt64 TAT',
      color: COLORS.floor,
      make: (c) => () => { c.calls++; if (floorTry()) c.granted++; },
      sync: floorTry,
    },
    {
      name: 'atomic-pace tryAcquire()',
      id: 'ap',
      kind: 'try',
      api: 'RateLimiter.tryAcquire(1)',
      color: COLORS.ours,
      make: (c) => () => { c.calls++; if (ap.tryAcquire()) c.granted++; },
      sync: () => ap.tryAcquire(),
    },
    {
      name: 'limiter TokenBucket.tryRemoveTokens',
      id: 'limiter-tb',
      kind: 'try',
      api: 'limiter 4.1 TokenBucket.tryRemoveTokens(1) (not shared across threads)',
      color: COLORS.peer,
      make: (c) => () => { c.calls++; if (tb.tryRemoveTokens(1)) c.granted++; },
      sync: () => tb.tryRemoveTokens(1),
    },
    {
      name: 'limiter RateLimiter.tryRemoveTokens',
      id: 'limiter-rl',
      kind: 'try',
      api: 'limiter 4.1 RateLimiter.tryRemoveTokens(1) (not shared across threads)',
      color: COLORS.peer,
      make: (c) => () => { c.calls++; if (lrl.tryRemoveTokens(1)) c.granted++; },
      sync: () => lrl.tryRemoveTokens(1),
    },
    {
      name: 'rate-limiter-flexible consume (promise)',
      id: 'rlf',
      kind: 'promise',
      api: 'rate-limiter-flexible 11.4 RateLimiterMemory.consume(key, 1): promise, rejects when refused; includes one await',
      color: COLORS.peer,
      make: (c) => async () => {
        c.calls++;
        try { await rlf.consume('k', 1); c.granted++; } catch { /* refused */ }
      },
    },
    {
      name: 'atomic-pace acquire() (promise)',
      id: 'ap-async',
      kind: 'promise',
      api: always
        ? 'RateLimiter.acquire(1): promise; includes one await'
        : 'RateLimiter.acquire(1, { timeoutMs: 0 }): promise, rejects with WaitTimeoutError when refused; includes one await',
      color: COLORS.ours,
      make: (c) => async () => {
        c.calls++;
        try { await apAsync.acquire(1, apAsyncOptions); c.granted++; } catch { /* refused */ }
      },
    },
    {
      name: 'p-throttle throttled() (scheduler)',
      id: 'p-throttle',
      kind: 'scheduler',
      api: always
        ? 'p-throttle 8 pThrottle({limit, interval})(fn)(): promise; a scheduler, no try/refuse API'
        : 'n/a: p-throttle never refuses, it queues over-limit calls on timers (unbounded memory under saturation)',
      color: COLORS.slow,
      make: always ? (c) => async () => { c.calls++; await throttled(); c.granted++; } : undefined,
    },
    {
      name: 'bottleneck schedule() (scheduler)',
      id: 'bottleneck',
      kind: 'scheduler',
      api: always
        ? 'bottleneck 2.19 schedule(fn): promise; a job scheduler, no try API'
        : 'bottleneck 2.19 schedule(fn) with reservoir 1000/s, highWater 0, strategy OVERFLOW: over-limit jobs are dropped (its refusal path); promise rejects',
      color: COLORS.slow,
      make: (c) => async () => {
        c.calls++;
        try { await bn.schedule(noop); c.granted++; } catch { /* dropped */ }
      },
    },
  ];
  for (const x of list) if (x.make) x.fn = x.make(count(x.id));
  return { list, counts, close: () => bn.stop({ dropWaitingJobs: true }).catch(() => {}) };
}

/** benny prints to stdout with console.log; while it runs, send that to stderr (progress), keep stdout clean. */
async function quietly(fn) {
  const log = console.log;
  console.log = (...args) => process.stderr.write(args.join(' ') + '\n');
  try {
    return await fn();
  } finally {
    console.log = log;
  }
}

/**
 * benny, `passes` times over the same contenders, each pass in a rotated
 * order (so no contender always runs first, or right after the same one).
 * Each row gets the median ops/s over passes and keeps the per-pass figures,
 * so ratios can be taken within a pass (cases seconds apart) and then the
 * median across passes.
 */
async function runBenny(regime, { quick, outDir, passes }) {
  const { list, counts, close } = contenders(regime);
  const cases = list.filter((x) => x.fn);
  const config = quick
    ? { cases: { minTime: 0.05, maxTime: 0.2, minSamples: 3, delay: 0 } }
    : { cases: { minTime: 0.1, maxTime: 1, minSamples: 8 } };
  const laterConfig = quick ? config : { cases: { minTime: 0.1, maxTime: 0.6, minSamples: 6 } };
  // Warm every case up first, so the first case benny runs is not measured half-cold.
  for (const x of cases) {
    const calls = x.id === 'bottleneck' ? 20 : x.kind === 'try' ? 300_000 : 30_000;
    for (let i = 0; i < calls; i++) {
      const p = x.fn();
      if (p) await p;
    }
  }
  for (const c of Object.values(counts)) c.calls = c.granted = 0;
  const perPass = []; // perPass[p] = Map(name -> benny result)
  const tryCases = cases.filter((x) => x.kind === 'try');
  for (let p = 0; p < passes; p++) {
    // Pass 1 runs every case; later passes repeat only the synchronous
    // try-APIs, which the targets rest on (promise and scheduler cases are
    // 10-10,000x slower: one pass places them well enough).
    const pool = p === 0 ? cases : tryCases;
    const k = p % pool.length;
    const order = pool.slice(k).concat(pool.slice(0, k));
    let done = 0;
    const summary = await quietly(() =>
      b.suite(
        `tryAcquire, 1 thread, ${regime === 'always' ? 'always grants' : `saturated at ${SAT_RATE}/s`}, pass ${p + 1}/${passes}`,
        b.configure(p === 0 ? config : laterConfig),
        ...order.map((x) => b.add(x.name, x.fn)),
        b.cycle((result) => {
          done++;
          progress(SUITE, `${regime}, pass ${p + 1}/${passes}, ${done}/${order.length} ${result.name}: ${fmtRate(result.ops)} ±${result.margin.toFixed(1)}%`);
        }),
        b.complete(() => {}),
        b.save({ file: `tryacquire-${regime}-pass${p + 1}`, folder: path.join(outDir, 'benny'), format: 'json' }),
      ),
    );
    perPass.push(new Map(summary.results.map((r) => [r.name, r])));
  }
  await close();
  return list.map((x) => {
    const rs = perPass.map((m) => m.get(x.name)).filter(Boolean);
    const c = counts[x.id];
    return {
      id: x.id,
      name: x.name,
      kind: x.kind,
      api: x.api,
      color: x.color,
      opsPerSec: rs.length ? median(rs.map((r) => r.ops)) : null,
      marginPct: rs.length ? median(rs.map((r) => r.margin)) : null,
      passes: rs.map((r) => r.ops),
      samples: rs.reduce((sum, r) => sum + r.samples, 0),
      grantedShare: c && c.calls ? c.granted / c.calls : null,
      _sync: x.sync,
    };
  });
}

/**
 * Interleaved timing: each round runs a block of every function in rotating
 * order; a block's length is calibrated to ~blockMs. Returns per-function
 * ns/call per round.
 */
function interleaved(fns, { rounds, blockMs }) {
  const names = Object.keys(fns);
  const n = {};
  for (const name of names) {
    const f = fns[name];
    for (let i = 0; i < 20000; i++) f(); // warm up
    let calls = 1000;
    for (;;) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < calls; i++) f();
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (ms > blockMs / 4 || calls > 1e8) {
        n[name] = Math.max(1000, Math.round((calls * blockMs) / ms));
        break;
      }
      calls *= 4;
    }
  }
  const perRound = Object.fromEntries(names.map((k) => [k, []]));
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(k + r) % names.length];
      const f = fns[name];
      const calls = n[name];
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < calls; i++) f();
      perRound[name].push(Number(process.hrtime.bigint() - t0) / calls);
    }
  }
  return perRound;
}

/**
 * The overhead ladder: the floor, then the floor plus each piece of work
 * atomic-pace's tryAcquire does on top of it, then the real call. The steps
 * are copies written here that mirror src/state.ts `tryTakeSingle` and
 * src/limiter.ts `tryAcquire` as of this writing (fixed-rate limit); the last
 * row is the real dist/ build. Always-grants regime.
 */
function ladder() {
  const mk = () => {
    const w = new BigInt64Array(new SharedArrayBuffer(640));
    w[32] = process.hrtime.bigint();
    w[34] = 1n; // interval 1 ns
    return w;
  };
  const TAU = 1_000_000_000n;
  const SHIFT = 16, TAT = 32, GRANTED = 33, INTERVAL = 34;

  const floor = floorOver(newFloorBuffer(), 1, 1e9);

  const w1 = mk();
  const plusShift = () => {
    const now = process.hrtime.bigint();
    for (;;) {
      const tat = Atomics.load(w1, TAT);
      const v = now - Atomics.load(w1, SHIFT);
      const next = (tat > v ? tat : v) + 1n;
      if (next - v > TAU) return false;
      if (Atomics.compareExchange(w1, TAT, tat, next) === tat) return true;
    }
  };

  const w2 = mk();
  const plusCounter = () => {
    const now = process.hrtime.bigint();
    for (;;) {
      const tat = Atomics.load(w2, TAT);
      const v = now - Atomics.load(w2, SHIFT);
      const next = (tat > v ? tat : v) + 1n;
      if (next - v > TAU) return false;
      if (Atomics.compareExchange(w2, TAT, tat, next) === tat) {
        Atomics.add(w2, GRANTED, 1n);
        return true;
      }
    }
  };

  // Adaptive limiters also re-read the shared interval on every call.
  const w3 = mk();
  let cachedT = -1n, cachedTau = 0n;
  const plusInterval = () => {
    const now = process.hrtime.bigint();
    const T = Atomics.load(w3, INTERVAL);
    if (T !== cachedT) { cachedTau = 1_000_000_000n * T; cachedT = T; }
    for (;;) {
      const tat = Atomics.load(w3, TAT);
      const v = now - Atomics.load(w3, SHIFT);
      const next = (tat > v ? tat : v) + T;
      if (next - v > cachedTau) return false;
      if (Atomics.compareExchange(w3, TAT, tat, next) === tat) {
        Atomics.add(w3, GRANTED, 1n);
        return true;
      }
    }
  };

  // The same work behind the library's shape: a public object with private
  // fields delegating to a state object, T and τ read from fields, the clock
  // called through a field.
  class State {
    constructor(w) {
      this.words = w; this.base0 = TAT; this.adaptive = false; this.burst0 = 1_000_000_000n;
      this.cachedIntervalNs = Atomics.load(w, INTERVAL); this.cachedToleranceNs = this.burst0 * this.cachedIntervalNs;
    }
    tryTakeSingle(now, cost) {
      const w = this.words;
      const base = this.base0;
      let intervalNs = this.cachedIntervalNs;
      if (this.adaptive) intervalNs = Atomics.load(w, INTERVAL);
      const toleranceNs = this.cachedToleranceNs;
      const costNs = cost === 1 ? intervalNs : BigInt(cost) * intervalNs;
      for (;;) {
        const tat = Atomics.load(w, base);
        const v = now - Atomics.load(w, SHIFT);
        const next = (tat > v ? tat : v) + costNs;
        if (next - v > toleranceNs) return false;
        if (Atomics.compareExchange(w, base, tat, next) === tat) {
          Atomics.add(w, base + 1, cost === 1 ? 1n : BigInt(cost));
          return true;
        }
      }
    }
  }
  class Facade {
    #state; #clock; #single;
    constructor(w) { this.#state = new State(w); this.#clock = process.hrtime.bigint; this.#single = true; }
    tryAcquire(cost = 1) {
      if (cost === 1 && this.#single) return this.#state.tryTakeSingle(this.#clock(), 1);
      throw new Error('unused');
    }
  }
  const facade = new Facade(mk());
  const plusShape = () => facade.tryAcquire();

  const ap = new RateLimiter({ rate: 1e9, burst: 1e9 });
  const apTry = () => ap.tryAcquire();

  const clockOnly = () => process.hrtime.bigint();
  const perfNow = () => performance.now();

  return {
    steps: [
      { id: 'perfNow', label: 'reference: performance.now() alone (a double: the clock limiter uses)', ref: true },
      { id: 'clock', label: 'reference: process.hrtime.bigint() alone (allocates a BigInt)', ref: true },
      { id: 'floor', label: 'floor: clock + load TAT + CAS' },
      { id: 'shift', label: '+ load SHIFT_NS (virtual time: shared backoff)' },
      { id: 'counter', label: '+ Atomics.add GRANTED_COST (stats)' },
      { id: 'shape', label: '+ library shape (class, private fields, state object, clock via a field)' },
      { id: 'ap', label: 'atomic-pace tryAcquire() (dist/)' },
      { id: 'interval', label: 'reference: counter step + INTERVAL_NS load (what adaptive limiters also pay)', ref: true },
    ],
    fns: { perfNow, clock: clockOnly, floor, shift: plusShift, counter: plusCounter, shape: plusShape, ap: apTry, interval: plusInterval },
  };
}

export async function run({ quick, outDir }) {
  const passes = quick ? 1 : 5;
  const regimes = {};
  for (const regime of ['always', 'saturated']) {
    progress(SUITE, `benny: ${regime === 'always' ? 'always grants' : `saturated (${SAT_RATE}/s)`}, ${passes} pass${passes > 1 ? 'es' : ''}…`);
    regimes[regime] = await runBenny(regime, { quick, outDir, passes });
  }

  // Interleaved cross-check of the ratios the targets rest on.
  const rounds = quick ? 5 : 31;
  const blockMs = quick ? 6 : 25;
  const cross = {};
  for (const regime of ['always', 'saturated']) {
    progress(SUITE, `interleaved cross-check (${regime}), ${rounds} rounds…`);
    const rows = regimes[regime].filter((x) => x._sync);
    const fns = Object.fromEntries(rows.map((x) => [x.id, x._sync]));
    const perRound = interleaved(fns, { rounds, blockMs });
    const nsPerCall = Object.fromEntries(Object.entries(perRound).map(([k, v]) => [k, median(v)]));
    const ratioPerRound = (a, bId) => perRound[a].map((ns, i) => perRound[bId][i] / ns);
    const peers = rows.filter((x) => x.kind === 'try' && x.id !== 'floor' && x.id !== 'ap').map((x) => x.id);
    const fastestPeer = peers.reduce((best, id) => (nsPerCall[id] < nsPerCall[best] ? id : best), peers[0]);
    cross[regime] = {
      rounds,
      blockMs,
      nsPerCall,
      opsPerSec: Object.fromEntries(Object.entries(nsPerCall).map(([k, v]) => [k, 1e9 / v])),
      apVsFloor: median(ratioPerRound('ap', 'floor')),
      fastestPeer,
      apVsFastestPeer: median(ratioPerRound('ap', fastestPeer)),
    };
  }

  progress(SUITE, `overhead ladder, ${rounds} rounds…`);
  const lad = ladder();
  const ladderRounds = interleaved(lad.fns, { rounds, blockMs });
  const ladderRows = lad.steps.map((s) => ({ ...s, nsPerCall: median(ladderRounds[s.id]) }));

  for (const regime of Object.keys(regimes)) for (const r of regimes[regime]) delete r._sync;

  // Ratios within each benny pass, then the median over passes.
  const ratios = {};
  for (const regime of ['always', 'saturated']) {
    const rows = regimes[regime];
    const get = (id) => rows.find((r) => r.id === id);
    const ratio = (a, b) => median(get(a).passes.map((ops, p) => ops / get(b).passes[p]));
    const peers = rows.filter((r) => r.kind === 'try' && r.id !== 'floor' && r.id !== 'ap');
    const fastestPeer = peers.reduce((best, r) => (r.opsPerSec > best.opsPerSec ? r : best), peers[0]);
    ratios[regime] = {
      apVsFloor: ratio('ap', 'floor'),
      fastestPeer: fastestPeer.id,
      apVsFastestPeer: ratio('ap', fastestPeer.id),
      apAsyncVsRlf: ratio('ap-async', 'rlf'),
    };
  }
  return { saturatedRate: SAT_RATE, passes, regimes, ratios, crossCheck: cross, ladder: ladderRows };
}

/** Targets, tables and charts from a stored result. */
export function report(data) {
  const targets = [];
  const lines = [];
  for (const regime of ['always', 'saturated']) {
    const r = data.ratios[regime];
    const c = data.crossCheck[regime];
    const label = regime === 'always' ? 'always grants' : `saturated (${data.saturatedRate}/s)`;
    targets.push({
      id: `tryacquire-floor-${regime}`,
      name: `tryAcquire, 1 thread, ${label}: vs bare GCRA floor`,
      target: '≥ 0.8x',
      measured: `${fmtRatio(r.apVsFloor)} (interleaved: ${fmtRatio(c.apVsFloor)})`,
      pass: r.apVsFloor >= 0.8,
      crossPass: c.apVsFloor >= 0.8,
    });
    targets.push({
      id: `tryacquire-peer-${regime}`,
      name: `tryAcquire, 1 thread, ${label}: vs fastest in-process peer (${r.fastestPeer})`,
      target: '≥ 1.0x',
      measured: `${fmtRatio(r.apVsFastestPeer)} (interleaved: ${fmtRatio(c.apVsFastestPeer)} vs ${c.fastestPeer})`,
      pass: r.apVsFastestPeer >= 1.0,
      crossPass: c.apVsFastestPeer >= 1.0,
    });
  }

  lines.push('## 1. tryAcquire throughput, one thread');
  lines.push('');
  lines.push(`Each contender is asked "may I take 1 unit now?", one call at a time, measured by benny (Benchmark.js)${(data.passes ?? 1) > 1 ? `: the synchronous try-APIs in ${data.passes} passes in rotated order (figures are medians over passes, ratios the median of within-pass ratios), the promise and scheduler cases in the first pass only` : ''}. ` +
    `"Always grants": a limit that never refuses. "Saturated": ${data.saturatedRate}/s, so nearly every call is refused. ` +
    'Ratios are to atomic-pace in the same regime (>1 = that contender is faster).');
  lines.push('');
  lines.push('| contender | kind | always grants | ratio to atomic-pace | saturated | ratio to atomic-pace | API called |');
  lines.push('|---|---|---|---|---|---|---|');
  const sat = new Map(data.regimes.saturated.map((r) => [r.id, r]));
  const apA = data.regimes.always.find((r) => r.id === 'ap').opsPerSec;
  const apS = sat.get('ap').opsPerSec;
  for (const a of data.regimes.always) {
    const s = sat.get(a.id);
    const cell = (r) => (r && r.opsPerSec ? `${fmtRate(r.opsPerSec)} ±${r.marginPct.toFixed(1)}%` : 'n/a');
    const ratio = (r, base) => (r && r.opsPerSec ? fmtRatio(r.opsPerSec / base) : 'n/a');
    const api = s && s.api !== a.api ? `${a.api}; saturated: ${s.api}` : a.api;
    lines.push(`| ${a.name} | ${a.kind === 'try' ? 'try (like for like)' : a.kind === 'promise' ? 'promise' : 'scheduler (not like for like)'} | ${cell(a)} | ${ratio(a, apA)} | ${cell(s)} | ${ratio(s, apS)} | ${api} |`);
  }
  lines.push('');
  lines.push('Interleaved cross-check (synchronous try-APIs only, median ns per call over ' +
    `${data.crossCheck.always.rounds} rounds of ~${data.crossCheck.always.blockMs} ms blocks in rotating order):`);
  lines.push('');
  lines.push('| contender | always grants | saturated |');
  lines.push('|---|---|---|');
  for (const id of Object.keys(data.crossCheck.always.nsPerCall)) {
    const name = data.regimes.always.find((r) => r.id === id).name;
    lines.push(`| ${name} | ${data.crossCheck.always.nsPerCall[id].toFixed(1)} ns (${fmtRate(1e9 / data.crossCheck.always.nsPerCall[id])}) | ${data.crossCheck.saturated.nsPerCall[id].toFixed(1)} ns (${fmtRate(1e9 / data.crossCheck.saturated.nsPerCall[id])}) |`);
  }
  lines.push('');
  lines.push('Where the time goes (always grants; each step adds one piece of atomic-pace\'s work to the floor; median ns per call, interleaved):');
  lines.push('');
  lines.push('| step | ns/call | Δ vs previous |');
  lines.push('|---|---|---|');
  data.ladder.forEach((s, i) => {
    const prevStep = data.ladder[i - 1];
    const prev = !s.ref && prevStep && !prevStep.ref ? prevStep.nsPerCall : undefined;
    lines.push(`| ${s.label} | ${s.nsPerCall.toFixed(1)} | ${prev === undefined ? '' : `${s.nsPerCall - prev >= 0 ? '+' : ''}${(s.nsPerCall - prev).toFixed(1)}`} |`);
  });
  lines.push('');

  const rows = [];
  for (const regime of ['always', 'saturated']) {
    rows.push({ heading: regime === 'always' ? 'always grants' : `saturated (${data.saturatedRate}/s, almost all refused)` });
    for (const r of data.regimes[regime]) {
      rows.push({ label: r.name, value: r.opsPerSec ?? undefined, color: r.color, text: r.opsPerSec ? fmtRate(r.opsPerSec) : 'n/a (never refuses: queues)' });
    }
  }
  const charts = [{
    file: 'tryacquire.svg',
    svg: barChart({
      title: 'tryAcquire, one thread: calls per second (log scale)',
      subtitle: 'benny; blue = atomic-pace, grey = bare GCRA floor, amber = in-process peers, red = schedulers (not like for like)',
      rows,
      log: true,
      format: fmtRate,
      axisFormat: axisRate,
    }),
  }];
  const a = data.regimes.always;
  const ap = a.find((r) => r.id === 'ap');
  const floor = a.find((r) => r.id === 'floor');
  const peer = a.find((r) => r.id === data.ratios.always.fastestPeer);
  const headline = [
    { measure: 'tryAcquire, 1 thread (grant path)', value: fmtRate(ap.opsPerSec), vs: `bare inline GCRA CAS loop (the floor): ${fmtRate(floor.opsPerSec)}`, ratio: fmtRatio(data.ratios.always.apVsFloor) },
    { measure: 'tryAcquire, 1 thread (grant path)', value: fmtRate(ap.opsPerSec), vs: `fastest in-process peer, ${peer.name} (one thread only): ${fmtRate(peer.opsPerSec)}`, ratio: fmtRatio(data.ratios.always.apVsFastestPeer) },
  ];
  return { targets, markdown: lines.join('\n'), charts, headline };
}
