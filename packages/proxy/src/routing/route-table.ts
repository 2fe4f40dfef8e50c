import { limitEntry, type LimitConfig, type PoolConfig, type RouteConfig } from '@fslb/shared';
import { SourceAcl } from '../guards/acl.js';
import { reasonPhrase } from '../sip-answers.js';

/** What routing reads of a request. */
export interface RoutableRequest {
  readonly method: string;
  readonly sourceAddress: string;
  header(name: string): string | undefined;
  /** The Request-URI. */
  requestUri(): string;
  /** The From header's URI. */
  fromUri(): string;
}

/** A limit counter one call counts against. */
export interface LimitUse {
  readonly limit: LimitConfig;
  /** `<limit id>:<key value>`. */
  readonly entry: string;
}

export type RouteDecision =
  /** Route to these pools, in order (spill over to the next when one has no room). */
  | { kind: 'route'; route: string; pools: readonly string[]; limits: readonly LimitUse[] }
  | { kind: 'reject'; route: string; status: number; reason: string }
  /** No route matched. */
  | { kind: 'none' };

interface CompiledRoute {
  id: string;
  tests: ((req: RoutableRequest, parts: UriCache) => boolean)[];
  pools: readonly string[] | undefined;
  limits: readonly LimitConfig[];
  reject: { status: number; reason: string } | undefined;
}

/**
 * The routing rules, compiled once per configuration: pools (which node belongs to which), and
 * routes, first match wins. `decide` runs on every INVITE: it reads only what the rules ask for
 * (a URI is split at most once) and runs no regex that no rule holds.
 */
export class RouteTable {
  readonly #routes: CompiledRoute[];
  readonly #poolOf = new Map<string, string>();
  readonly pools: readonly PoolConfig[];
  readonly limits: readonly LimitConfig[];

  constructor(cfg: {
    pools: readonly PoolConfig[];
    routes: readonly RouteConfig[];
    limits: readonly LimitConfig[];
  }) {
    this.pools = cfg.pools;
    this.limits = cfg.limits;
    for (const p of cfg.pools) for (const n of p.nodes) this.#poolOf.set(n, p.id);
    const limitById = new Map(cfg.limits.map((l) => [l.id, l]));
    this.#routes = cfg.routes.map((r) => ({
      id: r.id,
      tests: compileMatch(r.match),
      pools: r.pools,
      limits: r.limits.flatMap((id) => limitById.get(id) ?? []),
      reject: r.reject
        ? { status: r.reject.status, reason: r.reject.reason ?? reasonPhrase(r.reject.status) }
        : undefined,
    }));
  }

  /** The pool a node belongs to (undefined for a node the configuration does not hold). */
  poolOf(nodeId: string): string | undefined {
    return this.#poolOf.get(nodeId);
  }

  decide(req: RoutableRequest): RouteDecision {
    const parts = new UriCache(req);
    for (const r of this.#routes) {
      if (!r.tests.every((t) => t(req, parts))) continue;
      if (r.reject) return { kind: 'reject', route: r.id, ...r.reject };
      const limits: LimitUse[] = [];
      if (req.method === 'INVITE') {
        for (const l of r.limits) {
          const value = keyValue(l, req, parts);
          if (value !== undefined) limits.push({ limit: l, entry: limitEntry(l.id, value) });
        }
      }
      return { kind: 'route', route: r.id, pools: r.pools ?? [], limits };
    }
    return { kind: 'none' };
  }
}

/** The value a limit keeps its counter by; undefined when the request has none (the limit does not apply). */
function keyValue(l: LimitConfig, req: RoutableRequest, parts: UriCache): string | undefined {
  const k = l.key;
  if (typeof k === 'string') return k;
  if ('fixed' in k) return k.fixed;
  if ('header' in k) return req.header(k.header) || undefined;
  if ('source' in k) return req.sourceAddress;
  if ('fromHost' in k) return parts.from.host || undefined;
  return parts.ruri.host || undefined;
}

function compileMatch(m: RouteConfig['match']): CompiledRoute['tests'] {
  if (!m) return [];
  const tests: CompiledRoute['tests'] = [];
  if (m.method) {
    const methods = new Set<string>(m.method);
    tests.push((req) => methods.has(req.method));
  }
  if (m.source) {
    const acl = new SourceAcl(m.source);
    tests.push((req) => acl.allows(req.sourceAddress));
  }
  if (m.header) {
    const { name, value } = m.header;
    const re = value === undefined ? undefined : new RegExp(value);
    tests.push((req) => {
      const v = req.header(name);
      return v !== undefined && (re === undefined || re.test(v));
    });
  }
  const uriTest = (pattern: string | undefined, pick: (p: UriCache) => string): void => {
    if (pattern === undefined) return;
    const re = new RegExp(pattern);
    tests.push((_req, parts) => re.test(pick(parts)));
  };
  uriTest(m.ruriUser, (p) => p.ruri.user);
  uriTest(m.ruriHost, (p) => p.ruri.host);
  uriTest(m.fromUser, (p) => p.from.user);
  uriTest(m.fromHost, (p) => p.from.host);
  return tests;
}

/** A request's URIs split into user and host, each at most once, only when a rule asks. */
class UriCache {
  readonly #req: RoutableRequest;
  #ruri: UriParts | undefined;
  #from: UriParts | undefined;
  constructor(req: RoutableRequest) {
    this.#req = req;
  }
  get ruri(): UriParts {
    return (this.#ruri ??= uriParts(this.#req.requestUri()));
  }
  get from(): UriParts {
    return (this.#from ??= uriParts(this.#req.fromUri()));
  }
}

export interface UriParts {
  /** The user part, unescaped as sent ('' when none). */
  user: string;
  /** The host, lower case, without port or brackets. */
  host: string;
}

/** Splits a sip:, sips: or tel: URI into its user part and host (no parameters, no port). */
export function uriParts(uri: string): UriParts {
  const m = /^\s*<?\s*(?:sips?|tel):(?:([^@;?>]*)@)?(\[[^\]]*\]|[^:;?>]*)/i.exec(uri);
  if (!m) return { user: '', host: '' };
  const host = (m[2] ?? '').toLowerCase().replace(/^\[|\]$/g, '');
  // tel:+123 has no host: its number is the user part.
  if (/^\s*<?\s*tel:/i.test(uri)) return { user: m[2] ?? '', host: '' };
  return { user: m[1] ?? '', host };
}

/**
 * The view's nodes split by pool, rebuilt only when the view's node list changes (the view
 * replaces its array on every membership change, so its identity is the version).
 */
export class PoolNodes<T extends { readonly id: string }> {
  readonly #table: RouteTable;
  #of: readonly T[] | undefined;
  #byPool = new Map<string, T[]>();

  constructor(table: RouteTable) {
    this.#table = table;
  }

  get(pool: string, nodes: readonly T[]): readonly T[] {
    if (nodes !== this.#of) {
      this.#of = nodes;
      this.#byPool = new Map();
      for (const n of nodes) {
        const p = this.#table.poolOf(n.id);
        if (p === undefined) continue;
        let list = this.#byPool.get(p);
        if (!list) this.#byPool.set(p, (list = []));
        list.push(n);
      }
    }
    return this.#byPool.get(pool) ?? [];
  }
}
