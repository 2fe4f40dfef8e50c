import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import {
  FSLB_VERSION,
  ClusterKeys,
  ClusterStore,
  ConfigWatcher,
  HealthHttpServer,
  RedisConnections,
  ShardMap,
  type FslbConfig,
  type Logger,
} from '@fslb/shared';
import { ADVANCE_REFRESH_MS, ADVANCE_SHARE } from './advance-slots.js';
import { CallAccounting, type AccountingSettings } from './call-accounting.js';
import { DrachtioLink } from './drachtio/drachtio-link.js';
import { SourceAcl } from './guards/acl.js';
import { BacklogShedder, type ShedSettings } from './guards/backlog-shedder.js';
import { SourceLimits } from './guards/source-limits.js';
import { TokenBucket } from './guards/token-bucket.js';
import { defaultReceiveBuffer } from './guards/udp-backlog.js';
import { ProxyMetrics } from './metrics.js';
import { Router } from './router.js';
import { RouteTable } from './routing/route-table.js';
import { ClusterView } from './view/cluster-view.js';
import { ViewSource, ViewSync } from './view/view-sync.js';

export interface ProxyOptions {
  config: FslbConfig;
  log: Logger;
  /** Serve /healthz, /readyz, /metrics on config.proxy.http (default true). */
  http?: boolean;
  /** Random source for selection (tests); Math.random by default. */
  random?: () => number;
  /** The configuration file, followed for changes of the routing rules (and read on SIGHUP). */
  configPath?: string;
  /** How often the file is polled for changes (tests); 1 s by default. */
  configPollMs?: number;
}

type Events = {
  /** drachtio-server accepted the connection and the routes. */
  connected: [];
  disconnected: [];
};

/** The call accounting's settings from a configuration, as a proxy runs it. */
export function accountingSettings(config: FslbConfig): AccountingSettings {
  const p = config.proxy;
  return {
    maxTargets: p.maxTargets,
    timeoutMs: p.reserveTimeoutMs,
    ttlMs: p.provisionalTimeout + p.reservationMarginMs,
    publishMs: p.loadPublishMs,
    proxyId: p.id,
    advance: {
      max: p.reservations ? p.advanceSlots : 0,
      share: ADVANCE_SHARE,
      refreshMs: ADVANCE_REFRESH_MS,
      // Never lapses while held: refreshed every second, with a slot's own TTL to spare.
      ttlMs: p.provisionalTimeout + p.reservationMarginMs + 2 * ADVANCE_REFRESH_MS,
    },
    // Until the node's owner has seen the channel, a takeover and a reconcile included.
    limitHoldMs:
      p.provisionalTimeout +
      p.reservationMarginMs +
      config.monitor.livenessTtlMs +
      config.monitor.reconcileIntervalMs,
  };
}

/** The router's settings, rules and guards from a configuration, as a proxy runs them. */
export function routerParts(
  config: FslbConfig,
  now: number,
): Pick<ConstructorParameters<typeof Router>[0], 'settings' | 'routes' | 'acl' | 'limits' | 'cps'> {
  const p = config.proxy;
  return {
    settings: {
      maxTargets: p.maxTargets,
      recordRoute: p.recordRoute,
      provisionalTimeoutMs: p.provisionalTimeout,
      finalTimeoutMs: p.finalTimeout,
      retryAfterSec: p.retryAfterSec,
      affinityHeader: p.affinityHeader,
      affinityFrom: p.affinityFrom,
      fromNodes: p.fromNodes,
      viewMaxAgeMs: p.viewMaxAgeMs,
      balance: p.balance,
      reservations: p.reservations,
      callLog: config.log.calls,
    },
    routes: new RouteTable(config),
    acl: new SourceAcl(p.acl),
    limits: new SourceLimits(p.rateLimit),
    cps: new TokenBucket(p.maxCps, Math.max(1, Math.ceil(p.maxCps / 10)), now),
  };
}

/** Linux's usual net.core.rmem_default, when it cannot be read. */
const USUAL_RECEIVE_BUFFER = 212_992;

