import type { CallSlots } from './call-accounting.js';

/** The realm and nonce of a digest challenge (WWW-/Proxy-Authenticate) or of credentials. */
export interface DigestKey {
  realm: string;
  nonce: string;
}

/** A challenge this replica's drachtio-server remembers: who issued it, and the slot kept for it. */
export interface Challenge {
  /** The node that challenged: drachtio-server sends the retry there and nowhere else. */
  nodeId: string;
  /** The call (`callIdentity`) that was challenged. */
  call: string;
  /** The slot kept through the challenge, on the challenger; undefined when none is held. */
  slots: CallSlots | undefined;
  /** Monotonic ms after which drachtio-server has forgotten the nonce. */
  expiresAt: number;
}

/**
 * How long drachtio-server remembers a challenge it forwarded (v0.9.4,
 * `SipProxyController::addChallenge`: 2 s), plus a margin: this replica learns of the challenge
 * after drachtio-server does, so its memory must outlast drachtio-server's, never the reverse.
 */
export const CHALLENGE_MEMORY_MS = 2500;

/**
 * The digest challenges this proxy's drachtio-server is holding, by nonce. drachtio-server
 * sends an INVITE that answers one (same nonce and realm in Authorization / Proxy-Authorization)
 * to the node that issued it, whatever destinations the app gives and with no failover, once.
 * This memo mirrors that, so that the retry is counted on the node that will get it, on the slot
 * its first attempt kept. Each replica has its own drachtio-server and so its own memo: behind
 * DNS SRV a retry that reaches another replica is routed there like a new call, as its
 * drachtio-server does.
 *
 * Bounded: past `max` entries the oldest is dropped (its slot handed to `drop`).
 */
export class ChallengeMemo {
  readonly #byNonce = new Map<string, Challenge & { realm: string }>();
  readonly #max: number;
  readonly #drop: (c: Challenge) => void;
  #timer: NodeJS.Timeout | undefined;

  /** @param drop called with a challenge that lapsed or was pushed out, to end the slot it kept. */
  constructor(drop: (c: Challenge) => void, max = 10_000) {
    this.#drop = drop;
    this.#max = max;
  }

  get size(): number {
    return this.#byNonce.size;
  }

  remember(key: DigestKey, c: Challenge): void {
    const held = this.#byNonce.get(key.nonce);
    if (held) {
      this.#byNonce.delete(key.nonce);
      if (held.slots !== c.slots) this.#drop(held);
    }
    if (this.#byNonce.size >= this.#max) {
      const oldest = this.#byNonce.entries().next().value;
      if (oldest) {
        this.#byNonce.delete(oldest[0]);
        this.#drop(oldest[1]);
      }
    }
    this.#byNonce.set(key.nonce, { ...c, realm: key.realm });
    this.#timer ??= setInterval(() => this.#sweep(performance.now()), 250);
    this.#timer.unref();
  }

  /**
   * The challenge these credentials answer, removed (drachtio-server uses one once), or
   * undefined: none held, another realm, or lapsed.
   */
  take(key: DigestKey, now: number): Challenge | undefined {
    const c = this.#byNonce.get(key.nonce);
    if (!c || c.realm !== key.realm) return undefined;
    this.#byNonce.delete(key.nonce);
    if (c.expiresAt <= now) {
      this.#drop(c);
      return undefined;
    }
    return c;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    for (const c of this.#byNonce.values()) this.#drop(c);
    this.#byNonce.clear();
  }

  #sweep(now: number): void {
    // Entries are in insertion order and share one lifetime: the lapsed ones come first.
    for (const [nonce, c] of this.#byNonce) {
      if (c.expiresAt > now) break;
      this.#byNonce.delete(nonce);
      this.#drop(c);
    }
    if (this.#byNonce.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}
