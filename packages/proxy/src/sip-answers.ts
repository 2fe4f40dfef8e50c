/**
 * Every SIP answer the proxy gives by itself, decided in one place. Anything else is the
 * answer of the FreeSWITCH node the request was proxied to.
 */
export interface SipAnswer {
  status: number;
  reason: string;
  headers: Record<string, string>;
}

export const Refusal = {
  /** Source outside `proxy.acl`. */
  Forbidden: 'forbidden',
  /** The source sent more than its per-source rate allows. */
  RateLimited: 'rate-limited',
  /** This replica is past `proxy.maxCps`: shed to its SRV peers. */
  Overloaded: 'overloaded',
  /** SIGTERM: finishing the calls in progress, taking no new ones. */
  ShuttingDown: 'shutting-down',
  /** No node is eligible or every eligible node is full. */
  NoCapacity: 'no-capacity',
} as const;
export type Refusal = (typeof Refusal)[keyof typeof Refusal];

/**
 * 403 for a source the ACL refuses; 503 with Retry-After for everything that says "not now,
 * not here", so that the upstream tries the next SRV target (RFC 3261 21.5.4, RFC 3263 4.3).
 */
export function refusalAnswer(refusal: Refusal, retryAfterSec: number): SipAnswer {
  if (refusal === Refusal.Forbidden) return { status: 403, reason: 'Forbidden', headers: {} };
  const retry = { 'Retry-After': String(retryAfterSec) };
  switch (refusal) {
    case Refusal.RateLimited:
      return { status: 503, reason: 'Rate Limit Exceeded', headers: retry };
    case Refusal.Overloaded:
      return { status: 503, reason: 'Overloaded', headers: retry };
    case Refusal.ShuttingDown:
      return { status: 503, reason: 'Shutting Down', headers: retry };
    case Refusal.NoCapacity:
      return { status: 503, reason: 'No Capacity', headers: retry };
  }
}

/** The answer to an OPTIONS health check: 200 while this replica can route calls. */
export function optionsAnswer(canRoute: boolean, retryAfterSec: number): SipAnswer {
  return canRoute
    ? { status: 200, reason: 'OK', headers: {} }
    : { status: 503, reason: 'Service Unavailable', headers: { 'Retry-After': String(retryAfterSec) } };
}
