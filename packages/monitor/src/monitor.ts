import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import {
  ClusterKeys,
  ClusterStore,
  ConfigWatcher,
  FSLB_VERSION,
  HealthHttpServer,
  onMessage,
  publish,
  RedisConnections,
  groupBy,
  ShardMap,
  subscribe,
  type AdminState,
  type ConfigError,
  type FslbConfig,
  type Logger,
  type NodeConfig,
} from '@fslb/shared';

import { LeaseClient } from './lease/node-lease.js';
import { MonitorMetrics } from './metrics.js';
import { ConnectionState } from './node-watcher.js';
import { OwnedNode } from './owned-node.js';
import { planClaims } from './ownership.js';

export interface MonitorOptions {
  config: FslbConfig;
  log: Logger;
  /** Follow this file and apply node changes without a restart. */
  configPath?: string;
  /** How often the config file is checked for changes (ms). */
  configPollMs?: number;
  /** Serve /healthz, /readyz, /metrics on config.monitor.http (default true). */
  http?: boolean;
}

type Events = {
  acquired: [nodeId: string];
  released: [nodeId: string];
  lost: [nodeId: string, reason: string];
  reloaded: [FslbConfig];
  reloadFailed: [ConfigError];
  /** One claim round finished (tests and health use it). */
  tick: [{ liveMonitors: number; share: number; owned: number }];
};

/**
 * One fslb monitor: keeps the configured nodes in Redis, takes its fair share of node leases,
 * watches the nodes it owns over ESL and publishes what it sees. Any number run side by side.
 */
export class Monitor extends EventEmitter<Events> {
  readonly id: string;
  readonly metrics = new MonitorMetrics();
  readonly #log: Logger;
  readonly #conns: RedisConnections;
  readonly #store: ClusterStore;
  /** Where each node's state lives; replaced on reload when compatible. */
  #shards: ShardMap;
  readonly #leases: LeaseClient;
  readonly #owned = new Map<string, OwnedNode>();
  readonly #freeSince = new Map<string, number>();
  /**
   * The admin flag each node's record held at this monitor's last write of it: restored if the
   * record loses it (a FLUSH, a Redis restarted empty, a record deleted by hand).
   */
  readonly #admin = new Map<string, AdminState>();
  readonly #opts: MonitorOptions;
  #config: FslbConfig;
  #nodes: Map<string, NodeConfig>;
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  #relisting: Promise<void> | undefined;
  #lastTickOkAt = 0;
  #tickFailing = false;
  #tickAgain = false;
  #liveMonitors = 0;
  #share = 0;
  #http: HealthHttpServer | undefined;
  #httpPort: number | undefined;
  #watcher: ConfigWatcher | undefined;
  #closing: Promise<void> | undefined;
  readonly #startedAt = Date.now();

