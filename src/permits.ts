/**
 * Concurrency permits: at most K requests in flight across all threads, with
 * permits that can not leak.
 *
 * A permit is one word in the shared buffer:
 * `(leaseExpiryMs << 24) | (threadId + 1)`, 0 = free, where leaseExpiryMs
 * counts ms since the limiter's creation (40 bits: 34 years). Owner and lease
 * live in one word so that taking, releasing and reclaiming are each a
 * single CAS: a permit changes hands only from the exact value a thread saw,
 * so two takers never both win, and a stale release (after the permit was
 * reclaimed and taken by someone else) does nothing.
 *
 * Leaks are impossible by two routes:
 * - a holder's thread exits (crash, `terminate()`, Piscina recycling): the
 *   thread that created the worker sees its `exit` and frees every permit
 *   owned by that thread id (thread ids are never reused within a process);
 * - a holder keeps a permit past its lease (a hung call, or a worker created
 *   by a thread that does not hold this limiter): any thread looking for a
 *   permit takes the expired one over.
 */
import { PERMIT_RELEASES_I32, Word, permitWord } from './layout.js';

const TAG_BITS = 24n;
const TAG_MASK = (1n << TAG_BITS) - 1n;
const NS_PER_MS = 1_000_000n;

/** A held permit: which one, and the exact owner value to release it with. */
export interface PermitToken {
  readonly index: number;
  readonly owner: bigint;
}

export class Permits {
  readonly count: number;
  private readonly words: BigInt64Array;
  private readonly i32: Int32Array;
  private readonly firstWord: number;
  private readonly leaseMs: bigint;
  private readonly createdAtNs: bigint;
  private readonly threadTag: bigint;

  constructor(words: BigInt64Array, i32: Int32Array, limitCount: number, count: number, leaseNs: bigint, createdAtNs: bigint, threadId: number) {
    this.words = words;
    this.i32 = i32;
    this.count = count;
    this.firstWord = permitWord(limitCount, 0);
    this.leaseMs = (leaseNs + NS_PER_MS - 1n) / NS_PER_MS;
    this.createdAtNs = createdAtNs;
    this.threadTag = BigInt(threadId + 1) & TAG_MASK;
  }

  private msSinceCreation(now: bigint): bigint {
    const ms = (now - this.createdAtNs) / NS_PER_MS;
    return ms > 0n ? ms : 0n;
  }

  /**
   * Takes a free (or lease-expired) permit, or returns null when all K are
   * held. Scans from a per-thread offset so threads do not all fight over
   * permit 0.
   */
  tryTake(now: bigint): PermitToken | null {
    const w = this.words;
    const nowMs = this.msSinceCreation(now);
    const mine = ((nowMs + this.leaseMs) << TAG_BITS) | this.threadTag;
    const start = Number(this.threadTag % BigInt(this.count));
    for (let k = 0; k < this.count; k++) {
      const index = (start + k) % this.count;
      const ownerWord = this.firstWord + index;
      const owner = Atomics.load(w, ownerWord);
      const expired = owner !== 0n && (owner >> TAG_BITS) < nowMs;
      if (owner !== 0n && !expired) continue;
      // Owner CAS: from the exact value seen, free or expired, to ours.
      if (Atomics.compareExchange(w, ownerWord, owner, mine) !== owner) continue;
      if (expired) Atomics.add(w, Word.RECLAIMED_COUNT, 1n);
      else Atomics.add(w, Word.IN_FLIGHT, 1n);
      return { index, owner: mine };
    }
    return null;
  }

  /** Gives a permit back; returns false if it had already been reclaimed. */
  release(token: PermitToken): boolean {
    const ownerWord = this.firstWord + token.index;
    if (Atomics.compareExchange(this.words, ownerWord, token.owner, 0n) !== token.owner) return false;
    Atomics.sub(this.words, Word.IN_FLIGHT, 1n);
    this.wake();
    return true;
  }

  /** Frees every permit held by thread `threadId` (it has exited). Returns how many. */
  reclaimThread(threadId: number): number {
    const w = this.words;
    const tag = BigInt(threadId + 1) & TAG_MASK;
    let freed = 0;
    for (let index = 0; index < this.count; index++) {
      const ownerWord = this.firstWord + index;
      const owner = Atomics.load(w, ownerWord);
      if (owner === 0n || (owner & TAG_MASK) !== tag) continue;
      if (Atomics.compareExchange(w, ownerWord, owner, 0n) !== owner) continue;
      Atomics.sub(w, Word.IN_FLIGHT, 1n);
      Atomics.add(w, Word.RECLAIMED_COUNT, 1n);
      freed++;
    }
    if (freed > 0) this.wake();
    return freed;
  }

  /** Earliest lease expiry among held permits (ns on the clock), or -1n if none is held. */
  earliestExpiryNs(): bigint {
    let earliest = -1n;
    for (let index = 0; index < this.count; index++) {
      const owner = Atomics.load(this.words, this.firstWord + index);
      if (owner === 0n) continue;
      const expiryMs = owner >> TAG_BITS;
      if (earliest < 0n || expiryMs < earliest) earliest = expiryMs;
    }
    return earliest < 0n ? -1n : this.createdAtNs + (earliest + 1n) * NS_PER_MS;
  }

  /** The release counter permit waiters sleep on. */
  releases(): number {
    return Atomics.load(this.i32, PERMIT_RELEASES_I32);
  }

  get releaseIndex(): number {
    return PERMIT_RELEASES_I32;
  }

  private wake(): void {
    Atomics.add(this.i32, PERMIT_RELEASES_I32, 1);
    Atomics.notify(this.i32, PERMIT_RELEASES_I32);
  }
}
