import { randomUUID } from 'node:crypto';

/** How long an issued nonce is honoured (sofia's `nonce-ttl` default, 60 s). */
export const NONCE_TTL_MS = 60_000;
/** The most nonces a node keeps; past it the oldest is forgotten. */
export const MAX_NONCES = 10_000;

/**
 * The nonces a node has put in its digest challenges (RFC 2617 §3.2.1), each honoured for
 * `ttlMs` and by any number of requests within that time; bounded, oldest first out. Only the
 * nonce is checked: the simulator does not verify the digest response.
 */
export class DigestNonces {
  /** nonce -> expiry (ms since the epoch), in issue order. */
  private readonly expiries = new Map<string, number>();

  constructor(
    private readonly ttlMs = NONCE_TTL_MS,
    private readonly max = MAX_NONCES,
    private readonly now: () => number = Date.now,
  ) {}

  /** A fresh nonce (a random UUID), remembered. */
  issue(): string {
    this.forgetExpired();
    const nonce = randomUUID();
    this.expiries.set(nonce, this.now() + this.ttlMs);
    while (this.expiries.size > this.max) {
      const oldest = this.expiries.keys().next();
      if (oldest.done === true) break;
      this.expiries.delete(oldest.value);
    }
    return nonce;
  }

  /** Whether `nonce` was issued here and has not expired. */
  knows(nonce: string): boolean {
    const expiry = this.expiries.get(nonce);
    return expiry !== undefined && expiry > this.now();
  }

  get size(): number {
    return this.expiries.size;
  }

  private forgetExpired(): void {
    const now = this.now();
    for (const [nonce, expiry] of this.expiries) {
      if (expiry > now) break;
      this.expiries.delete(nonce);
    }
  }
}
