import { readFileSync } from 'node:fs';
import type { Redis } from './redis-connection.js';

/**
 * The Lua scripts of fslb (packages/shared/lua/<name>-<numKeys>.lua, or <name>.lua for a script
 * that takes a variable number of keys), registered on a client with ioredis `defineCommand`
 * (EVALSHA, falling back to EVAL after a restart or failover). Each script's header lists its
 * KEYS, ARGV and return values. `ClusterStore` is the only caller.
 */
const scriptFiles = [
  'upsert-node-3',
  'remove-node-6',
  'write-node-6',
  'presence-2',
  'reserve-call',
  'release-call',
  'advance-slots',
  'read-view',
  'set-admin-3',
  'read-leases',
  'live-calls-2',
] as const;
export type ScriptName = (typeof scriptFiles)[number];

const luaDir = new URL('../lua/', import.meta.url);
const sources = new Map<ScriptName, { lua: string; numberOfKeys: number | undefined }>(
  scriptFiles.map((f) => {
    const fixed = /-(\d+)$/.exec(f)?.[1];
    return [
      f,
      {
        lua: readFileSync(new URL(`${f}.lua`, luaDir), 'utf8'),
        numberOfKeys: fixed === undefined ? undefined : Number(fixed),
      },
    ];
  }),
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
  if (!src || (src.numberOfKeys !== undefined && keys.length !== src.numberOfKeys)) {
    throw new TypeError(`script ${name} takes ${src?.numberOfKeys ?? '?'} keys, got ${keys.length}`);
  }
  const fn = (client as unknown as Record<string, ScriptFn>)[commandName(name)];
  if (!fn) throw new TypeError(`script ${name} is not registered`);
  // A script with a variable number of keys takes that number first (ioredis' convention).
  return src.numberOfKeys === undefined
    ? fn.call(client, keys.length, ...keys, ...argv)
    : fn.call(client, ...keys, ...argv);
}
