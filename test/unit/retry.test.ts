import { afterEach, describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import {
  RetriesExhaustedError,
  defaultIsThrottle,
  defaultRetryAfter,
  runWithRetry,
  type RetryOptions,
  type RetryTarget,
} from '../../src/retry.js';
import { InvalidOptionError } from '../../src/errors.js';

// ---------------------------------------------------------------------------
// Helpers

type Event =
  | { type: 'acquire'; cost: number | undefined; signal: AbortSignal | undefined }
  | { type: 'backoff'; retryAfterMs: number | undefined; reason: string | undefined }
  | { type: 'success' }
  | { type: 'fn'; attempt: number }
  | { type: 'sleep'; ms: number };

interface Deferred<V> {
  promise: Promise<V>;
  resolve: (value: V) => void;
  reject: (error: unknown) => void;
}

function deferred<V = void>(): Deferred<V> {
  let resolve!: (value: V) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<V>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Fake limiter that records every call into a shared event log. */
class FakeTarget implements RetryTarget {
  readonly events: Event[];
  /** When set, acquire returns this instead of resolving immediately. */
  acquireImpl: ((cost?: number, options?: { signal?: AbortSignal }) => Promise<unknown>) | undefined;

  constructor(events: Event[] = []) {
    this.events = events;
  }

  acquire(cost?: number, options?: { signal?: AbortSignal }): Promise<unknown> {
    this.events.push({ type: 'acquire', cost, signal: options?.signal });
    return this.acquireImpl ? this.acquireImpl(cost, options) : Promise.resolve(undefined);
  }

  backoff(options: { retryAfterMs?: number; reason?: string }): void {
    this.events.push({ type: 'backoff', retryAfterMs: options.retryAfterMs, reason: options.reason });
  }

  success(): void {
    this.events.push({ type: 'success' });
  }

  of<K extends Event['type']>(type: K): Extract<Event, { type: K }>[] {
    return this.events.filter((e): e is Extract<Event, { type: K }> => e.type === type);
  }
}

/** A recording sleep that resolves immediately. */
function recordingSleep(events: Event[]): (ms: number) => Promise<void> {
  return async (ms: number) => {
    events.push({ type: 'sleep', ms });
  };
}

/** Deterministic PRNG (mulberry32) in [0, 1). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const throttled429 = (): { status: number; headers: Headers } => ({
  status: 429,
  headers: new Headers({ 'retry-after': '2' }),
});

/** Lets pending promise callbacks (and a macrotask) run. */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function setup(): { target: FakeTarget; events: Event[]; sleep: (ms: number) => Promise<void> } {
  const events: Event[] = [];
  return { target: new FakeTarget(events), events, sleep: recordingSleep(events) };
}

afterEach(() => {
  vi.useRealTimers();
});

// ---------------------------------------------------------------------------

describe('runWithRetry: success', () => {
  it('returns the first non-throttled value after one acquire, calling success once', async () => {
    const { target, events, sleep } = setup();
    const result = await runWithRetry(
      target,
      (attempt) => {
        events.push({ type: 'fn', attempt });
        return { status: 200, body: 'ok' };
      },
      { sleep, cost: 3 },
    );
    expect(result).toEqual({ status: 200, body: 'ok' });
    expect(events.map((e) => e.type)).toEqual(['acquire', 'fn', 'success']);
    expect(target.of('acquire')[0]?.cost).toBe(3);
    expect(target.of('fn')[0]?.attempt).toBe(0);
  });

  it('passes cost 1 by default and works with a target without success()', async () => {
    const calls: unknown[][] = [];
    const target: RetryTarget = {
      acquire: async (...args: unknown[]) => {
        calls.push(args);
      },
      backoff: () => {
        throw new Error('backoff must not be called');
      },
    };
    await expect(runWithRetry(target, async () => 'v')).resolves.toBe('v');
    expect(calls).toHaveLength(1);
    expect(calls[0]?.[0]).toBe(1);
  });

  it('awaits acquire before calling fn', async () => {
    const { target, events, sleep } = setup();
    const gate = deferred<unknown>();
    target.acquireImpl = () => gate.promise;
    const run = runWithRetry(target, (attempt) => {
      events.push({ type: 'fn', attempt });
      return 'x';
    }, { sleep });
    await flush();
    expect(target.of('fn')).toHaveLength(0);
    gate.resolve(undefined);
    await expect(run).resolves.toBe('x');
    expect(target.of('fn')).toHaveLength(1);
  });

  it('passes the signal to acquire and to fn', async () => {
    const { target, sleep } = setup();
    const controller = new AbortController();
    let seen: AbortSignal | undefined;
    await runWithRetry(target, (_attempt, signal) => {
      seen = signal;
      return 1;
    }, { sleep, signal: controller.signal });
    expect(target.of('acquire')[0]?.signal).toBe(controller.signal);
    expect(seen).toBe(controller.signal);
  });
});

describe('runWithRetry: throttle then success', () => {
  it('reports the Retry-After delay (2 s -> 2000 ms) to backoff and sleeps only the jitter', async () => {
    const { target, events, sleep } = setup();
    const first = throttled429();
    const result = await runWithRetry(
      target,
      (attempt) => {
        events.push({ type: 'fn', attempt });
        return attempt === 0 ? first : { status: 200, headers: new Headers() };
      },
      { sleep, random: () => 0.5, baseDelayMs: 100 },
    );
    expect(result.status).toBe(200);
    expect(events).toEqual([
      { type: 'acquire', cost: 1, signal: undefined },
      { type: 'fn', attempt: 0 },
      { type: 'backoff', retryAfterMs: 2000, reason: 'throttle (HTTP 429)' },
      // jitter for retry 0 is uniform in [0, 100): 0.5 * 100. Not 2000: the limiter's pause covers that.
      { type: 'sleep', ms: 50 },
      { type: 'acquire', cost: 1, signal: undefined },
      { type: 'fn', attempt: 1 },
      { type: 'success' },
    ]);
  });

  it('reads Retry-After from a real fetch Response', async () => {
    const { target, sleep } = setup();
    let n = 0;
    const ok = new Response('fine', { status: 200 });
    const result = await runWithRetry(
      target,
      () => (n++ === 0 ? new Response(null, { status: 503, headers: { 'Retry-After': '3' } }) : ok),
      { sleep, random: () => 0 },
    );
    expect(result).toBe(ok);
    expect(target.of('backoff')).toEqual([{ type: 'backoff', retryAfterMs: 3000, reason: 'throttle (HTTP 503)' }]);
  });

  it('without a server delay, backoff gets the same jittered delay that is slept', async () => {
    const { target, events, sleep } = setup();
    const rand = seeded(42);
    const expectedRandoms = (() => {
      const r = seeded(42);
      return [r(), r(), r()];
    })();
    let n = 0;
    await runWithRetry(target, () => (n++ < 3 ? { status: 429 } : { status: 200 }), {
      sleep,
      random: rand,
      baseDelayMs: 10,
      maxDelayMs: 1000,
    });
    const backoffs = target.of('backoff').map((e) => e.retryAfterMs);
    const sleeps = events.filter((e) => e.type === 'sleep').map((e) => (e as { ms: number }).ms);
    expect(sleeps).toEqual(expectedRandoms.map((r, k) => r * 10 * 2 ** k));
    expect(backoffs).toEqual(sleeps);
    expect(target.of('success')).toHaveLength(1);
    expect(target.of('acquire')).toHaveLength(4);
  });

  it('retries thrown throttle errors (status 429) and returns the later value', async () => {
    const { target, events, sleep } = setup();
    const result = await runWithRetry(
      target,
      (attempt) => {
        events.push({ type: 'fn', attempt });
        if (attempt < 2) throw Object.assign(new Error('Too Many Requests'), { status: 429 });
        return 'done';
      },
      { sleep, random: () => 0 },
    );
    expect(result).toBe('done');
    expect(target.of('fn').map((e) => e.attempt)).toEqual([0, 1, 2]);
    expect(target.of('backoff')).toHaveLength(2);
    expect(target.of('backoff')[0]?.reason).toBe('throttle (HTTP 429)');
    expect(target.of('success')).toHaveLength(1);
  });

  it('retries axios-style errors (response.status 503) and reads response.headers', async () => {
    const { target, sleep } = setup();
    let n = 0;
    await runWithRetry(
      target,
      () => {
        if (n++ === 0) {
          throw Object.assign(new Error('unavailable'), {
            response: { status: 503, headers: { 'retry-after': '1' } },
          });
        }
        return 'ok';
      },
      { sleep, random: () => 0 },
    );
    expect(target.of('backoff')).toEqual([{ type: 'backoff', retryAfterMs: 1000, reason: 'throttle (HTTP 503)' }]);
  });

  it('calls custom isThrottle/retryAfter with the outcome and its kind', async () => {
    const { target, sleep } = setup();
    const err = new Error('slow down');
    const seenIs: [unknown, string][] = [];
    const seenAfter: [unknown, string][] = [];
    let n = 0;
    const result = await runWithRetry(
      target,
      () => {
        n++;
        if (n === 1) throw err;
        if (n === 2) return 'busy';
        return 'ready';
      },
      {
        sleep,
        random: () => 0,
        isThrottle: (o, kind) => {
          seenIs.push([o, kind]);
          return o === err || o === 'busy';
        },
        retryAfter: (o, kind) => {
          seenAfter.push([o, kind]);
          return o === err ? 123 : undefined;
        },
      },
    );
    expect(result).toBe('ready');
    expect(seenIs).toEqual([
      [err, 'error'],
      ['busy', 'value'],
      ['ready', 'value'],
    ]);
    expect(seenAfter).toEqual([
      [err, 'error'],
      ['busy', 'value'],
    ]);
    expect(target.of('backoff').map((e) => e.retryAfterMs)).toEqual([123, 0]);
    expect(target.of('backoff').map((e) => e.reason)).toEqual(['throttle', 'throttle']);
  });

  it.each([Number.NaN, -1, Number.POSITIVE_INFINITY, '5' as unknown as number])(
    'ignores an invalid retryAfter result (%s) and reports the jitter delay instead',
    async (bad) => {
      const { target, sleep } = setup();
      let n = 0;
      await runWithRetry(target, () => (n++ === 0 ? { status: 429 } : 'ok'), {
        sleep,
        random: () => 0.25,
        baseDelayMs: 40,
        retryAfter: () => bad,
      });
      expect(target.of('backoff').map((e) => e.retryAfterMs)).toEqual([10]);
    },
  );
});

describe('runWithRetry: full jitter', () => {
  const K = 10;
  async function delaysFor(random: () => number, baseDelayMs: number, maxDelayMs: number): Promise<number[]> {
    const delays: number[] = [];
    const target = new FakeTarget();
    await expect(
      runWithRetry(target, () => ({ status: 429 }), {
        retries: K + 1, // sleeps for retry indexes 0..K, then gives up
        random,
        baseDelayMs,
        maxDelayMs,
        sleep: async (ms) => {
          delays.push(ms);
        },
      }),
    ).rejects.toBeInstanceOf(RetriesExhaustedError);
    return delays;
  }

  it('random=0.999999: delay k is just below min(cap, base*2^k) for k = 0..10', async () => {
    const base = 100;
    const cap = 1_000_000;
    const delays = await delaysFor(() => 0.999999, base, cap);
    expect(delays).toHaveLength(K + 1);
    delays.forEach((d, k) => {
      const ceiling = Math.min(cap, base * 2 ** k);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(ceiling);
      expect(d).toBeGreaterThan(0.999 * ceiling); // grows exponentially, not linearly or constant
    });
  });

  it('random=0: every delay is 0', async () => {
    const delays = await delaysFor(() => 0, 100, 20_000);
    expect(delays).toEqual(new Array(K + 1).fill(0));
  });

  it('respects the cap', async () => {
    const delays = await delaysFor(() => 0.999999, 100, 1000);
    const ceilings = [100, 200, 400, 800, 1000, 1000, 1000, 1000, 1000, 1000, 1000];
    delays.forEach((d, k) => {
      expect(d).toBeLessThan(ceilings[k]!);
      expect(d).toBeGreaterThan(0.999 * ceilings[k]!);
    });
  });

  it('keeps a misbehaving random (1, 2, NaN, -1) inside [0, ceiling)', async () => {
    for (const r of [1, 2, Number.NaN, -1]) {
      const delays = await delaysFor(() => r, 100, 1000);
      delays.forEach((d, k) => {
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(Math.min(1000, 100 * 2 ** k));
      });
    }
  });

  it('property: delay k equals r * min(cap, base*2^k) and lies in [0, ceiling)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.double({ min: 0.001, max: 1e6, noNaN: true }),
        fc.double({ min: 1, max: 1e4, noNaN: true }),
        fc.integer({ min: 0, max: 40 }),
        async (r, base, capFactor, retries) => {
          const cap = base * capFactor;
          const delays: number[] = [];
          await runWithRetry(new FakeTarget(), () => ({ status: 503 }), {
            retries,
            random: () => r,
            baseDelayMs: base,
            maxDelayMs: cap,
            sleep: async (ms) => {
              delays.push(ms);
            },
          }).catch((e: unknown) => {
            if (!(e instanceof RetriesExhaustedError)) throw e;
          });
          expect(delays).toHaveLength(retries);
          delays.forEach((d, k) => {
            const ceiling = Math.min(cap, base * 2 ** k);
            expect(d).toBeGreaterThanOrEqual(0);
            expect(d).toBeLessThan(ceiling);
            expect(d).toBe(r * ceiling < ceiling ? r * ceiling : d);
          });
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('runWithRetry: non-throttle outcomes', () => {
  it('rethrows a non-throttle error by identity, immediately, without retry or backoff', async () => {
    const { target, events, sleep } = setup();
    const err = Object.assign(new Error('boom'), { status: 500 });
    await expect(
      runWithRetry(
        target,
        (attempt) => {
          events.push({ type: 'fn', attempt });
          throw err;
        },
        { sleep },
      ),
    ).rejects.toBe(err);
    expect(events.map((e) => e.type)).toEqual(['acquire', 'fn']);
  });

  it('rethrows non-Error throwables untouched', async () => {
    const { target, sleep } = setup();
    const thrown = { weird: true };
    await expect(runWithRetry(target, () => Promise.reject(thrown), { sleep })).rejects.toBe(thrown);
    expect(target.of('backoff')).toHaveLength(0);
  });

  it('returns a non-throttle HTTP error value (500) as a success', async () => {
    const { target, sleep } = setup();
    const value = { status: 500 };
    await expect(runWithRetry(target, () => value, { sleep })).resolves.toBe(value);
    expect(target.of('backoff')).toHaveLength(0);
    expect(target.of('success')).toHaveLength(1);
  });

  it('propagates an error thrown by isThrottle', async () => {
    const { target, sleep } = setup();
    const bug = new Error('predicate bug');
    await expect(
      runWithRetry(target, () => 1, {
        sleep,
        isThrottle: () => {
          throw bug;
        },
      }),
    ).rejects.toBe(bug);
  });
});

describe('runWithRetry: exhaustion', () => {
  it('rejects with RetriesExhaustedError after retries+1 throttled values', async () => {
    const { target, events, sleep } = setup();
    const outcomes: object[] = [];
    const error = await runWithRetry(
      target,
      (attempt) => {
        events.push({ type: 'fn', attempt });
        const o = { status: 429, attempt };
        outcomes.push(o);
        return o;
      },
      { sleep, retries: 2, random: () => 0 },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetriesExhaustedError);
    expect(error).toBeInstanceOf(Error);
    const e = error as RetriesExhaustedError;
    expect(e.name).toBe('RetriesExhaustedError');
    expect(e.code).toBe('E_RETRIES_EXHAUSTED');
    expect(e.attempts).toBe(3);
    expect(e.lastOutcome).toBe(outcomes[2]);
    expect(e.lastKind).toBe('value');
    expect(e.cause).toBeUndefined();
    expect(e.message).toMatch(/3 attempts/);
    expect(e.message).toMatch(/throttled/);
    expect(e.message).toMatch(/429/);
    expect(target.of('fn').map((x) => x.attempt)).toEqual([0, 1, 2]);
    // every throttle, including the last, is reported so other threads pause
    expect(target.of('backoff')).toHaveLength(3);
    expect(events.filter((x) => x.type === 'sleep')).toHaveLength(2);
    expect(target.of('success')).toHaveLength(0);
    expect(events.at(-1)?.type).toBe('backoff');
  });

  it('sets cause to the last thrown throttle error', async () => {
    const { target, sleep } = setup();
    const errors: Error[] = [];
    const error = await runWithRetry(
      target,
      () => {
        const err = Object.assign(new Error('rate limited'), { statusCode: 503 });
        errors.push(err);
        throw err;
      },
      { sleep, retries: 1 },
    ).catch((e: unknown) => e);
    const e = error as RetriesExhaustedError;
    expect(e).toBeInstanceOf(RetriesExhaustedError);
    expect(e.attempts).toBe(2);
    expect(e.lastKind).toBe('error');
    expect(errors).toHaveLength(2);
    expect(e.lastOutcome).toBe(errors[1]);
    expect(e.cause).toBe(errors[1]);
    expect(e.message).toMatch(/2 attempts/);
  });

  it('retries: 0 makes exactly one attempt and never sleeps', async () => {
    const { target, events, sleep } = setup();
    const e = await runWithRetry(target, () => ({ status: 429 }), { sleep, retries: 0 }).catch((x: unknown) => x);
    expect((e as RetriesExhaustedError).attempts).toBe(1);
    expect((e as RetriesExhaustedError).message).toMatch(/1 attempt\b/);
    expect(target.of('acquire')).toHaveLength(1);
    expect(events.some((x) => x.type === 'sleep')).toBe(false);
  });

  it('defaults to 5 retries (6 attempts)', async () => {
    const { target, sleep } = setup();
    const e = await runWithRetry(target, () => ({ status: 429 }), { sleep }).catch((x: unknown) => x);
    expect((e as RetriesExhaustedError).attempts).toBe(6);
    expect(target.of('acquire')).toHaveLength(6);
  });
});

describe('runWithRetry: abort', () => {
  it('rejects with signal.reason before the first acquire when already aborted', async () => {
    const { target, events, sleep } = setup();
    const controller = new AbortController();
    const reason = new Error('stop');
    controller.abort(reason);
    const fn = vi.fn(() => 1);
    await expect(runWithRetry(target, fn, { sleep, signal: controller.signal })).rejects.toBe(reason);
    expect(events).toHaveLength(0);
    expect(fn).not.toHaveBeenCalled();
  });

  it('uses the default AbortError reason when abort() has no argument', async () => {
    const { target, sleep } = setup();
    const controller = new AbortController();
    controller.abort();
    const err = await runWithRetry(target, () => 1, { sleep, signal: controller.signal }).catch((e: unknown) => e);
    expect(err).toBe(controller.signal.reason);
    expect((err as Error).name).toBe('AbortError');
  });

  it('rejects promptly during an acquire that ignores the signal; fn is never called', async () => {
    const { target, sleep } = setup();
    const gate = deferred<unknown>();
    target.acquireImpl = () => gate.promise;
    const controller = new AbortController();
    const fn = vi.fn(() => 1);
    const run = runWithRetry(target, fn, { sleep, signal: controller.signal });
    await flush();
    expect(target.of('acquire')).toHaveLength(1);
    const reason = new Error('cancelled while waiting');
    controller.abort(reason);
    await expect(run).rejects.toBe(reason);
    gate.resolve(undefined); // late grant must not start the attempt
    await flush();
    expect(fn).not.toHaveBeenCalled();
  });

  it('rejects with signal.reason when acquire honours the signal with its own error', async () => {
    const { target, sleep } = setup();
    target.acquireImpl = (_cost, options) =>
      new Promise((_resolve, reject) => {
        options?.signal?.addEventListener('abort', () => reject(new Error('limiter-specific abort')));
      });
    const controller = new AbortController();
    const fn = vi.fn(() => 1);
    const run = runWithRetry(target, fn, { sleep, signal: controller.signal });
    await flush();
    const reason = new Error('user abort');
    controller.abort(reason);
    await expect(run).rejects.toBe(reason);
    expect(fn).not.toHaveBeenCalled();
  });

  it('does not call fn when acquire resolves but the signal aborted meanwhile', async () => {
    const { target, sleep } = setup();
    const controller = new AbortController();
    const reason = new Error('late');
    target.acquireImpl = async () => {
      controller.abort(reason);
      return undefined;
    };
    const fn = vi.fn(() => 1);
    await expect(runWithRetry(target, fn, { sleep, signal: controller.signal })).rejects.toBe(reason);
    expect(fn).not.toHaveBeenCalled();
  });

  it('does not call fn when the abort lands after acquire settled but before the attempt starts', async () => {
    const { target, sleep } = setup();
    const controller = new AbortController();
    const reason = new Error('between grant and attempt');
    target.acquireImpl = () => {
      const granted = Promise.resolve(undefined);
      // Runs after the grant has been delivered to the loop, but before the loop's continuation.
      void granted.then(() => queueMicrotask(() => controller.abort(reason)));
      return granted;
    };
    const fn = vi.fn(() => 1);
    await expect(runWithRetry(target, fn, { sleep, signal: controller.signal })).rejects.toBe(reason);
    expect(fn).not.toHaveBeenCalled();
  });

  it('rejects promptly during an injected sleep that ignores the signal; no further attempts', async () => {
    const { target } = setup();
    const gate = deferred();
    const slept: [number, AbortSignal | undefined][] = [];
    const controller = new AbortController();
    const fn = vi.fn(() => ({ status: 429 }));
    const run = runWithRetry(target, fn, {
      signal: controller.signal,
      random: () => 0.5,
      sleep: (ms, signal) => {
        slept.push([ms, signal]);
        return gate.promise;
      },
    });
    await flush();
    expect(slept).toEqual([[50, controller.signal]]);
    const reason = new Error('abort during sleep');
    controller.abort(reason);
    await expect(run).rejects.toBe(reason);
    gate.resolve();
    await flush();
    expect(fn).toHaveBeenCalledTimes(1);
    expect(target.of('acquire')).toHaveLength(1);
  });

  it('default sleep: aborting rejects with the reason and clears the timer', async () => {
    vi.useFakeTimers();
    const { target } = setup();
    const controller = new AbortController();
    const fn = vi.fn(() => ({ status: 429 }));
    const run = runWithRetry(target, fn, { signal: controller.signal, random: () => 0.5, baseDelayMs: 10_000 });
    run.catch(() => {});
    await vi.advanceTimersByTimeAsync(0);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(vi.getTimerCount()).toBe(1); // the 5 s jitter sleep
    const reason = new Error('abort default sleep');
    controller.abort(reason);
    await expect(run).rejects.toBe(reason);
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('default sleep: waits exactly the jitter delay before the next attempt', async () => {
    vi.useFakeTimers();
    const { target } = setup();
    let n = 0;
    const fn = vi.fn(() => (n++ === 0 ? { status: 429 } : 'ok'));
    const run = runWithRetry(target, fn, { random: () => 0.5, baseDelayMs: 1000 });
    await vi.advanceTimersByTimeAsync(499);
    expect(fn).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(fn).toHaveBeenCalledTimes(2);
    await expect(run).resolves.toBe('ok');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a throttle seen after an abort during fn is still reported, then rejects with the reason', async () => {
    const { target, sleep } = setup();
    const controller = new AbortController();
    const reason = new Error('abort during fn');
    const fn = vi.fn(async () => {
      controller.abort(reason);
      return { status: 429 };
    });
    await expect(runWithRetry(target, fn, { sleep, signal: controller.signal })).rejects.toBe(reason);
    expect(target.of('backoff')).toHaveLength(1);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('an abort during the last throttled attempt rejects with the reason, not RetriesExhaustedError', async () => {
    const { target, sleep } = setup();
    const controller = new AbortController();
    const reason = new Error('abort during last attempt');
    const fn = vi.fn(async () => {
      controller.abort(reason);
      return { status: 503 };
    });
    await expect(runWithRetry(target, fn, { sleep, retries: 0, signal: controller.signal })).rejects.toBe(reason);
    expect(target.of('backoff')).toHaveLength(1);
  });
});

describe('runWithRetry: option validation', () => {
  type Case = [field: string, options: RetryOptions<unknown>, message: string];
  const cases: Case[] = [
    ['retries', { retries: -1 }, 'retries must be an integer in 0..1000, got -1'],
    ['retries', { retries: 1001 }, 'retries must be an integer in 0..1000, got 1001'],
    ['retries', { retries: 1.5 }, 'retries must be an integer in 0..1000, got 1.5'],
    ['retries', { retries: Number.NaN }, 'retries must be an integer in 0..1000, got NaN'],
    ['retries', { retries: '3' as unknown as number }, 'retries must be an integer in 0..1000, got "3"'],
    ['baseDelayMs', { baseDelayMs: 0 }, 'baseDelayMs must be a finite number > 0, got 0'],
    ['baseDelayMs', { baseDelayMs: -5 }, 'baseDelayMs must be a finite number > 0, got -5'],
    ['baseDelayMs', { baseDelayMs: Infinity }, 'baseDelayMs must be a finite number > 0, got Infinity'],
    ['maxDelayMs', { maxDelayMs: 50 }, 'maxDelayMs must be a finite number >= baseDelayMs (100), got 50'],
    ['maxDelayMs', { baseDelayMs: 10, maxDelayMs: Infinity }, 'maxDelayMs must be a finite number >= baseDelayMs (10), got Infinity'],
    ['maxDelayMs', { maxDelayMs: Number.NaN }, 'maxDelayMs must be a finite number >= baseDelayMs (100), got NaN'],
    ['cost', { cost: 0 }, 'cost must be an integer >= 1, or an object of costs per limit, got 0'],
    ['cost', { cost: -1 }, 'cost must be an integer >= 1, or an object of costs per limit, got -1'],
    ['cost', { cost: 1.5 }, 'cost must be an integer >= 1, or an object of costs per limit, got 1.5'],
    ['cost', { cost: Number.NaN }, 'cost must be an integer >= 1, or an object of costs per limit, got NaN'],
    ['isThrottle', { isThrottle: true as never }, 'isThrottle must be a function or undefined, got true'],
    ['retryAfter', { retryAfter: 5 as never }, 'retryAfter must be a function or undefined, got 5'],
    ['random', { random: 0.5 as never }, 'random must be a function or undefined, got 0.5'],
    ['sleep', { sleep: 'x' as never }, 'sleep must be a function or undefined, got "x"'],
    ['signal', { signal: {} as never }, 'signal must be an AbortSignal or undefined, got an object'],
  ];

  it.each(cases)('%s: %j', async (field, options, message) => {
    const { target } = setup();
    const fn = vi.fn(() => 1);
    const err = await runWithRetry(target, fn, options).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidOptionError);
    const e = err as InvalidOptionError;
    expect(e.code).toBe('E_INVALID_OPTION');
    expect(e.field).toBe(field);
    expect(e.name).toBe('InvalidOptionError');
    expect(e.message).toBe(message);
    expect(Object.is(e.value, (options as Record<string, unknown>)[field])).toBe(true);
    // validated up front: nothing touched the limiter or fn
    expect(target.events).toHaveLength(0);
    expect(fn).not.toHaveBeenCalled();
  });

  it.each<[string, RetryOptions<unknown>]>([
    ['retries 0', { retries: 0 }],
    ['retries 1000', { retries: 1000 }],
    ['maxDelayMs == baseDelayMs', { baseDelayMs: 7, maxDelayMs: 7 }],
    ['large baseDelayMs without a cap', { baseDelayMs: 60_000 }],
    ['cost 2', { cost: 2 }],
    ['tiny baseDelayMs', { baseDelayMs: Number.MIN_VALUE }],
  ])('accepts boundary value: %s', async (_name, options) => {
    const { target } = setup();
    await expect(runWithRetry(target, () => 'ok', options)).resolves.toBe('ok');
  });

  it('rejects a malformed target or fn with TypeError', async () => {
    await expect(runWithRetry({} as RetryTarget, () => 1)).rejects.toBeInstanceOf(TypeError);
    await expect(runWithRetry(new FakeTarget(), 'nope' as never)).rejects.toBeInstanceOf(TypeError);
  });
});

describe('defaultIsThrottle', () => {
  it.each<[string, unknown, boolean]>([
    ['status 429', { status: 429 }, true],
    ['status 503', { status: 503 }, true],
    ['status 500', { status: 500 }, false],
    ['status 200', { status: 200 }, false],
    ['statusCode 429', { statusCode: 429 }, true],
    ['statusCode 503', { statusCode: 503 }, true],
    ['response.status 429', { response: { status: 429 } }, true],
    ['response.statusCode 503', { response: { statusCode: 503 } }, true],
    ['status string "429"', { status: '429' }, false],
    ['no status', { message: 'x' }, false],
    ['null', null, false],
    ['undefined', undefined, false],
    ['bare number 429', 429, false],
    ['Error with status 429', Object.assign(new Error('x'), { status: 429 }), true],
  ])('%s -> %s', (_name, outcome, expected) => {
    expect(defaultIsThrottle(outcome, 'value')).toBe(expected);
    expect(defaultIsThrottle(outcome, 'error')).toBe(expected);
  });

  it('treats a throwing status getter as no status', () => {
    const outcome = Object.defineProperty({ statusCode: 503 }, 'status', {
      get: () => {
        throw new Error('no');
      },
    });
    // status is unreadable, so the next candidate (statusCode 503) decides
    expect(defaultIsThrottle(outcome, 'error')).toBe(true);
    const onlyThrowing = Object.defineProperty({}, 'status', {
      get: () => {
        throw new Error('no');
      },
    });
    expect(defaultIsThrottle(onlyThrowing, 'error')).toBe(false);
  });

  it('recognises a real fetch Response', () => {
    expect(defaultIsThrottle(new Response(null, { status: 429 }), 'value')).toBe(true);
    expect(defaultIsThrottle(new Response(null, { status: 404 }), 'value')).toBe(false);
  });
});

describe('defaultRetryAfter', () => {
  it('reads Retry-After seconds from WHATWG Headers', () => {
    expect(defaultRetryAfter(throttled429(), 'value')).toBe(2000);
  });

  it('reads a plain header record', () => {
    expect(defaultRetryAfter({ status: 429, headers: { 'retry-after': '4' } }, 'value')).toBe(4000);
  });

  it('reads response.headers of an error', () => {
    const err = Object.assign(new Error('x'), { response: { status: 429, headers: new Headers({ 'retry-after': '1' }) } });
    expect(defaultRetryAfter(err, 'error')).toBe(1000);
  });

  it.each<[string, unknown]>([
    ['no headers', { status: 429 }],
    ['headers without retry info', { status: 429, headers: new Headers({ 'content-type': 'text/plain' }) }],
    ['null', null],
    ['a string', 'retry-after: 3'],
    ['headers is a string', { headers: 'retry-after: 3' }],
  ])('undefined for %s', (_name, outcome) => {
    expect(defaultRetryAfter(outcome, 'value')).toBeUndefined();
  });
});

describe('runWithRetry: throttled responses', () => {
  it('cancels the unread body of a throttled Response before retrying, and keeps the last one readable', async () => {
    const cancelled: number[] = [];
    const make = (status: number, i: number) => {
      const body = new ReadableStream({ cancel() { cancelled.push(i); } });
      return new Response(body, { status });
    };
    const target = { acquire: async () => undefined, backoff: () => {} };
    let i = 0;
    await expect(runWithRetry(target, () => make(429, i++), { retries: 2, sleep: async () => {}, random: () => 0 }))
      .rejects.toBeInstanceOf(RetriesExhaustedError);
    expect(cancelled).toEqual([0, 1]); // attempts 0 and 1 discarded; the last one is handed to the caller
  });
});