/**
 * The overload shedding's settings. Unset marks come from the buffer drachtio-server's UDP
 * socket gets by default (drachtio-server v0.9.10 asks for 4 MB, but after the socket is open,
 * which leaves it at net.core.rmem_default, as `ss -uam` shows): half of it and a quarter, at most
 * 1 MiB and 256 KiB. At 1500-2500 calls/s 1 MiB is 100-250 ms of drachtio-server's work; a wait
 * near SIP's T1 (500 ms) makes callers retransmit every INVITE still queued, and a run with a
 * 4 MiB mark collapsed that way. The hard mark, past which admission falls without waiting out
 * the hold, is twice the high one, or halfway from it to the buffer's size when that is less. A
 * low mark set alone above the high one moves the high one to twice it. These hold until the
 * proxy has timed drachtio-server's queue (`QueueProbe`); from then on they rise to the bytes it
 * drains in `delayMs` (twice that for the hard one), within the buffer, unless marks were set in
 * bytes.
 */
export function shedSettings(
  o: FslbConfig['proxy']['overload'],
  buffer = defaultReceiveBuffer() ?? USUAL_RECEIVE_BUFFER,
): ShedSettings {
  let high = o.highBytes ?? Math.min(Math.floor(buffer / 2), 1 << 20);
  if (o.lowBytes !== undefined && o.highBytes === undefined && o.lowBytes >= high) high = 2 * o.lowBytes;
  const low = o.lowBytes ?? Math.min(Math.floor(buffer / 4), 256 << 10, Math.floor(high / 2));
  const hard = Math.max(high, Math.min(2 * high, Math.floor((high + buffer) / 2)));
  return {
    enabled: o.enabled,
    sampleMs: o.sampleMs,
    highBytes: high,
    holdMs: o.holdMs,
    hardBytes: hard,
    lowBytes: low,
    // Marks set in bytes are kept as bytes; otherwise the wait they mean decides, once known.
    delayMs: o.highBytes === undefined && o.lowBytes === undefined ? o.delayMs : undefined,
    bufferBytes: buffer,
  };
}

/** How often a proxy refreshes its presence key; the key lives three times as long. */
const PRESENCE_MS = 2000;

/**
 * One fslb proxy replica: the view of the cluster from Redis, the drachtio-server connection,
 * and the router between them. Keeps nothing that matters in itself: a restarted replica
 * reloads the view and reservations live in Redis.
 */
export class FslbProxy extends EventEmitter<Events> {
  readonly id: string;
  readonly metrics = new ProxyMetrics();
  readonly view = new ClusterView();
  #config: FslbConfig;
  #watcher: ConfigWatcher | undefined;
  readonly #log: Logger;
  readonly #conns: RedisConnections;
  readonly #store: ClusterStore;
  /** Which shard each node's state lives in; replaced on reload when compatible. */
  #shards: ShardMap;
  readonly #sync: ViewSync;
  readonly #accounting: CallAccounting;
  readonly #router: Router;
  readonly #shedder: BacklogShedder;
  readonly #link: DrachtioLink;
  readonly #opts: ProxyOptions;
  readonly #startedAt = Date.now();
  #http: HealthHttpServer | undefined;
  #httpPort: number | undefined;
  #presence: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;
  #draining = false;

