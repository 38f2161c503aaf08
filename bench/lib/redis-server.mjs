/**
 * A throwaway redis-server for the Redis-backed contender: a free local
 * port, no persistence, stopped at the end. Returns { unavailable } when
 * there is no redis-server binary, no ioredis, or no built Redis store.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { freePort } from './local.mjs';

const storeFile = new URL('../../dist/redis/index.js', import.meta.url);


export async function startRedisServer() {
  if (!fs.existsSync(storeFile)) return { unavailable: 'n/a (Redis store not built yet)' };
  try {
    await import('ioredis');
  } catch {
    return { unavailable: 'n/a (ioredis is not installed)' };
  }
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return { unavailable: 'n/a (no redis-server binary on this machine)' };
  const version = (probe.stdout.match(/v=(\S+)/) ?? [])[1] ?? 'unknown';
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { stdio: 'ignore' });
  const { Redis } = await import('ioredis');
  const deadline = Date.now() + 5000;
  for (;;) {
    const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => {}); // refused while the server starts: retried below
    try {
      await client.connect();
      await client.ping();
      client.disconnect();
      break;
    } catch {
      client.disconnect();
      if (Date.now() > deadline) {
        child.kill();
        return { unavailable: 'n/a (redis-server did not start)' };
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    port,
    version,
    stop: () => new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.kill();
    }),
  };
}
