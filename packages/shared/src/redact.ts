/**
 * Secrets fslb must never print or store: ESL passwords, Redis passwords, the drachtio secret,
 * and credentials inside URLs. `redactPaths` feeds pino; `redactUrl` and `redactConfig` serve
 * every other place that shows configuration to a person.
 */

export const REDACTED = '[redacted]';

/** Object keys whose values are secrets wherever they appear (pino paths, one and two levels deep). */
const secretKeys = ['password', 'secret', 'sentinelPassword', 'auth', 'authorization'];

export const redactPaths: readonly string[] = [...secretKeys, 'url'].flatMap((k) => [
  k,
  `*.${k}`,
  `*.*.${k}`,
  `*.*.*.${k}`,
  `nodes[*].esl.${k}`,
  `config.nodes[*].esl.${k}`,
]);

/** pino censor: URLs keep their shape with the credentials masked; other secrets vanish. */
export function censor(value: unknown, path: string[]): unknown {
  if (path[path.length - 1] === 'url') return typeof value === 'string' ? redactUrl(value) : value;
  return REDACTED;
}

/** `redis://user:pw@host:6379/0` → `redis://user:[redacted]@host:6379/0`. Leaves other text alone. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^@/?#]*)@/i, (_m, scheme: string, cred: string) => {
    const colon = cred.indexOf(':');
    const user = colon >= 0 ? cred.slice(0, colon) : '';
    return `${scheme}${user}:${REDACTED}@`;
  });
}

/** A deep copy of any value with every secret key masked and every URL's credentials masked. */
export function redactConfig<T>(value: T): T {
  return walk(value) as T;
}

function walk(v: unknown, key?: string): unknown {
  if (key !== undefined && secretKeys.includes(key) && v !== undefined) return REDACTED;
  if (typeof v === 'string') return key === 'url' ? redactUrl(v) : v;
  if (Array.isArray(v)) return v.map((x) => walk(x));
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, k)]));
  }
  return v;
}
