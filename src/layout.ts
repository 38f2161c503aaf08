/**
 * The shared-memory map of one limiter. This module is the only place that
 * knows offsets; everything else uses the named word indexes below.
 *
 * The buffer is a `SharedArrayBuffer` viewed as a `BigInt64Array` (`words`)
 * and, for `Atomics.wait`, an `Int32Array` (`i32`). Words are grouped into
 * 128-byte lines (two x86 cache lines, so the adjacent-line prefetcher does not
 * couple them) by who writes them and how often:
 *
 * | line | word | name                   | written by                 | meaning |
 * |------|------|------------------------|----------------------------|---------|
 * | 0    | 0    | MAGIC                  | creator, once              | {@link MAGIC}: marks an atomic-pace buffer |
 * | 0    | 1    | VERSION                | creator, once              | {@link LAYOUT_VERSION} |
 * | 0    | 2    | BURST                  | creator, once              | bucket capacity, cost units |
 * | 0    | 3    | MAX_INTERVAL_NS        | creator, once              | configured emission interval (ns per cost unit) = ceil(1e9 / rate) |
 * | 0    | 4    | MAX_QUEUE              | creator, once              | max cost units waiting, -1 = unbounded |
 * | 0    | 5    | MAX_WAIT_NS            | creator, once              | max wait of any grant, -1 = unbounded |
 * | 0    | 6    | CREATED_AT_NS          | creator, once              | clock reading at creation |
 * | 0    | 7    | FLOOR_INTERVAL_NS      | creator, once              | adaptive rate: longest interval (lowest rate); -1 = not adaptive |
 * | 0    | 8    | DECREASE_PPM           | creator, once              | adaptive rate: multiplier per new pause, parts per million |
 * | 0    | 9    | RECOVERY_PPM           | creator, once              | adaptive rate: additive increase per success, ppm of the configured rate |
 * | 1    | 16   | TAT                    | every grant (CAS)          | theoretical arrival time, virtual ns (see below) |
 * | 1    | 17   | GRANTED_COST           | every grant (add)          | total cost granted or reserved, minus cancels that gave it back |
 * | 2    | 32   | SHIFT_NS               | backoff (CAS, max)         | virtual time = real time − SHIFT_NS; only grows |
 * | 2    | 33   | PAUSE_START            | backoff (CAS, max)         | virtual time at which the latest pause began |
 * | 2    | 34   | INTERVAL_NS            | creator; adaptive (CAS)    | current emission interval, in MAX_INTERVAL_NS..FLOOR_INTERVAL_NS |
 * | 2    | 35   | THROTTLE_COUNT         | backoff (add)              | number of backoff() calls |
 * | 2    | 36   | PAUSE_WRITER           | backoff (CAS)              | 1 while one backoff writes PAUSE_START/SHIFT_NS, else 0 |
 * | 3    | 48   | WAITING_COUNT          | waiters (add)              | requests sleeping in acquire/acquireSync now |
 * | 3    | 49   | WAITING_COST           | waiters (add)              | their total cost |
 * | 3    | 50   | REJECTED_COUNT         | refusals (add)             | waits refused: timeouts and queue-full (not tryAcquire misses) |
 * | 3    | 51   | CANCELLED_COUNT        | cancels (add)              | waits/reservations cancelled before due |
 * | 4    | 128  | SLEEP (Int32 index)    | nobody                     | always 0: the word `acquireSync` sleeps on with `Atomics.wait` |
 *
 * Line 1 is the only line written on the hot path; its counter shares the line
 * with TAT because the same thread writes them right after the CAS. Line 2 is
 * read on every decision and written only by backoff and rate changes, so it
 * stays in every core's cache in shared state.
 *
 * Virtual time: the schedule (TAT, slots) is kept on a virtual timeline
 * `v = now − SHIFT_NS`. A shared backoff pauses every thread by growing
 * SHIFT_NS, which moves every pending slot later at once without touching the
 * waiters; see `state.ts`.
 */

/** "atomicpc" in ASCII. */
export const MAGIC = 0x61746f6d69637063n;
/** Bumped on any change to this table. `attach` refuses other versions. */
export const LAYOUT_VERSION = 1;

const WORDS_PER_LINE = 16; // 128 bytes of 8-byte words

