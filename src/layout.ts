/**
 * The shared-memory map of one limiter. This module is the only place that
 * knows offsets; everything else uses the named word indexes below.
 *
 * The buffer is a `SharedArrayBuffer` viewed as a `BigInt64Array` (`words`),
 * an `Int32Array` (`i32`, for `Atomics.wait`) and bytes (the names area).
 * Words are grouped into 128-byte lines (two x86 cache lines, so the
 * adjacent-line prefetcher does not couple them) by who writes them and how
 * often. A limiter has L ≥ 1 named limits and K ≥ 0 concurrency permits:
 *
 * | line      | word        | name               | written by                  | meaning |
 * |-----------|-------------|--------------------|-----------------------------|---------|
 * | 0         | 0           | MAGIC              | creator, once               | {@link MAGIC}: marks an atomic-pace buffer |
 * | 0         | 1           | VERSION            | creator, once               | {@link LAYOUT_VERSION} |
 * | 0         | 2           | LIMIT_COUNT        | creator, once               | L |
 * | 0         | 3           | PERMIT_COUNT       | creator, once               | K (0 = no concurrency cap) |
 * | 0         | 4           | MAX_WAIT_NS        | creator, once               | max wait of any grant, -1 = unbounded |
 * | 0         | 5           | CREATED_AT_NS      | creator, once               | clock reading at creation |
 * | 0         | 6           | DECREASE_PPM       | creator, once               | adaptive: rate multiplier per new pause (ppm); 0 = not adaptive |
 * | 0         | 7           | RECOVERY_PPM       | creator, once               | adaptive: increase per success, ppm of the configured rate |
 * | 0         | 8           | LEASE_NS           | creator, once               | how long a concurrency permit may be held before others reclaim it |
 * | 0         | 9           | NAMES_BYTES        | creator, once               | length of the UTF-8 JSON array of limit names |
 * | 1         | 16          | SHIFT_NS           | backoff                     | virtual time = real time − SHIFT_NS; only grows |
 * | 1         | 17          | PAUSE_START        | backoff                     | virtual time at which the latest pause began |
 * | 1         | 18          | THROTTLE_COUNT     | backoff (add)               | number of backoff() calls |
 * | 2         | 32          | WAITING_COUNT      | waiters (add)               | requests sleeping in acquire/acquireSync now |
 * | 2         | 33          | REJECTED_COUNT     | refusals (add)              | waits refused: timeouts and queue-full |
 * | 2         | 34          | CANCELLED_COUNT    | cancels (add)               | waits/reservations cancelled before due |
 * | 2         | 35          | IN_FLIGHT          | permit holders (add)        | concurrency permits held now |
 * | 2         | 36          | RECLAIMED_COUNT    | reclaimers (add)            | permits taken back from dead or expired holders |
 * | 3         | 48          | MULTI_LOCK         | multi-limit decisions (CAS) | 0 free, 1 held: serialises decisions when L > 1 |
 * | 3         | 49          | MULTI_SEQ          | multi-limit decisions       | number of placements; cancel/refund undo only the latest |
 * | 3         | 50          | LAST_SLOT          | multi-limit decisions       | virtual slot of the latest placement (the FIFO floor) |
 * | 3         | 51          | PAUSE_WRITER       | backoff (CAS)               | 1 while one backoff writes SHIFT_NS/PAUSE_START |
 * | 3         | 52          | MULTI_DSEQ         | multi-limit deliveries      | number of deliveries/charges/drains; a refund undoes only the latest |
 * | 4         | (i32 128)   | SLEEP              | nobody                      | always 0: acquireSync sleeps on it with Atomics.wait |
 * | 4         | (i32 129)   | PERMIT_RELEASES    | permit releases (add+notify)| bumped on every release, so permit waiters wake |
 * | 5 + i     | limit i     | TAT                | waiters' placements (CAS)   | the schedule: theoretical arrival time of the queue, virtual ns (FIFO order, queue length, ETAs) |
 * |           | + 1         | DELIVERED          | every delivery (CAS)        | theoretical arrival time of what was delivered, virtual ns: the word that makes the limit strict |
 * |           | + 2         | INTERVAL_NS        | creator; adaptive (CAS)     | current emission interval T (ns per cost unit) |
 * |           | + 3         | BURST              | creator, once               | bucket capacity, cost units |
 * |           | + 4         | MAX_INTERVAL_NS    | creator, once               | configured interval = ceil(1e9 / rate) |
 * |           | + 5         | FLOOR_INTERVAL_NS  | creator, once               | adaptive: longest interval (lowest rate); = MAX_INTERVAL_NS if fixed |
 * |           | + 6         | MAX_QUEUE          | creator, once               | max cost units queued, -1 = unbounded |
 * |           | + 7         | WAITING_COST       | waiters (add)               | cost of this limit held by sleeping waiters |
 * |           | + 8         | DEFAULT_COST       | creator, once               | cost for requests that do not name this limit |
 * |           | + 9         | RATE_BITS          | creator, once               | the configured rate (float64 bits), reported as given |
 * |           | + 10 (i32)  | QUEUED             | waiters (add)               | (limit 0 only) waiters placed and not yet handed out or given back, over every limit; while 0, tryAcquire skips reading TAT, and the last one out collapses TAT onto DELIVERED (a waiter terminated mid-wait leaves it above 0: slower, and cancelled places stay empty again — never wrong) |
 * | 5 + L ... | 8 lines/limit| GRANTED stripes   | every grant (add)           | cost granted or reserved, minus cancels/refunds that gave it back, plus settled extra: the sum of 8 stripes, one line each, a thread adding to stripe threadId % 8 |
 * | after     | 1 per permit| PERMIT             | permit holders (CAS)        | (leaseExpiryMs << 24) \| (threadId + 1), 0 = free; see permits.ts |
 * | after     | bytes       | NAMES              | creator, once               | UTF-8 JSON array of the limit names |
 *
 * A limit's hot words (TAT, DELIVERED, and INTERVAL_NS which every decision
 * reads with them) share one line: a grant touches one contended line of its limit.
 * Its counter is striped (as Java's LongAdder) so the add after the CAS lands
 * on a line this thread mostly owns instead of the contended TAT line. Line 1 is read
 * on every decision and written only by backoff, so it stays shared in every
 * core's cache. The multi-limit lock has its own line.
 *
 * Virtual time: the schedule (TAT, slots) is kept on a virtual timeline
 * `v = now − SHIFT_NS`. A shared backoff pauses every thread by growing
 * SHIFT_NS, which moves every pending slot later at once without touching the
 * waiters; see `state.ts`.
 */

