import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ClusterKeys, parseConfig } from '@fslb/shared';
import { FsNode } from '@fslb/fs-sim';
import { deletePrefix, testPrefix, useRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { rawConfig, recordEvents, startMonitor, waitForNode } from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'fslb-reload-'));

describe('monitor hot reload', () => {
  const r = useRedis({ before, after });

  it('adds, changes and removes nodes from the edited file, and keeps the last good one when broken', async (t) => {
    const prefix = testPrefix('reload');
    const keys = new ClusterKeys(prefix);
    const [n1, n2, n3] = [await FsNode.start({}), await FsNode.start({}), await FsNode.start({})];
    const file = join(dir, `${prefix}.yaml`);
    // Replace the file atomically, as editors and config maps do.
    const write = (cfg: Record<string, unknown>): void => {
      writeFileSync(`${file}.tmp`, JSON.stringify(cfg));
      renameSync(`${file}.tmp`, file);
    };
    const base = rawConfig({ redisUrl: r.server.url, prefix, nodes: [n1], monitorId: 'm-reload' });
    write(base);
    const monitor = await startMonitor(parseConfig(base, {}), { configPath: file, configPollMs: 50 });
    t.after(async () => {
      await monitor.close();
      await Promise.all([n1, n2, n3].map((n) => n.close()));
      await deletePrefix(r.client, prefix);
    });
    const events = await recordEvents(t, r.client, keys);
    await waitForNode(r.client, keys, 'fs1', (h) => h.state === 'up', 'up');

    // Add fs2.
    const two = rawConfig({ redisUrl: r.server.url, prefix, nodes: [n1, n2], monitorId: 'm-reload' });
    write(two);
    await waitForNode(r.client, keys, 'fs2', (h) => h.state === 'up', 'the added node up');
    assert.deepEqual((await r.client.smembers(keys.nodes)).sort(), ['fs1', 'fs2']);

    // Change fs1: weight and cap; and point fs2's ESL at another simulator.
    const changed = rawConfig({
      redisUrl: r.server.url,
      prefix,
      nodes: [n1, n3],
      monitorId: 'm-reload',
      nodeExtra: (_n, i) => (i === 0 ? { weight: 3, maxSessions: 40 } : {}),
    });
    write(changed);
    await waitForNode(
      r.client,
      keys,
      'fs1',
      (h) => h.weight === '3' && h.maxSessions === '40',
      'new weight and cap',
    );
    await waitFor('fs2 to connect to the new address', () => n3.eslClientCount > 0);
    await waitFor('fs2 to leave the old address', () => n2.eslClientCount === 0);
    await waitForNode(r.client, keys, 'fs2', (h) => h.sip === `127.0.0.1:${n3.sipPort}`, 'new sip address');

    // A broken file: logged, refused, and the monitor keeps going on the last good one.
    const failed = new Promise((resolve) => monitor.once('reloadFailed', resolve));
    writeFileSync(file, 'nodes: [ { id: "bad id" } ]\n');
    await failed;
    assert.deepEqual((await r.client.smembers(keys.nodes)).sort(), ['fs1', 'fs2']);
    n1.pause();
    await waitForNode(
      r.client,
      keys,
      'fs1',
      (h) => h.state === 'draining',
      'still watched after a bad reload',
    );
    n1.resume();

    // Remove fs2: proxies are told, the keys go, and the ESL connection closes.
    write(rawConfig({ redisUrl: r.server.url, prefix, nodes: [n1], monitorId: 'm-reload' }));
    await waitFor('fs2 removed event', () => events.find((e) => e.type === 'removed' && e.id === 'fs2'));
    assert.deepEqual(await r.client.smembers(keys.nodes), ['fs1']);
    assert.equal(await r.client.exists(keys.node('fs2'), keys.alive('fs2'), keys.lease('fs2')), 0);
    await waitFor(
      'the removed node is let go',
      () => n3.eslClientCount === 0 && !monitor.ownedNodes.includes('fs2'),
    );
  });
});
