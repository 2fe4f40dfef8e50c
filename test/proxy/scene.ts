import type { TestContext } from 'node:test';
import type { Redis } from 'ioredis';
import { callIdentity, ClusterKeys, type FslbConfig, type Logger } from '@fslb/shared';
import type { FslbProxy } from '@fslb/proxy';
import { FsCluster, type FsNodeOptions } from '@fslb/fs-sim';
import type { Monitor } from '@fslb/monitor';
import { DrachtioDouble, tagOf, type DrachtioDoubleOptions } from '../drachtio-double/index.js';
import { config, startMonitor, waitForNode } from '../monitor/support.js';
import { deletePrefix, testPrefix, type TestRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { proxyConfig, startProxy } from './support.js';

export interface SceneOptions {
  count: number;
  sim?: Omit<FsNodeOptions, 'hostname' | 'coreUuid'>;
  /** Extra per-node config (sip, weight, maxSessions...). */
  nodeExtra?: (index: number) => Record<string, unknown>;
  proxy?: Record<string, unknown>;
  /** Selection's random source: a constant makes ties deterministic. */
  random?: () => number;
  log?: Logger;
  /** The drachtio-server double's options (the hostports it announces, ...). */
  drachtio?: DrachtioDoubleOptions;
}

export interface Scene {
  prefix: string;
  keys: ClusterKeys;
  sims: FsCluster;
  monitor: Monitor;
  dx: DrachtioDouble;
  proxy: FslbProxy;
  config: FslbConfig;
}

/**
 * Redis, simulated FreeSWITCH nodes watched by a real monitor, a drachtio-server double, and one
 * fslb proxy (in this process) connected to it; all closed when the test ends.
 */
export async function proxyScene(
  t: TestContext,
  r: { server: TestRedis; client: Redis },
  o: SceneOptions,
): Promise<Scene> {
  const prefix = testPrefix('px');
  const keys = new ClusterKeys(prefix);
  const sims = await FsCluster.start({ count: o.count, heartbeatMs: 500, ...o.sim });
  t.after(async () => {
    await sims.close();
    await deletePrefix(r.client, prefix);
  });
  const base = {
    redisUrl: r.server.url,
    prefix,
    nodes: sims.nodes,
    ...(o.nodeExtra ? { nodeExtra: (_n: unknown, i: number) => o.nodeExtra?.(i) ?? {} } : {}),
  };
  const monitor = await startMonitor(config(base));
  t.after(() => monitor.close());
  for (let i = 0; i < o.count; i++) {
    await waitForNode(
      r.client,
      keys,
      `fs${i + 1}`,
      (h) => h.state === 'up' && Number(h.maxSessions) > 0,
      'up',
    );
  }
  const dx = await DrachtioDouble.start(o.drachtio);
  t.after(() => dx.close());
  const cfg = proxyConfig({
    ...base,
    drachtioPort: dx.port,
    // These scenes look at each call's own slot in Redis (`<Call-ID>;<From tag>`), which a call
    // takes when no advance slot is held: advance slots are off here unless a test turns them on
    // (test/proxy/advance.int.test.ts).
    proxy: { rateLimit: { perSourcePerSec: 10_000, burst: 10_000 }, advanceSlots: 0, ...o.proxy },
    // A scene given a logger is read for its outcome lines, connected calls' included.
    ...(o.log ? { log: { calls: 'all' } } : {}),
  });
  const proxy = await startProxy(cfg, o.random, o.log);
  t.after(() => proxy.close());
  await dx.routed(['invite', 'options']);
  await waitFor(
    'proxy sees every node eligible',
    () => proxy.view.nodes.filter((n) => n.eligible).length === o.count,
  );
  return { prefix, keys, sims, monitor, dx, proxy, config: cfg };
}

/** Waits until the proxy's view of a node satisfies `pred`. */
export function viewOf(
  s: Scene,
  id: string,
  pred: (n: { sessions: number; reservations: number; eligible: boolean }) => boolean,
  what: string,
) {
  return waitFor(`${id} in the view: ${what}`, () => {
    const n = s.proxy.view.get(id);
    return n !== undefined && pred(n);
  });
}

/** The name fslb gives an injected INVITE in Redis: its Call-ID and From tag (`callIdentity`). */
export function callOf(req: { message: { callId: string; get(name: string): string | undefined } }): string {
  return callIdentity(req.message.callId, tagOf(req.message.get('From')));
}