/** "atomicpc" in ASCII. */
export const MAGIC = 0x61746f6d69637063n;
/** Bumped on any change to this table. `attach` refuses other versions. */
export const LAYOUT_VERSION = 3;

const WORDS_PER_LINE = 16; // 128 bytes of 8-byte words
const BYTES_PER_LINE = WORDS_PER_LINE * 8;

export const Word = {
  MAGIC: 0,
  VERSION: 1,
  LIMIT_COUNT: 2,
  PERMIT_COUNT: 3,
  MAX_WAIT_NS: 4,
  CREATED_AT_NS: 5,
  DECREASE_PPM: 6,
  RECOVERY_PPM: 7,
  LEASE_NS: 8,
  NAMES_BYTES: 9,

  SHIFT_NS: 1 * WORDS_PER_LINE,
  PAUSE_START: 1 * WORDS_PER_LINE + 1,
  THROTTLE_COUNT: 1 * WORDS_PER_LINE + 2,

  WAITING_COUNT: 2 * WORDS_PER_LINE,
  REJECTED_COUNT: 2 * WORDS_PER_LINE + 1,
  CANCELLED_COUNT: 2 * WORDS_PER_LINE + 2,
  IN_FLIGHT: 2 * WORDS_PER_LINE + 3,
  RECLAIMED_COUNT: 2 * WORDS_PER_LINE + 4,

  MULTI_LOCK: 3 * WORDS_PER_LINE,
  MULTI_SEQ: 3 * WORDS_PER_LINE + 1,
  LAST_SLOT: 3 * WORDS_PER_LINE + 2,
  PAUSE_WRITER: 3 * WORDS_PER_LINE + 3,
  MULTI_DSEQ: 3 * WORDS_PER_LINE + 4,
} as const;

/** Int32 indexes in line 4. */
export const SLEEP_INDEX_I32 = 4 * WORDS_PER_LINE * 2;
export const PERMIT_RELEASES_I32 = SLEEP_INDEX_I32 + 1;

