/**
 * What a successful `acquire` hands back: the grant, which can settle its
 * actual cost and release its concurrency permit, and the live queue status
 * of a request still waiting.
 */
import { nsToMs, type Clock } from './clock.js';
import { GrantStateError } from './errors.js';
import type { Permits, PermitToken } from './permits.js';
import type { QueueStatus } from './options.js';
import type { LimiterState, Placed } from './state.js';

/** Cost units moved by {@link Grant.settle}, per limit name. */
export interface SettleResult {
  /** Extra cost charged now (actual above the estimate). */
  readonly charged: Readonly<Record<string, number>>;
  /** Unused cost given back to the limit (actual below the estimate). */
  readonly refunded: Readonly<Record<string, number>>;
  /**
   * Unused cost that could not be given back because later requests were
   * already scheduled behind this grant (giving it back could let new grants
   * collide with them). Counted as spent.
   */
  readonly forfeited: Readonly<Record<string, number>>;
}

/** A granted request. */
export interface Grant {
  /** Cost units granted (of the first limit, for a limiter with several). */
  readonly cost: number;
  /** Cost granted per limit name. */
  readonly costs: Readonly<Record<string, number>>;
  /** Time spent in the call, ms. */
  readonly waitedMs: number;
  /**
   * Position of this grant on the limiter's shared schedule (virtual ns).
   * Grants become due in increasing `slotNs` order, across all threads: the
   * FIFO order. Between backoffs it differs from the clock by a constant.
   */
  readonly slotNs: bigint;
  /**
   * Settles the grant at its actual cost once known (e.g. tokens from the
   * response's usage): a number for a one-limit limiter, or costs per limit
   * (limits not named keep their granted cost). Extra cost is charged at once
   * (later grants wait for it); unused cost is refunded if no later request
   * was scheduled behind this one, else forfeited — never over-granted. Once
   * per grant: a second call throws `GrantStateError`.
   */
  settle(actual: number | Readonly<Record<string, number>>): SettleResult;
  /**
   * Returns the concurrency permit (limiters with `concurrency`); no effect
   * otherwise or on a second call. `run`/`wrap` call it when the call ends.
   */
  release(): void;
}

export class GrantImpl implements Grant {
  readonly cost: number;
  readonly waitedMs: number;
  readonly slotNs: bigint;
  #costs: Readonly<Record<string, number>> | undefined;
  readonly #state: LimiterState;
  readonly #placed: Placed;
  readonly #clock: Clock;
  readonly #resolveActual: (actual: unknown, granted: readonly number[]) => number[];
  #permits: Permits | null;
  #token: PermitToken | null;
  #settled = false;

  constructor(
    state: LimiterState, placed: Placed, clock: Clock, waitedNs: bigint,
    resolveActual: (actual: unknown, granted: readonly number[]) => number[],
    permits: Permits | null = null, token: PermitToken | null = null,
  ) {
    this.#state = state;
    this.#placed = placed;
    this.#clock = clock;
    this.#resolveActual = resolveActual;
    this.#permits = permits;
    this.#token = token;
    this.cost = placed.costs[0]!;
    this.waitedMs = nsToMs(waitedNs);
    this.slotNs = placed.slot;
  }

  /** Built on first read: most callers never look, and a grant is handed out right after its CAS. */
  get costs(): Readonly<Record<string, number>> {
    this.#costs ??= Object.freeze(Object.fromEntries(this.#state.limits.map((l, i) => [l.name, this.#placed.costs[i]!])));
    return this.#costs;
  }

  settle(actual: number | Readonly<Record<string, number>>): SettleResult {
    if (this.#settled) throw new GrantStateError('this grant was already settled; settle() runs once per grant');
    const actualCosts = this.#resolveActual(actual, this.#placed.costs);
    this.#settled = true;
    const { charged, refunded } = this.#state.settle(this.#clock(), this.#placed, actualCosts);
    const byName = (values: readonly number[]) =>
      Object.freeze(Object.fromEntries(this.#state.limits.map((l, i) => [l.name, values[i]!])));
    const forfeited = this.#placed.costs.map((c, i) => Math.max(0, c - actualCosts[i]!) - refunded[i]!);
    return { charged: byName(charged), refunded: byName(refunded), forfeited: byName(forfeited) };
  }

  release(): void {
    const permits = this.#permits;
    const token = this.#token;
    this.#permits = null;
    this.#token = null;
    if (permits !== null && token !== null) permits.release(token);
  }
}

/** The live {@link QueueStatus} of one waiting request. */
export class WaitStatus implements QueueStatus {
  state: 'queued' | 'granted' | 'cancelled' = 'queued';
  readonly #state: LimiterState;
  readonly #slot: bigint;
  readonly #clock: Clock;

  constructor(state: LimiterState, slot: bigint, clock: Clock) {
    this.#state = state;
    this.#slot = slot;
    this.#clock = clock;
  }

  get position(): number {
    if (this.state !== 'queued') return 0;
    const ahead = this.#slot - this.#state.virtualNow(this.#clock());
    if (ahead <= 0n) return 0;
    const intervalNs = this.#state.intervalNs(0);
    return Number((ahead + intervalNs - 1n) / intervalNs);
  }

  get etaMs(): number {
    return this.state !== 'queued' ? 0 : nsToMs(this.#state.remainingNs(this.#clock(), this.#slot));
  }
}
