import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ClusterKeys, parseConfig } from '@fslb/shared';
import { FsCluster } from '@fslb/fs-sim';
import { realPeers, startDrachtioServer } from '../support/drachtio-server.js';
import { freeUdpPort } from '../support/net.js';
import { deletePrefix, testPrefix, useRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { config, fastMonitor, startMonitor, waitForNode } from '../monitor/support.js';
import { proxyConfig, startProxy, testProxy } from '../proxy/support.js';
import { freeswitchBin, freeswitchTarget } from '../contract/fs-target.js';

/**
 * End to end through real peers: SIPp calls -> a real drachtio-server -> fslb-proxy -> FreeSWITCH
 * simulators watched by a real monitor. Runs when a drachtio-server binary (FSLB_DRACHTIO_BIN or
 * `drachtio` on PATH) and `sipp` are present; otherwise it says why it skips.
 */
const peers = realPeers('real-peer end-to-end');
const skip = peers.skip;
const bin = 'bin' in peers ? peers.bin : undefined;
const sipp = 'sipp' in peers ? peers.sipp : undefined;

const scenario = fileURLToPath(new URL('sipp/uac-contact.xml', import.meta.url));

/** Runs the SIPp caller scenario against drachtio-server; resolves with its exit code and stderr. */
function runSipp(sipPort: number, sippPort: number, args: string[]) {
  const child = spawn(
    sipp as string,
    [
      `127.0.0.1:${sipPort}`,
      '-sf',
      scenario,
      '-s',
      'fslb',
      '-i',
      '127.0.0.1',
      '-p',
      String(sippPort),
      '-timeout',
      '40s',
      '-timeout_error',
      '-nostdin',
      ...args,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-5000)));
  return { child, stderr: () => stderr };
}

