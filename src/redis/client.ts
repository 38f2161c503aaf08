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
import { RedisConfigMismatchError, RedisUnavailableError } from '../errors.js';
import { CONFIG_MISMATCH, SCRIPT, SCRIPT_SHA } from './script.js';

/** What the Redis store needs from a client: ioredis' `evalsha` and `eval` (a `Redis` or a `Cluster`). */
export interface RedisClientLike {
  evalsha(sha: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
}

/** One limiter's keys and configuration, and the calls that carry them. */
export class ScriptCaller {
  readonly key: string;
  readonly queueKey: string;
  /** ARGV[2..]: the configuration text, the limit count, then per limit (µs per unit, τ µs, maxQueue). */
  readonly #configArgs: readonly (string | number)[];
  readonly #config: string;
  readonly #redis: RedisClientLike;
  readonly #timeoutMs: number;

  constructor(redis: RedisClientLike, key: string, config: string, perLimit: readonly (readonly [number, number, number])[], timeoutMs: number) {
    this.#redis = redis;
    this.key = key;
    this.queueKey = `${key}:q`;
    this.#config = config;
    this.#configArgs = [config, perLimit.length, ...perLimit.flat()];
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Runs operation `op` with `args`; resolves with the reply array. Rejects
   * with {@link RedisUnavailableError} when no reply comes (connection
   * refused or lost, ioredis giving up, `timeoutMs` elapsed, a server error)
   * and with {@link RedisConfigMismatchError} when the key holds another
   * configuration.
   */
  async call(op: number, args: readonly (string | number)[], operation: string): Promise<number[]> {
    const redis = this.#redis;
    const argv = [this.key, this.queueKey, op, ...this.#configArgs, ...args];
    let reply: unknown;
    try {
      try {
        reply = await this.#deadline(redis.evalsha(SCRIPT_SHA, 2, ...argv));
      } catch (error) {
        if (!isNoScript(error)) throw error;
        // Not in this server's script cache (flushed, restarted, failed over):
        // EVAL runs it and caches it again. A NOSCRIPT reply means it did not run.
        reply = await this.#deadline(redis.eval(SCRIPT, 2, ...argv));
      }
    } catch (error) {
      throw new RedisUnavailableError(this.key, operation, error);
    }
    if (!Array.isArray(reply)) throw new RedisUnavailableError(this.key, operation, new Error(`unexpected reply ${String(reply)}`));
    if (reply[0] === CONFIG_MISMATCH) throw new RedisConfigMismatchError(this.key, String(reply[1]), this.#config);
    return reply as number[];
  }

  /** Deletes the limiter's keys (its whole state); the next call creates a new one. */
  async reset(): Promise<void> {
    try {
      try {
        await this.#deadline(this.#redis.evalsha(SCRIPT_SHA, 2, this.key, this.queueKey, 9));
      } catch (error) {
        if (!isNoScript(error)) throw error;
        await this.#deadline(this.#redis.eval(SCRIPT, 2, this.key, this.queueKey, 9));
      }
    } catch (error) {
      throw new RedisUnavailableError(this.key, 'reset', error);
    }
  }

  #deadline<T>(reply: Promise<T>): Promise<T> {
    const ms = this.#timeoutMs;
    if (ms < 0) return reply;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply within commandTimeoutMs ${ms}`)), ms);
      reply.then(
        (value) => { clearTimeout(timer); resolve(value); },
        (error: unknown) => { clearTimeout(timer); reject(error); },
      );
    });
  }
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}
