import { SourceAcl } from './acl.js';
import { SourceRateLimiter } from './token-bucket.js';

/** Which budget a request draws on: calls, or the rest (REGISTER, SUBSCRIBE, OPTIONS). */
export type RequestClass = 'invite' | 'other';

export interface SourceLimitSettings {
  perSourcePerSec: number;
  burst: number;
  registerPerSourcePerSec: number;
  registerBurst: number;
  /** CIDRs of sources that carry many callers (carriers' SBCs): a limit of their own. */
  trusted: readonly string[];
  trustedPerSourcePerSec: number;
  trustedBurst: number;
}

/**
 * The per-source rate limits (`proxy.rateLimit`): one bucket per source address and class, so a
 * source that floods with INVITEs keeps its REGISTER budget and the reverse, and a trusted
 * source (one SBC speaking for many callers) draws on a larger bucket of its own. Each source
 * only ever spends its own tokens: nothing one source sends costs another anything.
 */
export class SourceLimits {
  readonly #trusted: SourceAcl;
  readonly #anyTrusted: boolean;
  readonly #limiters: Record<RequestClass, { plain: SourceRateLimiter; trusted: SourceRateLimiter }>;

  constructor(s: SourceLimitSettings) {
    this.#trusted = new SourceAcl(s.trusted);
    this.#anyTrusted = s.trusted.length > 0;
    const trusted = (): SourceRateLimiter => new SourceRateLimiter(s.trustedPerSourcePerSec, s.trustedBurst);
    this.#limiters = {
      invite: { plain: new SourceRateLimiter(s.perSourcePerSec, s.burst), trusted: trusted() },
      other: {
        plain: new SourceRateLimiter(s.registerPerSourcePerSec, s.registerBurst),
        trusted: trusted(),
      },
    };
  }

  /** The source is inside `rateLimit.trusted`. */
  isTrusted(source: string): boolean {
    return this.#anyTrusted && this.#trusted.allows(source);
  }

  /** Takes one token from the source's bucket of that class: false when it is over its rate. */
  take(kind: RequestClass, source: string, trusted: boolean, now: number): boolean {
    const l = this.#limiters[kind];
    return (trusted ? l.trusted : l.plain).take(source, now);
  }
}
