import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { ClusterKeys, parseConfig } from '@fslb/shared';
import { SipUac } from '@fslb/fs-sim';
import type { Monitor } from '@fslb/monitor';
import { freeswitchBin, freeswitchTarget, simulatorTarget, type FsTarget } from '../contract/fs-target.js';
import { connectModesl, type ModeslClient } from '../fs-sim/test-support/modesl-client.js';
import { deletePrefix, startRedis, testPrefix, type TestRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { fastMonitor, startMonitor, waitForNode } from './support.js';

/**
 * The monitor's main scenarios, driven only through FreeSWITCH's own protocols (ESL commands
 * and SIP calls), so that they run against the simulator always and against a real FreeSWITCH
 * when FSLB_FREESWITCH_BIN names one.
 */
const bin = freeswitchBin();
const REAL_SKIP = bin ? false : 'FSLB_FREESWITCH_BIN is not set (no FreeSWITCH on this machine)';
if (REAL_SKIP) console.log(`skipping the monitor scenarios against a real FreeSWITCH: ${REAL_SKIP}`);

const targets: { label: string; make: () => Promise<FsTarget>; skip: string | false }[] = [
  { label: 'simulator', make: simulatorTarget, skip: false },
  { label: 'real FreeSWITCH', make: () => freeswitchTarget(bin ?? ''), skip: REAL_SKIP },
];

for (const { label, make, skip } of targets) {
  describe(`monitor scenarios: ${label}`, { skip, timeout: 120_000 }, () => {
    let server: TestRedis;
    let redis: Redis;
    let target: FsTarget;
    let control: ModeslClient;
    let monitor: Monitor;
    let uac: SipUac;
    const prefix = testPrefix('contract');
    const keys = new ClusterKeys(prefix);

    before(async () => {
      server = await startRedis();
      redis = new Redis(server.url);
      target = await make();
      control = await connectModesl(target.eslPort, target.password);
      uac = await SipUac.start();
      const cfg = parseConfig(
        {
          redis: { url: server.url },
          prefix,
          nodes: [
            {
              id: 'fs1',
              sip: `${target.host}:${target.sipPort}`,
              esl: { host: target.host, port: target.eslPort, password: target.password },
              sipProfile: target.profile,
              maxSessions: 80,
            },
          ],
          monitor: { ...fastMonitor, id: 'm-contract', reconcileIntervalMs: 500 },
          log: { level: process.env.FSLB_TEST_LOG ?? 'silent' },
        },
        {},
      );
      monitor = await startMonitor(cfg);
    });
    after(async () => {
      await monitor.close();
      control.close();
      await uac.close();
      await target.stop();
      await deletePrefix(redis, prefix);
      redis.disconnect();
      await server.close();
    });

    it('publishes the node up, with the lower of its own and the configured session cap', async () => {
      const h = await waitForNode(redis, keys, 'fs1', (x) => x.state === 'up', 'up', 20_000);
      assert.equal(h.owner, 'm-contract');
      assert.equal(h.maxSessions, '80');
      assert.equal(h.sessions, '0');
    });

    it('drains while the core is paused for inbound calls, and returns when resumed', async () => {
      await control.api('fsctl pause inbound');
      const d = await waitForNode(redis, keys, 'fs1', (x) => x.state === 'draining', 'draining');
      assert.equal(d.reason, 'paused');
      await control.api('fsctl resume inbound');
      await waitForNode(redis, keys, 'fs1', (x) => x.state === 'up', 'up');
    });

    it('counts a SIP call as it starts and as it ends', async () => {
      const call = uac.invite({ host: target.host, port: target.sipPort });
      const answer = await call.final();
      assert.equal(answer.status, 200);
      await waitForNode(redis, keys, 'fs1', (x) => Number(x.sessions) >= 1, 'a session');
      await call.bye();
      await waitForNode(redis, keys, 'fs1', (x) => x.sessions === '0', 'no session');
    });

    it('counts a call on the limits its INVITE names from its channel events, and rebuilds them from the channel list', async () => {
      const counter = keys.limit('tenant:contract');
      const call = uac.invite(
        { host: target.host, port: target.sipPort },
        { headers: ['X-Fslb-Limits: tenant:contract'] },
      );
      assert.equal((await call.final()).status, 200);
      await waitFor(
        'the call live on the counter',
        async () => (await redis.zscore(counter, `${call.callId};${call.fromTag}`)) === 'inf',
      );
      // Redis lost the counter: the next reconcile reads the channel list and puts it back.
      await redis.del(counter, keys.live('fs1'));
      await waitFor('the counter rebuilt', async () => (await redis.zcard(counter)) === 1, {
        timeoutMs: 5000,
      });
      await call.bye();
      await waitFor('the counter empty', async () => (await redis.zcard(counter)) === 0);
    });

    it('marks the node down when it shuts down', async () => {
      await target.stop();
      const h = await waitForNode(redis, keys, 'fs1', (x) => x.state === 'down', 'down', 20_000);
      assert.match(h.reason ?? '', /shutdown|connection (lost|refused)/);
    });
  });
}
