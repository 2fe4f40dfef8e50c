import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { ClusterKeys, parseConfig } from '@fslb/shared';
import { FsNode } from '@fslb/fs-sim';
import { startRedis, testPrefix, type TestRedis } from '../support/redis.js';
import { waitFor, within } from '../support/wait.js';
import { config, rawConfig, startMonitor, waitForNode } from './support.js';

describe('monitor through a Redis outage', () => {
  let server: TestRedis;
  before(async () => {
    server = await startRedis();
  });
  after(() => server.close());

  it('lets go of its leases while Redis is gone and republishes everything when it returns empty', async (t) => {
    if (!server.controllable) {
      t.skip('REDIS_URL names a server this test cannot kill');
      return;
    }
    const prefix = testPrefix('outage');
    const keys = new ClusterKeys(prefix);
    const node = await FsNode.start({});
    const monitor = await startMonitor(
      config({ redisUrl: server.url, prefix, nodes: [node], monitorId: 'm-outage' }),
    );
    const redis = new Redis(server.url, { retryStrategy: () => 50 });
    redis.on('error', () => undefined);
    t.after(async () => {
      await monitor.close();
      await node.close();
      redis.disconnect();
    });
    await waitForNode(redis, keys, 'fs1', (h) => h.state === 'up', 'up');
    const lost = new Promise((resolve) => monitor.once('lost', resolve));

    await server.kill();
    // Without Redis the lease cannot be extended: past its TTL the monitor must stop acting as owner.
    await lost;
    await waitFor('ESL connection closed', () => node.eslClientCount === 0);
    assert.deepEqual(monitor.ownedNodes, []);

    // Redis comes back with nothing in it (no persistence).
    await server.restart();
    await waitFor('redis client back', () => redis.status === 'ready', { timeoutMs: 10_000 });
    const h = await waitForNode(
      redis,
      keys,
      'fs1',
      (x) => x.state === 'up' && x.owner === 'm-outage',
      'republished',
      15_000,
    );
    assert.equal(h.sip, `127.0.0.1:${node.sipPort}`);
    assert.deepEqual(await redis.smembers(keys.nodes), ['fs1']);
    assert.equal(await redis.get(keys.alive('fs1')), 'm-outage');
    assert.deepEqual(monitor.ownedNodes, ['fs1']);
  });

  it('lets go of its leases while Redis is frozen, still stops promptly, and a new start carries on', async (t) => {
    if (!server.controllable) {
      t.skip('REDIS_URL names a server this test cannot freeze');
      return;
    }
    const prefix = testPrefix('frozen');
    const keys = new ClusterKeys(prefix);
    const node = await FsNode.start({});
    const raw = rawConfig({ redisUrl: server.url, prefix, nodes: [node], monitorId: 'm-frozen' });
    raw.redis = { url: server.url, commandTimeoutMs: 300, maxRetryDelayMs: 200 };
    const first = await startMonitor(parseConfig(raw, {}));
    const redis = new Redis(server.url, { retryStrategy: () => 50 });
    redis.on('error', () => undefined);
    t.after(async () => {
      await server.thaw();
      await first.close();
      await node.close();
      redis.disconnect();
    });
    await waitForNode(redis, keys, 'fs1', (h) => h.state === 'up', 'up');
    const lost = new Promise((resolve) => first.once('lost', resolve));
    await server.freeze();
    await lost;
    await waitFor('ESL connection closed', () => node.eslClientCount === 0);
    // Commands time out instead of waiting for a server that does not answer: stopping works.
    await within('close while Redis is frozen', 10_000, first.close());
    await server.thaw();
    const second = await startMonitor(parseConfig(raw, {}));
    t.after(() => second.close());
    const h = await waitForNode(
      redis,
      keys,
      'fs1',
      (x) => x.state === 'up' && x.owner === 'm-frozen',
      'owned again',
      15_000,
    );
    assert.ok(Number(h.heartbeatAt) > Date.now() - 5000);
    await waitFor('watching again', () => node.eslClientCount === 1);
  });
});
