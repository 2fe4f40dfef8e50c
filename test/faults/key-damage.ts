/**
 * The scene of the damaged-keys fault tests (keys.int.test.ts): a real monitor and a real proxy
 * in this process over the test's own Redis, three simulated FreeSWITCH nodes (fs3 crashed, so
 * that it is known down throughout), a drachtio-server double in forward mode, a steady stream
 * of INVITEs through it, and one captured log for both components. `healthy()` says whether
 * Redis, the monitor and the proxy's view hold the whole cluster as they should.
 */
import type { TestContext } from 'node:test';
import type { Redis } from 'ioredis';
import {
  ClusterKeys,
  ClusterStore,
  decodeNodeRecord,
  parseConfig,
  type FslbConfig,
  type Logger,
} from '@fslb/shared';
import { Monitor } from '@fslb/monitor';
import { FslbProxy } from '@fslb/proxy';
import { FsCluster } from '@fslb/fs-sim';
import { DrachtioDouble, type InjectedRequest, type ProxyScript } from '../drachtio-double/index.js';
import { rawConfig } from '../monitor/support.js';
import { testProxy } from '../proxy/support.js';
import { captureLogger } from '../support/log-capture.js';
import { deletePrefix, testPrefix, type TestRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';

export const NODES = ['fs1', 'fs2', 'fs3'] as const;
/** The node crashed before the first case: known down, it must never get a call. */
export const DOWN = 'fs3';

/** One INVITE of the load, as the caller saw it. */
export interface SentCall {
  req: InjectedRequest;
  /** performance.now() when it was sent. */
  at: number;
}

export interface KeyScene {
  prefix: string;
  keys: ClusterKeys;
  store: ClusterStore;
  client: Redis;
  config: FslbConfig;
  sims: FsCluster;
  monitor: Monitor;
  proxy: FslbProxy;
  dx: DrachtioDouble;
  /** Every INVITE sent so far. */
  calls: SentCall[];
  /** The SIP URI of each node, as proxied to. */
  uri: Record<string, string>;
  /** The captured log of the monitor and the proxy, from the start. */
  logText(): string;
  /** Scripts for chosen calls (by Call-ID); every other call is forwarded for real. */
  scripts: Map<string, ProxyScript>;
  /** Unhandled rejections and uncaught exceptions seen since the scene started. */
  crashes: unknown[];
  /** Stops the load (also done when the test ends). */
  stopLoad(): void;
}

export interface SceneOptions {
  /** Sessions each simulated node takes (Max-Sessions). */
  maxSessions: number;
  /** How long each call lasts before the node hangs up. */
  holdMs: number;
  /** One INVITE every this many ms. */
  loadEveryMs: number;
  /** Merged into the monitor section after the fast timings of test/monitor/support.ts. */
  monitor?: Record<string, unknown>;
}

export async function keyScene(
  t: TestContext,
  r: { server: TestRedis; client: Redis },
  o: SceneOptions,
): Promise<KeyScene> {
  const crashes: unknown[] = [];
  const onCrash = (err: unknown): void => void crashes.push(err);
  process.on('unhandledRejection', onCrash);
  process.on('uncaughtException', onCrash);
  t.after(() => {
    process.off('unhandledRejection', onCrash);
    process.off('uncaughtException', onCrash);
  });

  const prefix = testPrefix('keys');
  const keys = new ClusterKeys(prefix);
  const sims = await FsCluster.start({
    count: NODES.length,
    heartbeatMs: 500,
    holdMs: o.holdMs,
    maxSessions: o.maxSessions,
  });
  t.after(async () => {
    await sims.close();
    await deletePrefix(r.client, prefix);
  });
  const { log, text } = captureLogger('info');
  const dx = await DrachtioDouble.start();
  t.after(() => dx.close());
  const raw = rawConfig({ redisUrl: r.server.url, prefix, nodes: sims.nodes, monitor: o.monitor });
  const config = parseConfig(
    {
      ...raw,
      monitor: { ...(raw.monitor as object), id: 'mon-a' },
      proxy: {
        ...testProxy,
        id: 'px-a',
        drachtio: { host: '127.0.0.1', port: dx.port, secret: 'cymru' },
        rateLimit: { perSourcePerSec: 10_000, burst: 10_000 },
        // Each call takes its own slot and call key, which the call-key cases damage; advance
        // slots' own repairs are tested with their script (packages/shared reservations tests).
        advanceSlots: 0,
      },
      // The checks read every call's outcome line, connected ones included.
      log: { calls: 'all' },
    },
    {},
  );
  const monitor = new Monitor({ config, log: child(log, 'monitor'), http: false });
  t.after(() => monitor.close());
  await monitor.start();
  const proxy = new FslbProxy({ config, log: child(log, 'proxy'), http: false });
  t.after(() => proxy.close());
  await proxy.start();
  await dx.routed(['invite', 'options']);

  const scripts = new Map<string, ProxyScript>();
  dx.onProxy((cmd) => scripts.get(cmd.request.callId) ?? { kind: 'forward' });
  const uri: Record<string, string> = {};
  NODES.forEach((id, i) => (uri[id] = `sip:127.0.0.1:${sims.nodes[i]!.sipPort}`));

  // fs3 crashes: from here on it is known down, and no call may be routed to it.
  await waitFor('every node eligible', () => NODES.every((id) => proxy.view.get(id)?.eligible), {
    timeoutMs: 10_000,
  });
  await sims.nodes[NODES.indexOf(DOWN)]!.crash();
  await waitFor('fs3 down in the view', () => proxy.view.get(DOWN)?.eligible === false, {
    timeoutMs: 5000,
  });

  const calls: SentCall[] = [];
  const timer = setInterval(() => {
    const req = dx.inject({ method: 'INVITE', sdp: true });
    // The outcome is read off the handle; a call left without an answer is counted as such.
    req.final().catch(() => undefined);
    calls.push({ req, at: performance.now() });
  }, o.loadEveryMs);
  const stopLoad = (): void => clearInterval(timer);
  t.after(stopLoad);

  return {
    prefix,
    keys,
    store: new ClusterStore(r.client, keys),
    client: r.client,
    config,
    sims,
    monitor,
    proxy,
    dx,
    calls,
    uri,
    logText: text,
    scripts,
    crashes,
    stopLoad,
  };
}

function child(log: Logger, component: string): Logger {
  return log.child({ scene: component });
}

/** What a node should look like when the cluster is whole. */
export interface Expected {
  /** Nodes drained by the operator (admin=drain), up but not eligible. */
  drained?: readonly string[];
}

/**
 * The cluster is whole: Redis holds every key as the schema says (types, expiries, readable
 * values), the monitor owns every node and runs its claim rounds, and the proxy's view is live
 * with fs1 and fs2 eligible and fs3 not. Returns the problems found (empty when whole).
 */
export async function problems(s: KeyScene, e: Expected = {}): Promise<string[]> {
  const k = s.keys;
  const c = s.client;
  const out: string[] = [];
  const drained = new Set(e.drained ?? []);
  const [nowSec] = await c.time();
  const now = Number(nowSec) * 1000;
  const types = await Promise.all(
    [
      k.nodes,
      k.version,
      k.monitors,
      k.proxies,
      k.monitor(s.monitor.id),
      k.proxy(s.proxy.id),
      ...NODES.flatMap((id) => [k.node(id), k.alive(id), k.lease(id), k.resv(id)]),
    ].map(async (key) => [key, await c.type(key)] as const),
  );
  const want: Record<string, string> = {
    [k.nodes]: 'set',
    [k.version]: 'string',
    [k.monitors]: 'zset',
    [k.proxies]: 'zset',
    [k.monitor(s.monitor.id)]: 'string',
    [k.proxy(s.proxy.id)]: 'string',
  };
  for (const id of NODES) {
    want[k.node(id)] = 'hash';
    want[k.alive(id)] = 'string';
    want[k.lease(id)] = 'string';
  }
  for (const [key, type] of types) {
    if (key.startsWith(k.resv(''))) {
      if (type !== 'zset' && type !== 'none') out.push(`${key} is a ${type}`);
    } else if (want[key] !== type) out.push(`${key} is a ${type}, not a ${want[key]}`);
  }
  if (out.length > 0) return out;

  const members = (await c.smembers(k.nodes)).sort();
  if (members.join() !== NODES.join()) out.push(`nodes set holds ${JSON.stringify(members)}`);
  let maxVersion = 0;
  for (const id of NODES) {
    const d = decodeNodeRecord(await c.hgetall(k.node(id)));
    if (!d.ok) {
      out.push(`${id} record unreadable: ${d.problems.join('; ')}`);
      continue;
    }
    const rec = d.value;
    maxVersion = Math.max(maxVersion, rec.version);
    const state = id === DOWN ? 'down' : 'up';
    if (rec.state !== state) out.push(`${id} is ${rec.state}, not ${state}`);
    if (rec.owner !== s.monitor.id) out.push(`${id} owned by ${JSON.stringify(rec.owner)}`);
    const admin = drained.has(id) ? 'drain' : '';
    if (rec.admin !== admin) out.push(`${id} admin is ${JSON.stringify(rec.admin)}`);
    const m = s.config.monitor;
    for (const [key, max] of [
      [k.alive(id), m.livenessTtlMs],
      [k.lease(id), m.leaseTtlMs],
    ] as const) {
      const ttl = await c.pttl(key);
      if (ttl <= 0 || ttl > max) out.push(`${key} has PTTL ${ttl}`);
    }
    const far = await c.zcount(k.resv(id), `(${now + 60_000}`, '+inf');
    if (far > 0) out.push(`${k.resv(id)} holds ${far} reservations lapsing past a minute`);
  }
  const version = (await c.get(k.version)) ?? '';
  if (!/^\d+$/.test(version) || Number(version) < maxVersion)
    out.push(`version counter ${JSON.stringify(version)} below node version ${maxVersion}`);
  for (const [zset, id, key] of [
    [k.monitors, s.monitor.id, k.monitor(s.monitor.id)],
    [k.proxies, s.proxy.id, k.proxy(s.proxy.id)],
  ] as const) {
    const flat = await c.zrange(zset, 0, -1, 'WITHSCORES');
    const ids = flat.filter((_, i) => i % 2 === 0);
    const scores = flat.filter((_, i) => i % 2 === 1).map(Number);
    if (ids.join() !== id) out.push(`${zset} holds ${JSON.stringify(ids)}`);
    if (scores.some((x) => !(x > now && x < now + 60_000))) out.push(`${zset} scores ${scores.join()}`);
    try {
      const v: unknown = JSON.parse((await c.get(key)) ?? '');
      if (typeof v !== 'object' || v === null) throw new Error('not an object');
    } catch {
      out.push(`${key} unreadable`);
    }
  }

  const owned = s.monitor.ownedNodes;
  if (owned.join() !== NODES.join()) out.push(`monitor owns ${owned.join()}`);
  if (!s.monitor.ready().ready) out.push('monitor not ready');
  if (s.proxy.source !== 'live') out.push(`proxy view ${s.proxy.source}`);
  for (const id of NODES) {
    const n = s.proxy.view.get(id);
    const eligible = id !== DOWN && !drained.has(id);
    if (n?.eligible !== eligible) out.push(`${id} ${eligible ? 'not ' : ''}eligible in the view`);
    else if (n.eligible && n.sessions + n.reservations >= n.maxSessions)
      out.push(`${id} full in the view (${n.sessions} + ${n.reservations} of ${n.maxSessions})`);
  }
  return out;
}

/** Waits until `problems()` finds none; resolves with the ms it took, or fails listing them. */
export async function untilWhole(s: KeyScene, timeoutMs: number, e: Expected = {}): Promise<number> {
  const started = performance.now();
  await waitFor('the cluster whole again', async () => (await problems(s, e)).length === 0, {
    timeoutMs,
    intervalMs: 20,
  }).catch(async (err: unknown) => {
    throw new Error(`${String(err)}; still: ${(await problems(s, e)).join('; ')}`);
  });
  return Math.round(performance.now() - started);
}

/** How the INVITEs sent since `from` (an index into `calls`) ended. */
export function tally(s: KeyScene, from: number, to = s.calls.length) {
  const sent = s.calls.slice(from, to);
  let connected = 0;
  let noCapacity = 0;
  let other = 0;
  let pending = 0;
  const toDown: string[] = [];
  for (const { req } of sent) {
    const status = req.finalResponse?.status;
    if (status === undefined) pending++;
    else if (status === 200) connected++;
    else if (status === 503) noCapacity++;
    else other++;
    const dest = req.proxyCommands[0]?.destinations ?? [];
    if (dest.includes(s.uri[DOWN] ?? '')) toDown.push(req.callId);
  }
  return { sent: sent.length, connected, noCapacity, other, pending, toDown };
}
