/**
 * The structured-clone-safe reference to a limiter's shared state, and the
 * checks `RateLimiter.attach` runs before trusting a buffer.
 */
import { InvalidHandleError } from './errors.js';
import { LAYOUT_VERSION, LimitWord, MAGIC, SLEEP_INDEX_I32, Word, limitBase, readConfig, viewsOf, type SharedViews, type StoredConfig } from './layout.js';
import { intervalNsFromRate } from './gcra.js';
import { MAX_BURST, MAX_RATE } from './options.js';

export const HANDLE_KIND = 'atomic-pace/rate-limiter';
/** burst × interval must stay below this many ns (~146 years) so schedule arithmetic cannot overflow 64 bits. */
export const MAX_TOLERANCE_NS = 1n << 62n;

/**
 * A structured-clone-safe reference to a limiter's shared state. Pass it in
 * `workerData`, a Piscina task or `postMessage`, then call
 * `RateLimiter.attach(handle)` on the other side.
 */
export interface LimiterHandle {
  readonly kind: typeof HANDLE_KIND;
  readonly version: number;
  readonly buffer: SharedArrayBuffer;
}

export function makeHandle(buffer: SharedArrayBuffer): LimiterHandle {
  return Object.freeze({ kind: HANDLE_KIND, version: LAYOUT_VERSION, buffer });
}

/** Validates a handle; returns its views and configuration, or throws InvalidHandleError with the reason. */
export function openHandle(handle: unknown): { views: SharedViews; config: StoredConfig } {
  if (typeof handle !== 'object' || handle === null) throw new InvalidHandleError(`expected an object, got ${handle === null ? 'null' : typeof handle}`);
  const h = handle as Partial<LimiterHandle>;
  if (h.kind !== HANDLE_KIND) throw new InvalidHandleError(`kind must be '${HANDLE_KIND}'`);
  if (h.version !== LAYOUT_VERSION) throw new InvalidHandleError(`version ${String(h.version)} is not the supported layout version ${LAYOUT_VERSION}`);
  if (Object.prototype.toString.call(h.buffer) !== '[object SharedArrayBuffer]') throw new InvalidHandleError('buffer must be a SharedArrayBuffer');
  const buffer = h.buffer as SharedArrayBuffer;
  if (buffer.byteLength < 1024 || buffer.byteLength % 8 !== 0) throw new InvalidHandleError(`buffer of ${buffer.byteLength} bytes is not a limiter buffer`);
  const views = viewsOf(buffer);
  if (Atomics.load(views.words, Word.MAGIC) !== MAGIC) throw new InvalidHandleError('buffer does not start with the atomic-pace magic number');
  if (Atomics.load(views.words, Word.VERSION) !== BigInt(LAYOUT_VERSION)) throw new InvalidHandleError('buffer layout version does not match');
  const config = readConfig(views);
  if (typeof config === 'string') throw new InvalidHandleError(`corrupted header: ${config}`);
  config.limits.forEach((limit, i) => {
    const corrupt =
      limit.burst < 1n || limit.burst > BigInt(MAX_BURST) ||
      limit.maxIntervalNs < 1n || limit.floorIntervalNs < limit.maxIntervalNs ||
      limit.burst * limit.floorIntervalNs >= MAX_TOLERANCE_NS ||
      limit.maxQueue < -1n || limit.defaultCost < 0n || limit.defaultCost > limit.burst ||
      !(limit.rate > 0 && limit.rate <= MAX_RATE) || intervalNsFromRate(limit.rate) !== limit.maxIntervalNs;
    if (corrupt) throw new InvalidHandleError(`corrupted configuration of limit ${i} (${limit.name})`);
  });
  // Live words a decision trusts: each interval within its configured range
  // (a tampered 0 or 1 ns would grant millions), the sleep word never notified (else acquireSync spins).
  config.limits.forEach((limit, i) => {
    const interval = Atomics.load(views.words, limitBase(i) + LimitWord.INTERVAL_NS);
    if (interval < limit.maxIntervalNs || interval > limit.floorIntervalNs) {
      throw new InvalidHandleError(`corrupted live word: interval of limit ${i} (${limit.name}) is ${interval} ns, outside ${limit.maxIntervalNs}..${limit.floorIntervalNs}`);
    }
  });
  if (Atomics.load(views.i32, SLEEP_INDEX_I32) !== 0) throw new InvalidHandleError('corrupted live word: the sleep word is not 0');
  const adaptiveOk = config.decreasePpm === 0n ||
    (config.decreasePpm < 1_000_000n && config.recoveryPpm >= 1n && config.recoveryPpm <= 1_000_000n);
  if (config.maxWaitNs < -1n || config.leaseNs < 1n || !adaptiveOk) throw new InvalidHandleError('corrupted configuration words');
  return { views, config };
}
