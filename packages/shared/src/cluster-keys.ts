/**
 * The Redis key schema of fslb: the only module that spells a key. Every other module asks a
 * `ClusterKeys` for the names it needs. With the default prefix `fslb`:
 *
 * | key                  | type     | TTL                      | writer                          | readers             |
 * |----------------------|----------|--------------------------|---------------------------------|---------------------|
 * | fslb:nodes           | SET      | none                     | monitor (config sync)           | proxy, cli, monitor |
 * | fslb:node:<id>       | HASH     | none                     | owning monitor (fenced); cli    | proxy, cli          |
 * |                      |          |                          | writes only the `admin` field   |                     |
 * | fslb:alive:<id>      | STRING   | monitor.livenessTtlMs    | owning monitor, every probe     | proxy, cli          |
 * | fslb:lease:<id>      | STRING   | monitor.leaseTtlMs       | monitor, through redlock        | monitor, cli        |
 * | fslb:monitors        | ZSET     | none; members scored by  | every monitor                   | monitor, cli        |
 * |                      |          | expiry (epoch ms)        |                                 |                     |
 * | fslb:monitor:<id>    | STRING   | 3 x monitor presence     | that monitor                    | cli                 |
 * |                      | (JSON)   | interval                 |                                 |                     |
 * | fslb:version         | STRING   | none                     | every script that changes a     | proxy, cli          |
 * |                      | (counter)|                          | node (INCR)                     |                     |
 * | fslb:resv:<id>       | ZSET     | none; members (calls:    | proxy (reserve, release);       | proxy, cli          |
 * |                      |          | <Call-ID>;<From tag>)    | owning monitor (settles)        |                     |
 * |                      |          | scored by expiry (ms)    |                                 |                     |
 * | fslb:call:<id>       | STRING   | longest reservation of   | proxy (reserve, release);       | proxy, monitor, cli |
 * |                      |          | the call                 | owning monitor (settles)        |                     |
 * | fslb:limit:<id>      | ZSET     | none; members (calls)    | proxy (reserve, release);       | proxy, cli          |
 * |                      |          | scored by the expiry of  | owning monitor (live calls,     |                     |
 * |                      |          | their reservation (ms),  | reconcile)                      |                     |
 * |                      |          | `inf` once live          |                                 |                     |
 * | fslb:rate:<id>       | ZSET     | 2 s; members (calls)     | proxy (reserve)                 | proxy, cli          |
 * |                      |          | scored by admission (ms) |                                 |                     |
 * | fslb:live:<id>       | HASH     | none; call -> entries    | owning monitor (live calls,     | monitor, cli        |
 * |                      |          |                          | reconcile)                      |                     |
 * | fslb:proxies         | ZSET     | none; members scored by  | every proxy                     | cli                 |
 * |                      |          | expiry (epoch ms)        |                                 |                     |
 * | fslb:proxy:<id>      | STRING   | 3 x proxy presence       | that proxy                      | cli                 |
 * |                      | (JSON)   | interval                 |                                 |                     |
 * | fslb:events          | channel  | (pub/sub)                | monitor, cli, proxy (load)      | proxy               |
 * | fslb:monitor-events  | channel  | (pub/sub)                | monitor (leases released)       | monitor             |
 * | fslb:shards          | SET      | none; Redis Cluster only | monitor (config sync)           | cli                 |
 *
 * `fslb:node:<id>` fields: id, sip, state (up|down|draining|unknown), reason, sessions,
 * maxSessions, idleCpu, cps, weight, admin (drain or empty), owner, heartbeatAt, updatedAt,
 * version, plus `cap` (the configured session cap); see `node-record.ts`.
 *
 * Reservations: a proxy reserves a slot on each node it hands a call to before proxying it.
 * `fslb:resv:<id>` holds one member per reserved call, scored by the epoch ms at which the
 * reservation lapses. A call is named `<Call-ID>;<From tag>` (see `call-identity.ts`), so that
 * INVITEs sharing a Call-ID hold slots of their own. `fslb:call:<id>` (the id is the call's name) lists the
 * node ids the call holds slots on (space-separated), so that whoever ends the call's reservations (the owning monitor when
 * FreeSWITCH counts the call, the proxy when it fails) ends all of them. A node's load is
 * `sessions` + the unexpired members of its reservation set. `version` comes from
 * the one `fslb:version` counter, so versions rise across the whole cluster, and a node that is
 * removed and added again never goes back to an old version.
 *
 * Limits: `<entry>` is `<limit id>:<key value>` (see `limit-entry.ts`). `fslb:limit:<entry>`
 * holds every call counted against that counter: while in setup scored by when its reservation
 * lapses, once FreeSWITCH created its channel scored `inf` until the channel is destroyed.
 * `fslb:live:<id>` lists the live calls on one node that count against limits, with their
 * entries, so that the node's owner can end them when FreeSWITCH says so or when the node goes
 * down, and reconcile them with FreeSWITCH's channel list. `fslb:rate:<entry>` holds the calls
 * admitted in the last second, for `maxCps`.
 *
 * Any prefix works. On a Redis Cluster (`sharded`), a prefix without a hash tag gets one
 * (`fslb` becomes `{fslb}`), so that every multi-key script touches one slot, and the events
 * channels are sharded channels (SPUBLISH/SSUBSCRIBE) served by the shard that holds the keys.
 *
 * Pool shards: on a Redis Cluster, the nodes of a pool with `shard: pstn` keep every key above
 * that is about them, their calls or their limits (nodes, node, alive, lease, version, resv,
 * call, limit, rate, live, events) under `{fslb:pstn}` instead of `{fslb}`: a slot of their own,
 * which the cluster may serve from another master. Presence (monitors, monitor, proxies, proxy),
 * the monitors' channel and `shards` stay under `{fslb}`. See `shard` and `ShardMap`.
 */
