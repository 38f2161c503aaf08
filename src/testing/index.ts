/**
 * `atomic-pace/testing`: tools for testing code that calls rate-limited APIs.
 *
 * - {@link startMockApi}: a real local HTTP server that enforces a strict
 *   sliding-window limit, throttles spuriously, and counts every request that
 *   ignores a `Retry-After` it issued; or, with `algorithm: 'leaky-bucket'`,
 *   nginx's `limit_req` rule exactly (bare 429s, no tolerance).
 * - {@link LeakyBucket}: that rule as a class, to replay recorded times.
 *
 * @module
 */
export { HEALTH_PATH, startMockApi } from './mock-api.js';
export { LeakyBucket } from './throttle-policy.js';
export type { MockApi, MockApiOptions, MockApiStats, MockOutcome } from './mock-api.js';