  constructor(opts: MonitorOptions) {
    super();
    this.#opts = opts;
    this.#config = opts.config;
    this.id = opts.config.monitor.id;
    this.#log = opts.log.child({ component: 'monitor', monitorId: this.id });
    this.#nodes = new Map(opts.config.nodes.map((n) => [n.id, n]));
    this.#conns = new RedisConnections(opts.config.redis, {
      name: `fslb-monitor-${this.id}`,
      log: this.#log,
    });
    this.#store = new ClusterStore(
      this.#conns.client,
      ClusterKeys.forRedis(opts.config.prefix, opts.config.redis),
      {
        onRepaired: (notes) => this.#log.warn({ repaired: notes }, 'repaired damaged keys'),
      },
    );
    this.#shards = new ShardMap(this.#store.keys, opts.config.pools);
    this.#leases = new LeaseClient(this.#conns.client, this.#log);
  }

  /** The store of the shard a node's state lives in (see `ShardMap`). */
  #storeOf(id: string): ClusterStore {
    return this.#store.shard(this.#shards.of(id));
  }

  /** Every shard's store, the prefix's own first when nodes live there. */
  #shardStores(): ClusterStore[] {
    return this.#shards.all.map((k) => this.#store.shard(k));
  }

  /** Ids of the nodes this monitor holds the lease of. */
  get ownedNodes(): string[] {
    return [...this.#owned.keys()].sort();
  }

  get httpPort(): number | undefined {
    return this.#httpPort;
  }

  /** What this monitor's own watcher sees of a node it owns (undefined when not owned). */
  connectionOf(nodeId: string): ConnectionState | undefined {
    return this.#owned.get(nodeId)?.watcher.connection;
  }

  async start(): Promise<void> {
    const m = this.#config.monitor;
    await this.#untilRedisReady();
    await this.#syncNodes(this.#config.nodes, { pruneOthers: true });
    // After a reconnect the server may be a new one, or one restarted without persistence:
    // write the configured nodes again so that no node silently vanishes.
    this.#conns.client.on('ready', () => {
      this.#syncNodes(this.#config.nodes, { pruneOthers: false }).then(
        () => this.#log.info('redis reconnected: configured nodes written again'),
        (err: unknown) => this.#log.warn({ err }, 'could not write the configured nodes after a reconnect'),
      );
    });
    await this.#listenForReleases();
    if (this.#opts.http ?? true) {
      this.#http = new HealthHttpServer(this, this.metrics.registry, this.#log);
      this.#httpPort = await this.#http.listen(m.http.host, m.http.port);
    }
    if (this.#opts.configPath) {
      this.#watcher = new ConfigWatcher(this.#opts.configPath, {
        log: this.#log,
        use: 'monitor',
        ...(this.#opts.configPollMs === undefined ? {} : { intervalMs: this.#opts.configPollMs }),
      });
      this.#watcher.on('config', (cfg) => {
        this.reload(cfg).catch((err: unknown) => {
          this.metrics.errors.inc({ kind: 'redis' });
          this.#log.error(
            { err },
            'could not apply the new configuration to redis; it applies on the next change or restart',
          );
        });
      });
      this.#watcher.on('invalid', (err) => {
        this.metrics.errors.inc({ kind: 'config' });
        this.emit('reloadFailed', err);
      });
      this.#watcher.start();
    }
    this.#log.info(
      {
        nodes: this.#nodes.size,
        prefix: this.#config.prefix,
        leaseTtlMs: m.leaseTtlMs,
        probeIntervalMs: m.probeIntervalMs,
      },
      'monitor started',
    );
    await this.#runTick();
  }

  /** Connects to Redis, waiting (and saying so) for as long as it takes: a monitor outlives a Redis restart. */
  async #untilRedisReady(): Promise<void> {
    const client = this.#conns.client;
    try {
      await this.#conns.connect();
      return;
    } catch (err) {
      this.#log.warn({ err }, 'redis is not reachable yet; waiting for it');
    }
    while (client.status !== 'ready') {
      if (this.#isClosing()) throw new Error('monitor closed before redis became reachable');
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, 500);
        function done(): void {
          clearTimeout(t);
          client.off('ready', done);
          resolve();
        }
        client.once('ready', done);
      });
    }
  }

  /** Re-reads the config file now (SIGHUP). */
  reloadFromFile(): void {
    this.#watcher?.reload();
  }

  /** Applies a new configuration's node list: add, update and remove nodes without a restart. */
  async reload(config: FslbConfig): Promise<void> {
    const before = this.#nodes;
    const after = new Map(config.nodes.map((n) => [n.id, n]));
    const restartOnly = (['prefix', 'redis', 'monitor', 'log'] as const).filter(
      (k) => JSON.stringify(config[k]) !== JSON.stringify(this.#config[k]),
    );
    if (restartOnly.length > 0) {
      this.#log.warn(
        { settings: restartOnly },
        'only nodes change on reload: restart the monitor to apply these',
      );
    }
    const shards = new ShardMap(this.#store.keys, config.pools);
    if (!this.#shards.compatible(shards)) {
      this.#log.error(
        'nodes not reloaded: the file adds or removes a pool shard, or moves a node to another; restart every monitor, proxy and CLI with the new file',
      );
      return;
    }
    const removedFrom = new Map([...before.keys()].map((id) => [id, this.#storeOf(id)]));
    this.#shards = shards;
    this.#nodes = after;
    this.#config = { ...this.#config, nodes: config.nodes, pools: config.pools };
    const removed = [...before.keys()].filter((id) => !after.has(id));
    for (const id of removed) {
      this.#dropOwned(id);
      this.#admin.delete(id);
      await (removedFrom.get(id) ?? this.#store).removeNode(id);
      this.#log.info({ nodeId: id }, 'node removed from the configuration');
    }
    await this.#syncNodes(config.nodes, { pruneOthers: false });
    for (const n of config.nodes) {
      const prev = before.get(n.id);
      if (prev && JSON.stringify(prev) !== JSON.stringify(n)) this.#owned.get(n.id)?.update(n);
    }
    this.emit('reloaded', config);
  }

  async #syncNodes(nodes: readonly NodeConfig[], opts: { pruneOthers: boolean }): Promise<void> {
    for (const n of nodes)
      await this.#storeOf(n.id).upsertNode({ id: n.id, sip: n.sip, weight: n.weight, cap: n.maxSessions });
    await this.#listShards(opts.pruneOthers);
    if (opts.pruneOthers) {
      for (const store of this.#shardStores()) {
        // Not configured, or configured in another shard: gone from this one.
        const stale = (await store.nodeIds()).filter(
          (id) => !this.#nodes.has(id) || this.#storeOf(id) !== store,
        );
        for (const id of stale) {
          await store.removeNode(id);
          this.#log.info(
            { nodeId: id, keys: store.keys.prefix },
            'removed a node that is no longer configured there',
          );
        }
      }
    }
  }

  /**
   * Lists the configured pool shards in `shards` (a Redis Cluster only), where the CLI finds
   * them. `prune`: a shard listed there that this configuration no longer names loses its nodes
   * and its entry, as a node no longer configured does.
   */
  async #listShards(prune: boolean): Promise<void> {
    const base = this.#store.keys;
    if (!base.sharded) return;
    const names = this.#shards.names;
    try {
      if (names.length > 0) await this.#store.redis.sadd(base.shards, ...names);
    } catch (err) {
      if (!String(err).includes('WRONGTYPE')) throw err;
      // Written over by hand: it holds nothing else of value, so it is written again.
      await this.#store.redis.del(base.shards);
      await this.#store.redis.sadd(base.shards, ...names);
      this.#log.warn({ repaired: [`${base.shards}: not a set; written again`] }, 'repaired damaged keys');
    }
    if (!prune) return;
    const listed = await this.#store.redis.smembers(base.shards).catch(() => [] as string[]);
    for (const name of listed) {
      if (names.includes(name)) continue;
      const store = this.#store.shard(base.shard(name));
      if (store !== this.#store) {
        for (const id of await store.nodeIds()) {
          await store.removeNode(id);
          this.#log.info(
            { nodeId: id, keys: store.keys.prefix },
            'removed a node of a shard no longer configured',
          );
        }
      }
      await this.#store.redis.srem(base.shards, name);
    }
  }

  /**
   * An owner's write found the nodes set gone (deleted by hand, or Redis lost its keys): writes
   * the configured nodes again, once for every owner that asks at the same time.
   */
  #relist(): Promise<void> {
    this.#relisting ??= this.#syncNodes(this.#config.nodes, { pruneOthers: false })
      .then(
        () =>
          this.#log.warn(
            {
              repaired: [
                `${this.#shards.all.map((k) => k.nodes).join(', ')}: missing; the configured nodes written again`,
              ],
            },
            'repaired damaged keys',
          ),
        (err: unknown) => this.#log.warn({ err }, 'could not write the configured nodes again'),
      )
      .finally(() => {
        this.#relisting = undefined;
      });
    return this.#relisting;
  }

  #isClosing(): boolean {
    return this.#closing !== undefined;
  }

  #schedule(delayMs = this.#config.monitor.claimIntervalMs): void {
    clearTimeout(this.#timer);
    if (this.#closing) return;
    this.#timer = setTimeout(() => void this.#runTick(), delayMs);
  }

  /** Runs a claim round now, or right after the one under way. */
  #runTick(): Promise<void> {
    if (this.#ticking) {
      this.#tickAgain = true;
      return this.#ticking;
    }
    this.#ticking = this.#tick()
      .then(() => {
        if (this.#tickFailing) this.#log.info('claim rounds work again');
        this.#tickFailing = false;
      })
      .catch((err: unknown) => {
        this.metrics.errors.inc({ kind: 'redis' });
        if (!this.#tickFailing) this.#log.warn({ err }, 'claim round failed; retrying every claim interval');
        this.#tickFailing = true;
      })
      .finally(() => {
        this.#ticking = undefined;
        const again = this.#tickAgain;
        this.#tickAgain = false;
        this.#schedule(again ? 0 : undefined);
      });
    return this.#ticking;
  }

  /** One claim round: say we live, count monitors, hand back or claim leases. */
  async #tick(): Promise<void> {
    if (this.#closing) return;
    const m = this.#config.monitor;
    const presenceTtl = Math.min(3 * m.claimIntervalMs, m.leaseTtlMs);
    this.#liveMonitors = await this.#store.monitorPresence(this.id, presenceTtl, this.#summary());
    const now = Date.now();
    await this.#dropStrays();
    const unowned = [...this.#nodes.keys()].filter((id) => !this.#owned.has(id));
    const held = await this.#leasesHeld(unowned);
    unowned.forEach((id, i) => {
      if (!held[i]) {
        if (!this.#freeSince.has(id)) this.#freeSince.set(id, now);
      } else this.#freeSince.delete(id);
    });
    for (const id of this.#freeSince.keys())
      if (!this.#nodes.has(id) || this.#owned.has(id)) this.#freeSince.delete(id);

    const plan = planClaims({
      monitorId: this.id,
      nodes: [...this.#nodes.keys()],
      owned: new Set(this.#owned.keys()),
      freeSince: this.#freeSince,
      liveMonitors: this.#liveMonitors,
      now,
      starvingAfterMs: 3 * m.claimIntervalMs,
    });
    this.#share = plan.share;
    if (plan.release !== undefined) {
      this.#log.info(
        { nodeId: plan.release, share: plan.share, owned: this.#owned.size },
        'over fair share: handing a node back',
      );
      const node = this.#owned.get(plan.release);
      this.#owned.delete(plan.release);
      await node?.release();
      await this.#announceRelease([plan.release]);
      this.emit('released', plan.release);
    }
    for (const id of plan.claim) {
      if (this.#isClosing()) return;
      const node = this.#nodes.get(id);
      if (!node) continue;
      const lease = await this.#leases.acquire(this.#storeOf(id).keys.lease(id), m.leaseTtlMs);
      if (!lease) continue;
      this.#freeSince.delete(id);
      this.#adopt(node, lease);
    }
    this.metrics.leasesHeld.set(this.#owned.size);
    this.metrics.liveMonitors.set(this.#liveMonitors);
    this.#updateConnectionGauge();
    this.#lastTickOkAt = Date.now();
    this.emit('tick', { liveMonitors: this.#liveMonitors, share: plan.share, owned: this.#owned.size });
  }

  /**
   * Removes ids in the nodes set that no monitor configured (a member without a record was added
   * by hand: adding a node writes both). Ids this monitor does not know but that have a record
   * belong to another monitor's newer file and are left alone. A set that cannot be read now is
   * left to the owners' writes, which rebuild it.
   */
  async #dropStrays(): Promise<void> {
    try {
      for (const store of this.#shardStores()) {
        const nodes = store.keys.nodes;
        for (const id of await store.nodeIds()) {
          if (this.#nodes.has(id) || (await store.removeNode(id, { strayOnly: true })) === 0) continue;
          this.#log.warn(
            {
              repaired: [
                `${nodes}: ${JSON.stringify(id)} has no record and no monitor configures it; removed`,
              ],
            },
            'repaired damaged keys',
          );
        }
      }
    } catch (err) {
      this.#log.debug({ err }, 'could not look for strays in the nodes set');
    }
  }

  /** Whether each node's lease is held, one script per shard (a script reaches one slot). */
  async #leasesHeld(ids: readonly string[]): Promise<boolean[]> {
    if (!this.#shards.split) return this.#storeOf(ids[0] ?? '').leasesHeld(ids);
    const held = new Map<string, boolean>();
    for (const [store, part] of groupBy(ids, (id) => this.#storeOf(id))) {
      const r = await store.leasesHeld(part);
      part.forEach((id, i) => held.set(id, r[i] ?? false));
    }
    return ids.map((id) => held.get(id) ?? false);
  }

  /** Tells the other monitors that leases are free now, so that they claim at once. */
  async #announceRelease(nodes: string[]): Promise<void> {
    if (nodes.length === 0) return;
    try {
      await publish(
        this.#conns.client,
        this.#store.keys.monitorEvents,
        JSON.stringify({ v: 1, type: 'released', monitor: this.id, nodes }),
      );
    } catch (err) {
      this.#log.debug({ err }, 'could not announce released leases (others find them on their next round)');
    }
  }

  /** Listens for other monitors' released leases and claims at once instead of at the next round. */
  async #listenForReleases(): Promise<void> {
    const sub = this.#conns.subscriber;
    const channel = this.#store.keys.monitorEvents;
    onMessage(sub, (ch: string, message: string) => {
      if (ch !== channel) return;
      let from: unknown;
      try {
        from = (JSON.parse(message) as { monitor?: unknown }).monitor;
      } catch {
        return;
      }
      if (from === this.id || this.#isClosing()) return;
      void this.#runTick();
    });
    await subscribe(sub, channel);
  }

  #adopt(node: NodeConfig, lease: ConstructorParameters<typeof OwnedNode>[1]): void {
    const log = this.#log.child({ nodeId: node.id });
    const owned = new OwnedNode(node, lease, {
      store: this.#storeOf(node.id),
      monitor: this.#config.monitor,
      metrics: this.metrics,
      log,
      admin: this.#admin,
      relist: () => this.#relist(),
      poolOf: (id) => this.#config.pools.find((p) => p.nodes.includes(id))?.id ?? '',
    });
    this.#owned.set(node.id, owned);
    owned.on('lost', (reason) => {
      if (this.#owned.get(node.id) !== owned) return;
      this.#owned.delete(node.id);
      this.metrics.leasesHeld.set(this.#owned.size);
      this.emit('lost', node.id, reason);
    });
    owned.watcher.on('connection', () => this.#updateConnectionGauge());
    owned.start();
    log.info({ share: this.#share }, 'lease acquired: watching node');
    this.emit('acquired', node.id);
  }

  #dropOwned(id: string): void {
    const owned = this.#owned.get(id);
    if (!owned) return;
    this.#owned.delete(id);
    owned.abandon();
  }

  #updateConnectionGauge(): void {
    const counts: Record<string, number> = { connecting: 0, connected: 0, down: 0 };
    for (const o of this.#owned.values()) {
      const c = o.watcher.connection;
      if (c in counts) counts[c] = (counts[c] ?? 0) + 1;
    }
    for (const [state, n] of Object.entries(counts)) this.metrics.connections.set({ state }, n);
  }

  #summary(): Record<string, unknown> {
    return {
      id: this.id,
      host: hostname(),
      pid: process.pid,
      version: FSLB_VERSION,
      startedAt: this.#startedAt,
      owned: this.ownedNodes,
    };
  }

  health(): Record<string, unknown> {
    return {
      monitorId: this.id,
      owned: this.ownedNodes,
      liveMonitors: this.#liveMonitors,
      share: this.#share,
    };
  }

  ready(): { ready: boolean; detail: Record<string, unknown> } {
    const redis = this.#conns.client.status;
    const fresh = Date.now() - this.#lastTickOkAt < 3 * this.#config.monitor.claimIntervalMs + 1000;
    return { ready: redis === 'ready' && fresh && !this.#closing, detail: { redis, claimsRunning: fresh } };
  }

  /**
   * Stops: hands every lease back (so that other monitors take the nodes over at once), leaves
   * the presence set, closes Redis. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearTimeout(this.#timer);
      this.#watcher?.close();
      await this.#ticking;
      clearTimeout(this.#timer);
      const owned = [...this.#owned.values()];
      this.#owned.clear();
      // Leave the presence set first, so that the others' fair share already counts without
      // this monitor when they hear of the released leases.
      try {
        await this.#store.monitorPresence(this.id, 1, null);
      } catch (err) {
        this.#log.warn({ err }, 'could not remove presence (it expires by itself)');
      }
      await Promise.all(owned.map((o) => o.release()));
      await this.#announceRelease(owned.map((o) => o.id));
      await this.#http?.close();
      await this.#conns.close();
      this.#log.info({ released: owned.map((o) => o.id) }, 'monitor stopped');
    })();
    return this.#closing;
  }
}
