import { hostname } from 'node:os';
import { z } from 'zod';
import { isValidPrefix, nodeIdRe } from '../cluster-keys.js';
import { parseDuration } from './duration.js';
import { routingSchemas } from './routing.js';

/**
 * The one schema of an fslb configuration file. Every default lives here. Environment
 * overrides and secret resolution happen in `load-config.ts` around this schema.
 */

const port = z.number().int().min(0).max(65535);
const positiveMs = z.number().int().positive();

const duration = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({ code: 'custom', message: 'expected a positive duration such as 1500, 500ms, 2s or 1m' });
    return z.NEVER;
  }
  return ms;
});

/** Exactly one of `password` and `passwordEnv` (the name of a variable holding it). */
function secretPair(key: string) {
  return (v: Record<string, unknown>, ctx: z.RefinementCtx): void => {
    const direct = v[key] !== undefined;
    const env = v[`${key}Env`] !== undefined;
    if (direct === env) {
      ctx.addIssue({ code: 'custom', path: [key], message: `set exactly one of ${key} and ${key}Env` });
    }
  };
}

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name');
const cidr = z.string().refine(isCidr, { message: 'expected an IPv4 or IPv6 CIDR such as 10.0.0.0/8' });

export const instanceId = z.string().regex(nodeIdRe, 'expected 1-64 characters of A-Z a-z 0-9 . _ -');

export function defaultInstanceId(): string {
  const host =
    hostname()
      .replace(/[^A-Za-z0-9._-]/g, '-')
      .slice(0, 50) || 'host';
  return `${host}-${process.pid}`;
}

const redisSchema = z
  .strictObject({
    url: z
      .string()
      .default('redis://127.0.0.1:6379')
      .refine((u) => /^(redis|rediss|unix):/.test(u) || u.startsWith('/'), {
        message: 'expected a redis://, rediss:// or unix: URL, or a socket path',
      }),
    username: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    passwordEnv: envName.optional(),
    /** TLS even on a redis:// URL; `rediss://` turns it on by itself. */
    tls: z
      .union([
        z.boolean(),
        z.strictObject({
          rejectUnauthorized: z.boolean().default(true),
          caFile: z.string().optional(),
          servername: z.string().optional(),
        }),
      ])
      .optional(),
    sentinels: z
      .array(z.strictObject({ host: z.string().min(1), port: port.default(26379) }))
      .min(1)
      .optional(),
    /**
     * Redis Cluster seed nodes: every fslb process then uses a cluster client, which follows
     * MOVED/ASK redirections and failovers. `url`, `db` and `sentinels` do not apply.
     */
    cluster: z
      .array(z.strictObject({ host: z.string().min(1), port: port.default(6379) }))
      .min(1)
      .optional(),
    /** Sentinel master name; required with `sentinels`. */
    name: z.string().min(1).optional(),
    sentinelPassword: z.string().min(1).optional(),
    db: z.number().int().min(0).max(15).optional(),
    connectTimeoutMs: positiveMs.default(5000),
    /** A command unanswered this long fails (a stalled server must not stall fslb). */
    commandTimeoutMs: positiveMs.default(2000),
    /** Reconnect backoff grows to this cap, then stays there; ioredis never gives up. */
    maxRetryDelayMs: positiveMs.default(2000),
  })
  .superRefine((v, ctx) => {
    if (v.password !== undefined && v.passwordEnv !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['password'],
        message: 'set at most one of password and passwordEnv',
      });
    }
    if (v.cluster && v.sentinels) {
      ctx.addIssue({
        code: 'custom',
        path: ['cluster'],
        message: 'set at most one of cluster and sentinels',
      });
    }
    if (v.cluster && v.db !== undefined && v.db !== 0) {
      ctx.addIssue({ code: 'custom', path: ['db'], message: 'a Redis Cluster has only database 0' });
    }
    if (v.sentinels && !v.name) {
      ctx.addIssue({
        code: 'custom',
        path: ['name'],
        message: 'the Sentinel master name is required with sentinels',
      });
    }
  });

