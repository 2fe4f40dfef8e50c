import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from './config/load-config.js';
import { Cluster } from 'ioredis';
import {
  clusterOptions,
  duplicateSubscriber,
  redisOptions,
  SUBSCRIBER_SLOTS_REFRESH_MS,
} from './redis-connection.js';
import { ConfigError } from './errors.js';

const opts = (redis: Record<string, unknown>, env: Record<string, string> = {}) =>
  redisOptions(parseConfig({ redis }, env).redis, { name: 'x' });

describe('redis options', () => {
  it('passes credentials, database and a capped retry strategy', () => {
    const o = opts(
      { url: 'redis://h:6380', username: 'fslb', passwordEnv: 'RPW', db: 3, maxRetryDelayMs: 700 },
      { RPW: 'pw' },
    );
    assert.equal(o.username, 'fslb');
    assert.equal(o.password, 'pw');
    assert.equal(o.db, 3);
    assert.equal(o.connectionName, 'x');
    assert.equal(o.maxRetriesPerRequest, 2);
    assert.equal(o.commandTimeout, 2000);
    const sub = redisOptions(parseConfig({}, {}).redis, { name: 's', maxRetriesPerRequest: null });
    assert.equal(sub.commandTimeout, undefined);
    for (const attempt of [1, 5, 50]) {
      const delay = o.retryStrategy?.(attempt);
      assert.ok(typeof delay === 'number' && delay > 0 && delay <= 700, String(delay));
    }
    assert.equal(o.tls, undefined);
  });

  it('turns TLS on for rediss:// and for tls: true, with the given settings', () => {
    assert.deepEqual(opts({ url: 'rediss://h:6380' }).tls, {});
    assert.deepEqual(opts({ url: 'redis://h', tls: true }).tls, {});
    assert.deepEqual(
      opts({ url: 'redis://h', tls: { rejectUnauthorized: false, servername: 'r.example' } }).tls,
      {
        rejectUnauthorized: false,
        servername: 'r.example',
      },
    );
  });

  it('uses Sentinel when sentinels are given', () => {
    const o = opts({
      sentinels: [{ host: 's1' }, { host: 's2', port: 26380 }],
      name: 'main',
      sentinelPassword: 'sp',
    });
    assert.deepEqual(o.sentinels, [
      { host: 's1', port: 26379 },
      { host: 's2', port: 26380 },
    ]);
    assert.equal(o.name, 'main');
    assert.equal(o.sentinelPassword, 'sp');
    assert.equal(typeof o.sentinelRetryStrategy, 'function');
  });

  it('makes a Redis Cluster client with each node connected as one server would be', () => {
    const cfg = parseConfig(
      {
        redis: {
          cluster: [{ host: 'r1' }, { host: 'r2', port: 7001 }],
          username: 'fslb',
          passwordEnv: 'RPW',
          tls: true,
          maxRetryDelayMs: 500,
        },
      },
      { RPW: 'pw' },
    ).redis;
    assert.deepEqual(cfg.cluster, [
      { host: 'r1', port: 6379 },
      { host: 'r2', port: 7001 },
    ]);
    const o = clusterOptions(cfg, { name: 'x' });
    const node = o.redisOptions ?? {};
    assert.equal(o.shardedSubscribers, true);
    assert.equal(o.scaleReads, 'master');
    assert.equal(node.password, 'pw');
    assert.equal(node.username, 'fslb');
    assert.deepEqual(node.tls, {});
    assert.equal(node.commandTimeout, 2000);
    assert.equal('db' in node, false);
    const delay = o.clusterRetryStrategy?.(40);
    assert.ok(typeof delay === 'number' && delay > 0 && delay <= 500, String(delay));
    assert.equal(clusterOptions(cfg, { name: 'x', reconnect: false }).clusterRetryStrategy?.(1), null);
    // Only a subscriber reads the slot layout on a clock (it learns of no move from MOVED).
    assert.equal(o.slotsRefreshInterval, undefined);
    assert.equal(clusterOptions(cfg, { name: 'x', slotsRefreshMs: 1000 }).slotsRefreshInterval, 1000);
    const client = new Cluster(cfg.cluster ?? [], { ...o, lazyConnect: true });
    const sub = duplicateSubscriber(client);
    assert.ok(sub instanceof Cluster);
    assert.equal(sub.options.slotsRefreshInterval, SUBSCRIBER_SLOTS_REFRESH_MS);
    assert.equal(sub.options.shardedSubscribers, true);
    sub.disconnect();
    client.disconnect();
  });

  it('refuses a cluster beside sentinels, and a database other than 0 on a cluster', () => {
    assert.throws(
      () => parseConfig({ redis: { cluster: [{ host: 'r1' }], sentinels: [{ host: 's' }], name: 'm' } }, {}),
      (e: unknown) =>
        e instanceof ConfigError && /cluster: set at most one of cluster and sentinels/.test(e.message),
    );
    assert.throws(
      () => parseConfig({ redis: { cluster: [{ host: 'r1' }], db: 2 } }, {}),
      (e: unknown) => e instanceof ConfigError && /only database 0/.test(e.message),
    );
  });
});
