import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import type { Redis } from 'ioredis';
import { liveSlots, type TestRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { FaultRig } from './rig.js';
import { clusterHealthy, report, useFaultRedis } from './support.js';

/**
 * Redis faults under a steady call load: killed and restarted empty, frozen. Calls keep routing
 * through each (the proxies fall back to the last view and local accounting), no process dies,
 * and the state heals by itself within the window each case states.
 */
describe('faults: Redis', () => {
  const redis = useFaultRedis({ before, after });

  const controllable = (t: TestContext): { server: TestRedis; client: Redis } | undefined => {
    const r = redis();
    if (r.server.controllable) return r;
    const reason = 'REDIS_URL names a server this suite cannot kill, freeze or restart';
    process.stdout.write(`# skipped: ${reason}\n`);
    t.skip(reason);
    return undefined;
  };

  it('Redis killed for 10 s, then restarted empty: calls keep routing, the state is complete within 2 s', async (t) => {
    const r = controllable(t);
    if (!r) return;
    const rig = await FaultRig.start(
      t,
      { redis: { url: r.server.url }, nodes: 3, monitors: 2, proxies: 2 },
      r.client,
    );
    const load = rig.load(25);
    await waitFor('calls connecting', () => load.connected() >= 20);

    const killedAt = Date.now();
    await r.server.kill();
    await waitFor('10 s without Redis', () => Date.now() - killedAt >= 10_000, {
      timeoutMs: 12_000,
      intervalMs: 100,
    });
    const restartedAt = Date.now();
    await r.server.restart();
    const healMs = await clusterHealthy(rig, { timeoutMs: 10_000 }).then(() => Date.now() - restartedAt);
    await waitFor('calls still connecting after the restart', () => load.connected(restartedAt) >= 20);
    await load.stop();

    const during = {
      sent: load.sent(killedAt, restartedAt),
      connected: load.connected(killedAt, restartedAt),
    };
    report('redis killed 10 s, restarted empty', {
      healMs,
      duringOutage: during,
      outcomes: load.summary(),
    });
    assert.ok(during.sent >= 300, `a steady load during the outage (${during.sent} calls)`);
    assert.equal(during.connected, during.sent, 'every call sent during the outage connected');
    assert.ok(healMs <= 2000, `state complete ${healMs} ms after the restart (window 2000 ms)`);
    for (const m of rig.monitors) assert.equal(m.exit, undefined, `${m.name} still running`);
    // Said on reconnect, or as a repair when a monitor's own write finds the nodes set gone first.
    const said = rig.monitors.flatMap((m) => m.grep(/configured nodes written again/));
    assert.ok(said.length >= 1, 'a monitor says what it repaired');
    for (const p of rig.proxies) assert.equal(p.exit, undefined, `${p.id} still running`);
    await Promise.all(rig.proxies.map((p) => rig.proxyReady(p)));
  });

  it('Redis frozen (SIGSTOP) for 5 s: calls keep routing, nothing wedges, healthy within 3 s of the thaw', async (t) => {
    const r = controllable(t);
    if (!r) return;
    // The monitors' default timings: a liveness key (8.5 s) outlives a 5 s freeze, so no node
    // goes dark when Redis' clock jumps at the thaw, though the leases (5 s) may lapse.
    const monitor = { probeIntervalMs: 1000, probeTimeoutMs: 1500, leaseTtlMs: 5000, claimIntervalMs: 1000 };
    const rig = await FaultRig.start(
      t,
      { redis: { url: r.server.url }, nodes: 3, monitors: 2, proxies: 2, monitor },
      r.client,
    );
    const load = rig.load(25);
    await waitFor('calls connecting', () => load.connected() >= 20);

    const frozenAt = Date.now();
    await r.server.freeze();
    await waitFor('5 s frozen', () => Date.now() - frozenAt >= 5000, { timeoutMs: 7000, intervalMs: 100 });
    const thawedAt = Date.now();
    await r.server.thaw();
    const healMs = await clusterHealthy(rig, { timeoutMs: 10_000 }).then(() => Date.now() - thawedAt);
    await waitFor('calls connecting after the thaw', () => load.connected(thawedAt + 500) >= 20);
    await load.stop();

    const during = { sent: load.sent(frozenAt, thawedAt), connected: load.connected(frozenAt, thawedAt) };
    report('redis frozen 5 s', { healMs, duringFreeze: during, outcomes: load.summary() });
    assert.ok(during.sent >= 150, `a steady load during the freeze (${during.sent} calls)`);
    assert.equal(during.connected, during.sent, 'every call sent during the freeze connected');
    assert.ok(healMs <= 3000, `healthy ${healMs} ms after the thaw (window 3000 ms)`);
    for (const m of rig.monitors) assert.equal(m.exit, undefined, `${m.name} still running`);
    for (const p of rig.proxies) assert.equal(p.exit, undefined, `${p.id} still running`);
    // Reservation scripts queued during the freeze run at the thaw; the proxies gave up on them
    // (local accounting) and release what they took, or the slots lapse by their TTL (2 s).
    const live = (): Promise<number[]> =>
      Promise.all(rig.nodes.map(async (n) => (await liveSlots(r.client, rig.keys.resv(n.id))).calls));
    await waitFor(
      'no live reservation left over from the freeze',
      async () => (await live()).every((n) => n <= 3),
      {
        timeoutMs: 4000,
      },
    );
  });
});
