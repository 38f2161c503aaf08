import { afterEach, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidOptionError } from '../../src/errors.js';
import { HEALTH_PATH, startMockApi, type MockApi } from '../../src/testing/index.js';

let api: MockApi | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

const get = (path = '/') => fetch(`${api!.url}${path}`);

describe('startMockApi: a real HTTP server with the strict rules', () => {
  it('listens on 127.0.0.1 and a random port, serving any method and path', async () => {
    api = await startMockApi({ limit: 100, windowMs: 1000 });
    expect(api.url).toBe(`http://127.0.0.1:${api.port}`);
    expect(api.port).toBeGreaterThan(0);
    const res = await fetch(`${api.url}/v1/embeddings`, { method: 'POST', body: 'x'.repeat(100_000) });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-mock-outcome')).toBe('accepted');
    expect(await res.json()).toEqual({ ok: true, seq: 1 });
    // Keep-alive: bodies are consumed, so the same connection serves the next requests.
    for (let i = 0; i < 5; i++) expect((await fetch(api.url, { method: 'PUT', body: 'abc' })).status).toBe(200);
    expect(api.stats()).toEqual({ total: 6, accepted: 6, overLimit: 0, spurious: 0, violations: 0 });
  });

  it('a burst over the limit: exactly `limit` accepted, one over-limit 429, the rest penalty-box violations', async () => {
    api = await startMockApi({ limit: 5, windowMs: 60_000 });
    const responses = await Promise.all(Array.from({ length: 8 }, () => get()));
    const byOutcome = (o: string) => responses.filter((r) => r.headers.get('x-mock-outcome') === o);
    expect(responses.filter((r) => r.status === 200)).toHaveLength(5);
    const [over] = byOutcome('over-limit');
    expect(byOutcome('over-limit')).toHaveLength(1);
    expect(byOutcome('violation')).toHaveLength(2);
    // Asks until the window frees a slot: the oldest of the 5 leaves 60 s after it arrived.
    const overMs = Number(over!.headers.get('retry-after-ms'));
    expect(overMs).toBeGreaterThan(59_000);
    expect(overMs).toBeLessThanOrEqual(60_000);
    expect(Number.isInteger(overMs)).toBe(true);
    expect(over!.headers.get('retry-after')).toBe(String(Math.ceil(overMs / 1000)));
    expect(await over!.json()).toEqual({ error: 'rate_limited', outcome: 'over-limit', retryAfterMs: overMs });
    for (const v of byOutcome('violation')) {
      expect(v.status).toBe(429);
      expect(Number(v.headers.get('retry-after-ms'))).toBeLessThanOrEqual(overMs);
    }
    expect(api.stats()).toEqual({ total: 8, accepted: 5, overLimit: 1, spurious: 0, violations: 2 });
  });

  it('the window slides: after the Retry-After it gave, the next request is accepted', async () => {
    api = await startMockApi({ limit: 2, windowMs: 300 });
    expect((await get()).status).toBe(200);
    expect((await get()).status).toBe(200);
    const throttled = await get();
    expect(throttled.status).toBe(429);
    const waitMs = Number(throttled.headers.get('retry-after-ms'));
    expect(waitMs).toBeGreaterThanOrEqual(1);
    expect(waitMs).toBeLessThanOrEqual(300);
    await sleep(waitMs + 2);
    expect((await get()).status).toBe(200); // the oldest left the window, and the pause is over
    expect(api.stats()).toMatchObject({ accepted: 3, overLimit: 1, violations: 0 });
  });

  it('honouring retry-after (whole seconds) is never early: it covers retry-after-ms', async () => {
    api = await startMockApi({ limit: 1, windowMs: 1500 });
    await get();
    const res = await get();
    expect(Number(res.headers.get('retry-after')) * 1000).toBeGreaterThanOrEqual(Number(res.headers.get('retry-after-ms')));
  });

  it('spurious throttles: 429 with retry-after-ms, counted apart from over-limit', async () => {
    api = await startMockApi({ limit: 1000, windowMs: 1000, spuriousRate: 1, retryAfterMs: 0 });
    for (let i = 0; i < 4; i++) {
      const res = await get();
      expect(res.status).toBe(429);
      expect(res.headers.get('x-mock-outcome')).toBe('spurious');
      expect(res.headers.get('retry-after-ms')).toBe('0');
      expect(res.headers.get('retry-after')).toBe('0');
    }
    expect(api.stats()).toEqual({ total: 4, accepted: 0, overLimit: 0, spurious: 4, violations: 0 });
  });

  it('the same seed throttles the same requests', async () => {
    const outcomes = async (seed: number) => {
      const mock = await startMockApi({ limit: 1000, windowMs: 1000, spuriousRate: 0.3, retryAfterMs: 0, seed });
      const list: string[] = [];
      for (let i = 0; i < 40; i++) list.push((await fetch(mock.url)).headers.get('x-mock-outcome')!);
      await mock.close();
      return list;
    };
    const a = await outcomes(5);
    expect(await outcomes(5)).toEqual(a);
    expect(a).toContain('spurious');
    expect(a).toContain('accepted');
  });

  it('latency delays accepted answers, never early', async () => {
    api = await startMockApi({ limit: 10, windowMs: 60_000, latencyMs: 80 });
    const t0 = performance.now();
    expect((await get()).status).toBe(200);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(79);
  });

  it('429s are answered at once, not behind accepted requests still in their latency', async () => {
    api = await startMockApi({ limit: 1, windowMs: 60_000, latencyMs: 30_000 });
    let slowSettled = false;
    const slow = get().then(() => (slowSettled = true), () => (slowSettled = true));
    while (api.stats().total === 0) await sleep(1);
    expect((await get()).status).toBe(429);
    expect(slowSettled).toBe(false);
    await api.close();
    await slow;
  });

  it('reset() clears counters, window and penalty; close() is idempotent and frees the port', async () => {
    api = await startMockApi({ limit: 1, windowMs: 60_000 });
    await get();
    expect((await get()).status).toBe(429);
    api.reset();
    expect(api.stats()).toEqual({ total: 0, accepted: 0, overLimit: 0, spurious: 0, violations: 0 });
    expect((await get()).status).toBe(200);
    const url = api.url;
    await Promise.all([api.close(), api.close()]);
    await expect(fetch(url)).rejects.toThrow();
  });

  it('close() does not wait for responses delayed by latency', async () => {
    api = await startMockApi({ limit: 10, windowMs: 1000, latencyMs: 60_000 });
    const pending = get().catch((error: unknown) => error);
    while (api.stats().total === 0) await sleep(1);
    await api.close();
    expect(await pending).toBeInstanceOf(Error);
  });

  it('the health path is outside the rules: 204, never counted, even in a penalty box', async () => {
    api = await startMockApi({ limit: 1, windowMs: 60_000 });
    await get();
    expect((await get()).status).toBe(429);
    for (const method of ['GET', 'POST', 'HEAD']) {
      expect((await fetch(`${api.url}${HEALTH_PATH}`, { method, ...(method === 'POST' ? { body: 'w' } : {}) })).status).toBe(204);
    }
    expect(api.stats()).toEqual({ total: 2, accepted: 1, overLimit: 1, spurious: 0, violations: 0 });
  });

  it('rejects bad options with InvalidOptionError before listening', async () => {
    await expect(startMockApi({ limit: 0, windowMs: 1000 })).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(startMockApi({ limit: 1, windowMs: 1000, latencyMs: [3, 1] })).rejects.toThrow(
      'latencyMs must be a number of ms in 0..60000, or [min, max] with 0 <= min <= max <= 60000, got an array',
    );
  });

  it("leaky bucket: a bare 429 (no Retry-After) for a request sooner than 1/rate after the last accepted", async () => {
    const strict = await startMockApi({ algorithm: 'leaky-bucket', rate: 2 });
    try {
      const first = await fetch(strict.url + '/x');
      const second = await fetch(strict.url + '/x');
      expect(first.status).toBe(200);
      expect(second.status).toBe(429);
      expect(second.headers.get('retry-after')).toBeNull();
      expect(second.headers.get('retry-after-ms')).toBeNull();
      await second.text();
      await first.text();
      expect(strict.stats()).toMatchObject({ total: 2, accepted: 1, overLimit: 1, violations: 0 });
    } finally {
      await strict.close();
    }
  });
});
