import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { DEFAULT_POOL, routingProblems } from './routing.js';
import { configSchema, defaultInstanceId, duplicateNodeIds, type FslbConfig } from './schema.js';

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Which process reads the file, so that only the secrets it uses must be set: a monitor needs no
 * drachtio secret, a proxy no ESL password (left empty), `all` (the default) needs every one.
 */
export type ConfigUse = 'all' | 'monitor' | 'proxy';

/**
 * Environment variables that override the file, and where each one lands. Numbers are
 * converted here so that the schema reports a bad value under the variable's own name.
 */
const envOverrides: readonly { name: string; path: readonly string[]; numeric?: boolean }[] = [
  { name: 'REDIS_URL', path: ['redis', 'url'] },
  { name: 'FSLB_PREFIX', path: ['prefix'] },
  { name: 'FSLB_LOG_LEVEL', path: ['log', 'level'] },
  { name: 'FSLB_MONITOR_ID', path: ['monitor', 'id'] },
  { name: 'FSLB_MONITOR_HTTP_PORT', path: ['monitor', 'http', 'port'], numeric: true },
  { name: 'FSLB_PROXY_ID', path: ['proxy', 'id'] },
  { name: 'FSLB_PROXY_HTTP_PORT', path: ['proxy', 'http', 'port'], numeric: true },
  { name: 'FSLB_DRACHTIO_HOST', path: ['proxy', 'drachtio', 'host'] },
  { name: 'FSLB_DRACHTIO_PORT', path: ['proxy', 'drachtio', 'port'], numeric: true },
  { name: 'FSLB_PROXY_MAX_CPS', path: ['proxy', 'maxCps'], numeric: true },
];

/** Finds the config file named by `--config FILE`, `--config=FILE` or FSLB_CONFIG. */
export function configPathFrom(argv: readonly string[], env: Env): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--config' || a === '-c') return argv[i + 1];
    if (a?.startsWith('--config=')) return a.slice('--config='.length);
  }
  return env.FSLB_CONFIG === '' ? undefined : env.FSLB_CONFIG;
}

/** Reads, validates and freezes the configuration named on the command line or in FSLB_CONFIG. */
export function loadConfig(
  argv: readonly string[] = process.argv.slice(2),
  env: Env = process.env,
  use: ConfigUse = 'all',
): FslbConfig {
  const path = configPathFrom(argv, env);
  if (path === undefined) {
    throw new ConfigError([
      { path: '', message: 'no configuration file: pass --config FILE or set FSLB_CONFIG' },
    ]);
  }
  return loadConfigFile(path, env, use);
}

export function loadConfigFile(path: string, env: Env = process.env, use: ConfigUse = 'all'): FslbConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError([{ path: '', message: `cannot read ${path}: ${reason}` }], { cause: err });
  }
  return parseConfigText(text, env, path, use);
}

/** Parses YAML or JSON text (YAML is a superset of JSON). */
export function parseConfigText(
  text: string,
  env: Env = process.env,
  source = 'config',
  use: ConfigUse = 'all',
): FslbConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` at line ${err.linePos[0].line}` : '';
    const what = err instanceof YAMLParseError ? err.code : 'syntax error';
    throw new ConfigError([{ path: '', message: `${source} is not valid YAML or JSON${where} (${what})` }], {
      cause: err,
    });
  }
  return parseConfig(raw ?? {}, env, use);
}

