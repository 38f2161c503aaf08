// Export a shared limiter's stats to Prometheus with prom-client (a dev
// dependency here; atomic-pace itself has none). stats() is a few dozen
// atomic loads, so reading it on every scrape is free.
// Run: npm run build && node examples/prometheus.mjs   (prints one scrape and exits)
import client from 'prom-client';
import { RateLimiter } from '../dist/index.js';

const limiter = new RateLimiter({
  limits: { requests: { rate: '500/min', burst: 10 }, tokens: { rate: '90000/min', burst: 20000 } },
  concurrency: 8,
});

const registry = new client.Registry();
const perLimit = (name, help, pick) => new client.Gauge({
  name, help, labelNames: ['limit'], registers: [registry],
  collect() {
    for (const [limit, s] of Object.entries(limiter.stats().limits)) this.set({ limit }, pick(s));
  },
});
const overall = (name, help, pick) => new client.Gauge({
  name, help, registers: [registry], collect() { this.set(pick(limiter.stats())); },
});
perLimit('atomic_pace_rate', 'Rate in effect, cost units per second', (s) => s.currentRate);
perLimit('atomic_pace_available', 'Cost units grantable now', (s) => s.available);
perLimit('atomic_pace_granted_cost', 'Cost units granted so far', (s) => s.grantedCost);
perLimit('atomic_pace_waiting_cost', 'Cost units held by waiting requests', (s) => s.waitingCost);
overall('atomic_pace_waiting', 'Requests waiting, all threads', (s) => s.waiting);
overall('atomic_pace_in_flight', 'Concurrency permits held', (s) => s.inFlight);
overall('atomic_pace_rejected', 'Waits refused (timeout, queue full)', (s) => s.rejected);
overall('atomic_pace_throttles', 'Shared backoffs reported', (s) => s.throttles);
overall('atomic_pace_paused_seconds', 'Seconds until the shared pause ends', (s) => s.pausedForMs / 1000);

// Some traffic, a throttle, then one scrape.
const grant = await limiter.acquire({ tokens: 1200 });
grant.settle({ tokens: 700 });
grant.release();
limiter.backoff({ retryAfterMs: 2000, reason: 'HTTP 429' });
process.stdout.write(await registry.metrics());
