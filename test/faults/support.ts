import type { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { rigClient, type FaultRig } from './rig.js';

/**
 * For a fault `describe`: its own Redis server and a client that retries quickly through
 * faults, started before the tests and closed after. Call the result inside a test.
 */
export function useFaultRedis(hooks: {
  before: (fn: () => Promise<void>) => void;
  after: (fn: () => Promise<void>) => void;
}): () => { server: TestRedis; url: string; client: Redis } {
  let server: TestRedis | undefined;
  let client: Redis | undefined;
  hooks.before(async () => {
    server = await startRedis();
    client = rigClient(server.url);
  });
  hooks.after(async () => {
    client?.disconnect();
    await server?.close();
  });
  return () => {
    if (!server || !client) throw new Error('no Redis: call inside a test');
    return { server, url: server.url, client };
  };
}

/**
 * Resolves when Redis holds the whole cluster again, as proxies need it: every configured node
 * in the nodes set, its record up with an owner, its liveness key present, and the version
 * counter there. Throws after `timeoutMs`.
 */
export async function clusterHealthy(
  rig: FaultRig,
  o: { timeoutMs: number; except?: string[] },
): Promise<void> {
  const c = rig.client;
  const k = rig.keys;
  const ids = rig.nodes.map((n) => n.id).filter((id) => !o.except?.includes(id));
  await waitFor(
    'the cluster state complete in Redis',
    async () => {
      const [members, version, ...rest] = await Promise.all([
        c.smembers(k.nodes),
        c.get(k.version),
        ...ids.map((id) => c.hmget(k.node(id), 'state', 'owner')),
        ...ids.map((id) => c.exists(k.alive(id))),
      ]);
      if (version === null || ids.some((id) => !members.includes(id))) return false;
      const recs = rest.slice(0, ids.length) as (string | null)[][];
      const alive = rest.slice(ids.length) as number[];
      return recs.every((h) => h[0] === 'up' && (h[1] ?? '') !== '') && alive.every((a) => a === 1);
    },
    { timeoutMs: o.timeoutMs, intervalMs: 20 },
  );
}

/** Prints what a fault test counted, one `#` line, so that the test log carries the figures. */
export function report(what: string, figures: Record<string, unknown>): void {
  process.stdout.write(`# ${what}: ${JSON.stringify(figures)}\n`);
}
