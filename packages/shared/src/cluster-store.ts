import type { Redis } from 'ioredis';
import type { ClusterKeys } from './cluster-keys.js';
import { runScript } from './cluster-scripts.js';
import { decodeNodeRecord, type NodeRecord } from './node-record.js';

/** What the owner's fenced write did. */
export type WriteOutcome =
  | { kind: 'changed'; version: number }
  | { kind: 'unchanged' }
  /** The lease is not held with this token: another monitor owns the node now. */
  | { kind: 'fenced' }
  /** The node is no longer configured. */
  | { kind: 'removed' };

export interface NodeWrite {
  id: string;
  /** Lease token (the value redlock stored under fslb:lease:<id>). */
  token: string;
  owner: string;
  livenessTtlMs: number;
  /** Fields whose change bumps the version and publishes an event. */
  loud: Readonly<Record<string, string | number>>;
  /** Fields stored without an event (heartbeatAt). */
  quiet?: Readonly<Record<string, string | number>>;
}

export interface InvalidRecord {
  id: string;
  problems: string[];
}

/**
 * Typed access to the cluster state in Redis: every write goes through one Lua script, every
 * read decodes and validates. Shared by the monitor, the proxy and the CLI.
 */
export class ClusterStore {
  readonly redis: Redis;
  readonly keys: ClusterKeys;

  constructor(redis: Redis, keys: ClusterKeys) {
    this.redis = redis;
    this.keys = keys;
  }

  /** Adds a configured node or updates its configured fields; returns the version, 0 if unchanged. */
  async upsertNode(n: {
    id: string;
    sip: string;
    weight: number;
    cap?: number | undefined;
  }): Promise<number> {
    const k = this.keys;
    return Number(
      await runScript(
        this.redis,
        'upsert-node-3',
        [k.nodes, k.node(n.id), k.version],
        [n.id, k.events, n.sip, String(n.weight), String(n.cap ?? 0)],
      ),
    );
  }

  /** Removes a node that is no longer configured; returns the version, 0 if it was not there. */
  async removeNode(id: string): Promise<number> {
    const k = this.keys;
    return Number(
      await runScript(
        this.redis,
        'remove-node-5',
        [k.nodes, k.node(id), k.alive(id), k.lease(id), k.version],
        [id, k.events],
      ),
    );
  }

  /** The owning monitor's write, fenced by its lease token. */
  async writeNode(w: NodeWrite): Promise<WriteOutcome> {
    const k = this.keys;
    const loud = Object.entries(w.loud).flatMap(([f, v]) => [f, String(v)]);
    const quiet = Object.entries(w.quiet ?? {}).flatMap(([f, v]) => [f, String(v)]);
    const r = Number(
      await runScript(
        this.redis,
        'write-node-5',
        [k.node(w.id), k.lease(w.id), k.alive(w.id), k.nodes, k.version],
        [w.token, w.owner, w.livenessTtlMs, k.events, w.id, loud.length / 2, ...loud, ...quiet],
      ),
    );
    if (r === -1) return { kind: 'fenced' };
    if (r === -2) return { kind: 'removed' };
    return r === 0 ? { kind: 'unchanged' } : { kind: 'changed', version: r };
  }

  /**
   * Records that a monitor is alive for `ttlMs` (or, with `summary` null, that it left) and
   * returns how many monitors are alive.
   */
  async monitorPresence(monitorId: string, ttlMs: number, summary: object | null): Promise<number> {
    const k = this.keys;
    return Number(
      await runScript(
        this.redis,
        'monitor-presence-2',
        [k.monitors, k.monitor(monitorId)],
        [monitorId, ttlMs, summary === null ? '' : JSON.stringify(summary)],
      ),
    );
  }

  async nodeIds(): Promise<string[]> {
    return (await this.redis.smembers(this.keys.nodes)).sort();
  }

  /** Every node record, read in one round trip after the id list; unreadable ones reported apart. */
  async readNodes(): Promise<{ records: NodeRecord[]; invalid: InvalidRecord[] }> {
    const ids = await this.nodeIds();
    if (ids.length === 0) return { records: [], invalid: [] };
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hgetall(this.keys.node(id));
    const replies = (await pipe.exec()) ?? [];
    const records: NodeRecord[] = [];
    const invalid: InvalidRecord[] = [];
    ids.forEach((id, i) => {
      const [err, hash] = replies[i] ?? [new Error('no reply'), null];
      if (err) {
        invalid.push({ id, problems: [err.message] });
        return;
      }
      const d = decodeNodeRecord(hash as Record<string, string>);
      if (d.ok && d.value.id === id) records.push(d.value);
      else invalid.push({ id, problems: d.ok ? ['id field differs from key'] : d.problems });
    });
    return { records, invalid };
  }

  /** Owner named by each node's liveness key, or null where the key has expired. */
  async liveness(ids: readonly string[]): Promise<Map<string, string | null>> {
    if (ids.length === 0) return new Map();
    const values = await this.redis.mget(ids.map((id) => this.keys.alive(id)));
    return new Map(ids.map((id, i) => [id, values[i] ?? null]));
  }
}
