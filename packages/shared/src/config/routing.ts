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

  const pool = z.strictObject({ id: ruleId, nodes: z.array(z.string()).min(1) });

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
  return out;
}