const nodeSchema = z.strictObject({
  id: z.string().regex(nodeIdRe, 'expected 1-64 characters of A-Z a-z 0-9 . _ -'),
  /** Where proxies send this node's INVITEs: host:port, or a full sip: URI. */
  sip: z
    .string()
    .refine((s) => s.startsWith('sip:') || s.startsWith('sips:') || parseHostPort(s) !== undefined, {
      message: 'expected host:port or a sip: URI',
    }),
  esl: z
    .strictObject({
      host: z.string().min(1),
      port: port.default(8021),
      password: z.string().min(1).optional(),
      passwordEnv: envName.optional(),
    })
    .superRefine(secretPair('password')),
  weight: z.number().positive().max(1000).default(1),
  /** Cap below FreeSWITCH's own Max-Sessions; the lower of the two is published. */
  maxSessions: z.number().int().positive().optional(),
  /** Sofia profile whose RUNNING state the monitor checks; the node drains while it is not. */
  sipProfile: z.string().min(1).optional(),
});

/**
 * The longest node lease a monitor may be configured with. It also tells a lease key from a
 * damaged one: no monitor, whatever its own TTL, writes a lease expiring later than this.
 */
export const MAX_LEASE_TTL_MS = 300_000;

const monitorSchema = z
  .strictObject({
    id: instanceId.optional(),
    probeIntervalMs: positiveMs.default(1000),
    probeTimeoutMs: positiveMs.default(1500),
    leaseTtlMs: z.number().int().min(500).max(MAX_LEASE_TTL_MS).default(5000),
    /** How often a monitor tries to claim unowned nodes; defaults to leaseTtlMs / 5. */
    claimIntervalMs: positiveMs.optional(),
    /** TTL of fslb:alive:<id>; defaults to outlast a takeover (lease + claim + probe interval). */
    livenessTtlMs: positiveMs.optional(),
    /** Session counts from channel events are published at most this often per node. */
    coalesceMs: z.number().int().min(0).default(20),
    /** The longest wait between two reconnect attempts to one node. */
    maxBackoffMs: positiveMs.default(10_000),
    /**
     * How often the owner compares the calls counted against limits with FreeSWITCH's own channel
     * list: a count is never wrong for longer than this.
     */
    reconcileIntervalMs: z.number().int().min(100).default(10_000),
    http: z.strictObject({ host: z.string().default('0.0.0.0'), port: port.default(9101) }).prefault({}),
  })
  .prefault({});

