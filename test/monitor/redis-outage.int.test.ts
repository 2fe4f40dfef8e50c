import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { ClusterKeys, parseConfig } from '@fslb/shared';
import { FsNode } from '@fslb/fs-sim';
import type { Monitor } from '@fslb/monitor';
import { testPrefix, useRedis } from '../support/redis.js';
import { waitFor, within } from '../support/wait.js';
import { rawConfig, startMonitor, waitForNode } from './support.js';

describe('monitor through a Redis outage', () => {
  const r = useRedis({ before, after });

  /**
   * One node watched by one monitor, up; then `fault` is done to Redis and the test waits
   * until the monitor has let go of the lease and closed its ESL connection.
   */
  async function ownedThenFault(
    t: TestContext,
    monitorId: string,
    redis: Record<string, unknown>,
    fault: () => Promise<void>,
  ) {
    const prefix = testPrefix(monitorId);
    const keys = new ClusterKeys(prefix);
    const node = await FsNode.start({});
    const raw = rawConfig({ redisUrl: r.server.url, prefix, nodes: [node], monitorId });
    raw.redis = { url: r.server.url, ...redis };
    const monitor = await startMonitor(parseConfig(raw, {}));
    t.after(async () => {
      await r.server.thaw();
      await monitor.close();
      await node.close();
    });
    await waitForNode(r.client, keys, 'fs1', (h) => h.state === 'up', 'up');
    const lost = new Promise((resolve) => monitor.once('lost', resolve));
    await fault();
    // Without Redis the lease cannot be extended: past its TTL the monitor must stop acting as owner.
    await lost;
    await waitFor('ESL connection closed', () => node.eslClientCount === 0);
    assert.deepEqual(monitor.ownedNodes, []);
    return { keys, node, monitor, raw };
  }

  /** Waits until the node is up again, owned by `owner`, and watched over ESL. */
  async function ownedAgain(keys: ClusterKeys, node: FsNode, owner: string): Promise<Record<string, string>> {
    await waitFor('redis client back', () => r.client.status === 'ready', { timeoutMs: 10_000 });
    const h = await waitForNode(
      r.client,
      keys,
      'fs1',
      (x) => x.state === 'up' && x.owner === owner,
      'owned again',
      15_000,
    );
    await waitFor('watching again', () => node.eslClientCount === 1);
    return h;
  }

  it('lets go of its leases while Redis is gone and republishes everything when it returns empty', async (t) => {
    if (!r.server.controllable) {
      t.skip('REDIS_URL names a server this test cannot kill');
      return;
    }
    const { keys, node, monitor } = await ownedThenFault(t, 'm-outage', { maxRetryDelayMs: 200 }, () =>
      r.server.kill(),
    );
    // Redis comes back with nothing in it (no persistence).
    await r.server.restart();
    const h = await ownedAgain(keys, node, 'm-outage');
    assert.equal(h.sip, `127.0.0.1:${node.sipPort}`);
    assert.deepEqual(await r.client.smembers(keys.nodes), ['fs1']);
    assert.equal(await r.client.get(keys.alive('fs1')), 'm-outage');
    assert.deepEqual(monitor.ownedNodes, ['fs1']);
  });

  it('lets go of its leases while Redis is frozen, still stops promptly, and a new start carries on', async (t) => {
    if (!r.server.controllable) {
      t.skip('REDIS_URL names a server this test cannot freeze');
      return;
    }
    const { keys, node, monitor, raw } = await ownedThenFault(
      t,
      'm-frozen',
      { commandTimeoutMs: 300, maxRetryDelayMs: 200 },
      () => r.server.freeze(),
    );
    // Commands time out instead of waiting for a server that does not answer: stopping works.
    await within('close while Redis is frozen', 10_000, monitor.close());
    await r.server.thaw();
    const second: Monitor = await startMonitor(parseConfig(raw, {}));
    t.after(() => second.close());
    const h = await ownedAgain(keys, node, 'm-frozen');
    assert.ok(Number(h.heartbeatAt) > Date.now() - 5000);
  });
});
