/**
 * drachtio-server's memory of digest challenges (`SipProxyController::addChallenge`,
 * `isResponseToChallenge` and `timeoutChallenge` in src/sip-proxy-controller.cpp, v0.9.4).
 *
 * When a proxy target answers 401 or 407 with a challenge that names both a realm and a nonce,
 * drachtio remembers nonce -> {realm, target} for 2 s. A request the app proxies later whose
 * credentials carry that nonce and the same realm goes to that target only, whatever
 * destinations the app gave; the entry is used once.
 *
 * Parameters are compared as sofia-sip's `msg_header_find_param` returns them: the raw text
 * after `name=`, quotes included, so `realm="a"` and `realm=a` do not match.
 */
import { splitList, type SipMessage } from './sip-message.js';

/** drachtio's wait for the credentials after a challenge ("give client 2 seconds"). */
export const CHALLENGE_TTL_MS = 2000;

/** One remembered challenge. */
export interface RememberedChallenge {
  /** The realm parameter as the target sent it (quotes included). */
  realm: string;
  /** The destination, as the app named it, that sent the challenge. */
  target: string;
}

interface Entry extends RememberedChallenge {
  timer: NodeJS.Timeout;
}

/** A 401 or 407 carrying WWW-Authenticate or Proxy-Authenticate (`ProxyCore::processResponse`'s test). */
export function isChallenge(response: SipMessage): boolean {
  return (
    (response.status === 401 || response.status === 407) &&
    (response.has('www-authenticate') || response.has('proxy-authenticate'))
  );
}

/** The nonces a double remembers; `clear()` when the double closes. */
export class ChallengeCache {
  private readonly byNonce = new Map<string, Entry>();

  constructor(private readonly ttlMs = CHALLENGE_TTL_MS) {}

  /** What is remembered now, by nonce (quotes included). A copy. */
  get entries(): Map<string, RememberedChallenge> {
    return new Map([...this.byNonce].map(([nonce, e]) => [nonce, { realm: e.realm, target: e.target }]));
  }

  /**
   * `addChallenge`: reads the first WWW-Authenticate, or else the first Proxy-Authenticate, of
   * `response`; with both realm and nonce it remembers them with `target` and returns true. As
   * drachtio's `map::insert` does, a nonce already remembered keeps its first entry and timer.
   */
  add(response: SipMessage, target: string): boolean {
    const challenge = response.get('www-authenticate') ?? response.get('proxy-authenticate');
    const realm = challenge === undefined ? undefined : authParam(challenge, 'realm');
    const nonce = challenge === undefined ? undefined : authParam(challenge, 'nonce');
    if (realm === undefined || nonce === undefined) return false;
    if (!this.byNonce.has(nonce)) {
      const timer = setTimeout(() => this.byNonce.delete(nonce), this.ttlMs);
      this.byNonce.set(nonce, { realm, target, timer });
    }
    return true;
  }

  /**
   * `isResponseToChallenge`: the target remembered for the nonce of `request`'s Authorization
   * (or else Proxy-Authorization) when the realm matches; the entry is then forgotten.
   */
  take(request: SipMessage): string | undefined {
    const credentials = request.get('authorization') ?? request.get('proxy-authorization');
    const realm = credentials === undefined ? undefined : authParam(credentials, 'realm');
    const nonce = credentials === undefined ? undefined : authParam(credentials, 'nonce');
    if (realm === undefined || nonce === undefined) return undefined;
    const entry = this.byNonce.get(nonce);
    if (!entry || entry.realm !== realm) return undefined;
    clearTimeout(entry.timer);
    this.byNonce.delete(nonce);
    return entry.target;
  }

  /** Forgets everything and stops every timer. */
  clear(): void {
    for (const e of this.byNonce.values()) clearTimeout(e.timer);
    this.byNonce.clear();
  }
}

/**
 * A parameter of a challenge or credentials value (`Digest realm="x", nonce="y", ...`,
 * RFC 3261 §25.1 / RFC 2617), as the raw text after `name=` (quotes kept); names compare
 * case-insensitively.
 */
export function authParam(value: string, name: string): string | undefined {
  const params = value.trim().replace(/^[A-Za-z][\w.!%*+`'~-]*\s+(?=[^\s=,]+\s*=)/, '');
  for (const part of splitList(params)) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    if (part.slice(0, eq).trim().toLowerCase() === name.toLowerCase()) return part.slice(eq + 1).trim();
  }
  return undefined;
}