export const Word = {
  MAGIC: 0,
  VERSION: 1,
  BURST: 2,
  MAX_INTERVAL_NS: 3,
  MAX_QUEUE: 4,
  MAX_WAIT_NS: 5,
  CREATED_AT_NS: 6,
  FLOOR_INTERVAL_NS: 7,
  DECREASE_PPM: 8,
  RECOVERY_PPM: 9,

  TAT: 1 * WORDS_PER_LINE,
  GRANTED_COST: 1 * WORDS_PER_LINE + 1,

  SHIFT_NS: 2 * WORDS_PER_LINE,
  PAUSE_START: 2 * WORDS_PER_LINE + 1,
  INTERVAL_NS: 2 * WORDS_PER_LINE + 2,
  THROTTLE_COUNT: 2 * WORDS_PER_LINE + 3,
  PAUSE_WRITER: 2 * WORDS_PER_LINE + 4,

  WAITING_COUNT: 3 * WORDS_PER_LINE,
  WAITING_COST: 3 * WORDS_PER_LINE + 1,
  REJECTED_COUNT: 3 * WORDS_PER_LINE + 2,
  CANCELLED_COUNT: 3 * WORDS_PER_LINE + 3,
} as const;

/** Int32 index of the sleep word (line 4). */
export const SLEEP_INDEX_I32 = 4 * WORDS_PER_LINE * 2;

/** Total bytes of a limiter buffer. */
export const LAYOUT_BYTES = 5 * WORDS_PER_LINE * 8;

/** Typed views over one limiter buffer. */
export interface SharedViews {
  readonly buffer: SharedArrayBuffer;
  readonly words: BigInt64Array;
  readonly i32: Int32Array;
}

export function viewsOf(buffer: SharedArrayBuffer): SharedViews {
  return { buffer, words: new BigInt64Array(buffer), i32: new Int32Array(buffer) };
}

/** The immutable configuration written once at creation (line 0). */
export interface StoredConfig {
  burst: bigint;
  maxIntervalNs: bigint;
  maxQueue: bigint; // -1n = unbounded
  maxWaitNs: bigint; // -1n = unbounded
  createdAtNs: bigint;
  /** -1n = not adaptive */
  floorIntervalNs: bigint;
  decreasePpm: bigint;
  recoveryPpm: bigint;
}

/**
 * Allocates and initialises a limiter buffer. The bucket starts full:
 * TAT = creation time, so `burst` cost units are available at once.
 */
export function createShared(config: StoredConfig): SharedViews {
  const views = viewsOf(new SharedArrayBuffer(LAYOUT_BYTES));
  const w = views.words;
  w[Word.BURST] = config.burst;
  w[Word.MAX_INTERVAL_NS] = config.maxIntervalNs;
  w[Word.MAX_QUEUE] = config.maxQueue;
  w[Word.MAX_WAIT_NS] = config.maxWaitNs;
  w[Word.CREATED_AT_NS] = config.createdAtNs;
  w[Word.FLOOR_INTERVAL_NS] = config.floorIntervalNs;
  w[Word.DECREASE_PPM] = config.decreasePpm;
  w[Word.RECOVERY_PPM] = config.recoveryPpm;
  w[Word.TAT] = config.createdAtNs;
  w[Word.INTERVAL_NS] = config.maxIntervalNs;
  w[Word.PAUSE_START] = config.createdAtNs;
  w[Word.VERSION] = BigInt(LAYOUT_VERSION);
  // Written last: a buffer with the magic is fully initialised. (The buffer is
  // published to other threads only through `handle`, after this returns.)
  Atomics.store(w, Word.MAGIC, MAGIC);
  return views;
}

/** Reads line 0 back. */
export function readConfig(w: BigInt64Array): StoredConfig {
  return {
    burst: Atomics.load(w, Word.BURST),
    maxIntervalNs: Atomics.load(w, Word.MAX_INTERVAL_NS),
    maxQueue: Atomics.load(w, Word.MAX_QUEUE),
    maxWaitNs: Atomics.load(w, Word.MAX_WAIT_NS),
    createdAtNs: Atomics.load(w, Word.CREATED_AT_NS),
    floorIntervalNs: Atomics.load(w, Word.FLOOR_INTERVAL_NS),
    decreasePpm: Atomics.load(w, Word.DECREASE_PPM),
    recoveryPpm: Atomics.load(w, Word.RECOVERY_PPM),
  };
}
