import { EventEmitter } from 'node:events';
import {
  decodeClusterEvent,
  onMessage,
  subscribe,
  type ClusterStore,
  type Logger,
  type Redis,
} from '@fslb/shared';
import { EventEffect, type ClusterView, type SnapshotReport } from './cluster-view.js';

/** Where the view's contents come from now. */
export const ViewSource = {
  /** Never loaded: the proxy has nothing to route on. */
  None: 'none',
  /** Loaded from Redis and following its events. */
  Live: 'live',
  /** Redis is unreachable: routing on the last view, with local accounting. */
  LastKnown: 'last-known',
} as const;
export type ViewSource = (typeof ViewSource)[keyof typeof ViewSource];

/** The first retry of a failed reload, ms; each next one waits twice as long, up to resyncMs. */
const RETRY_FIRST_MS = 250;

type Events = {
  /** A snapshot was applied (at start, after every (re)subscribe, periodically, after a gap). */
  synced: [{ nodes: number; why: string }];
  source: [ViewSource];
};

/**
 * Keeps a `ClusterView` current: loads every node from the keys at start and after every
 * (re)subscribe, applies `fslb:events` as they come, reloads at once when a version is skipped,
 * and reloads every `resyncMs` regardless, which heals anything lost. Never throws after start:
 * a failing reload is logged once and retried on the next occasion.
 */
export class ViewSync extends EventEmitter<Events> {
  readonly #view: ClusterView;
  readonly #store: ClusterStore;
  /** Every shard's store (see `ShardMap`), each with its own keys and events channel. */
  readonly #shards: readonly ClusterStore[];
  readonly #subscriber: Redis;
  readonly #resyncMs: number;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  /** The next reload after a failed one, sooner than the periodic one (see `#retryLater`). */
  #retry: NodeJS.Timeout | undefined;
  #retryMs = 0;
  #syncing: Promise<void> | undefined;
  #again: string | undefined;
  #failing = false;
  /** A connection dropped since the last snapshot: events may have been lost meanwhile. */
  #stale = true;
  #source: ViewSource = ViewSource.None;
  #unreadable = new Map<string, string>();
  #garbageLogged = false;
  #skewLogged = false;
  /** This proxy's id: its own `load` messages carry nothing it does not know already. */
  readonly #self: string | undefined;
  /** A loss of Redis' state was logged; its end is logged once too. */
  #rebuilding = false;
  #closed = false;

  constructor(opts: {
    view: ClusterView;
    store: ClusterStore;
    /** The stores of every shard the nodes live in, `store` first if it is one; `[store]` by default. */
    shards?: readonly ClusterStore[];
    subscriber: Redis;
    resyncMs: number;
    log: Logger;
    /** This proxy's id, to skip its own `load` messages. */
    self?: string;
  }) {
    super();
    this.#self = opts.self;
    this.#view = opts.view;
    this.#store = opts.store;
    this.#shards = opts.shards && opts.shards.length > 0 ? opts.shards : [opts.store];
    this.#subscriber = opts.subscriber;
    this.#resyncMs = opts.resyncMs;
    this.#log = opts.log;
  }

  get source(): ViewSource {
    return this.#source;
  }

