/**
 * Talking to Redis: the client shape we need, one script call per decision
 * (EVALSHA, reloading with EVAL on NOSCRIPT), a reply deadline, and the
 * translation of every failure into a typed error.
 *
 * We never import ioredis: any client with ioredis' `evalsha`/`eval`
 * signatures works (ioredis `Redis` and `Cluster`, and wrappers around them),
 * and we do not add commands to a client we do not own (`defineCommand`
 * would). The effect is the same as `defineCommand`'s: EVALSHA, and after a
 * `SCRIPT FLUSH`, a failover to a replica without the script or a restart,
 * one EVAL that loads the script again.
 */
import { performance } from 'node:perf_hooks';
import { RedisConfigMismatchError, RedisUnavailableError } from '../errors.js';
import { CONFIG_MISMATCH, Op, scriptFor, type Script } from './script.js';

/** What the Redis store needs from a client: ioredis' `evalsha` and `eval` (a `Redis` or a `Cluster`). */
export interface RedisClientLike {
  evalsha(sha: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
}

/** One limiter's keys and configuration, and the calls that carry them. */
export class ScriptCaller {
  readonly key: string;
  readonly queueKey: string;
  /** Per operation: EVALSHA's arguments up to the operation's own (sha, 2, the keys, op). */
  readonly #prefixes = new Map<number, readonly (string | number)[]>();
  readonly #script: Script;
  readonly #config: string;
  readonly #redis: RedisClientLike;
  readonly #timeoutMs: number;
  /** The client enforces its own reply deadline (ioredis `commandTimeout`). */
  readonly #clientTimesOut: boolean;
  readonly #pending = new Set<Pending>();
  #sweeper: NodeJS.Timeout | null = null;

  constructor(redis: RedisClientLike, key: string, config: string, perLimit: readonly (readonly [number, number, number])[], timeoutMs: number) {
    this.#redis = redis;
    this.key = key;
    this.queueKey = `${key}:q`;
    this.#config = config;
    this.#script = scriptFor(config, perLimit.map(([perUs, toleranceUs, maxQueue]) => ({ perUs, toleranceUs, maxQueue })));
    this.#timeoutMs = timeoutMs;
    const options = (redis as { options?: { commandTimeout?: unknown } }).options;
    this.#clientTimesOut = typeof options?.commandTimeout === 'number' && options.commandTimeout > 0 && options.commandTimeout <= timeoutMs;
  }

  /**
   * Runs operation `op` with `args`; resolves with the reply array. Rejects
   * with {@link RedisUnavailableError} when no reply comes (connection
   * refused or lost, ioredis giving up, `timeoutMs` elapsed, a server error)
   * and with {@link RedisConfigMismatchError} when the key holds another
   * configuration.
   */
  call(op: number, args: readonly (string | number)[], operation: string): Promise<number[]> {
    // A promise chain, not an async function: this is every decision's path.
    const argv = this.#prefix(op).concat(args);
    let sent: Promise<unknown>;
    try {
      sent = this.#redis.evalsha(...(argv as [string, number, ...string[]]));
    } catch (error) {
      sent = Promise.reject(error); // a client that throws instead of rejecting
    }
    return this.#deadline(sent).then(
      (reply) => this.#checked(reply, operation),
      (error: unknown) => {
        if (!isNoScript(error)) throw this.#failure(operation, error);
        // Not in this server's script cache (flushed, restarted, failed over):
        // EVAL runs it and caches it again. A NOSCRIPT reply means it did not run.
        argv[0] = this.#script.lua;
        let resent: Promise<unknown>;
        try {
          resent = this.#redis.eval(...(argv as [string, number, ...string[]]));
        } catch (cause) {
          resent = Promise.reject(cause);
        }
        return this.#deadline(resent).then(
          (reply) => this.#checked(reply, operation),
          (cause: unknown) => { throw this.#failure(operation, cause); },
        );
      },
    );
  }

  /**
   * What a failed call rejects with: a programming error of the client or an
   * adapter (a TypeError, RangeError… thrown or rejected in this process)
   * surfaces as itself — it is a bug to fix, not an outage, and must not
   * switch a limiter with `fallback` to local limits; anything else (no
   * connection, a timeout, a server error) is RedisUnavailableError.
   */
  #failure(operation: string, error: unknown): Error {
    if (error instanceof TypeError || error instanceof RangeError || error instanceof ReferenceError || error instanceof SyntaxError) return error;
    return new RedisUnavailableError(this.key, operation, error);
  }

  #checked(reply: unknown, operation: string): number[] {
    if (!Array.isArray(reply)) throw new RedisUnavailableError(this.key, operation, new Error(`unexpected reply ${String(reply)}`));
    if (reply[0] === CONFIG_MISMATCH) throw new RedisConfigMismatchError(this.key, String(reply[1]), this.#config);
    return reply as number[];
  }

  /** Deletes the limiter's keys (its whole state); the next call creates a new one. */
  async reset(): Promise<void> {
    await this.call(Op.RESET, [], 'reset');
  }

  #prefix(op: number): (string | number)[] {
    let prefix = this.#prefixes.get(op);
    if (prefix === undefined) {
      prefix = [this.#script.sha, 2, this.key, this.queueKey, String(op)];
      this.#prefixes.set(op, prefix);
    }
    return prefix as (string | number)[];
  }

  /**
   * The reply, or a rejection once `timeoutMs` has passed without one. A
   * client with its own `commandTimeout` (ioredis) already does this: then
   * the reply as is. Otherwise one sweeping timer per caller, not one timer
   * per call (a reply may take up to timeoutMs × 1.25 to be given up).
   */
  #deadline<T>(reply: Promise<T>): Promise<T> {
    const ms = this.#timeoutMs;
    if (ms < 0 || this.#clientTimesOut) return reply;
    return new Promise<T>((resolve, reject) => {
      const entry: Pending = { reject, at: performance.now() + ms };
      this.#pending.add(entry);
      this.#sweeper ??= setInterval(() => this.#sweep(), Math.max(5, ms / 4)).unref();
      reply.then(
        (value) => { this.#pending.delete(entry); resolve(value); },
        (error: unknown) => { this.#pending.delete(entry); reject(error); },
      );
    });
  }

  #sweep(): void {
    const now = performance.now();
    for (const entry of this.#pending) {
      if (entry.at > now) continue;
      this.#pending.delete(entry);
      entry.reject(new Error(`no reply within commandTimeoutMs ${this.#timeoutMs}`));
    }
    if (this.#pending.size === 0 && this.#sweeper !== null) {
      clearInterval(this.#sweeper);
      this.#sweeper = null;
    }
  }
}

interface Pending {
  readonly reject: (error: unknown) => void;
  readonly at: number;
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}
