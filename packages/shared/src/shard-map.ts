import type { ClusterKeys } from './cluster-keys.js';

/**
 * Where each node's state lives: the keys of its pool's shard (`pools[].shard`). On a single
 * Redis or Sentinel, or without shards, every node's keys are the prefix's own and `all` has one
 * entry. Built once per configuration; monitors, proxies and the CLI agree because they read the
 * same file.
 */
export class ShardMap {
  /** Every distinct set of keys the configured nodes live in, the prefix's own first when used. */
  readonly all: readonly ClusterKeys[];
  readonly base: ClusterKeys;
  /** The shard names the pools give (none on a single Redis: shards apply to a cluster only). */
  readonly names: readonly string[];
  readonly #byNode = new Map<string, ClusterKeys>();

  constructor(base: ClusterKeys, pools: readonly { nodes: readonly string[]; shard?: string | undefined }[]) {
    this.base = base;
    const all = new Map<string, ClusterKeys>();
    for (const p of pools) {
      const keys = base.shard(p.shard ?? '');
      all.set(keys.prefix, keys);
      for (const n of p.nodes) this.#byNode.set(n, keys);
    }
    if (all.size === 0) all.set(base.prefix, base);
    const names = new Set<string>();
    if (base.sharded) for (const p of pools) if (p.shard) names.add(p.shard);
    this.names = [...names].sort();
    this.all = [...all.values()].sort((a, b) =>
      a === base ? -1 : b === base ? 1 : a.prefix < b.prefix ? -1 : 1,
    );
  }

  /** The keys a node lives in (the prefix's own for a node no pool names). */
  of(nodeId: string): ClusterKeys {
    return this.#byNode.get(nodeId) ?? this.base;
  }

  /** Whether the configured nodes live in more than one shard. */
  get split(): boolean {
    return this.all.length > 1;
  }

  /**
   * Whether a reloaded file's map can replace this one in a running process: the same shards,
   * and every node both know in the same one. (Adding a shard or moving a node takes a restart
   * of every process, so that none reads where the others no longer write.)
   */
  compatible(next: ShardMap): boolean {
    const prefixes = (m: ShardMap): string => m.all.map((k) => k.prefix).join(' ');
    if (prefixes(next) !== prefixes(this)) return false;
    for (const [id, keys] of this.#byNode) {
      const now = next.#byNode.get(id);
      if (now && now.prefix !== keys.prefix) return false;
    }
    return true;
  }
}