export class ClusterKeys {
  readonly prefix: string;
  /** Keys live on a Redis Cluster: hash-tagged, events on sharded channels. */
  readonly sharded: boolean;

  /** @param opts.shard a pool shard's keys (see `shard`); only with `sharded`. */
  constructor(prefix = 'fslb', opts: { sharded?: boolean; shard?: string } = {}) {
    if (!isValidPrefix(prefix)) {
      throw new TypeError(
        `invalid key prefix ${JSON.stringify(prefix)}: 1-64 printable characters, no spaces`,
      );
    }
    this.sharded = opts.sharded ?? false;
    if (this.sharded && opts.shard) {
      this.prefix = `{${prefix}:${opts.shard}}`;
      this.#base = this.prefix;
      return;
    }
    this.prefix = this.sharded ? hashTagged(prefix) : prefix;
    // A prefix the cluster tagged for us (`fslb` as `{fslb}`) can give each shard a tag of its own.
    this.#base = this.prefix === `{${prefix}}` ? prefix : this.prefix;
  }

  /** The configured prefix when the cluster's hash tag was added to it, else the prefix. */
  readonly #base: string;
  readonly #shards = new Map<string, ClusterKeys>();

  /**
   * The keys of one shard of pools (a pool's `shard`): on a Redis Cluster they live under a hash
   * tag of their own, `{fslb:<shard>}`, so that each shard's state can sit on its own master.
   * The shard '' is this prefix itself, and so is every shard on a single Redis or Sentinel, or
   * when the configured prefix already carries a hash tag (everything then shares it).
   * Monitors' and proxies' presence and the monitors' channel are not a shard's: they stay here.
   */
  shard(shard: string): ClusterKeys {
    if (shard === '' || !this.sharded || this.#base === this.prefix) return this;
    let keys = this.#shards.get(shard);
    if (!keys) {
      keys = new ClusterKeys(this.#base, { sharded: true, shard });
      this.#shards.set(shard, keys);
    }
    return keys;
  }

  /** The keys of `prefix` where `redis` (a config's `redis` section) keeps them. */
  static forRedis(prefix: string, redis: { cluster?: readonly unknown[] | undefined }): ClusterKeys {
    return new ClusterKeys(prefix, { sharded: redis.cluster !== undefined });
  }

  /**
   * The events channel as the scripts take it: the publish command, a space, the channel
   * (`PUBLISH fslb:events`, or `SPUBLISH {fslb}:events` on a Redis Cluster).
   */
  get eventsPublish(): string {
    return `${this.sharded ? 'SPUBLISH' : 'PUBLISH'} ${this.events}`;
  }

  /** SET of the ids of every configured node. */
  get nodes(): string {
    return `${this.prefix}:nodes`;
  }

  /** HASH: one node's record. */
  node(id: string): string {
    return `${this.prefix}:node:${id}`;
  }

  /** STRING with a TTL: present while the node's owning monitor is watching it. */
  alive(id: string): string {
    return `${this.prefix}:alive:${id}`;
  }

  /** STRING with a TTL: the redlock lease that makes one monitor the node's owner. */
  lease(id: string): string {
    return `${this.prefix}:lease:${id}`;
  }

  /** ZSET of live monitors, scored by the epoch ms at which each one's presence expires. */
  get monitors(): string {
    return `${this.prefix}:monitors`;
  }

  /** STRING (JSON) with a TTL: one monitor's presence and what it owns, for operators. */
  monitor(id: string): string {
    return `${this.prefix}:monitor:${id}`;
  }

  /** STRING counter: the last version handed out to any node change. */
  get version(): string {
    return `${this.prefix}:version`;
  }

  /** ZSET: calls holding a slot on the node, scored by the epoch ms their reservation lapses. */
  resv(id: string): string {
    return `${this.prefix}:resv:${id}`;
  }

  /** STRING with a TTL: the node ids (space-separated) a call (`callIdentity`) holds reservations on. */
  call(call: string): string {
    return `${this.prefix}:call:${call}`;
  }

  /** ZSET: calls counted against one limit counter (`<limit id>:<key value>`). */
  limit(entry: string): string {
    return `${this.prefix}:limit:${entry}`;
  }

  /** ZSET with a TTL: calls admitted on one limit counter in the last second. */
  rate(entry: string): string {
    return `${this.prefix}:rate:${entry}`;
  }

  /** HASH: live calls on a node that count against limits, each with its entries. */
  live(id: string): string {
    return `${this.prefix}:live:${id}`;
  }

  /**
   * SET of the pool shards (`pools[].shard`) the monitors' configuration names, on a Redis
   * Cluster: where the CLI finds every node without reading the configuration file.
   */
  get shards(): string {
    return `${this.prefix}:shards`;
  }

  /** ZSET of live proxies, scored by the epoch ms at which each one's presence expires. */
  get proxies(): string {
    return `${this.prefix}:proxies`;
  }

  /** STRING (JSON) with a TTL: one proxy's presence (host, version, start time, view age). */
  proxy(id: string): string {
    return `${this.prefix}:proxy:${id}`;
  }

  /** Pub/sub channel of versioned change messages (see `cluster-event.ts`). */
  get events(): string {
    return `${this.prefix}:events`;
  }

  /** Pub/sub channel where a monitor says it released leases, so that others claim at once. */
  get monitorEvents(): string {
    return `${this.prefix}:monitor-events`;
  }

  /** Glob that matches every key of this prefix, for SCAN (tests, cleanup tools). */
  get pattern(): string {
    return `${globEscape(this.prefix)}:*`;
  }
}

const prefixRe = /^[\x21-\x7e]{1,64}$/;

/**
 * The prefix with a Redis Cluster hash tag: itself when it already has one (`{fslb}`,
 * `app:{fslb}`), `{prefix}` otherwise.
 */
export function hashTagged(prefix: string): string {
  return /\{[^}]+\}/.test(prefix) ? prefix : `{${prefix}}`;
}

export function isValidPrefix(prefix: string): boolean {
  return prefixRe.test(prefix);
}

/** Node ids appear inside keys and logs: a small, safe alphabet. */
export const nodeIdRe = /^[A-Za-z0-9._-]{1,64}$/;

/** A string as a literal part of a SCAN/KEYS glob. */
export function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