/** Word offsets inside a limit's line. */
export const LimitWord = {
  TAT: 0,
  DELIVERED: 1,
  INTERVAL_NS: 2,
  BURST: 3,
  MAX_INTERVAL_NS: 4,
  FLOOR_INTERVAL_NS: 5,
  MAX_QUEUE: 6,
  WAITING_COST: 7,
  DEFAULT_COST: 8,
  RATE_BITS: 9,
  /** An Int32 pair: read with `i32[(base + QUEUED) * 2]`. */
  QUEUED: 10,
} as const;

const FIRST_LIMIT_LINE = 5;
/** Room for the names JSON: 16 names of 64 ASCII characters, quoted, comma-separated, in brackets (1074 bytes), rounded to whole lines. */
export const NAMES_CAPACITY_BYTES = 1152;
/** Most limits one limiter may hold. */
export const MAX_LIMITS = 16;
/** Most concurrency permits. */
export const MAX_PERMITS = 4096;

/** Index of limit `i`'s first word. */
export function limitBase(i: number): number {
  return (FIRST_LIMIT_LINE + i) * WORDS_PER_LINE;
}

/** Counter stripes per limit. */
export const GRANTED_STRIPES = 8;

/** Index of limit `i`'s granted-cost stripe `s`. */
export function grantedStripeWord(limitCount: number, i: number, s: number): number {
  return (FIRST_LIMIT_LINE + limitCount + i * GRANTED_STRIPES + s) * WORDS_PER_LINE;
}

/** Index of permit `p`'s word. */
export function permitWord(limitCount: number, p: number): number {
  return (FIRST_LIMIT_LINE + limitCount * (1 + GRANTED_STRIPES)) * WORDS_PER_LINE + p;
}

function namesOffsetBytes(limitCount: number, permitCount: number): number {
  const permitLines = Math.ceil(permitCount / WORDS_PER_LINE);
  return (FIRST_LIMIT_LINE + limitCount * (1 + GRANTED_STRIPES) + permitLines) * BYTES_PER_LINE;
}

/** Total bytes of a buffer with these counts. */
export function layoutBytes(limitCount: number, permitCount: number): number {
  return namesOffsetBytes(limitCount, permitCount) + NAMES_CAPACITY_BYTES;
}

/** Typed views over one limiter buffer. */
export interface SharedViews {
  readonly buffer: SharedArrayBuffer;
  readonly words: BigInt64Array;
  readonly i32: Int32Array;
}

export function viewsOf(buffer: SharedArrayBuffer): SharedViews {
  return { buffer, words: new BigInt64Array(buffer), i32: new Int32Array(buffer) };
}

/** One limit's configuration. */
export interface StoredLimit {
  name: string;
  burst: bigint;
  maxIntervalNs: bigint;
  floorIntervalNs: bigint;
  maxQueue: bigint; // -1n = unbounded
  defaultCost: bigint;
  /** Configured rate, grants per second, exactly as given. */
  rate: number;
}

/** Everything written once at creation. */
export interface StoredConfig {
  limits: StoredLimit[];
  permitCount: number;
  maxWaitNs: bigint; // -1n = unbounded
  createdAtNs: bigint;
  decreasePpm: bigint; // 0n = not adaptive
  recoveryPpm: bigint;
  leaseNs: bigint;
}

/**
 * Allocates and initialises a limiter buffer. Every bucket starts full:
 * TAT = creation time, so `burst` cost units are available at once.
 */
