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
 * scan of spoofed addresses cannot grow it without bound. Reports the first refusal of each
 * source in a window, so that logs say it once.
 */
export class SourceRateLimiter {
  readonly #rate: number;
  readonly #burst: number;
  readonly #buckets = new Map<string, TokenBucket>();
  readonly #logged = new Map<string, number>();
  readonly #windowMs: number;
  readonly #maxSources: number;
  #sweptAt = 0;

  constructor(rate: number, burst: number, opts: { windowMs?: number; maxSources?: number } = {}) {
    this.#rate = rate;
    this.#burst = burst;
    this.#windowMs = opts.windowMs ?? 10_000;
    this.#maxSources = opts.maxSources ?? 100_000;
  }

  /**
   * `allowed`: the request may proceed. `report`: it was refused and this is the source's first
   * refusal in the current window (log it).
   */
  take(source: string, now: number): { allowed: boolean; report: boolean } {
    let b = this.#buckets.get(source);
    if (!b) {
      if (this.#buckets.size >= this.#maxSources) this.#sweep(now, true);
      b = new TokenBucket(this.#rate, this.#burst, now);
      this.#buckets.set(source, b);
    }
    if (now - this.#sweptAt > this.#windowMs) this.#sweep(now, false);
    if (b.take(now)) return { allowed: true, report: false };
    const last = this.#logged.get(source);
    if (last !== undefined && now - last < this.#windowMs) return { allowed: false, report: false };
    this.#logged.set(source, now);
    return { allowed: false, report: true };
  }

  get sources(): number {
    return this.#buckets.size;
  }

  #sweep(now: number, force: boolean): void {
    this.#sweptAt = now;
    for (const [k, b] of this.#buckets) if (b.idle(now)) this.#buckets.delete(k);
    for (const [k, t] of this.#logged) if (now - t >= this.#windowMs) this.#logged.delete(k);
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
