import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ClusterKeys } from '@fslb/shared';
import { FsNode, SipUac } from '@fslb/fs-sim';
import { deletePrefix, testPrefix, useRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { config, recordEvents, records, startMonitor, waitForNode } from './support.js';

describe('monitor session counts from real calls', () => {
  const r = useRedis({ before, after });

  it('follows SIP calls through channel events, coalescing bursts into few publishes', async (t) => {
    const prefix = testPrefix('calls');
    const keys = new ClusterKeys(prefix);
    // A slow heartbeat and a slow probe: only CHANNEL_CREATE / CHANNEL_DESTROY can move the count quickly.
    const node = await FsNode.start({ heartbeatMs: 60_000, maxSessions: 50 });
    const cfg = config({
      redisUrl: r.server.url,
      prefix,
      nodes: [node],
      monitorId: 'm-calls',
      monitor: {
        probeIntervalMs: 10_000,
        probeTimeoutMs: 1500,
        leaseTtlMs: 5000,
        claimIntervalMs: 1000,
        coalesceMs: 200,
      },
    });
    const monitor = await startMonitor(cfg);
    const uac = await SipUac.start();
    t.after(async () => {
      await uac.close();
      await monitor.close();
      await node.close();
      await deletePrefix(r.client, prefix);
    });
    await waitForNode(r.client, keys, 'fs1', (h) => h.state === 'up', 'up');

    const events = await recordEvents(t, r.client, keys);
    const counts = (): number[] => records(events).map((x) => x.sessions);

    const target = { host: '127.0.0.1', port: node.sipPort };
    const calls = Array.from({ length: 10 }, () => uac.invite(target));
    const answers = await Promise.all(calls.map((c) => c.final()));
    assert.deepEqual(
      answers.map((a) => a.status),
      Array<number>(10).fill(200),
    );
    await waitForNode(r.client, keys, 'fs1', (h) => h.sessions === '10', 'ten sessions', 3000);
    // Ten channel events arrived within a few ms; they were published as far fewer changes.
    assert.ok(counts().length < 10, `published ${counts().length} times: ${counts().join(',')}`);

    await Promise.all(calls.slice(0, 6).map((c) => c.bye()));
    await waitForNode(r.client, keys, 'fs1', (h) => h.sessions === '4', 'four sessions after six BYEs', 3000);
    assert.equal(node.sessions, 4);
    await waitFor('the event saying 4', () => counts().at(-1) === 4);
  });

  it('publishes nothing for an idle node whose CPU figures move: they are stored for operators only', async (t) => {
    const prefix = testPrefix('idle');
    const keys = new ClusterKeys(prefix);
    const node = await FsNode.start({ heartbeatMs: 100, maxSessions: 50, idleCpu: 90 });
    const cfg = config({ redisUrl: r.server.url, prefix, nodes: [node], monitorId: 'm-idle' });
    const monitor = await startMonitor(cfg);
    t.after(async () => {
      await monitor.close();
      await node.close();
      await deletePrefix(r.client, prefix);
    });
    await waitForNode(r.client, keys, 'fs1', (h) => h.state === 'up', 'up');
    const events = await recordEvents(t, r.client, keys);
    for (const pct of [80, 70, 60]) {
      node.setIdleCpu(pct);
      await waitForNode(r.client, keys, 'fs1', (h) => h.idleCpu === String(pct), `idle CPU ${pct} stored`);
    }
    // A call moves `sessions`, which proxies read: that one is published, and nothing before it was.
    const uac = await SipUac.start();
    t.after(() => uac.close());
    const call = uac.invite({ host: '127.0.0.1', port: node.sipPort });
    assert.equal((await call.final()).status, 200);
    await waitFor('the session published', () => records(events).some((x) => x.sessions === 1));
    assert.deepEqual(
      records(events).map((x) => x.sessions),
      [1],
    );
    await call.bye();
  });
});
