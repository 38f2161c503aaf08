// The pattern atomic-pace replaces, written as honestly as we could: the
// well-known lock-and-sleep rate limiter ("rate_limited" decorator from Stack
// Overflow), made shared across worker threads. One mutex and one "last call"
// time live in a SharedArrayBuffer, so calls from all threads are spaced by
// the interval; a thread that gets a 429 sleeps the server's Retry-After and
// doubles ITS OWN interval until its next success, because that is all a
// per-call decorator can see. What it gets wrong: the other threads never
// hear about the 429, and keep calling into the server's penalty box.
const LOCK = 0; // Int32 index: 0 = free, 1 = held
const LAST_CALL_MS = 1; // Float64 index: when the last call was let through

/** The shared part: pass `buffer` to every thread. */
export function createNaiveShared() {
  return new SharedArrayBuffer(16);
}

export class NaiveSharedLimiter {
  #lock;
  #last;
  #baseIntervalMs;
  #intervalMs;

  constructor(buffer, ratePerSecond) {
    this.#lock = new Int32Array(buffer, 0, 2);
    this.#last = new Float64Array(buffer, 8, 1);
    this.#baseIntervalMs = this.#intervalMs = 1000 / ratePerSecond;
  }

  /** lock; sleep what is left of the interval since the last call (holding the lock); last = now; unlock. */
  wait() {
    while (Atomics.compareExchange(this.#lock, LOCK, 0, 1) !== 0) Atomics.wait(this.#lock, LOCK, 1);
    try {
      const left = this.#intervalMs - (nowMs() - this.#last[0]);
      if (left > 0) Atomics.wait(this.#lock, 1, 0, left); // time.sleep(left_to_wait)
      this.#last[0] = nowMs();
    } finally {
      Atomics.store(this.#lock, LOCK, 0);
      Atomics.notify(this.#lock, LOCK, 1);
    }
  }

  /** Calls `fn` until it is not throttled: on a 429, sleep its Retry-After here and slow down this thread. */
  async run(fn, { retries = 50 } = {}) {
    for (let attempt = 0; ; attempt++) {
      this.wait();
      const res = await fn();
      if (res.status !== 429) this.#intervalMs = this.#baseIntervalMs;
      if (res.status !== 429 || attempt >= retries) return res;
      await res.arrayBuffer();
      this.#intervalMs *= 2;
      const seconds = Number(res.headers.get('retry-after') ?? 1);
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    }
  }
}

/** ms on the process-wide monotonic clock (performance.now() has a different origin in each thread). */
function nowMs() {
  return Number(process.hrtime.bigint()) / 1e6;
}
