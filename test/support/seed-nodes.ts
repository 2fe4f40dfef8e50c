import type { ClusterStore } from '@fslb/shared';

/** How a seeded node stands: its sessions, capacity, state (up) and admin flag (none). */
export interface SeedNode {
  sessions?: number;
  max: number;
  state?: string;
  admin?: string;
}

/**
 * Nodes as their owning monitors would have written them, for tests of the scripts and of the
 * proxy's accounting against a real Redis: configured (SIP address 127.0.0.1:<firstPort + i>),
 * leased with the token `tok-<id>` for 30 s, written by a monitor `mon`, watched (liveness key).
 */
export async function seedNodes(
  store: ClusterStore,
  nodes: Readonly<Record<string, SeedNode>>,
  firstPort = 5000,
): Promise<void> {
  const ids = Object.keys(nodes);
  for (const [i, id] of ids.entries()) {
    const n = nodes[id] as SeedNode;
    await store.upsertNode({ id, sip: `127.0.0.1:${firstPort + i}`, weight: 1 });
    await store.redis.set(store.keys.lease(id), `tok-${id}`, 'PX', 30_000);
    await store.writeNode({
      id,
      token: `tok-${id}`,
      owner: 'mon',
      livenessTtlMs: 30_000,
      loud: { state: n.state ?? 'up', sessions: n.sessions ?? 0, maxSessions: n.max },
    });
    if (n.admin) await store.redis.hset(store.keys.node(id), 'admin', n.admin);
  }
}