  constructor(opts: ProxyOptions) {
    super();
    this.#opts = opts;
    const config = opts.config;
    const p = config.proxy;
    this.#config = config;
    this.id = p.id;
    this.#log = opts.log.child({ component: 'proxy', proxyId: this.id });
    // Not ioredis auto-pipelining: tried, it left reservation replies waiting past their
    // timeout in bursts (1000 INVITEs over 4 proxies: 74 % fell back to local accounting).
    this.#conns = new RedisConnections(config.redis, { name: `fslb-proxy-${this.id}`, log: this.#log });
    this.#store = new ClusterStore(this.#conns.client, ClusterKeys.forRedis(config.prefix, config.redis), {
      onRepaired: (notes) => this.#log.warn({ repaired: notes }, 'repaired damaged keys'),
    });
    this.#shards = new ShardMap(this.#store.keys, config.pools);
    const storeOf = (id: string): ClusterStore => this.#store.shard(this.#shards.of(id));
    this.#sync = new ViewSync({
      view: this.view,
      store: this.#store,
      shards: this.#shards.all.map((k) => this.#store.shard(k)),
      subscriber: this.#conns.subscriber,
      resyncMs: p.resyncIntervalMs,
      log: this.#log,
      self: this.id,
    });
    const metrics = this.metrics;
    this.#accounting = new CallAccounting({
      store: this.#store,
      storeOf,
      view: this.view,
      settings: accountingSettings(config),
      observer: {
        reservation: (outcome, ms) => metrics.reservation(outcome, ms),
      },
      log: this.#log,
      redisReady: () => this.#conns.client.status === 'ready',
      onLost: () => void this.#sync.resync('a reservation found node records missing'),
    });
    this.#shedder = new BacklogShedder({
      settings: shedSettings(p.overload),
      log: this.#log,
      onSample: (_b, drops) => {
        if (drops > 0) metrics.udpDrops.inc(drops);
      },
    });
    const shedder = this.#shedder;
    const now = performance.now();
    this.#router = new Router({
      shed: () => shedder.shed(),
      isProbe: (callId) => shedder.isProbe(callId),
      view: this.view,
      accounting: this.#accounting,
      ...routerParts(config, now),
      metrics,
      log: this.#log,
      ...(opts.random ? { random: opts.random } : {}),
    });
    this.#link = new DrachtioLink(
      { host: p.drachtio.host, port: p.drachtio.port, secret: p.drachtio.secret, retryMaxDelayMs: 5000 },
      this.#log,
    );
  }

  get httpPort(): number | undefined {
    return this.#httpPort;
  }

  get source(): ViewSource {
    return this.#sync.source;
  }

  get drachtioConnected(): boolean {
    return this.#link.connected;
  }

  /** Requests being proxied now. */
  get inFlight(): number {
    return this.#router.inFlight;
  }

  /** Reloads the view from Redis now (tests; also runs periodically and after every resubscribe). */
  resync(): Promise<void> {
    return this.#sync.resync('requested');
  }

  async start(): Promise<void> {
    const p = this.#config.proxy;
    this.#conns.client.on('ready', () => void this.#announce());
    try {
      await this.#conns.connect();
    } catch (err) {
      this.#log.warn({ err }, 'redis is not reachable yet; starting without a view and retrying');
    }
    await this.#sync.start();
    this.#link.on('request', (req) => this.#router.handle(req));
    this.#link.on('connected', (hostports: string) => {
      this.#shedder.watch(hostports);
      this.emit('connected');
    });
    this.#link.on('disconnected', () => {
      this.#shedder.stop();
      this.#router.abandonInFlight('drachtio-lost');
      this.emit('disconnected');
    });
    this.#link.start(p.methods);
    if (this.#opts.http ?? true) {
      this.#http = new HealthHttpServer(this, this.metrics.registry, this.#log);
      this.#httpPort = await this.#http.listen(p.http.host, p.http.port);
    }
    if (this.#opts.configPath) {
      this.#watcher = new ConfigWatcher(this.#opts.configPath, {
        log: this.#log,
        use: 'proxy',
        ...(this.#opts.configPollMs === undefined ? {} : { intervalMs: this.#opts.configPollMs }),
      });
      this.#watcher.on('config', (cfg) => this.reload(cfg));
      this.#watcher.start();
    }
    this.#presence = setInterval(() => void this.#announce(), PRESENCE_MS);
    this.metrics.gaugesFrom({
      callsInProgress: () => this.#router.inFlight,
      viewAgeMs: () => this.#viewAgeMs(),
      viewSource: () => this.#sync.source,
      redisUp: () => this.#conns.client.status === 'ready',
      drachtioUp: () => this.#link.connected,
      eligibleNodes: () => this.view.withRoom(),
      udpQueuedBytes: () => this.#shedder.queuedBytes,
      admitRatio: () => this.#shedder.admitRatio,
      drachtioWaitMs: () => this.#shedder.waitMs,
      nodes: () => this.view.nodes,
    });
    void this.#announce();
    this.#log.info(
      {
        drachtio: `${p.drachtio.host}:${p.drachtio.port}`,
        prefix: this.#config.prefix,
        nodes: this.view.nodes.length,
        methods: p.methods,
        maxTargets: p.maxTargets,
        maxCps: p.maxCps,
        recordRoute: p.recordRoute,
      },
      'proxy started',
    );
  }

  /** SIGHUP: reads the configuration file again (a bad one is logged and changes nothing). */
  reloadFromFile(): void {
    this.#watcher?.reload();
  }

  /**
   * Applies a new configuration's routing rules (pools, routes, limits) to the next request;
   * requests in progress keep the rules they started with. Other sections need a restart, which
   * the log says.
   */
  reload(config: FslbConfig): void {
    const restartOnly = (['prefix', 'redis', 'monitor', 'proxy', 'nodes', 'log'] as const).filter(
      (k) => JSON.stringify(config[k]) !== JSON.stringify(this.#config[k]),
    );
    if (restartOnly.length > 0) {
      this.#log.warn(
        { settings: restartOnly },
        'only pools, routes and limits change on reload: restart the proxy to apply these',
      );
    }
    const routing = (['pools', 'routes', 'limits'] as const).filter(
      (k) => JSON.stringify(config[k]) !== JSON.stringify(this.#config[k]),
    );
    if (routing.length === 0) return;
    const shards = new ShardMap(this.#store.keys, config.pools);
    if (!this.#shards.compatible(shards)) {
      this.#log.error(
        { changed: routing },
        'routing rules not reloaded: they add or remove a pool shard, or move a node to another; restart every monitor, proxy and CLI with the new file',
      );
      return;
    }
    this.#shards = shards;
    this.#router.setRoutes(new RouteTable(config));
    this.#config = { ...this.#config, pools: config.pools, routes: config.routes, limits: config.limits };
    this.#log.info(
      {
        changed: routing,
        pools: config.pools.length,
        routes: config.routes.length,
        limits: config.limits.length,
      },
      'routing rules reloaded',
    );
  }

  /**
   * SIGTERM: answers new requests 503 (so the upstream moves to another replica), waits for the
   * calls in progress to get their final answers, then closes. Bounded by shutdownTimeoutMs.
   */
  async drain(): Promise<void> {
    this.#draining = true;
    const left = this.#router.inFlight;
    this.#log.info({ inFlight: left }, 'draining: new requests get 503; waiting for calls in progress');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.#router.drain().then(() => false),
      new Promise<boolean>(
        (resolve) => (timer = setTimeout(() => resolve(true), this.#config.proxy.shutdownTimeoutMs)),
      ),
    ]);
    clearTimeout(timer);
    if (timedOut)
      this.#log.warn({ inFlight: this.#router.inFlight }, 'drain timed out; closing with calls in progress');
    else this.#log.info('drained: no call in progress');
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#watcher?.close();
      clearInterval(this.#presence);
      this.#sync.close();
      this.#link.close();
      this.#shedder.stop();
      this.#router.abandonInFlight('closed');
      this.#router.close();
      this.#accounting.close();
      await this.#http?.close();
      if (this.#conns.client.status === 'ready') {
        await this.#store.proxyPresence(this.id, PRESENCE_MS * 3, null).catch(() => undefined);
      }
      await this.#conns.close();
      this.#log.info('proxy stopped');
    })();
    return this.#closing;
  }

  health(): Record<string, unknown> {
    return { id: this.id, uptimeSec: Math.round((Date.now() - this.#startedAt) / 1000) };
  }

  ready(): { ready: boolean; detail: Record<string, unknown> } {
    const source = this.#sync.source;
    const ageMs = this.#viewAgeMs();
    const eligible = this.view.withRoom();
    const drachtio = this.#link.connected;
    const ready = drachtio && !this.#draining && this.#router.canRoute();
    const state = !ready ? 'unready' : source === ViewSource.Live ? 'ok' : 'degraded';
    return {
      ready,
      detail: {
        state,
        draining: this.#draining,
        drachtio: drachtio ? 'connected' : 'disconnected',
        redis: this.#conns.client.status,
        view: {
          source,
          ageMs: ageMs === null ? null : Math.round(ageMs),
          nodes: this.view.nodes.length,
          eligible,
        },
        inFlight: this.#router.inFlight,
        localSlots: this.#accounting.localSlots,
      },
    };
  }

  #viewAgeMs(): number | null {
    return this.view.loaded ? performance.now() - this.view.touchedAt : null;
  }

  async #announce(): Promise<void> {
    if (this.#conns.client.status !== 'ready' || this.#closing) return;
    const age = this.#viewAgeMs();
    try {
      await this.#store.proxyPresence(this.id, PRESENCE_MS * 3, {
        id: this.id,
        host: hostname(),
        pid: process.pid,
        version: FSLB_VERSION,
        startedAt: this.#startedAt,
        viewAgeMs: age === null ? null : Math.round(age),
        viewSource: this.#sync.source,
        nodes: this.view.nodes.length,
        drachtio: this.#link.connected,
      });
    } catch (err) {
      this.#log.debug({ err }, 'could not refresh the presence key');
    }
  }
}