export function createShared(config: StoredConfig): SharedViews {
  const names = new TextEncoder().encode(JSON.stringify(config.limits.map((l) => l.name)));
  const limitCount = config.limits.length;
  const views = viewsOf(new SharedArrayBuffer(layoutBytes(limitCount, config.permitCount)));
  const w = views.words;
  w[Word.LIMIT_COUNT] = BigInt(limitCount);
  w[Word.PERMIT_COUNT] = BigInt(config.permitCount);
  w[Word.MAX_WAIT_NS] = config.maxWaitNs;
  w[Word.CREATED_AT_NS] = config.createdAtNs;
  w[Word.DECREASE_PPM] = config.decreasePpm;
  w[Word.RECOVERY_PPM] = config.recoveryPpm;
  w[Word.LEASE_NS] = config.leaseNs;
  w[Word.NAMES_BYTES] = BigInt(names.byteLength);
  w[Word.PAUSE_START] = config.createdAtNs;
  w[Word.LAST_SLOT] = config.createdAtNs;
  config.limits.forEach((limit, i) => {
    const base = limitBase(i);
    w[base + LimitWord.TAT] = config.createdAtNs;
    w[base + LimitWord.DELIVERED] = config.createdAtNs;
    w[base + LimitWord.INTERVAL_NS] = limit.maxIntervalNs;
    w[base + LimitWord.BURST] = limit.burst;
    w[base + LimitWord.MAX_INTERVAL_NS] = limit.maxIntervalNs;
    w[base + LimitWord.FLOOR_INTERVAL_NS] = limit.floorIntervalNs;
    w[base + LimitWord.MAX_QUEUE] = limit.maxQueue;
    w[base + LimitWord.DEFAULT_COST] = limit.defaultCost;
    w[base + LimitWord.RATE_BITS] = floatBits(limit.rate);
  });
  new Uint8Array(views.buffer, namesOffsetBytes(limitCount, config.permitCount), NAMES_CAPACITY_BYTES).set(names);
  w[Word.VERSION] = BigInt(LAYOUT_VERSION);
  // Written last: a buffer with the magic is fully initialised. (The buffer is
  // published to other threads only through `handle`, after this returns.)
  Atomics.store(w, Word.MAGIC, MAGIC);
  return views;
}

/** Reads the configuration back; `undefined` fields mean the header is malformed. */
export function readConfig(views: SharedViews): StoredConfig | string {
  const w = views.words;
  const limitCount = Number(Atomics.load(w, Word.LIMIT_COUNT));
  const permitCount = Number(Atomics.load(w, Word.PERMIT_COUNT));
  if (!(limitCount >= 1 && limitCount <= MAX_LIMITS)) return `limit count ${limitCount} out of range`;
  if (!(permitCount >= 0 && permitCount <= MAX_PERMITS)) return `permit count ${permitCount} out of range`;
  if (views.buffer.byteLength !== layoutBytes(limitCount, permitCount)) {
    return `buffer is ${views.buffer.byteLength} bytes, its header needs ${layoutBytes(limitCount, permitCount)}`;
  }
  const namesBytes = Number(Atomics.load(w, Word.NAMES_BYTES));
  if (!(namesBytes >= 2 && namesBytes <= NAMES_CAPACITY_BYTES)) return 'names area length out of range';
  let names: unknown;
  try {
    names = JSON.parse(new TextDecoder().decode(
      new Uint8Array(views.buffer, namesOffsetBytes(limitCount, permitCount), namesBytes).slice()));
  } catch {
    return 'names area is not valid JSON';
  }
  if (!Array.isArray(names) || names.length !== limitCount || !names.every((n) => typeof n === 'string')) {
    return 'names area does not match the limit count';
  }
  const limits: StoredLimit[] = names.map((name: string, i) => {
    const base = limitBase(i);
    return {
      name,
      burst: Atomics.load(w, base + LimitWord.BURST),
      maxIntervalNs: Atomics.load(w, base + LimitWord.MAX_INTERVAL_NS),
      floorIntervalNs: Atomics.load(w, base + LimitWord.FLOOR_INTERVAL_NS),
      maxQueue: Atomics.load(w, base + LimitWord.MAX_QUEUE),
      defaultCost: Atomics.load(w, base + LimitWord.DEFAULT_COST),
      rate: bitsFloat(Atomics.load(w, base + LimitWord.RATE_BITS)),
    };
  });
  return {
    limits,
    permitCount,
    maxWaitNs: Atomics.load(w, Word.MAX_WAIT_NS),
    createdAtNs: Atomics.load(w, Word.CREATED_AT_NS),
    decreasePpm: Atomics.load(w, Word.DECREASE_PPM),
    recoveryPpm: Atomics.load(w, Word.RECOVERY_PPM),
    leaseNs: Atomics.load(w, Word.LEASE_NS),
  };
}

/** A float64's bits as a BigInt64 word (for immutable config kept in shared memory). */
export function floatBits(value: number): bigint {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, value);
  return view.getBigInt64(0);
}

/** Inverse of {@link floatBits}. */
export function bitsFloat(bits: bigint): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigInt64(0, bits);
  return view.getFloat64(0);
}
