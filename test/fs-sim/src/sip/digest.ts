/**
 * HTTP digest authentication as SIP uses it (RFC 3261 §22.4, RFC 2617 §3.2): reading the
 * parameters of a challenge or of credentials, and computing credentials for a challenge.
 */
import { createHash, randomBytes } from 'node:crypto';

/** The parameters of `Digest a="x", b=y, ...`, names lower-cased, quotes removed. */
export function digestParams(value: string): Map<string, string> {
  const params = new Map<string, string>();
  const body = value.trim().replace(/^digest\s+/i, '');
  const re = /\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*(?:,|$)/g;
  for (const m of body.matchAll(re)) {
    const name = m[1];
    if (name !== undefined) params.set(name.toLowerCase(), m[2] ?? m[3] ?? '');
  }
  return params;
}

/** The nonce named by an Authorization value, or undefined. */
export function digestNonce(authorization: string | undefined): string | undefined {
  return authorization === undefined ? undefined : digestParams(authorization).get('nonce');
}

export interface DigestAnswer {
  username: string;
  password: string;
  method: string;
  uri: string;
}

/**
 * The credentials answering `challenge` (RFC 2617 §3.2.2, MD5; qop=auth when the challenge
 * offers it, with a fresh cnonce and nc 00000001).
 */
export function digestCredentials(challenge: string, answer: DigestAnswer): string {
  const p = digestParams(challenge);
  const realm = p.get('realm') ?? '';
  const nonce = p.get('nonce') ?? '';
  const md5 = (s: string): string => createHash('md5').update(s).digest('hex');
  const ha1 = md5(`${answer.username}:${realm}:${answer.password}`);
  const ha2 = md5(`${answer.method}:${answer.uri}`);
  const qopAuth = (p.get('qop') ?? '').split(',').some((q) => q.trim() === 'auth');
  const fields = [
    `username="${answer.username}"`,
    `realm="${realm}"`,
    `nonce="${nonce}"`,
    `uri="${answer.uri}"`,
  ];
  if (qopAuth) {
    const cnonce = randomBytes(8).toString('hex');
    const nc = '00000001';
    fields.push(`response="${md5(`${ha1}:${nonce}:${nc}:${cnonce}:auth:${ha2}`)}"`);
    fields.push('algorithm=MD5', `cnonce="${cnonce}"`, 'qop=auth', `nc=${nc}`);
  } else {
    fields.push(`response="${md5(`${ha1}:${nonce}:${ha2}`)}"`, 'algorithm=MD5');
  }
  const opaque = p.get('opaque');
  if (opaque !== undefined) fields.push(`opaque="${opaque}"`);
  return `Digest ${fields.join(', ')}`;
}
