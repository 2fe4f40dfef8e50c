import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { knownShards } from './shards.js';
import {
  ClusterKeys,
  ClusterStore,
  ConfigError,
  configPathFrom,
  createLogger,
  createRedis,
  formatIssues,
  isValidPrefix,
  nodeIdRe,
  parseConfig,
  redactUrl,
  type Redis,
  type RedisConfig,
} from '@fslb/shared';

type Env = Readonly<Record<string, string | undefined>>;

/** An error the CLI reports as one line (no stack) with its exit status. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

export const ExitCode = { Ok: 0, Failed: 1, Usage: 2 } as const;

export interface Target {
  redis: RedisConfig;
  prefix: string;
  /** The limits the config file defines (id and caps only), for `fslb limits`. */
  limits?: LimitDefinition[];
  /** The pool shards the config file names (`pools[].shard`). */
  shards?: string[];
}

/** What `fslb limits` shows of a limit's definition. */
export interface LimitDefinition {
  id: string;
  maxCalls?: number;
  maxCps?: number;
}

/**
 * Where the cluster lives: the `redis` and `prefix` sections of `--config` (or FSLB_CONFIG) when
 * given, else the defaults with REDIS_URL and FSLB_PREFIX; `--redis` and `--prefix` win over
 * both. Only those sections are read, so the ESL passwords a monitor needs are not required.
 */
export function resolveTarget(opts: { config?: string; redis?: string; prefix?: string }, env: Env): Target {
  const path = opts.config ?? configPathFrom([], env);
  let raw: Record<string, unknown> = {};
  let limits: LimitDefinition[] | undefined;
  let shards: string[] | undefined;
  if (path !== undefined) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new CliError(
        `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
        ExitCode.Usage,
      );
    }
    let parsed: unknown;
    try {
      parsed = parseYaml(text);
    } catch {
      throw new CliError(`${path} is not valid YAML or JSON`, ExitCode.Usage);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new CliError(`${path}: expected a mapping at the top level`, ExitCode.Usage);
    }
    const p = parsed as Record<string, unknown>;
    if (p.redis !== undefined) raw.redis = p.redis;
    if (p.prefix !== undefined) raw.prefix = p.prefix;
    if (Array.isArray(p.limits)) limits = limitDefinitions(p.limits);
    if (Array.isArray(p.pools)) shards = shardNames(p.pools);
  }
  if (opts.redis !== undefined)
    raw = { ...raw, redis: { ...(raw.redis as object | undefined), url: opts.redis } };
  if (opts.prefix !== undefined) {
    if (!isValidPrefix(opts.prefix)) {
      throw new CliError(
        `--prefix ${JSON.stringify(opts.prefix)}: 1-64 printable characters, no spaces`,
        ExitCode.Usage,
      );
    }
    raw.prefix = opts.prefix;
  }
  // Flags beat the environment: drop the variables that a flag has already decided.
  const e: Record<string, string | undefined> = { ...env };
  if (opts.redis !== undefined) delete e.REDIS_URL;
  if (opts.prefix !== undefined) delete e.FSLB_PREFIX;
  try {
    const cfg = parseConfig(raw, e);
    return {
      redis: cfg.redis,
      prefix: cfg.prefix,
      ...(limits ? { limits } : {}),
      ...(shards && shards.length > 0 ? { shards } : {}),
    };
  } catch (err) {
    if (err instanceof ConfigError) {
      const issues = err.issues.map((i) =>
        opts.redis !== undefined && i.path === 'redis.url' ? { ...i, path: '--redis' } : i,
      );
      throw new CliError(
        `invalid settings${path === undefined ? '' : ` in ${path}`}:\n${formatIssues(issues)}`,
        ExitCode.Usage,
      );
    }
    throw err;
  }
}

/** The ids and caps of a config file's limits, as written (the proxies validate the rest). */
function limitDefinitions(list: unknown[]): LimitDefinition[] {
  const out: LimitDefinition[] = [];
  for (const item of list) {
    const l = item as { id?: unknown; maxCalls?: unknown; maxCps?: unknown } | null;
    if (typeof l?.id !== 'string') continue;
    out.push({
      id: l.id,
      ...(typeof l.maxCalls === 'number' ? { maxCalls: l.maxCalls } : {}),
      ...(typeof l.maxCps === 'number' ? { maxCps: l.maxCps } : {}),
    });
  }
  return out;
}

/** The pool shards a config file's pools name, as written (the monitors validate the rest). */
function shardNames(list: unknown[]): string[] {
  const out = new Set<string>();
  for (const item of list) {
    const shard = (item as { shard?: unknown } | null)?.shard;
    if (typeof shard === 'string' && nodeIdRe.test(shard)) out.add(shard);
  }
  return [...out].sort();
}

/** Where a target points, for messages: the URL without credentials, or the Sentinel master. */
export function describeTarget(t: Target): string {
  if (t.redis.cluster) return `cluster ${t.redis.cluster.map((n) => `${n.host}:${n.port}`).join(',')}`;
  return t.redis.sentinels ? `sentinel master ${t.redis.name ?? 'mymaster'}` : redactUrl(t.redis.url);
}

const quiet = createLogger({ level: 'silent' });

/**
 * A connected client. One-shot commands fail at once when Redis is unreachable
 * (`reconnect: false`); `watch` keeps reconnecting.
 */
export async function connect(t: Target, reconnect: boolean): Promise<{ redis: Redis; store: ClusterStore }> {
  const redis = createRedis(t.redis, {
    name: 'fslb-cli',
    log: quiet,
    reconnect,
    maxRetriesPerRequest: reconnect ? 1 : 0,
  });
  // The socket's own error (ECONNREFUSED, ENOTFOUND, NOAUTH) says more than the promise's
  // "Connection is closed"; later errors surface through the commands' promises.
  let first: unknown;
  redis.on('error', (err: unknown) => {
    first ??= err;
  });
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new CliError(`cannot reach Redis at ${describeTarget(t)}: ${reasonOf(first ?? err)}`);
  }
  const store = new ClusterStore(redis, ClusterKeys.forRedis(t.prefix, t.redis));
  knownShards(store, t.shards ?? []);
  return { redis, store };
}

export function reasonOf(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code !== undefined && !err.message.includes(code) ? `${code} ${err.message}` : err.message;
  }
  return String(err);
}
