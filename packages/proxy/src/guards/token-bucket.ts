/**
 * A token bucket: `rate` tokens a second, holding at most `burst`. Time comes from the caller
 * (monotonic ms), so the bucket is pure and testable with plain numbers.
 */
export class TokenBucket {
  readonly rate: number;
  readonly burst: number;
  #tokens: number;
  #at: number;

  constructor(rate: number, burst: number, now: number) {
    this.rate = rate;
    this.burst = burst;
    this.#tokens = burst;
    this.#at = now;
  }

  /** Takes one token if there is one. */
  take(now: number): boolean {
    if (now > this.#at) {
      this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) * this.rate) / 1000);
      this.#at = now;
    }
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** True when the bucket is full again: it can be forgotten without changing behaviour. */
  idle(now: number): boolean {
    return this.#tokens + ((now - this.#at) * this.rate) / 1000 >= this.burst;
  }
}

/**
 * One token bucket per source address, forgetting sources whose bucket has refilled so that a
 * scan of spoofed addresses cannot grow it without bound.
 */
export class SourceRateLimiter {
  readonly #rate: number;
  readonly #burst: number;
  readonly #buckets = new Map<string, TokenBucket>();
  readonly #sweepMs: number;
  readonly #maxSources: number;
  #sweptAt = 0;

  constructor(rate: number, burst: number, opts: { sweepMs?: number; maxSources?: number } = {}) {
    this.#rate = rate;
    this.#burst = burst;
    this.#sweepMs = opts.sweepMs ?? 10_000;
    this.#maxSources = opts.maxSources ?? 100_000;
  }

  /** Takes one token from the source's bucket: false when the source is over its rate. */
  take(source: string, now: number): boolean {
    let b = this.#buckets.get(source);
    if (!b) {
      if (this.#buckets.size >= this.#maxSources) this.#sweep(now, true);
      b = new TokenBucket(this.#rate, this.#burst, now);
      this.#buckets.set(source, b);
    }
    if (now - this.#sweptAt > this.#sweepMs) this.#sweep(now, false);
    return b.take(now);
  }

  get sources(): number {
    return this.#buckets.size;
  }

  #sweep(now: number, force: boolean): void {
    this.#sweptAt = now;
    for (const [k, b] of this.#buckets) if (b.idle(now)) this.#buckets.delete(k);
    // Still full of busy sources: drop the oldest half rather than grow.
    if (force && this.#buckets.size >= this.#maxSources) {
      let n = Math.floor(this.#buckets.size / 2);
      for (const k of this.#buckets.keys()) {
        if (n-- <= 0) break;
        this.#buckets.delete(k);
      }
    }
  }
}
