import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/**
 * The Lua scripts of fslb (packages/shared/lua/<name>-<numKeys>.lua), registered on a client
 * with ioredis `defineCommand` (EVALSHA, falling back to EVAL after a restart or failover).
 * Each script's header lists its KEYS, ARGV and return values. `ClusterStore` is the only caller.
 */
const scriptFiles = ['upsert-node-3', 'remove-node-5', 'write-node-5', 'monitor-presence-2'] as const;
export type ScriptName = (typeof scriptFiles)[number];

const luaDir = new URL('../lua/', import.meta.url);
const sources = new Map<ScriptName, { lua: string; numberOfKeys: number }>(
  scriptFiles.map((f) => [
    f,
    { lua: readFileSync(new URL(`${f}.lua`, luaDir), 'utf8'), numberOfKeys: Number(/-(\d+)$/.exec(f)?.[1]) },
  ]),
);

const registered = new WeakSet<Redis>();

type ScriptFn = (...args: (string | number)[]) => Promise<unknown>;

function commandName(name: ScriptName): string {
  return `fslb_${name.replace(/-\d+$/, '').replace(/-/g, '_')}`;
}

/** Runs one of the scripts, registering them all on the client the first time. */
export function runScript(
  client: Redis,
  name: ScriptName,
  keys: readonly string[],
  argv: readonly (string | number)[],
): Promise<unknown> {
  if (!registered.has(client)) {
    for (const [n, s] of sources) client.defineCommand(commandName(n), s);
    registered.add(client);
  }
  const src = sources.get(name);
  if (!src || keys.length !== src.numberOfKeys) {
    throw new TypeError(`script ${name} takes ${src?.numberOfKeys ?? '?'} keys, got ${keys.length}`);
  }
  const fn = (client as unknown as Record<string, ScriptFn>)[commandName(name)];
  if (!fn) throw new TypeError(`script ${name} is not registered`);
  return fn.call(client, ...keys, ...argv);
}