  /**
   * Subscribes and loads the first snapshot. Resolves once the view is loaded, or after the
   * first failure (the proxy then starts with nothing to route on and keeps trying).
   */
  async start(): Promise<void> {
    const shardOf = new Map(this.#shards.map((st) => [st.keys.events, this.#shardName(st)]));
    const channels = [...shardOf.keys()];
    onMessage(this.#subscriber, (ch: string, message: string) => {
      const shard = shardOf.get(ch);
      if (shard !== undefined) this.#onMessage(message, shard);
    });
    const subscribeAll = (): Promise<unknown> =>
      Promise.all(channels.map((ch) => subscribe(this.#subscriber, ch)));
    // The first connection is start's own: it subscribes, then reloads once. A reload from here
    // as well would be a second read of every key, and would land at a time of its own.
    let starting = true;
    this.#subscriber.on('ready', () => {
      const first = starting;
      // ioredis resubscribes by itself; subscribing again is harmless and tells us when it is done.
      subscribeAll().then(
        () => (first ? undefined : this.resync('resubscribed')),
        (err: unknown) => this.#log.warn({ err }, 'could not subscribe to the events channel'),
      );
    });
    // On a Redis Cluster ioredis subscribes again by itself where a moved slot went (see
    // SUBSCRIBER_SLOTS_REFRESH_MS): events published meanwhile were not heard, so reload.
    this.#subscriber.on('subscribersReady', () => void this.resync('resubscribed'));
    const dropped = (): void => {
      this.#stale = true;
      this.#setSource();
    };
    this.#subscriber.on('close', dropped);
    this.#store.redis.on('close', dropped);
    this.#store.redis.on('ready', () => this.#setSource());
    this.#timer = setInterval(() => void this.resync('periodic'), this.#resyncMs);
    try {
      await subscribeAll();
    } catch (err) {
      this.#log.warn({ err }, 'could not subscribe to the events channel yet; retrying');
    } finally {
      starting = false;
    }
    await this.resync('start');
  }

  /** Reloads the view from the keys; one reload at a time, a request during one runs after it. */
  resync(why: string): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#syncing) {
      this.#again = why;
      return this.#syncing;
    }
    this.#syncing = this.#load(why).finally(() => {
      this.#syncing = undefined;
      const again = this.#again;
      this.#again = undefined;
      if (again !== undefined) void this.resync(again);
    });
    return this.#syncing;
  }

  async #load(why: string): Promise<void> {
    if (this.#store.redis.status !== 'ready') {
      this.#setSource();
      return;
    }
    const subscribed = this.#subscriber.status === 'ready';
    try {
      // Every shard read before any is applied: a failure leaves the view as it was.
      const snapshots = await Promise.all(this.#shards.map((st) => st.readView()));
      const report: SnapshotReport = { added: [], removed: [], carried: [], unreadable: [] };
      let nodes = 0;
      let version = 0;
      for (const [i, snapshot] of snapshots.entries()) {
        const store = this.#shards[i];
        if (!store) continue;
        const r = this.#view.applySnapshot(snapshot, performance.now(), this.#shardName(store));
        report.added.push(...r.added);
        report.removed.push(...r.removed);
        report.carried.push(...r.carried);
        report.unreadable.push(...r.unreadable);
        nodes += snapshot.nodes.length;
        version = Math.max(version, snapshot.version);
      }
      // Live only once a snapshot was read while subscribed: nothing between them was missed.
      if (subscribed) this.#stale = false;
      if (this.#failing) this.#log.info({ why }, 'view reloaded from redis again');
      this.#failing = false;
      this.#retryMs = 0;
      if (report.carried.length > 0 && !this.#rebuilding) {
        this.#rebuilding = true;
        this.#log.warn(
          { why, carried: report.carried, version },
          'redis lost the cluster state (its version counter went back): keeping these nodes as they were, counting calls locally, until their monitors write them again',
        );
      } else if (this.#rebuilding && !this.#view.rebuilding) {
        this.#rebuilding = false;
        this.#log.info({ why }, 'cluster state rebuilt in redis by the monitors: reserving there again');
      }
      if (report.added.length > 0 || report.removed.length > 0) {
        this.#log.info({ why, added: report.added, removed: report.removed }, 'view: nodes changed');
      }
      this.#logUnreadable(report.unreadable);
      this.#setSource();
      this.emit('synced', { nodes, why });
    } catch (err) {
      if (!this.#failing)
        this.#log.warn({ err, why }, 'cannot reload the view from redis; routing on the last view');
      this.#failing = true;
      this.#setSource();
      this.#retryLater();
    }
  }

  /**
   * A reload that Redis refused (a Redis Cluster moving the slot answers TRYAGAIN until the move
   * ends, a failover for a moment) is tried again after RETRY_FIRST_MS, then twice as long each
   * time up to resyncMs: the view is live again soon after the cause passes, not a period later.
   */
  #retryLater(): void {
    if (this.#closed) return;
    this.#retryMs = Math.min(this.#resyncMs, this.#retryMs === 0 ? RETRY_FIRST_MS : this.#retryMs * 2);
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => void this.resync('retry'), this.#retryMs);
    this.#retry.unref();
  }

  /** A shard's name in the view: its key prefix ('' for the store's own keys). */
  #shardName(store: ClusterStore): string {
    return store === this.#store ? '' : store.keys.prefix;
  }

  #onMessage(message: string, shard: string): void {
    const d = decodeClusterEvent(message);
    if (!d.ok) {
      if (!this.#garbageLogged) {
        this.#log.warn({ problems: d.problems }, 'unreadable message on the events channel skipped');
        this.#garbageLogged = true;
      }
      return;
    }
    if (!this.#view.loaded) return;
    const e = d.value;
    if (e.type === 'load' && e.from === this.#self) return;
    const effect = this.#view.applyEvent(e, performance.now(), shard);
    if (effect === EventEffect.Gap) void this.resync('missed event');
    else if (effect === EventEffect.Skewed && !this.#skewLogged) {
      this.#skewLogged = true;
      this.#log.warn(
        { type: e.type, ...(e.type === 'load' ? { from: e.from } : { nodeId: e.id }) },
        'events channel: figures stamped ahead of redis time skipped (logged once)',
      );
    }
  }

  #logUnreadable(list: { id: string; problems: string[] }[]): void {
    const now = new Map(list.map((u) => [u.id, u.problems.join('; ')]));
    for (const [id, problems] of now) {
      if (this.#unreadable.get(id) !== problems) {
        this.#log.warn(
          { nodeId: id, problems },
          'node record unreadable: not routing to it until it is repaired',
        );
      }
    }
    for (const id of this.#unreadable.keys()) {
      if (!now.has(id)) this.#log.info({ nodeId: id }, 'node record readable again');
    }
    this.#unreadable = now;
  }

  #setSource(): void {
    // Closing drops the connections on purpose: that is no outage.
    if (this.#closed) return;
    const live =
      this.#store.redis.status === 'ready' &&
      this.#subscriber.status === 'ready' &&
      !this.#failing &&
      !this.#stale;
    const next = !this.#view.loaded ? ViewSource.None : live ? ViewSource.Live : ViewSource.LastKnown;
    if (next === this.#source) return;
    this.#source = next;
    if (next === ViewSource.LastKnown)
      this.#log.warn(
        this.#store.redis.status === 'ready'
          ? 'view not reloaded: routing on the last view'
          : 'redis unreachable: routing on the last view with local accounting',
      );
    if (next === ViewSource.Live) this.#log.info('view live: loaded from redis and following its events');
    this.emit('source', next);
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    clearTimeout(this.#retry);
  }
}
