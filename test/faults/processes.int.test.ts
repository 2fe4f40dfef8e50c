import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../support/wait.js';
import { liveSlots } from '../support/redis.js';
import { FaultRig, faultMonitor } from './rig.js';
import { clusterHealthy, report, useFaultRedis } from './support.js';

/**
 * Process faults under a steady call load (the monitors' timings of `faultMonitor`: probe every
 * 250 ms, timeout 1.5 s, lease 2 s): a monitor or a proxy killed, drachtio-server's connection
 * dropped, a node crashed or stalled. No call goes to a node past its detection window, no other
 * process dies, and the cluster heals by itself.
 */
describe('faults: processes', () => {
  const redis = useFaultRedis({ before, after });

  it('a monitor SIGKILLed: its nodes are taken over within lease TTL + 1 s, none goes dark, calls go on', async (t) => {
    const r = redis();
    const rig = await FaultRig.start(
      t,
      { redis: { url: r.url }, nodes: 4, monitors: 2, proxies: 2 },
      r.client,
    );
    const load = rig.load(25);
    // Both monitors own nodes before one dies.
    const owners = async (): Promise<(string | null)[]> =>
      Promise.all(rig.nodes.map((n) => r.client.hget(rig.keys.node(n.id), 'owner')));
    await waitFor('nodes shared by both monitors', async () => new Set(await owners()).size === 2);
    const victim = rig.monitors[0];
    assert.ok(victim);
    const orphans = rig.nodes.map((n) => n.id);
    const darkened = new Set<string>();
    const watch = setInterval(() => {
      void Promise.all(orphans.map((id) => r.client.exists(rig.keys.alive(id)))).then((a) =>
        a.forEach((x, i) => x === 0 && darkened.add(orphans[i] ?? '')),
      );
    }, 20);
    const killedAt = Date.now();
    victim.signal('SIGKILL');
    await waitFor(
      'every node owned by the survivor',
      async () => (await owners()).every((o) => o === 'mon-2'),
      {
        timeoutMs: 5000,
        intervalMs: 20,
      },
    );
    const takeoverMs = Date.now() - killedAt;
    await waitFor('calls after the takeover', () => load.connected(killedAt + takeoverMs) >= 20);
    clearInterval(watch);
    await load.stop();
    report('monitor SIGKILL', { takeoverMs, darkened: [...darkened], outcomes: load.summary() });
    const windowMs = faultMonitor.leaseTtlMs + 1000;
    assert.ok(
      takeoverMs <= windowMs,
      `taken over in ${takeoverMs} ms (window: lease + 1 s = ${windowMs} ms)`,
    );
    assert.deepEqual([...darkened], [], 'no liveness key expired meanwhile');
    assert.equal(load.connected(), load.sent(), 'every call connected');
    const took = rig.monitors[1]?.grep(/lease acquired: watching node/).length ?? 0;
    assert.ok(took >= 4, `the survivor logs each node it took (${took} lines)`);
    for (const p of rig.proxies) assert.equal(p.exit, undefined);
  });

  it('a proxy SIGKILLed with the cluster full: its reservations lapse, no node is ever overbooked', async (t) => {
    const r = redis();
    // 3 nodes of 20 sessions, 2 s calls offered at 100/s: the cluster stays full and the
    // proxies answer the excess with 503. A slot lives from its reservation to the node's
    // CHANNEL_CREATE, a few ms: the proxy is killed as soon as one is seen held.
    const rig = await FaultRig.start(
      t,
      {
        redis: { url: r.url },
        nodes: 3,
        monitors: 1,
        proxies: 2,
        holdMs: 2000,
        maxSessions: 21,
      },
      r.client,
    );
    const max = Number(await r.client.hget(rig.keys.node('fs1'), 'maxSessions'));
    const peak = new Map<string, number>();
    const sample = setInterval(() => {
      void Promise.all(rig.nodes.map((n) => r.client.hget(rig.keys.node(n.id), 'sessions'))).then((v) =>
        v.forEach((x, i) => {
          const id = rig.nodes[i]?.id ?? '';
          peak.set(id, Math.max(peak.get(id) ?? 0, Number(x)));
        }),
      );
    }, 20);
    t.after(() => clearInterval(sample));
    const load = rig.load(10);
    const sessions = async (): Promise<number> =>
      (await Promise.all(rig.nodes.map((n) => r.client.hget(rig.keys.node(n.id), 'sessions')))).reduce(
        (a, x) => a + Number(x),
        0,
      );
    await waitFor('the cluster full', async () => (await sessions()) >= 3 * max - 3, { timeoutMs: 10_000 });
    const victim = rig.proxies[0];
    assert.ok(victim);
    const held = await waitFor(
      'a reservation held',
      async () => {
        const n = await Promise.all(rig.nodes.map((x) => r.client.zcard(rig.keys.resv(x.id))));
        return n.some((x) => x > 0) ? n : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 1 },
    );
    const killedAt = Date.now();
    await victim.stop('SIGKILL');
    await waitFor('3 s more through the survivor', () => Date.now() - killedAt >= 3000, { intervalMs: 50 });
    // Calls the dead proxy was handling never get a final answer: wait only briefly for the rest.
    await load.stop(3000);
    clearInterval(sample);
    const live = (): Promise<number[]> =>
      Promise.all(rig.nodes.map(async (n) => (await liveSlots(r.client, rig.keys.resv(n.id))).calls));
    await waitFor('no live reservation left', async () => (await live()).every((n) => n === 0), {
      timeoutMs: 5000,
    });
    const refusedByNodes = load.calls.filter((c) =>
      c.req.proxyCommands[0]?.reply.continues.some((m) => m.status === 503),
    ).length;
    report('proxy SIGKILL, cluster full', {
      max,
      reservationsWhenKilled: held,
      peakSessions: Object.fromEntries(peak),
      refusedByNodes,
      connectedAfterKill: load.connected(killedAt),
      outcomes: load.summary(),
    });
    assert.ok(
      held.some((n) => n > 0),
      'reservations were held when the proxy died',
    );
    for (const [id, p] of peak) assert.ok(p <= max, `${id} peaked at ${p} sessions, over its ${max}`);
    assert.equal(refusedByNodes, 0, 'no node refused a call for capacity');
    assert.ok(load.connected(killedAt) >= 10, 'the survivor kept connecting calls as slots freed');
    const survivor = rig.proxies[1];
    assert.ok(survivor && survivor.exit === undefined);
  });

  it('drachtio-server connection dropped and restored: the proxy reconnects and takes calls again', async (t) => {
    const r = redis();
    const rig = await FaultRig.start(
      t,
      { redis: { url: r.url }, nodes: 2, monitors: 1, proxies: 1 },
      r.client,
    );
    const p = rig.proxies[0];
    assert.ok(p);
    const load = rig.load(25);
    await waitFor('calls connecting', () => load.connected() >= 10);
    const droppedAt = Date.now();
    await p.double.dropConnections();
    await p.double.routed(['invite', 'options']);
    const back = Date.now() - droppedAt;
    await waitFor('calls connecting again', () => load.connected(droppedAt + back) >= 20);
    // A call in flight when the socket dropped gets no final answer: wait only briefly.
    await load.stop(3000);
    report('drachtio connection dropped', { reconnectMs: back, outcomes: load.summary() });
    assert.equal(p.exit, undefined, 'the proxy still runs');
    assert.ok(back <= 6000, `reconnected in ${back} ms (backoff capped at 5 s)`);
  });

  it('a flood from one source under load: every other caller connects, and the log stays short', async (t) => {
    const r = redis();
    const rig = await FaultRig.start(
      t,
      {
        redis: { url: r.url },
        nodes: 2,
        monitors: 1,
        proxies: 1,
        maxSessions: 1000,
        // The steady load comes from the double's own address, a trusted SBC; the flood from a
        // stranger with 20 INVITEs a second of its own (a burst of 5), against a replica that
        // takes 100 (a burst of 10). A source's burst above the replica's could empty the
        // replica's bucket for a moment by itself.
        proxy: { maxCps: 100, rateLimit: { perSourcePerSec: 20, burst: 5, trusted: ['127.0.0.1/32'] } },
      },
      r.client,
    );
    const p = rig.proxies[0];
    assert.ok(p);
    const load = rig.load(50);
    await waitFor('calls connecting', () => load.connected() >= 5);
    const floodAt = Date.now();
    const flood: ReturnType<typeof p.double.inject>[] = [];
    // 300 INVITEs a second for 3 s from 127.0.0.2.
    const timer = setInterval(() => {
      const due = Math.floor(((Date.now() - floodAt) * 300) / 1000) - flood.length;
      for (let i = 0; i < due; i++)
        flood.push(
          p.double.inject({ method: 'INVITE', sdp: true }, { source: { address: '127.0.0.2', port: 5060 } }),
        );
    }, 10);
    t.after(() => clearInterval(timer));
    await waitFor('3 s of flood', () => Date.now() - floodAt >= 3000, { timeoutMs: 10_000 });
    clearInterval(timer);
    const floodEnd = Date.now();
    await load.stop();
    const through = flood.filter((c) => c.finalResponse?.status === 200).length;
    const aboutFlood = p.warnings.filter((l) => l.includes('127.0.0.2'));
    report('a flood from one source', {
      flood: flood.length,
      floodThrough: through,
      loadDuringFlood: `${load.connected(floodAt, floodEnd)}/${load.sent(floodAt, floodEnd)}`,
      linesAboutFlood: aboutFlood.length,
      outcomes: load.summary(),
    });
    assert.equal(
      load.connected(floodAt, floodEnd),
      load.sent(floodAt, floodEnd),
      'every other call connected',
    );
    assert.ok(through <= 5 + 20 * 4, `the flood kept to its own rate: ${through}`);
    assert.ok(aboutFlood.length <= 2, `lines about the flood: ${aboutFlood.length}`);
    assert.equal(p.exit, undefined, 'the proxy still runs');
  });

  it('a node crashed (process killed): out of routing within 1 s, the rest take the load', async (t) => {
    const r = redis();
    const rig = await FaultRig.start(
      t,
      { redis: { url: r.url }, nodes: 3, monitors: 1, proxies: 2 },
      r.client,
    );
    const load = rig.load(25);
    await waitFor('calls connecting', () => load.connected() >= 20);
    const crashedAt = Date.now();
    await rig.node('fs2').proc.stop('SIGKILL');
    await waitFor(
      'fs2 down in Redis',
      async () => (await r.client.hget(rig.keys.node('fs2'), 'state')) === 'down',
    );
    const detectMs = Date.now() - crashedAt;
    await waitFor('calls after the crash', () => load.connected(crashedAt + 1000) >= 40);
    await load.stop();
    const late = load.sentTo('fs2', crashedAt + 1000);
    report('node crashed', {
      detectMs,
      sentToCrashedAfterWindow: late.length,
      outcomes: load.summary(crashedAt),
    });
    assert.equal(late.length, 0, 'no call sent to fs2 first more than 1 s after its crash');
    const failed = load.calls.filter((c) => c.at >= crashedAt && c.req.finalResponse?.status !== 200);
    assert.equal(failed.length, 0, 'calls sent meanwhile failed over to live nodes');
    await clusterHealthy(rig, { timeoutMs: 1000, except: ['fs2'] });
  });

  it('a node stalled (SIGSTOP): out of routing within probe interval + timeout + 1 s, back when it resumes', async (t) => {
    const r = redis();
    const rig = await FaultRig.start(
      t,
      { redis: { url: r.url }, nodes: 3, monitors: 1, proxies: 2 },
      r.client,
    );
    const load = rig.load(25);
    await waitFor('calls connecting', () => load.connected() >= 20);
    const stalled = rig.node('fs3');
    const stalledAt = Date.now();
    stalled.proc.signal('SIGSTOP');
    t.after(() => stalled.proc.signal('SIGCONT'));
    await waitFor(
      'fs3 down in Redis',
      async () => (await r.client.hget(rig.keys.node('fs3'), 'state')) === 'down',
    );
    const detectMs = Date.now() - stalledAt;
    const windowMs = faultMonitor.probeIntervalMs + faultMonitor.probeTimeoutMs + 1000;
    await waitFor('calls after the window', () => load.connected(stalledAt + windowMs) >= 40);
    stalled.proc.signal('SIGCONT');
    const resumedAt = Date.now();
    await waitFor('fs3 up again', async () => (await r.client.hget(rig.keys.node('fs3'), 'state')) === 'up', {
      timeoutMs: 5000,
    });
    const backMs = Date.now() - resumedAt;
    await waitFor('fs3 takes calls again', () => load.sentTo('fs3', resumedAt + backMs).length >= 3);
    await load.stop();
    const late = load.sentTo('fs3', stalledAt + windowMs).filter((c) => c.at < resumedAt);
    report('node stalled', {
      detectMs,
      backMs,
      sentToStalledAfterWindow: late.length,
      outcomes: load.summary(),
    });
    assert.ok(detectMs <= windowMs, `down in Redis ${detectMs} ms after the stall`);
    assert.equal(late.length, 0, 'no call sent to the stalled node past its window');
  });
});