const proxySchema = z
  .strictObject({
    id: instanceId.optional(),
    drachtio: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1'),
        port: port.default(9022),
        secret: z.string().min(1).optional(),
        secretEnv: envName.optional(),
      })
      .prefault({})
      .superRefine((v, ctx) => {
        if (v.secret !== undefined && v.secretEnv !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['secret'],
            message: 'set at most one of secret and secretEnv',
          });
        }
      }),
    recordRoute: z.boolean().default(false),
    /** Methods proxied besides OPTIONS; REGISTER and SUBSCRIBE go to a node chosen by their AOR. */
    methods: z
      .array(z.enum(['INVITE', 'REGISTER', 'SUBSCRIBE']))
      .min(1)
      .default(['INVITE'])
      .refine((m) => m.includes('INVITE'), { message: 'must include INVITE' })
      .refine((m) => new Set(m).size === m.length, { message: 'each method once' }),
    maxTargets: z.number().int().min(1).max(16).default(3),
    /** How the first target is chosen: least loaded (with reservations) or plain round robin. */
    balance: z.enum(['least-loaded', 'round-robin']).default('least-loaded'),
    /**
     * Reserve a slot in Redis before proxying (exact cluster-wide accounting). Off: choose on the
     * monitors' view alone, a Redis round trip less per call, at the risk of herding and overbooking.
     */
    reservations: z.boolean().default(true),
    /**
     * Advance slots per node a proxy may hold unused at most (0: none). Each is a reservation in
     * Redis taken ahead of time, so an INVITE whose first choice has one is proxied with no round
     * trip on its path. How many a proxy asks for follows the node's recent demand, within a
     * quarter of its room: near capacity none are held and every call reserves in Redis.
     */
    advanceSlots: z.number().int().min(0).max(1024).default(256),
    /** Full reload of the view from the keys, whatever the events said. */
    resyncIntervalMs: positiveMs.default(5000),
    /** OPTIONS answers 503 when the view has not heard from Redis for this long. */
    viewMaxAgeMs: positiveMs.default(30_000),
    /**
     * How long a reservation waits for a Redis that answers nothing; past it the call proceeds
     * on local accounting. A Redis still answering other reservations is waited for, up to 1 s.
     */
    reserveTimeoutMs: positiveMs.default(250),
    /** A reservation outlives the provisional timeout by this much before it lapses. */
    reservationMarginMs: positiveMs.default(1000),
    /**
     * Load figures learnt from reservations are published for the other proxies at most this
     * often; 0 (the default): not at all. Redis makes the final choice of every slot, and the
     * fairness bench is the same without them, while each proxy would hear every other's.
     */
    loadPublishMs: z.number().int().min(0).default(0),
    /** SIGTERM waits this long at most for calls in progress to finish. */
    shutdownTimeoutMs: positiveMs.default(40_000),
    provisionalTimeout: duration.default(2000),
    finalTimeout: duration.default(30_000),
    retryAfterSec: z.number().int().min(0).max(86_400).default(5),
    affinityHeader: z.string().min(1).default('X-Fslb-Affinity'),
    /**
     * Whose affinity header is honoured: only trusted sources (`rateLimit.trusted`), or anyone.
     * A caller who can pick the node can pile calls onto one node or probe the cluster.
     */
    affinityFrom: z.enum(['trusted', 'any']).default('trusted'),
    /**
     * An INVITE sent by one of the cluster's own nodes (its source is a node's SIP address):
     * `reject` answers 482 Loop Detected, `route` balances it like any other call.
     */
    fromNodes: z.enum(['reject', 'route']).default('reject'),
    acl: z.array(cidr).default(['0.0.0.0/0', '::/0']),
    rateLimit: z
      .strictObject({
        /** INVITEs a second from one source address, and the burst it may send at once. */
        perSourcePerSec: z.number().positive().default(50),
        burst: z.number().int().positive().default(100),
        /** REGISTER, SUBSCRIBE and OPTIONS a second from one source, a budget apart from INVITEs. */
        registerPerSourcePerSec: z.number().positive().default(20),
        registerBurst: z.number().int().positive().default(40),
        /** Sources (CIDRs) that carry many callers, such as carriers' SBCs: a limit of their own. */
        trusted: z.array(cidr).default([]),
        trustedPerSourcePerSec: z.number().positive().default(500),
        trustedBurst: z.number().int().positive().default(1000),
      })
      .prefault({}),
    /**
     * INVITEs per second this replica accepts before answering 503 (a bucket of a tenth of a
     * second's worth absorbs bursts). The default sits below where one proxy and its
     * drachtio-server sharing a 2-core host fell behind (~1,250-1,500 calls/s; see the README).
     */
    maxCps: z.number().positive().default(1000),
    /**
     * Shedding on drachtio-server's own backlog: the bytes waiting in its UDP SIP socket, read
     * every `sampleMs` from /proc/net/udp (the proxy must share drachtio-server's network
     * namespace to see it). When the backlog stays past `highBytes` for `holdMs`, stays past
     * twice `highBytes`, or the kernel drops a datagram there, a growing share of new INVITEs is
     * answered 503; under `highBytes` the share admitted grows back, faster under `lowBytes`.
     * Unset, the marks are a half and a quarter of the socket's buffer as the kernel gives it by
     * default (net.core.rmem_default), at most 1 MiB and 256 KiB, until the proxy has timed the
     * queue with an OPTIONS of its own sent to drachtio-server's UDP port: from then on the high
     * mark is the backlog drachtio-server works through in `delayMs`, the hard one twice that,
     * the low one half. Set in bytes, the marks stay bytes.
     */
    overload: z
      .strictObject({
        enabled: z.boolean().default(true),
        sampleMs: positiveMs.default(50),
        highBytes: z.number().int().positive().optional(),
        holdMs: z.number().int().min(0).default(500),
        lowBytes: z.number().int().min(0).optional(),
        delayMs: positiveMs.default(150),
      })
      .prefault({})
      .refine((o) => o.highBytes === undefined || o.lowBytes === undefined || o.lowBytes < o.highBytes, {
        message: 'must be below proxy.overload.highBytes',
        path: ['lowBytes'],
      }),
    http: z.strictObject({ host: z.string().default('0.0.0.0'), port: port.default(9102) }).prefault({}),
  })
  .prefault({});

const routing = routingSchemas(cidr);

