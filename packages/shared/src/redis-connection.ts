import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { Cluster, Redis as SingleRedis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisConfig } from './config/schema.js';
import type { Logger } from './logger.js';
import { redactUrl } from './redact.js';

/**
 * A client of fslb's Redis: one server (directly or through Sentinel), or a Redis Cluster
 * (`redis.cluster`), which follows MOVED/ASK redirections and failovers by itself.
 */
export type Redis = SingleRedis | Cluster;

export interface RedisConnectionOptions {
  /** Names the connection in logs and in CLIENT LIST (`fslb-monitor-a`). */
  name: string;
  log: Logger;
  /**
   * How many times a command is retried across reconnects before it fails. Default 2: callers
   * hear about an outage within a few seconds instead of piling up stale writes.
   */
  maxRetriesPerRequest?: number | null;
  /**
   * Reconnect after a lost connection (default). A one-shot command (the CLI) sets false, so that
   * an unreachable Redis fails it at once instead of retrying for ever.
   */
  reconnect?: boolean;
  /**
   * On a Redis Cluster, how often the client reads the slot layout again, ms (none by default: a
   * command client learns a move from MOVED). A subscriber sends no commands, and Redis drops
   * its sharded subscriptions to a slot that moves without a word ioredis acts on: only a fresh
   * layout makes ioredis subscribe again where the slot went.
   */
  slotsRefreshMs?: number;
}

/** A subscriber's `slotsRefreshMs`: at most this long deaf after its channel's slot moved. */
export const SUBSCRIBER_SLOTS_REFRESH_MS = 1000;

/** Backoff for reconnects: grows from 50 ms, capped, with jitter; never gives up. */
export function reconnectDelay(attempt: number, capMs: number, random: () => number = Math.random): number {
  const base = Math.min(capMs, 50 * 2 ** Math.min(attempt, 16));
  return Math.round(base / 2 + (random() * base) / 2);
}

/** ioredis options for one fslb connection: URL, TLS, credentials, Sentinel, capped retries. */
export function redisOptions(cfg: RedisConfig, opts: Omit<RedisConnectionOptions, 'log'>): RedisOptions {
  const o: RedisOptions = {
    connectionName: opts.name,
    connectTimeout: cfg.connectTimeoutMs,
    maxRetriesPerRequest: opts.maxRetriesPerRequest === undefined ? 2 : opts.maxRetriesPerRequest,
    retryStrategy:
      opts.reconnect === false ? () => null : (times: number) => reconnectDelay(times, cfg.maxRetryDelayMs),
    lazyConnect: true,
  };
  // A subscriber waits for messages indefinitely; every other connection's commands time out.
  if (opts.maxRetriesPerRequest !== null) o.commandTimeout = cfg.commandTimeoutMs;
  if (cfg.username !== undefined) o.username = cfg.username;
  if (cfg.password !== undefined) o.password = cfg.password;
  if (cfg.db !== undefined) o.db = cfg.db;
  const tls = tlsOptions(cfg);
  if (tls) o.tls = tls;
  if (cfg.sentinels) {
    o.sentinels = cfg.sentinels.map((s) => ({ host: s.host, port: s.port }));
    o.name = cfg.name ?? 'mymaster';
    if (cfg.sentinelPassword !== undefined) o.sentinelPassword = cfg.sentinelPassword;
    o.sentinelRetryStrategy =
      opts.reconnect === false ? () => null : (times: number) => reconnectDelay(times, cfg.maxRetryDelayMs);
    if (tls) o.enableTLSForSentinelMode = true;
  }
  return o;
}

function tlsOptions(cfg: RedisConfig): ConnectionOptions | undefined {
  const t = cfg.tls;
  if (t === undefined || t === false) return cfg.url.startsWith('rediss:') ? {} : undefined;
  if (t === true) return {};
  const o: ConnectionOptions = { rejectUnauthorized: t.rejectUnauthorized };
  if (t.caFile !== undefined) o.ca = readFileSync(t.caFile);
  if (t.servername !== undefined) o.servername = t.servername;
  return o;
}

/**
 * ioredis Cluster options: each node's connection as `redisOptions` makes it (credentials, TLS,
 * timeouts), sharded pub/sub, commands always on the masters, redirections and failovers
 * retried with the same capped backoff.
 */
export function clusterOptions(cfg: RedisConfig, opts: Omit<RedisConnectionOptions, 'log'>): ClusterOptions {
  const { retryStrategy: _r, lazyConnect: _l, db: _db, ...perNode } = redisOptions(cfg, opts);
  return {
    redisOptions: perNode,
    lazyConnect: true,
    scaleReads: 'master',
    shardedSubscribers: true,
    maxRedirections: 16,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    slotsRefreshTimeout: cfg.connectTimeoutMs,
    ...(opts.slotsRefreshMs === undefined ? {} : { slotsRefreshInterval: opts.slotsRefreshMs }),
    clusterRetryStrategy:
      opts.reconnect === false ? () => null : (times: number) => reconnectDelay(times, cfg.maxRetryDelayMs),
  };
}

