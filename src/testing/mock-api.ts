/**
 * A strict mock of a rate-limited HTTP API, for tests, demos and benchmarks:
 * a real `node:http` server on a random local port that enforces "at most
 * `limit` requests in any sliding window of `windowMs`" exactly, answers
 * `429` with `retry-after` / `retry-after-ms` as real providers do,
 * throttles spuriously at a seeded rate even under the limit, and keeps a
 * penalty box: every request arriving while a `Retry-After` it issued is
 * still running is counted as a violation. The rules are in
 * `throttle-policy.ts`.
 *
 * A client that never exceeds the limit and honours every Retry-After in all
 * its threads ends with `overLimit === 0` and `violations === 0`, as long as
 * no request is still on its way when a 429 is issued (see
 * {@link startMockApi} on cold starts); `spurious` depends only on
 * `spuriousRate`, the seed and the order of arrivals.
 *
 * @module
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ThrottlePolicy, type Decision, type MockApiOptions, type MockApiStats } from './throttle-policy.js';

export type { MockApiOptions, MockApiStats, MockOutcome } from './throttle-policy.js';

/**
 * The one path outside the rules: answered `204` and never counted. Fetch it
 * from each worker before measuring, so that the first counted request is not
 * delayed by the HTTP client's cold start (see {@link startMockApi}).
 */
export const HEALTH_PATH = '/_mock/health';

/** A running mock API. */
export interface MockApi {
  /** Base URL, e.g. `http://127.0.0.1:43121`. Every path and method is served by the same rules, except {@link HEALTH_PATH}. */
  readonly url: string;
  readonly port: number;
  /** Counters since start or the last `reset()`. */
  stats(): MockApiStats;
  /**
   * Back to the state at start: counters 0, sliding window empty, penalty box
   * lifted, draws re-seeded. Responses already delayed by latency are still
   * sent (they were counted when they arrived).
   */
  reset(): void;
  /** Stops listening and drops open connections and delayed responses. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts a strict mock API on `host` (default 127.0.0.1) and a free port
 * chosen by the OS. Answers: `200 {"ok":true,"seq":n}` after `latencyMs`, or
 * at once `429 {"error":"rate_limited",…}` with `retry-after` (whole seconds,
 * rounded up) and `retry-after-ms`. Each answer carries `x-mock-outcome`
 * (`accepted`, `over-limit`, `spurious`, `violation`). Remember to `close()`.
 *
 * Arrival, not sending, is what counts. A fresh worker's first `fetch` loads
 * and compiles the HTTP client, which can take hundreds of ms on a busy
 * machine: requests granted in order by a limiter then reach the server
 * bunched and out of order, and one that arrives after a 429 the server
 * issued meanwhile is a violation, though it was sent before that 429 could
 * be seen. Warm each worker up with `fetch(api.url + HEALTH_PATH)` (not
 * counted) before the measured run, as a real client warms its connections.
 *
 * @example
 * import { startMockApi } from 'atomic-pace/testing';
 * const api = await startMockApi({ limit: 20, windowMs: 1000, spuriousRate: 0.02, latencyMs: [20, 60] });
 * const res = await fetch(`${api.url}/v1/embed`, { method: 'POST', body: 'hello' });
 * // … run the workload …
 * expect(api.stats()).toMatchObject({ overLimit: 0, violations: 0 });
 * await api.close();
 */
export async function startMockApi(options: MockApiOptions): Promise<MockApi> {
  const policy = new ThrottlePolicy(options);
  const origin = process.hrtime.bigint();
  const delayed = new Set<NodeJS.Timeout>();
  const server = createServer((req, res) => {
    if (req.url === HEALTH_PATH) return drainThen(req, () => res.writeHead(204).end());
    // Classified at arrival (headers parsed), before the body is read.
    const decision = policy.decide(Number(process.hrtime.bigint() - origin));
    drainThen(req, () => answer(res, decision, delayed));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, policy.config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = policy.config.host.includes(':') ? `[${policy.config.host}]` : policy.config.host;
  let closed: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    port,
    stats: () => policy.stats(),
    reset: () => policy.reset(),
    close() {
      closed ??= new Promise<void>((resolve) => {
        for (const timer of delayed) clearTimeout(timer);
        delayed.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

/** Reads and discards the request body, then calls `then` (keep-alive needs the body consumed). */
function drainThen(req: IncomingMessage, then: () => void): void {
  let done = false;
  const finish = (): void => {
    if (done) return;
    done = true;
    then();
  };
  req.on('end', finish);
  req.on('error', finish);
  req.resume();
}

function answer(res: ServerResponse, decision: Decision, delayed: Set<NodeJS.Timeout>): void {
  if (decision.retryAfterMs < 0) {
    // The leaky bucket (nginx): a bare 429, nothing to say when to come back.
    res.writeHead(429, { 'content-type': 'text/html', 'x-mock-outcome': decision.outcome });
    res.end('<html><head><title>429 Too Many Requests</title></head></html>');
    return;
  }
  if (decision.outcome !== 'accepted') {
    res.writeHead(429, {
      'content-type': 'application/json',
      // Whole seconds, rounded up: a client reading only retry-after is never early.
      'retry-after': String(Math.ceil(decision.retryAfterMs / 1000)),
      'retry-after-ms': String(decision.retryAfterMs),
      'x-mock-outcome': decision.outcome,
    });
    res.end(JSON.stringify({ error: 'rate_limited', outcome: decision.outcome, retryAfterMs: decision.retryAfterMs }));
    return;
  }
  const send = (): void => {
    if (res.destroyed) return;
    res.writeHead(200, { 'content-type': 'application/json', 'x-mock-outcome': 'accepted' });
    res.end(JSON.stringify({ ok: true, seq: decision.seq }));
  };
  if (decision.latencyMs <= 0) return send();
  const timer = setTimeout(() => {
    delayed.delete(timer);
    send();
  }, decision.latencyMs);
  delayed.add(timer);
}
