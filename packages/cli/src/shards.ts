import { nodeIdRe, type ClusterStore } from '@fslb/shared';

/** Shards the CLI's config file names, by the store it connected. */
const fromFile = new WeakMap<ClusterStore, readonly string[]>();

/**
 * Adds the pool shards a config file names to those `shardStores` finds in Redis: a cluster
 * whose monitors have not listed them yet (or whose list was damaged) is still read whole.
 */
export function knownShards(store: ClusterStore, names: readonly string[]): void {
  if (names.length > 0) fromFile.set(store, names);
}

/**
 * The stores of every shard the nodes may live in: on a Redis Cluster, the prefix's own and each
 * pool shard the monitors listed in `shards`; elsewhere the prefix's own alone.
 */
export async function shardStores(store: ClusterStore): Promise<ClusterStore[]> {
  const keys = store.keys;
  if (!keys.sharded) return [store];
  const listed = await store.redis.smembers(keys.shards).catch(() => [] as string[]);
  const names = new Set([...listed, ...(fromFile.get(store) ?? [])]);
  const out = [store];
  for (const name of [...names].sort()) {
    if (!nodeIdRe.test(name)) continue;
    const shard = store.shard(keys.shard(name));
    if (!out.includes(shard)) out.push(shard);
  }
  return out;
}

/** The store of the shard whose nodes set lists `id`; the prefix's own when none does. */
export async function storeOfNode(store: ClusterStore, id: string): Promise<ClusterStore> {
  const all = await shardStores(store);
  if (all.length === 1) return store;
  for (const s of all) if ((await s.redis.sismember(s.keys.nodes, id).catch(() => 0)) === 1) return s;
  return store;
}
