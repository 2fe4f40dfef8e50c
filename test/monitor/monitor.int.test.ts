import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { ClusterKeys, decodeNodeRecord, parseConfig } from '@fslb/shared';
import { Monitor } from '@fslb/monitor';
import { FsNode } from '@fslb/fs-sim';
import { deletePrefix, testPrefix, useRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { config, rawConfig, recordEvents, records, startMonitor, waitForNode } from './support.js';
import { captureLogger } from '../support/log-capture.js';

describe('monitor against simulated FreeSWITCH nodes', () => {
  const r = useRedis({ before, after });

  /** A prefix, its keys, n simulated nodes and one monitor over them; all torn down after the test. */
  async function scene(t: TestContext, n = 1, opts: { maxSessions?: number; cap?: number } = {}) {
    const prefix = testPrefix('mon');
    const keys = new ClusterKeys(prefix);
    const nodes: FsNode[] = [];
    for (let i = 0; i < n; i++) {
      nodes.push(
        await FsNode.start({
          heartbeatMs: 500,
          ...(opts.maxSessions ? { maxSessions: opts.maxSessions } : {}),
        }),
      );
    }
    const cfg = config({
      redisUrl: r.server.url,
      prefix,
      nodes,
      monitorId: `m-${prefix}`,
      ...(opts.cap ? { nodeExtra: () => ({ maxSessions: opts.cap }) } : {}),
    });
    const monitor = await startMonitor(cfg);
    t.after(async () => {
      await monitor.close();
      await Promise.all(nodes.map((x) => x.close()));
      await deletePrefix(r.client, prefix);
    });
    return { prefix, keys, nodes, monitor, cfg };
  }

  it('publishes a live node as up, owned, with its caps and a fresh liveness key', async (t) => {
    const { keys, monitor } = await scene(t, 1, { maxSessions: 120, cap: 150 });
    const h = await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'up', 'up');
    assert.equal(h.owner, monitor.id);
    assert.equal(h.reason, '');
    assert.equal(h.maxSessions, '119'); // FreeSWITCH's 120 less the new call's own session
    assert.equal(h.cap, '150');
    assert.equal(h.sessions, '0');
    assert.ok(Number(h.heartbeatAt) > Date.now() - 5000);
    assert.deepEqual(await r.client.smembers(keys.nodes), ['fs1']);
    assert.equal(await r.client.get(keys.alive('fs1')), monitor.id);
    assert.ok((await r.client.pttl(keys.alive('fs1'))) > 0);
    assert.ok((await r.client.get(keys.lease('fs1')))?.length);
    assert.deepEqual(monitor.ownedNodes, ['fs1']);
    // The password never reaches Redis.
    const all = JSON.stringify(await r.client.hgetall(keys.node('fs1')));
    assert.ok(!all.includes('ClueCon'));
  });

  it('marks a crashed node down, and up again when it returns', async (t) => {
    const { keys, nodes } = await scene(t);
    await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'up', 'up');
    await nodes[0]!.crash();
    const down = await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'down', 'down');
    assert.match(down.reason ?? '', /connection (lost|refused)/);
    await nodes[0]!.restart();
    await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'up', 'up again');
  });

  it('marks a stalled node down by probe timeout', async (t) => {
    const { keys, nodes } = await scene(t);
    await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'up', 'up');
    nodes[0]!.stall();
    const down = await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'down', 'down');
    assert.equal(down.reason, 'probe timeout');
    nodes[0]!.unstall();
    await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'up', 'up after the stall ends');
  });

  it('reports a refused password as auth, and recovers when it is accepted', async (t) => {
    const { keys, nodes } = await scene(t);
    await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'up', 'up');
    nodes[0]!.refuseAuth(true);
    nodes[0]!.dropEsl();
    const down = await waitForNode(
      r.client,
      keys,
      'fs1',
      (x) => x.state === 'down' && x.reason === 'auth',
      'auth',
    );
    assert.equal(down.reason, 'auth');
    nodes[0]!.refuseAuth(false);
    // Auth failures retry slowly (5 s base): allow for one retry.
    await waitForNode(
      r.client,
      keys,
      'fs1',
      (x) => x.state === 'up',
      'up with the password accepted',
      15_000,
    );
  });

  it('drains a paused node and brings it back when resumed', async (t) => {
    const { keys, nodes } = await scene(t);
    await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'up', 'up');
    nodes[0]!.pause();
    const d = await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'draining', 'draining');
    assert.equal(d.reason, 'paused');
    nodes[0]!.resume();
    await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'up', 'up');
  });

  it('drains on an elegant shutdown, then marks the node down', async (t) => {
    const { keys, nodes } = await scene(t);
    await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'up', 'up');
    const events = await recordEvents(t, r.client, keys);
    const seen = (): string[] => records(events).map((x) => `${x.state}:${x.reason}`);
    await nodes[0]!.shutdownElegant({ graceMs: 300 });
    const h = await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'down', 'down');
    assert.equal(h.reason, 'shutdown');
    await waitFor('the down event', () => seen().includes('down:shutdown'));
    const order = seen();
    assert.ok(order.includes('draining:shutdown requested'), order.join(', '));
    assert.ok(
      order.indexOf('draining:shutdown requested') < order.indexOf('down:shutdown'),
      order.join(', '),
    );
  });

  // Frames that break the parser or desynchronise the stream end the connection.
  for (const kind of ['bad-percent', 'bad-json', 'short-body'] as const) {
    it(`reconnects after a malformed ESL frame (${kind}), and the process carries on`, async (t) => {
      const { keys, nodes } = await scene(t);
      const node = nodes[0]!;
      await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'up', 'up');
      let auths = 0;
      node.on('eslCommand', (line) => {
        if (line.startsWith('auth ')) auths++;
      });
      node.sendMalformed(kind);
      await waitFor('a new ESL connection (auth)', () => auths >= 1);
      await waitFor('one connection again', () => node.eslClientCount === 1);
      await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'up', 'up');
    });
  }

  // Frames that stay framed (no Content-Type, or numbers that are not numbers) are ignored.
  for (const kind of ['garbage', 'bad-values'] as const) {
    it(`ignores a well-framed but meaningless ESL frame (${kind}) and keeps a valid record`, async (t) => {
      const { keys, nodes } = await scene(t);
      const node = nodes[0]!;
      const before = await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'up', 'up');
      let auths = 0;
      node.on('eslCommand', (line) => {
        if (line.startsWith('auth ')) auths++;
      });
      node.sendMalformed(kind);
      // Probes go on answering on the same connection: heartbeatAt moves on.
      const h = await waitForNode(
        r.client,
        keys,
        'fs1',
        (x) => Number(x.heartbeatAt) > Number(before.heartbeatAt) + 300,
        'later probes',
      );
      assert.ok(decodeNodeRecord(h).ok, JSON.stringify(h));
      assert.equal(h.state, 'up');
      assert.equal(auths, 0);
    });
  }

  it('drains a node whose SIP profile stops running', async (t) => {
    const prefix = testPrefix('profile');
    const keys = new ClusterKeys(prefix);
    const node = await FsNode.start({});
    const monitor = await startMonitor(
      config({
        redisUrl: r.server.url,
        prefix,
        nodes: [node],
        monitorId: 'm-prof',
        nodeExtra: () => ({ sipProfile: 'external' }),
      }),
    );
    t.after(async () => {
      await monitor.close();
      await node.close();
      await deletePrefix(r.client, prefix);
    });
    await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'up', 'up');
    node.setProfileRunning(false);
    const d = await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'draining', 'draining');
    assert.equal(d.reason, 'profile external not RUNNING');
    node.setProfileRunning(true);
    await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'up', 'up');
  });

  it('never writes an ESL password to its logs', async (t) => {
    const prefix = testPrefix('secret');
    const keys = new ClusterKeys(prefix);
    const secret = 'Esl-S3cret-Pw';
    const node = await FsNode.start({ password: secret });
    const { log, text } = captureLogger('trace');
    const raw = rawConfig({ redisUrl: r.server.url, prefix, nodes: [node], monitorId: 'm-secret' });
    (raw.nodes as { esl: { password: string } }[])[0]!.esl.password = secret;
    const monitor = new Monitor({ config: parseConfig(raw, {}), log, http: false });
    await monitor.start();
    t.after(async () => {
      await monitor.close();
      await node.close();
      await deletePrefix(r.client, prefix);
    });
    await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'up', 'up');
    node.refuseAuth(true);
    node.dropEsl();
    await waitForNode(r.client, keys, 'fs1', (x) => x.reason === 'auth', 'auth refused');
    assert.ok(text().includes('ESL password refused'));
    assert.ok(!text().includes(secret));
    assert.ok(!JSON.stringify(await r.client.hgetall(keys.node('fs1'))).includes(secret));
  });

  it('moves sessions with channel events and corrects them from FreeSWITCH counts', async (t) => {
    const { keys, nodes } = await scene(t);
    await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'up', 'up');
    nodes[0]!.setSessions(7);
    await waitForNode(r.client, keys, 'fs1', (x) => x.sessions === '7', 'sessions=7');
    nodes[0]!.setSessions(2);
    await waitForNode(r.client, keys, 'fs1', (x) => x.sessions === '2', 'sessions=2');
  });

  it('stops watching when another monitor holds the lease, and its stale writes are refused', async (t) => {
    const { keys, nodes, monitor } = await scene(t);
    await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'up', 'up');
    const lost = new Promise<string>((resolve) => monitor.once('lost', (_id, reason) => resolve(reason)));
    // Another owner takes over: its token is now the lease. (As if this monitor had paused past its TTL.)
    await r.client.set(keys.lease('fs1'), 'someone-else', 'PX', 60_000);
    await r.client.hset(
      keys.node('fs1'),
      'owner',
      'mon-new',
      'state',
      'draining',
      'reason',
      'set by the new owner',
    );
    nodes[0]!.pause(); // would make the old owner write `draining: paused`
    assert.match(await lost, /fenced|taken/);
    await waitFor('ESL connection closed', () => nodes[0]!.eslClientCount === 0);
    const h = await r.client.hgetall(keys.node('fs1'));
    assert.equal(h.owner, 'mon-new');
    assert.equal(h.reason, 'set by the new owner');
    assert.deepEqual(monitor.ownedNodes, []);
  });

  it('serves /healthz, /readyz and /metrics', async (t) => {
    const prefix = testPrefix('http');
    const node = await FsNode.start({});
    const cfg = config({ redisUrl: r.server.url, prefix, nodes: [node], monitorId: 'm-http' });
    const { Monitor } = await import('@fslb/monitor');
    const { testLogger } = await import('./support.js');
    const monitor = new Monitor({ config: cfg, log: testLogger() });
    await monitor.start();
    t.after(async () => {
      await monitor.close();
      await node.close();
      await deletePrefix(r.client, prefix);
    });
    const base = `http://127.0.0.1:${monitor.httpPort ?? 0}`;
    await waitForNode(r.client, new ClusterKeys(prefix), 'fs1', (x) => x.state === 'up', 'up');
    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(((await health.json()) as { owned: string[] }).owned, ['fs1']);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /fslb_monitor_leases_held 1/);
    assert.match(metrics, /fslb_monitor_esl_connections\{state="connected"\} 1/);
    assert.match(metrics, /fslb_monitor_probe_duration_seconds_count\{node="fs1",result="ok"\} [1-9]/);
    assert.match(metrics, /fslb_monitor_publishes_total\{outcome="changed"\} [1-9]/);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
  });

  it('keeps the version rising and publishes every change as an event', async (t) => {
    const { keys, nodes } = await scene(t);
    const events = await recordEvents(t, r.client, keys);
    await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'up', 'up');
    nodes[0]!.pause();
    await waitForNode(r.client, keys, 'fs1', (x) => x.state === 'draining', 'draining');
    await waitFor('events', () => events.some((e) => e.type === 'node' && e.record.state === 'draining'));
    const versions = events.flatMap((e) => (e.type === 'load' ? [] : [e.version]));
    assert.deepEqual(
      versions,
      [...versions].sort((a, b) => a - b),
    );
    assert.equal(new Set(versions).size, versions.length);
  });
});
