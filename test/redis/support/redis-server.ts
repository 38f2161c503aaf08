/**
 * Tests start their own redis-server: from the binary on PATH, on a free
 * port, without persistence, and stop it afterwards. When the binary is
 * missing the suite is skipped with a visible message — unless
 * ATOMIC_PACE_REQUIRE_REDIS is set (as `.ci/run` does), where a missing
 * server fails the run loudly instead.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';

/** Absolute path of redis-server on PATH, or null. */
export function findRedisServer(): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'redis-server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return null;
}

const binary = findRedisServer();
/** True when the Redis suite can run here. */
export const redisAvailable = binary !== null;
if (binary === null) {
  if (process.env.ATOMIC_PACE_REQUIRE_REDIS) {
    throw new Error('redis-server is not on PATH but ATOMIC_PACE_REQUIRE_REDIS is set: the Redis suite must run here (install redis-server, e.g. apt-get install redis-server)');
  }
  console.warn('\n*** redis-server not found on PATH: SKIPPING the Redis suite (set ATOMIC_PACE_REQUIRE_REDIS=1 to make this an error) ***\n');
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** Servers still running; killed when the test process exits, even after a test timed out mid-way. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** One redis-server process the test owns. */
export class RedisServer {
  readonly port: number;
  readonly #extraArgs: readonly string[];
  #child: ChildProcess | null = null;
  #dir: string | null = null;

  private constructor(port: number, extraArgs: readonly string[]) {
    this.port = port;
    this.#extraArgs = extraArgs;
  }

  /** Starts a server on a free port and waits until it answers PING. `cluster`: a one-node cluster owning every slot. */
  static async start(options: { cluster?: boolean } = {}): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), options.cluster ? ['--cluster-enabled', 'yes', '--cluster-announce-ip', '127.0.0.1'] : []);
    await server.restart();
    if (options.cluster) await server.#claimAllSlots();
    return server;
  }

  /** (Re)starts the process on the same port, with an empty dataset. */
  async restart(): Promise<void> {
    if (this.#child !== null) throw new Error('redis-server is running');
    this.#dir ??= mkdtempSync(join(tmpdir(), 'atomic-pace-redis-'));
    rmSync(join(this.#dir, 'nodes.conf'), { force: true });
    const child = spawn(binary!, [
      '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', this.#dir, '--cluster-config-file', 'nodes.conf', ...this.#extraArgs,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    live.add(child);
    child.once('exit', () => live.delete(child));
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    this.#child = child;
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}: ${stderr}`);
      if (await ping(this.port)) return;
      if (Date.now() > deadline) throw new Error(`redis-server did not answer PING on port ${this.port}: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Kills the server at once (SIGKILL: no shutdown, the dataset is lost). */
  async kill(): Promise<void> {
    const child = this.#child;
    if (child === null) return;
    this.#child = null;
    if (child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** Freezes the process (SIGSTOP): connections stay open, nothing answers. */
  pause(): void {
    this.#child?.kill('SIGSTOP');
  }

  resume(): void {
    this.#child?.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    this.resume();
    await this.kill();
    if (this.#dir !== null) rmSync(this.#dir, { recursive: true, force: true });
    this.#dir = null;
  }

  /** An ioredis client that fails fast (as the README advises), ready to use. */
  async client(options: RedisOptions = {}): Promise<Redis> {
    const redis = new Redis({
      host: '127.0.0.1', port: this.port, maxRetriesPerRequest: 1, enableOfflineQueue: false,
      retryStrategy: () => 50, lazyConnect: true, ...options,
    });
    redis.on('error', () => {}); // outages are the tests' subject; ioredis would print every reconnect failure
    await redis.connect();
    return redis;
  }

  async #claimAllSlots(): Promise<void> {
    const redis = await this.client();
    try {
      await redis.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
      const deadline = Date.now() + 10_000;
      while (!String(await redis.call('CLUSTER', 'INFO')).includes('cluster_state:ok')) {
        if (Date.now() > deadline) throw new Error('one-node cluster did not reach cluster_state:ok');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      redis.disconnect();
    }
  }
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(500);
    let reply = '';
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) {
        socket.destroy();
        resolve(reply.startsWith('+PONG'));
      }
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => { socket.destroy(); resolve(false); });
  });
}

/**
 * Waits until the limit's bucket is full (a state created right after the
 * server started begins drained; see script.ts), polling stats().
 */
export async function untilFull(limiter: { stats(): Promise<{ available: number; burst: number }> }, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await limiter.stats();
    if (s.available >= s.burst) return;
    if (Date.now() > deadline) throw new Error(`bucket not full after ${timeoutMs} ms (available ${s.available})`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Makes a limit's bucket full at once (white-box: TAT := 0 for every limit).
 * A state created right after its server started begins drained (script.ts);
 * tests that reason from a full bucket start from here instead of waiting.
 */
export async function makeFull(redis: Redis, limiter: { key: string; limitNames: readonly string[]; stats(): Promise<unknown> }): Promise<void> {
  await limiter.stats(); // creates the state
  const fields: (string | number)[] = [];
  limiter.limitNames.forEach((_, i) => fields.push(`t${i + 1}`, 0, `d${i + 1}`, 0));
  await redis.hset(limiter.key, ...fields);
}
