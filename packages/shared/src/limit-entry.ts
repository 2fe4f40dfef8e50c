/**
 * One counter of a limit: `<limit id>:<key value>`, as it appears in the limit's Redis keys
 * (`fslb:limit:<entry>`, `fslb:rate:<entry>`), in the per-node list of live calls, and in the
 * header a proxy adds to each INVITE it sends to a node, so that the node's monitor can tell from
 * FreeSWITCH alone which counters a call holds.
 *
 * A key value is whatever the caller sent (a header's value, a host): it is made safe for keys,
 * logs and the header by percent-encoding every byte outside `A-Z a-z 0-9 . _ ~ @ + -`, and a
 * value longer than 64 characters once encoded keeps its first 48 and a hash of the whole.
 */

/** The header a proxy adds to the INVITEs it proxies: the limit entries the call counts against. */
export const LIMITS_HEADER = 'X-Fslb-Limits';

const MAX_VALUE = 64;
const entryRe = /^[A-Za-z0-9._-]{1,64}:[A-Za-z0-9._~@+%-]{1,64}$/;

/** The counter of limit `limitId` for the key value `value`. */
export function limitEntry(limitId: string, value: string): string {
  return `${limitId}:${encodeLimitValue(value)}`;
}

function encodeLimitValue(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9._~@+-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  if (out === '') return '%00';
  if (out.length <= MAX_VALUE) return out;
  return `${out.slice(0, 48)}~${fnv1a(out)}`;
}

/** The entries of a limits header value (space-separated); anything malformed is left out. */
export function parseLimitEntries(header: string | undefined): string[] {
  if (!header) return [];
  const out: string[] = [];
  for (const e of header.split(/[\s,]+/)) if (entryRe.test(e) && !out.includes(e)) out.push(e);
  return out;
}

/** The limit id of an entry. */
export function limitIdOf(entry: string): string {
  return entry.slice(0, entry.indexOf(':'));
}

function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}