/** Validates a parsed config object, applies environment overrides and defaults, resolves secrets. */
export function parseConfig(raw: unknown, env: Env = process.env, use: ConfigUse = 'all'): FslbConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError([{ path: '', message: 'expected a mapping at the top level' }]);
  }
  const issues: ConfigIssue[] = [];
  const input = structuredClone(raw) as Record<string, unknown>;
  const fromEnv = new Map<string, string>();
  for (const o of envOverrides) {
    const value = env[o.name];
    if (value === undefined || value === '') continue;
    let v: string | number = value;
    if (o.numeric) {
      v = Number(value);
      if (!/^\d+$/.test(value)) {
        issues.push({ path: o.name, message: 'expected a whole number' });
        continue;
      }
    }
    setPath(input, o.path, v);
    fromEnv.set(o.path.join('.'), o.name);
  }

  const result = configSchema.safeParse(input);
  if (!result.success) {
    issues.push(...result.error.issues.map((i) => toIssue(i, fromEnv)));
  }
  issues.push(...duplicateNodeIds(input), ...routingProblems(input));
  if (!result.success || issues.length > 0) throw new ConfigError(issues);
  const cfg = result.data;

  const secret = (
    value: string | undefined,
    varName: string | undefined,
    path: string,
  ): string | undefined => {
    if (value !== undefined) return value;
    if (varName === undefined) return undefined;
    const v = env[varName];
    if (v === undefined || v === '') {
      issues.push({ path, message: `environment variable ${varName} is not set` });
      return undefined;
    }
    return v;
  };

  const nodes = cfg.nodes.map((n, i) => {
    const password =
      use === 'proxy' ? '' : (secret(n.esl.password, n.esl.passwordEnv, `nodes.${i}.esl.passwordEnv`) ?? '');
    return { ...n, esl: { host: n.esl.host, port: n.esl.port, password } };
  });
  const redisPassword = secret(cfg.redis.password, cfg.redis.passwordEnv, 'redis.passwordEnv');
  const drachtioSecret =
    use === 'monitor'
      ? ''
      : secret(cfg.proxy.drachtio.secret, cfg.proxy.drachtio.secretEnv, 'proxy.drachtio.secretEnv');
  if (issues.length > 0) throw new ConfigError(issues);

  const { passwordEnv: _pe, password: _p, ...redisRest } = cfg.redis;
  const m = cfg.monitor;
  const claimIntervalMs = m.claimIntervalMs ?? Math.max(100, Math.round(m.leaseTtlMs / 5));
  const pools = cfg.pools ?? [{ id: DEFAULT_POOL, nodes: cfg.nodes.map((n) => n.id) }];
  const routes = (cfg.routes ?? [{ pools: pools.map((p) => p.id), limits: [] }]).map((r, i) => ({
    ...r,
    id: r.id ?? `route-${i}`,
  }));
  const config: FslbConfig = {
    redis: redisPassword === undefined ? redisRest : { ...redisRest, password: redisPassword },
    prefix: cfg.prefix,
    nodes,
    pools,
    routes,
    limits: cfg.limits,
    monitor: {
      ...m,
      id: m.id ?? defaultInstanceId(),
      claimIntervalMs,
      livenessTtlMs: m.livenessTtlMs ?? m.leaseTtlMs + claimIntervalMs + m.probeIntervalMs + m.probeTimeoutMs,
    },
    proxy: {
      ...cfg.proxy,
      id: cfg.proxy.id ?? defaultInstanceId(),
      drachtio: {
        host: cfg.proxy.drachtio.host,
        port: cfg.proxy.drachtio.port,
        secret: drachtioSecret ?? 'cymru',
      },
    },
    log: cfg.log,
  };
  return deepFreeze(config);
}

function toIssue(i: z.core.$ZodIssue, fromEnv: ReadonlyMap<string, string>): ConfigIssue {
  const path = i.path.map(String).join('.');
  const envName = fromEnv.get(path);
  // Messages never quote the offending value: it may be a secret.
  let message = i.message;
  if (i.code === 'unrecognized_keys') message = `unknown key(s): ${i.keys.join(', ')}`;
  return { path: envName ? `${envName} (${path})` : path, message };
}

function setPath(obj: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let cur = obj;
  path.forEach((key, idx) => {
    if (idx === path.length - 1) {
      cur[key] = value;
      return;
    }
    const next = cur[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) cur[key] = {};
    cur = cur[key] as Record<string, unknown>;
  });
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
