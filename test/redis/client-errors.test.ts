/**
 * A programming error in the Redis client or an adapter surfaces as itself —
 * it is not an outage, and must not switch a limiter with `fallback` to local
 * limits. An outage is RedisUnavailableError (and, with `fallback`, local grants).
 * No server needed: the clients here are fakes.
 */
import { describe, expect, it } from 'vitest';
import { RedisRateLimiter, RedisUnavailableError } from '../../src/redis/index.js';

const throwing = (error: unknown) => ({
  evalsha: () => { throw error; },
  eval: () => { throw error; },
});
const rejecting = (error: unknown) => ({
  evalsha: () => Promise.reject(error),
  eval: () => Promise.reject(error),
});

describe('Redis client failures: bugs surface as themselves, outages as RedisUnavailableError', () => {
  it.each([
    ['a TypeError thrown by the client', throwing(new TypeError('redis.evalsha is not a function'))],
    ['a TypeError rejected by an adapter', rejecting(new TypeError('Cannot read properties of undefined'))],
    ['a RangeError rejected by an adapter', rejecting(new RangeError('Invalid array length'))],
  ])('%s: acquire and tryAcquire reject with it, even with a fallback', async (_name, redis) => {
    const limiter = new RedisRateLimiter({ redis, name: 'bug', rate: 10, fallback: { share: 0.5 } });
    const acquired = await limiter.acquire().then(() => null, (e: unknown) => e);
    expect(acquired).toBeInstanceOf(Error);
    expect(acquired).not.toBeInstanceOf(RedisUnavailableError);
    expect((acquired as Error).name).toMatch(/TypeError|RangeError/);
    await expect(limiter.tryAcquire()).rejects.not.toBeInstanceOf(RedisUnavailableError);
  });

  it('an outage (a plain connection error) is RedisUnavailableError, and a fallback grants locally', async () => {
    const outage = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });
    const strict = new RedisRateLimiter({ redis: rejecting(outage), name: 'down', rate: 10 });
    await expect(strict.acquire()).rejects.toBeInstanceOf(RedisUnavailableError);
    const lenient = new RedisRateLimiter({ redis: rejecting(outage), name: 'down', rate: 10, fallback: { share: 0.5 } });
    await expect(lenient.acquire()).resolves.toMatchObject({ source: 'fallback' });
  });
});
