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
  /** drachtio-server's SIP socket is backing up (`proxy.overload`): a share of new INVITEs shed. */
  Backlog: 'backlog',
  /** SIGTERM: finishing the calls in progress, taking no new ones. */
  ShuttingDown: 'shutting-down',
  /** No node is eligible or every eligible node is full. */
  NoCapacity: 'no-capacity',
  /** An INVITE with a To tag: a request inside a dialog this proxy does not hold. */
  InDialog: 'in-dialog',
  /** An INVITE sent by one of the cluster's own nodes (`proxy.fromNodes: reject`). */
  Loop: 'loop',
  /** A fault inside fslb on the request path. */
  Error: 'error',
  /** No route matched the request. */
  NoRoute: 'no-route',
  /** An INVITE from outside the cluster carrying fslb's own limits header. */
  OwnHeader: 'own-header',
} as const;
export type Refusal = (typeof Refusal)[keyof typeof Refusal];

/**
 * 403 for a source the ACL refuses; 481 for an INVITE inside a dialog this proxy does not know
 * (RFC 3261 §12.2.2); 482 for a request that loops back from a node (§16.3, §21.4.20); 500 for
 * a fault of fslb's own; 503 with Retry-After for everything that says "not now, not here", so
 * that the upstream tries the next SRV target (RFC 3261 §21.5.4, RFC 3263 §4.3).
 */
export function refusalAnswer(refusal: Refusal, retryAfterSec: number): SipAnswer {
  const retry = { 'Retry-After': String(retryAfterSec) };
  switch (refusal) {
    case Refusal.Forbidden:
      return { status: 403, reason: 'Forbidden', headers: {} };
    case Refusal.InDialog:
      return { status: 481, reason: 'Call/Transaction Does Not Exist', headers: {} };
    case Refusal.Loop:
      return { status: 482, reason: 'Loop Detected', headers: {} };
    case Refusal.Error:
      return { status: 500, reason: 'Server Internal Error', headers: {} };
    case Refusal.RateLimited:
      return { status: 503, reason: 'Rate Limit Exceeded', headers: retry };
    case Refusal.Overloaded:
    case Refusal.Backlog:
      return { status: 503, reason: 'Overloaded', headers: retry };
    case Refusal.ShuttingDown:
      return { status: 503, reason: 'Shutting Down', headers: retry };
    case Refusal.NoCapacity:
      return { status: 503, reason: 'No Capacity', headers: retry };
    case Refusal.OwnHeader:
      return {
        status: 403,
        reason: 'Forbidden',
        headers: { Reason: 'SIP;cause=403;text="X-Fslb-Limits and X-Fslb-Slot are set by fslb only"' },
      };
    case Refusal.NoRoute:
      return { status: 404, reason: 'Not Found', headers: { Reason: 'SIP;cause=404;text="no fslb route"' } };
  }
}

/**
 * A call over a cluster-wide limit: the limit's status (503 unless configured), Retry-After for
 * a 503, and a Reason header (RFC 3326) naming the limit and what was reached.
 */
export function limitAnswer(
  limit: { id: string; status: number; retryAfterSec?: number | undefined },
  what: 'maxCalls' | 'maxCps' | 'unavailable',
  retryAfterSec: number,
): SipAnswer {
  const text = what === 'unavailable' ? `limit ${limit.id} cannot be counted` : `limit ${limit.id} ${what}`;
  const headers: Record<string, string> = { Reason: `SIP;cause=${limit.status};text="${text}"` };
  if (limit.status === 503) headers['Retry-After'] = String(limit.retryAfterSec ?? retryAfterSec);
  return { status: limit.status, reason: 'Limit Reached', headers };
}

/** The answer to an OPTIONS health check: 200 while this replica can route calls. */
export function optionsAnswer(canRoute: boolean, retryAfterSec: number): SipAnswer {
  return canRoute
    ? { status: 200, reason: 'OK', headers: {} }
    : { status: 503, reason: 'Service Unavailable', headers: { 'Retry-After': String(retryAfterSec) } };
}

/** The reason phrase of a status the routing rules answer with when the configuration names none. */
export function reasonPhrase(status: number): string {
  const known: Record<number, string> = {
    403: 'Forbidden',
    404: 'Not Found',
    480: 'Temporarily Unavailable',
    486: 'Busy Here',
    488: 'Not Acceptable Here',
    503: 'Service Unavailable',
    603: 'Decline',
  };
  return known[status] ?? 'Rejected';
}
