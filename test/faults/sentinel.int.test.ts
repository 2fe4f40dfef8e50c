import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { waitFor } from '../support/wait.js';
import { FaultRig } from './rig.js';
import { SentinelSet } from './sentinel.js';
import { clusterHealthy, report } from './support.js';

/**
 * Redis Sentinel failover under a steady call load: a real master, replica and three sentinels
 * on loopback. The master is SIGKILLed; the sentinels promote the replica; monitors and
 * proxies, which reach Redis through the sentinels, follow the new master by themselves.
 */
const canSentinel = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).error === undefined;

describe('faults: Redis Sentinel', () => {
  it('the master killed under load: everything follows the promoted replica, nothing wedges', async (t) => {
    if (!canSentinel) {
      const reason = 'redis-server is not on PATH';
      process.stdout.write(`# skipped: ${reason}\n`);
      t.skip(reason);
      return;
    }
    const set = await SentinelSet.start();
    t.after(() => set.close());
    const client = set.client();
    t.after(() => client.disconnect());
    const rig = await FaultRig.start(
      t,
      { redis: { section: set.section }, nodes: 3, monitors: 2, proxies: 2 },
      client,
    );
    const load = rig.load(25);
    await waitFor('calls connecting', () => load.connected() >= 20);

    const oldMaster = await set.masterPort();
    const killedAt = Date.now();
    await set.server(oldMaster).stop('SIGKILL');
    await waitFor('the sentinels promote the replica', async () => (await set.masterPort()) !== oldMaster, {
      timeoutMs: 20_000,
      intervalMs: 100,
    });
    const promotedMs = Date.now() - killedAt;
    await clusterHealthy(rig, { timeoutMs: 10_000 });
    const healedMs = Date.now() - killedAt;
    // Reservations are taken in Redis again: the proxies' view is live on the new master.
    await Promise.all(rig.proxies.map((p) => rig.proxyReady(p)));
    const taken = async (): Promise<number> => (await rig.proxies[0]?.slotsTakenInRedis()) ?? 0;
    const redisBefore = await taken();
    await waitFor('reservations in the new master', async () => (await taken()) >= redisBefore + 10);
    await load.stop();
    report('sentinel failover', { promotedMs, healedMs, outcomes: load.summary(killedAt) });
    for (const m of rig.monitors) assert.equal(m.exit, undefined, `${m.name} still runs`);
    for (const p of rig.proxies) assert.equal(p.exit, undefined, `${p.id} still runs`);
    assert.equal(load.connected(), load.sent(), 'every call connected through the failover');
    assert.ok(
      healedMs <= promotedMs + 3000,
      `state whole ${healedMs} ms after the kill (promotion ${promotedMs} ms + 3 s)`,
    );
  });
});