describe('real drachtio-server and SIPp through fslb-proxy', { skip, timeout: 90_000 }, () => {
  const r = useRedis({ before, after });

  it('completes every call and splits them by load', async (t) => {
    const prefix = testPrefix('e2e');
    const keys = new ClusterKeys(prefix);
    const sims = await FsCluster.start({ count: 3, heartbeatMs: 500, maxSessions: 200 });
    t.after(async () => {
      await sims.close();
      await deletePrefix(r.client, prefix);
    });
    // fs1 already carries 30 calls: the new ones should go mostly to fs2 and fs3.
    sims.nodes[0]!.setSessions(30);
    const monitor = await startMonitor(config({ redisUrl: r.server.url, prefix, nodes: sims.nodes }));
    t.after(() => monitor.close());
    for (const id of ['fs1', 'fs2', 'fs3']) {
      await waitForNode(r.client, keys, id, (h) => h.state === 'up' && Number(h.maxSessions) > 0, 'up');
    }
    await waitForNode(r.client, keys, 'fs1', (h) => h.sessions === '30', '30 sessions');

    const sipPort = await freeUdpPort();
    const drachtio = await startDrachtioServer(bin as string, sipPort);
    t.after(() => drachtio.close());
    const proxy = await startProxy(
      proxyConfig({ redisUrl: r.server.url, prefix, nodes: sims.nodes, drachtioPort: drachtio.appPort }),
    );
    t.after(() => proxy.close());
    await waitFor('proxy connected to drachtio-server', () => proxy.drachtioConnected, { timeoutMs: 10_000 });

    const callsBefore = sims.nodes.map((n) => n.calls().length);
    const calls = 60;
    const sippPort = await freeUdpPort();
    const run = runSipp(sipPort, sippPort, [
      '-m',
      String(calls),
      '-r',
      '40',
      '-l',
      String(calls),
      '-d',
      '3000',
    ]);
    const child = run.child;
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });

    // While the calls are held, each simulator holds what it was sent.
    const held = await waitFor(
      'every call answered and held',
      () => {
        if (child.exitCode !== null) throw new Error(`sipp exited ${child.exitCode}: ${run.stderr()}`);
        const now = sims.nodes.map((n, i) => n.calls().length - (callsBefore[i] ?? 0));
        return now.reduce((a, b) => a + b, 0) === calls ? now : undefined;
      },
      { timeoutMs: 20_000 },
    );
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(
      code,
      0,
      `sipp failed (exit ${code}): ${run.stderr()}\ndrachtio: ${drachtio.output().slice(-2000)}`,
    );
    console.log(`# calls per node (fs1 started with 30): ${held.join(' / ')}`);
    // Least loaded first: fs2 and fs3 fill up to fs1's 30 before fs1 gets any.
    assert.ok(held[0]! < held[1]! && held[0]! < held[2]!, held.join(','));
    assert.ok(Math.abs(held[1]! - held[2]!) <= 6, held.join(','));
    // Every reservation ended: settled by the monitor or released by the proxy.
    await waitFor(
      'no reservation left',
      async () =>
        (await Promise.all(['fs1', 'fs2', 'fs3'].map((id) => r.client.zcard(keys.resv(id))))).every(
          (n) => n === 0,
        ),
      { timeoutMs: 5000 },
    );
  });

  it(
    'carries calls to a real FreeSWITCH, whose CHANNEL_CREATE settles each reservation',
    {
      skip: freeswitchBin() === undefined ? 'no FreeSWITCH: set FSLB_FREESWITCH_BIN' : false,
    },
    async (t) => {
      const fs = await freeswitchTarget(freeswitchBin() as string);
      t.after(() => fs.stop());
      const prefix = testPrefix('e2e-fs');
      const keys = new ClusterKeys(prefix);
      t.after(() => deletePrefix(r.client, prefix));
      const node = {
        id: 'fs1',
        sip: `127.0.0.1:${fs.sipPort}`,
        esl: { host: '127.0.0.1', port: fs.eslPort, password: fs.password },
      };
      const sipPort = await freeUdpPort();
      const drachtio = await startDrachtioServer(bin as string, sipPort);
      t.after(() => drachtio.close());
      const cfg = parseConfig(
        {
          redis: { url: r.server.url },
          prefix,
          nodes: [node],
          monitor: fastMonitor,
          proxy: {
            ...testProxy,
            drachtio: { host: '127.0.0.1', port: drachtio.appPort, secret: drachtio.secret },
            // Slots that would outlive the test: only settling can empty the set.
            reservationMarginMs: 120_000,
          },
          log: { level: process.env.FSLB_TEST_LOG ?? 'silent' },
        },
        {},
      );
      const monitor = await startMonitor(cfg);
      t.after(() => monitor.close());
      await waitForNode(
        r.client,
        keys,
        'fs1',
        (h) => h.state === 'up' && Number(h.maxSessions) > 0,
        'up',
        20_000,
      );
      const proxy = await startProxy(cfg);
      t.after(() => proxy.close());
      await waitFor('proxy connected', () => proxy.drachtioConnected, { timeoutMs: 10_000 });

      const calls = 10;
      const run = runSipp(sipPort, await freeUdpPort(), [
        '-m',
        String(calls),
        '-r',
        '10',
        '-l',
        String(calls),
        '-d',
        '3000',
      ]);
      t.after(() => {
        if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
      });
      // While the calls are held: FreeSWITCH counts them, and every slot ends. The slots would
      // live two minutes, so an empty set means the monitor settled each one on CHANNEL_CREATE.
      // (A probe's `status` may count a call a moment before its CHANNEL_CREATE event arrives, so
      // the set empties just after the sessions reach 10, not necessarily with them.)
      await waitForNode(
        r.client,
        keys,
        'fs1',
        (h) => Number(h.sessions) >= calls,
        `${calls} sessions`,
        15_000,
      );
      await waitFor('every slot settled', async () => (await r.client.zcard(keys.resv('fs1'))) === 0, {
        timeoutMs: 2000,
      });
      assert.equal(run.child.exitCode, null, 'settled while the calls were still held');
      const [code] = (await once(run.child, 'exit')) as [number | null];
      assert.equal(code, 0, `sipp failed: ${run.stderr()}`);
      await waitForNode(r.client, keys, 'fs1', (h) => h.sessions === '0', 'calls ended', 15_000);
    },
  );
});