export const configSchema = z
  .strictObject({
    redis: redisSchema.prefault({}),
    prefix: z.string().default('fslb').refine(isValidPrefix, {
      message: 'expected 1-64 printable characters without spaces',
    }),
    nodes: z.array(nodeSchema).default([]),
    /** Pools of nodes; absent, every node is in one pool (`default`). */
    pools: z.array(routing.pool).min(1).optional(),
    /** Routes, first match wins; absent, every call goes to the pools in their order. */
    routes: z.array(routing.route).min(1).optional(),
    limits: z.array(routing.limit).default([]),
    monitor: monitorSchema,
    proxy: proxySchema,
    log: z
      .strictObject({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
        /**
         * The proxy's outcome line per routed request (at info): `failed` for every request that
         * did not connect, `all` for connected ones too, `none` for no line.
         */
        calls: z.enum(['failed', 'all', 'none']).default('failed'),
      })
      .prefault({}),
  })
  .superRefine((cfg, ctx) => {
    const m = cfg.monitor;
    if (m.claimIntervalMs !== undefined && m.claimIntervalMs * 2 > m.leaseTtlMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['monitor', 'claimIntervalMs'],
        message: 'must be at most half of monitor.leaseTtlMs',
      });
    }
    if (m.livenessTtlMs !== undefined && m.livenessTtlMs <= m.leaseTtlMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['monitor', 'livenessTtlMs'],
        message: 'must exceed monitor.leaseTtlMs, or a monitor takeover would mark healthy nodes stale',
      });
    }
    if (cfg.monitor.probeTimeoutMs > cfg.monitor.leaseTtlMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['monitor', 'probeTimeoutMs'],
        message: 'must not exceed monitor.leaseTtlMs',
      });
    }
  });

/**
 * Duplicate node ids, checked on the raw input so that they are reported together with every
 * other problem (schema refinements only run once the rest of the object is valid).
 */
export function duplicateNodeIds(raw: unknown): { path: string; message: string }[] {
  const nodes = (raw as { nodes?: unknown } | null)?.nodes;
  if (!Array.isArray(nodes)) return [];
  const seen = new Map<string, number>();
  const out: { path: string; message: string }[] = [];
  nodes.forEach((n: unknown, i) => {
    const id = (n as { id?: unknown } | null)?.id;
    if (typeof id !== 'string') return;
    const first = seen.get(id);
    if (first === undefined) seen.set(id, i);
    else out.push({ path: `nodes.${i}.id`, message: `duplicate node id (also nodes.${first})` });
  });
  return out;
}

export type ConfigInput = z.input<typeof configSchema>;
type Parsed = z.output<typeof configSchema>;

/** A node as fslb uses it: its ESL password resolved. */
export interface NodeConfig extends Omit<Parsed['nodes'][number], 'esl'> {
  esl: { host: string; port: number; password: string };
}

export interface MonitorConfig extends Omit<Parsed['monitor'], 'id' | 'claimIntervalMs' | 'livenessTtlMs'> {
  id: string;
  claimIntervalMs: number;
  livenessTtlMs: number;
}

export interface ProxyConfig extends Omit<Parsed['proxy'], 'id' | 'drachtio'> {
  id: string;
  drachtio: { host: string; port: number; secret: string };
}

export interface RedisConfig extends Omit<Parsed['redis'], 'passwordEnv'> {
  password?: string;
}

export type PoolConfig = z.output<typeof routing.pool>;
export type RouteConfig = Omit<z.output<typeof routing.route>, 'id'> & { id: string };
export type RouteMatch = z.output<typeof routing.match>;
export type LimitConfig = z.output<typeof routing.limit>;

/** The whole configuration, validated, defaults applied, secrets resolved, frozen. */
export interface FslbConfig {
  redis: RedisConfig;
  prefix: string;
  nodes: NodeConfig[];
  /** Every node in exactly one pool; without `pools` in the file, one pool `default` of all nodes. */
  pools: PoolConfig[];
  /** Without `routes` in the file, one route to every pool in order. */
  routes: RouteConfig[];
  limits: LimitConfig[];
  monitor: MonitorConfig;
  proxy: ProxyConfig;
  log: Parsed['log'];
}

export function parseHostPort(s: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const p = Number(m[3]);
  if (p < 1 || p > 65535) return undefined;
  return { host: m[1] ?? m[2] ?? '', port: p };
}

function isCidr(s: string): boolean {
  const [addr, bits, ...rest] = s.split('/');
  if (rest.length > 0 || addr === undefined) return false;
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(addr);
  const max = v4 ? 32 : addr.includes(':') ? 128 : -1;
  if (max < 0) return false;
  if (v4 && v4.slice(1).some((o) => Number(o) > 255)) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= max;
}
