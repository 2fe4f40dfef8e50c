import { z } from 'zod';
import { nodeIdRe } from '../cluster-keys.js';

/**
 * The routing part of an fslb configuration: pools of nodes, routes that pick pools per request
 * (first match wins), and cluster-wide call limits per tenant or trunk. Cross-references (a route
 * naming a pool or a limit, a node in two pools) are checked by `routingProblems` on the raw
 * input, so that they are reported together with every other problem of the file.
 */

/** The pool every node belongs to when the configuration names no pools. */
export const DEFAULT_POOL = 'default';

/** Pool, route and limit ids appear in keys, metrics and logs: the node id alphabet. */
const ruleId = z.string().regex(nodeIdRe, 'expected 1-64 characters of A-Z a-z 0-9 . _ -');

/** A SIP header name (RFC 3261 token). */
const headerName = z.string().regex(/^[A-Za-z0-9!%*_+`'~.-]{1,64}$/, 'expected a SIP header name');

const regex = z
  .string()
  .min(1)
  .superRefine((s, ctx) => {
    try {
      new RegExp(s);
    } catch (err) {
      ctx.addIssue({
        code: 'custom',
        message: `not a valid regular expression: ${err instanceof Error ? err.message : String(err)}`,
      });
    }
  });

const method = z.enum(['INVITE', 'REGISTER', 'SUBSCRIBE']);

export function routingSchemas(cidr: z.ZodType<string>) {
  const match = z.strictObject({
    /** Regexes on the Request-URI's user and host, and on the From URI's user and host. */
    ruriUser: regex.optional(),
    ruriHost: regex.optional(),
    fromUser: regex.optional(),
    fromHost: regex.optional(),
    /** The header is present; with `value`, its first value matches the regex. */
    header: z.strictObject({ name: headerName, value: regex.optional() }).optional(),
    /** The request's source address is in one of these CIDRs. */
    source: z.array(cidr).min(1).optional(),
    method: z
      .union([method, z.array(method).min(1)])
      .transform((m) => (Array.isArray(m) ? m : [m]))
      .optional(),
  });

  const route = z
    .strictObject({
      /** A name for logs and metrics; defaults to `route-<index>`. */
      id: ruleId.optional(),
      match: match.optional(),
      /** Pools in order: the call goes to the first that has room (spill-over). */
      pools: z.array(ruleId).min(1).optional(),
      /** Limits the call counts against, each one cluster-wide. */
      limits: z.array(ruleId).default([]),
      /** Answer with this status instead of routing. */
      reject: z
        .strictObject({
          status: z.number().int().min(400).max(699),
          reason: z
            .string()
            .regex(/^[^\r\n]{1,80}$/, 'expected a one-line reason phrase')
            .optional(),
        })
        .optional(),
    })
    .superRefine((r, ctx) => {
      if ((r.pools === undefined) === (r.reject === undefined)) {
        ctx.addIssue({ code: 'custom', message: 'set exactly one of pools and reject' });
      }
    });

  const limitKey = z.union([
    ruleId.describe('a fixed name: one counter for every call of the route'),
    z.strictObject({ fixed: ruleId }),
    z.strictObject({ header: headerName }),
    z.strictObject({ source: z.literal(true) }),
    z.strictObject({ fromHost: z.literal(true) }),
    z.strictObject({ ruriHost: z.literal(true) }),
  ]);

  const limit = z
    .strictObject({
      id: ruleId,
      /** What one counter is kept per: a header's value, the source, the From or R-URI host, or a fixed name. */
      key: limitKey,
      /** Concurrent calls, cluster-wide. */
      maxCalls: z.number().int().positive().optional(),
      /** New calls a second, cluster-wide (at most this many in any one-second window). */
      maxCps: z.number().int().positive().optional(),
      /** The answer over the limit. */
      status: z.number().int().min(400).max(699).default(503),
      retryAfterSec: z.number().int().min(0).max(86_400).optional(),
      /**
       * While Redis cannot be reached the limit cannot be counted across proxies: `refuse`
       * answers its calls with `status`, `admit` lets them through uncounted.
       */
      whenRedisDown: z.enum(['refuse', 'admit']).default('refuse'),
    })
    .superRefine((l, ctx) => {
      if (l.maxCalls === undefined && l.maxCps === undefined) {
        ctx.addIssue({ code: 'custom', message: 'set maxCalls, maxCps or both' });
      }
    });

  const pool = z.strictObject({
    id: ruleId,
    nodes: z.array(z.string()).min(1),
    /**
     * On a Redis Cluster, the pool's state lives under a hash tag of its own, `{<prefix>:<shard>}`,
     * so that pools with different shards can be served by different masters. Every pool a
     * route names, and every route that shares a limit, must have the same shard. Without a
     * shard (and always on a single Redis or Sentinel) the state lives under the prefix alone.
     */
    shard: ruleId.optional(),
  });

  return { match, route, limit, pool };
}

/**
 * Cross-references of the routing rules, checked on the raw input (as duplicate node ids are) so
 * that they are listed with every other problem: duplicate ids, a route naming a pool or limit
 * that does not exist, a node in two pools, in none, or unknown.
 */
export function routingProblems(raw: unknown): { path: string; message: string }[] {
  const cfg = (raw ?? {}) as { nodes?: unknown; pools?: unknown; routes?: unknown; limits?: unknown };
  const out: { path: string; message: string }[] = [];
  const ids = (list: unknown, what: string, path: string): Set<string> => {
    const seen = new Map<string, number>();
    if (!Array.isArray(list)) return new Set();
    list.forEach((item: unknown, i) => {
      const id = (item as { id?: unknown } | null)?.id;
      if (typeof id !== 'string') return;
      const first = seen.get(id);
      if (first === undefined) seen.set(id, i);
      else out.push({ path: `${path}.${i}.id`, message: `duplicate ${what} id (also ${path}.${first})` });
    });
    return new Set(seen.keys());
  };
  const nodeIds = new Set<string>();
  if (Array.isArray(cfg.nodes)) {
    for (const n of cfg.nodes) {
      const id = (n as { id?: unknown } | null)?.id;
      if (typeof id === 'string') nodeIds.add(id);
    }
  }
  const poolsGiven = Array.isArray(cfg.pools);
  const pools = poolsGiven ? ids(cfg.pools, 'pool', 'pools') : new Set([DEFAULT_POOL]);
  const limits = ids(cfg.limits, 'limit', 'limits');

  if (poolsGiven) {
    const owner = new Map<string, string>();
    (cfg.pools as unknown[]).forEach((p: unknown, i) => {
      const pool = p as { id?: unknown; nodes?: unknown } | null;
      if (!Array.isArray(pool?.nodes)) return;
      pool.nodes.forEach((n: unknown, j) => {
        if (typeof n !== 'string') return;
        const path = `pools.${i}.nodes.${j}`;
        if (!nodeIds.has(n)) out.push({ path, message: `unknown node ${JSON.stringify(n)}` });
        const first = owner.get(n);
        if (first !== undefined) {
          out.push({
            path,
            message: `node ${JSON.stringify(n)} is already in pool ${first}: a node belongs to one pool`,
          });
        } else owner.set(n, typeof pool.id === 'string' ? pool.id : `pools.${i}`);
      });
    });
    for (const id of nodeIds) {
      if (!owner.has(id)) out.push({ path: 'pools', message: `node ${JSON.stringify(id)} is in no pool` });
    }
  }

  if (Array.isArray(cfg.routes)) {
    cfg.routes.forEach((r: unknown, i) => {
      const route = r as { pools?: unknown; limits?: unknown } | null;
      if (Array.isArray(route?.pools)) {
        route.pools.forEach((p: unknown, j) => {
          if (typeof p === 'string' && !pools.has(p)) {
            out.push({
              path: `routes.${i}.pools.${j}`,
              message: poolsGiven
                ? `unknown pool ${JSON.stringify(p)}`
                : `unknown pool ${JSON.stringify(p)} (without pools, every node is in pool "${DEFAULT_POOL}")`,
            });
          }
        });
      }
      if (Array.isArray(route?.limits)) {
        route.limits.forEach((l: unknown, j) => {
          if (typeof l === 'string' && !limits.has(l)) {
            out.push({ path: `routes.${i}.limits.${j}`, message: `unknown limit ${JSON.stringify(l)}` });
          }
        });
      }
    });
  }
  if (poolsGiven) out.push(...shardProblems(cfg.pools as unknown[], cfg.routes));
  return out;
}

/**
 * One reservation script touches every pool of a call's route and every counter of its limits
 * at once, and on a Redis Cluster one script reaches one slot: a route's pools must share a
 * shard, and so must the routes that count against the same limit.
 */
function shardProblems(pools: unknown[], routes: unknown): { path: string; message: string }[] {
  const out: { path: string; message: string }[] = [];
  const shardOf = new Map<string, string>();
  for (const p of pools) {
    const pool = p as { id?: unknown; shard?: unknown } | null;
    if (typeof pool?.id === 'string') shardOf.set(pool.id, typeof pool.shard === 'string' ? pool.shard : '');
  }
  const name = (shard: string): string => (shard === '' ? 'no shard' : `shard ${JSON.stringify(shard)}`);
  if (!Array.isArray(routes)) {
    // Without routes every call goes to every pool in order: one route over them all.
    const [first, ...rest] = [...shardOf];
    const other = rest.find(([, shard]) => shard !== first?.[1]);
    if (first && other) {
      out.push({
        path: 'pools',
        message: `pool ${other[0]} has ${name(other[1])} but pool ${first[0]} has ${name(first[1])}: without routes every call may go to every pool, so they must share a shard`,
      });
    }
    return out;
  }
  /** The shard each limit is first counted in, and where. */
  const limitShard = new Map<string, { shard: string; route: number }>();
  routes.forEach((r: unknown, i) => {
    const route = r as { pools?: unknown; limits?: unknown } | null;
    if (!Array.isArray(route?.pools)) return;
    const named = route.pools.filter((p): p is string => typeof p === 'string' && shardOf.has(p));
    const first = named[0];
    if (first === undefined) return;
    const shard = shardOf.get(first) ?? '';
    named.forEach((p, j) => {
      const other = shardOf.get(p) ?? '';
      if (other !== shard) {
        out.push({
          path: `routes.${i}.pools.${j}`,
          message: `pool ${p} has ${name(other)} but pool ${first} of the same route has ${name(shard)}: a route's pools must share a shard`,
        });
      }
    });
    if (!Array.isArray(route.limits)) return;
    route.limits.forEach((l: unknown, j) => {
      if (typeof l !== 'string') return;
      const seen = limitShard.get(l);
      if (!seen) limitShard.set(l, { shard, route: i });
      else if (seen.shard !== shard) {
        out.push({
          path: `routes.${i}.limits.${j}`,
          message: `limit ${l} is counted in ${name(seen.shard)} by routes.${seen.route} but this route's pools have ${name(shard)}: routes sharing a limit must share a shard`,
        });
      }
    });
  });
  return out;
}
