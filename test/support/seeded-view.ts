import type { TestContext } from 'node:test';
import type { Redis } from 'ioredis';
import { ClusterKeys, ClusterStore } from '@fslb/shared';
import { ClusterView } from '@fslb/proxy';
import { deletePrefix, testPrefix } from './redis.js';
import { seedNodes, type SeedNode } from './seed-nodes.js';

/**
 * Seeded nodes under a prefix of the test's own (deleted after it), and a proxy's view loaded
 * from them.
 */
export async function seededView(
  t: TestContext,
  redis: Redis,
  nodes: Readonly<Record<string, SeedNode>>,
  firstPort = 5070,
): Promise<{ keys: ClusterKeys; store: ClusterStore; view: ClusterView }> {
  const prefix = testPrefix();
  t.after(() => deletePrefix(redis, prefix));
  const keys = new ClusterKeys(prefix);
  const store = new ClusterStore(redis, keys);
  await seedNodes(store, nodes, firstPort);
  const view = new ClusterView();
  view.applySnapshot(await store.readView(), performance.now());
  return { keys, store, view };
}
