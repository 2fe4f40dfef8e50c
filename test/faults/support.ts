import { waitFor } from '../support/wait.js';
import type { FaultRig } from './rig.js';

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