/** Makes one ioredis client for the config, logging its state changes without secrets. */
export function createRedis(cfg: RedisConfig, opts: RedisConnectionOptions): Redis {
  let client: Redis;
  let where: string;
  if (cfg.cluster) {
    client = new Cluster(
      cfg.cluster.map((n) => ({ host: n.host, port: n.port })),
      clusterOptions(cfg, opts),
    );
    where = `cluster:${cfg.cluster.map((n) => `${n.host}:${n.port}`).join(',')}`;
  } else {
    const options = redisOptions(cfg, opts);
    if (cfg.sentinels) client = new SingleRedis(options);
    else if (cfg.url.startsWith('/') || cfg.url.startsWith('unix:')) {
      client = new SingleRedis({ ...options, path: cfg.url.replace(/^unix:(\/\/)?/, '') });
    } else client = new SingleRedis(cfg.url, options);
    where = redactUrl(cfg.sentinels ? `sentinel:${cfg.name ?? ''}` : cfg.url);
  }
  watch(client, opts.log.child({ redis: opts.name, url: where }));
  return client;
}

/**
 * A subscriber connection beside `client`, with its options: on a Redis Cluster it reads the slot
 * layout every SUBSCRIBER_SLOTS_REFRESH_MS, so that it follows a channel whose slot moved.
 */
export function duplicateSubscriber(client: Redis): Redis {
  return client instanceof Cluster
    ? client.duplicate([], { slotsRefreshInterval: SUBSCRIBER_SLOTS_REFRESH_MS })
    : client.duplicate();
}

/**
 * Publishes on a channel: sharded (SPUBLISH, heard only on the shard that serves the channel's
 * slot) on a Redis Cluster, classic PUBLISH on one server.
 */
export function publish(client: Redis, channel: string, message: string): Promise<unknown> {
  return client.isCluster ? client.spublish(channel, message) : client.publish(channel, message);
}

/**
 * Every key matching a SCAN glob: on a Redis Cluster, from every master (a key half-way
 * through a slot migration is listed once). For operator commands, never on a hot path.
 */
export async function scanKeys(client: Redis, match: string, count = 1000): Promise<string[]> {
  const found = new Set<string>();
  for (const node of client instanceof Cluster ? client.nodes('master') : [client]) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', match, 'COUNT', count);
      cursor = next;
      for (const k of keys) found.add(k);
    } while (cursor !== '0');
  }
  return [...found];
}

/** Subscribes a subscriber connection to a channel, sharded on a Redis Cluster. */
export function subscribe(subscriber: Redis, channel: string): Promise<unknown> {
  return subscriber.isCluster ? subscriber.ssubscribe(channel) : subscriber.subscribe(channel);
}

/** Calls `handler` for every message a subscriber hears, sharded or not; returns the remover. */
export function onMessage(
  subscriber: Redis,
  handler: (channel: string, message: string) => void,
): () => void {
  const event = subscriber.isCluster ? 'smessage' : 'message';
  subscriber.on(event, handler);
  return () => subscriber.off(event, handler);
}

/** Logs the transitions of a connection once each, not every retry's error. */
function watch(client: Redis, log: Logger): void {
  let lastError = '';
  let wasReady = false;
  client.on('ready', () => {
    if (wasReady || lastError !== '') log.info('redis connection ready');
    else log.debug('redis connection ready');
    wasReady = true;
    lastError = '';
  });
  client.on('error', (err: Error) => {
    const key = `${(err as NodeJS.ErrnoException).code ?? ''}${err.message}`;
    if (key === lastError) return;
    lastError = key;
    log.warn({ err }, 'redis connection error');
  });
  client.on('end', () => log.debug('redis connection ended'));
}

/**
 * The Redis connections of one fslb process: a command client, and a subscriber made on first
 * use (a subscribed connection can run no other command). `close()` is idempotent.
 */
export class RedisConnections {
  readonly client: Redis;
  #subscriber: Redis | undefined;
  #closing: Promise<void> | undefined;
  readonly #cfg: RedisConfig;
  readonly #opts: RedisConnectionOptions;

  constructor(cfg: RedisConfig, opts: RedisConnectionOptions) {
    this.#cfg = cfg;
    this.#opts = opts;
    this.client = createRedis(cfg, opts);
  }

  /** Connects the command client; resolves when it is ready, rejects on the first failure. */
  async connect(): Promise<void> {
    if (this.client.status === 'wait') await this.client.connect();
  }

  /** The subscriber connection; it retries requests forever, since its only job is to listen. */
  get subscriber(): Redis {
    if (this.#closing) throw new Error('redis connections are closed');
    this.#subscriber ??= createRedis(this.#cfg, {
      ...this.#opts,
      name: `${this.#opts.name}-sub`,
      maxRetriesPerRequest: null,
      slotsRefreshMs: SUBSCRIBER_SLOTS_REFRESH_MS,
    });
    return this.#subscriber;
  }

  close(): Promise<void> {
    this.#closing ??= Promise.all([
      quit(this.client),
      this.#subscriber ? quit(this.#subscriber) : undefined,
    ]).then(() => undefined);
    return this.#closing;
  }
}

/** QUIT when the server answers; otherwise drop the socket and stop reconnecting. */
async function quit(client: Redis): Promise<void> {
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect(false);
    return;
  }
  const timer = setTimeout(() => client.disconnect(false), 1000);
  const ended = new Promise<void>((resolve) => client.once('end', resolve));
  try {
    await client.quit();
    await ended;
  } catch {
    client.disconnect(false);
  } finally {
    clearTimeout(timer);
  }
}
