import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { Cluster } from 'ioredis';
import {
  ClusterKeys,
  ClusterStore,
  onMessage,
  parseConfig,
  RedisConnections,
  SlotStatus,
} from '@fslb/shared';
import { ClusterView, ViewSource, ViewSync } from '@fslb/proxy';
import { captureLogger } from '../support/log-capture.js';
import { clusterUnavailable, TestRedisCluster } from '../support/redis-cluster.js';
import { liveSlots } from '../support/redis.js';
import { fromSource } from '../support/source-process.js';
import { waitFor } from '../support/wait.js';
import { FaultRig } from './rig.js';
import { clusterHealthy, report } from './support.js';

const run = promisify(execFile);
const root = new URL('../..', import.meta.url).pathname;

/**
 * fslb on a real Redis Cluster: three masters with a replica each (Debian's redis-server in
 * cluster mode, made and torn down here), three simulated nodes, two monitors and two proxies
 * configured with `redis.cluster`. Under a steady call load the slot that holds fslb's keys is
 * moved to another master (the load meets ASK and MOVED), then its new master is SIGKILLed and
 * its replica promoted.
 */
type Made = { cluster: TestRedisCluster; client: Cluster; close: () => Promise<void> };

/** Skips the test where no cluster can be made here, saying why. */
async function skippedWithout(t: TestContext): Promise<boolean> {
  const why = await clusterUnavailable();
  if (!why) return false;
  process.stdout.write(`# skipped: ${why}\n`);
  t.skip(why);
  return true;
}

/** A 3-master cluster and a client of it. */
async function makeCluster(): Promise<Made> {
  const cluster = await TestRedisCluster.start(3);
  const client = new Cluster(cluster.seeds, {
    clusterRetryStrategy: () => 50,
    redisOptions: { maxRetriesPerRequest: 1 },
  });
  client.on('error', () => undefined);
  return {
    cluster,
    client,
    close: async () => {
      client.disconnect();
      await cluster.close();
    },
  };
}

/** A cluster of the test's own, torn down after it; undefined (the test skipped) without one. */
async function startCluster(t: TestContext): Promise<Made | undefined> {
  if (await skippedWithout(t)) return undefined;
  const made = await makeCluster();
  t.after(() => made.close());
  return made;
}

/** `fslb <args> --config <the rig's file>`, from source, as an operator runs it. */
function cli(rig: FaultRig, ...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, fromSource('packages/cli/src/main.ts', ...args, '--config', rig.configFile), {
    cwd: root,
    env: { ...process.env, FSLB_CONFIG: '' },
    timeout: 30_000,
  });
}

describe('faults: Redis Cluster', () => {
  // One cluster for the tests that neither kill a member nor leave a slot moving, each under a
  // prefix of its own (a cluster takes seconds to make).
  let calm: Promise<Made> | undefined;
  const calmCluster = async (t: TestContext): Promise<Made | undefined> =>
    (await skippedWithout(t)) ? undefined : (calm ??= makeCluster());
  after(async () => (await calm?.catch(() => undefined))?.close());

  it('routes, settles and serves the CLI; a slot moved and a master killed under load lose no call', async (t) => {
    const made = await startCluster(t);
    if (!made) return;
    const { cluster, client } = made;
    const rig = await FaultRig.start(
      t,
      {
        redis: { section: { cluster: cluster.seeds, maxRetryDelayMs: 200 } },
        nodes: 3,
        monitors: 2,
        proxies: 2,
      },
      client,
    );
    // Every key of the prefix is hash-tagged into one slot.
    const slot = await client.cluster('KEYSLOT', rig.keys.nodes);
    assert.equal(await client.cluster('KEYSLOT', rig.keys.resv('fs1')), slot);
    assert.match(rig.keys.nodes, /^\{fault-[0-9a-f]+\}:nodes$/);

    const load = rig.load(25);
    await waitFor('calls connecting', () => load.connected() >= 20);

    // The CLI reads the cluster through the same config.
    const status = await cli(rig, 'status', '--json');
    const view = JSON.parse(status.stdout) as { nodes: { id: string; state: string }[] };
    assert.deepEqual(
      view.nodes.map((n) => `${n.id} ${n.state}`),
      ['fs1 up', 'fs2 up', 'fs3 up'],
    );

    // Drain and wait through the cluster (sharded pub/sub wakes the wait), then undrain.
    const drained = await cli(rig, 'drain', 'fs3', '--wait', '--timeout', '20s');
    assert.match(drained.stdout, /fs3 (drained|was already drained)/);
    assert.equal(await client.hget(rig.keys.node('fs3'), 'admin'), 'drain');
    await cli(rig, 'undrain', 'fs3');
    assert.equal(await client.hget(rig.keys.node('fs3'), 'admin'), '');

    // A reshard: the slot moves to another master while calls are reserved and settled in it.
    const from = await cluster.masterOf(slot);
    const to = (await cluster.masters()).find((p) => p !== from) ?? from;
    const movingAt = Date.now();
    await cluster.migrateSlot(slot, to, async () => {
      const before = load.connected();
      await waitFor('calls connecting while the slot is half moved', () => load.connected() >= before + 10);
    });
    assert.equal(await cluster.masterOf(slot), to);
    assert.equal(
      await cluster.ask(from, (r) => r.cluster('COUNTKEYSINSLOT', slot)),
      0,
      'no key left on the old master',
    );
    const movedMs = Date.now() - movingAt;
    let before = load.connected();
    await waitFor('calls connecting after the reshard', () => load.connected() >= before + 20);

    // The master that now serves the slot dies; its replica takes over.
    const killedAt = Date.now();
    await cluster.kill(to);
    await waitFor('the replica promoted', async () => (await cluster.masterOf(slot).catch(() => to)) !== to, {
      timeoutMs: 30_000,
      intervalMs: 100,
    });
    const promotedMs = Date.now() - killedAt;
    await clusterHealthy(rig, { timeoutMs: 15_000 });
    const healedMs = Date.now() - killedAt;
    await Promise.all(rig.proxies.map((p) => rig.proxyReady(p)));
    const redisReserved = async (): Promise<number> => (await rig.proxies[0]?.slotsTakenInRedis()) ?? 0;
    before = await redisReserved();
    await waitFor(
      'reservations taken in the promoted master',
      async () => (await redisReserved()) >= before + 10,
    );
    await load.stop();

    // Every call ended (300 ms hold): no call's reservation is left behind in any node's set
    // (advance slots the proxies still hold are theirs to use).
    const newMaster = await cluster.masterOf(slot);
    await waitFor(
      'no reservation left',
      async () => {
        const now = Date.now();
        const counts = await Promise.all(rig.nodes.map((n) => liveSlots(client, rig.keys.resv(n.id), now)));
        return counts.every((c) => c.calls === 0);
      },
      { timeoutMs: 10_000 },
    );

    report('redis cluster', {
      movedMs,
      promotedMs,
      healedMs,
      slot,
      masters: { from, to, newMaster },
      outcomes: load.summary(),
      failed: load.calls
        .filter((c) => c.req.finalResponse?.status !== 200)
        .map((c) => `${c.at - movingAt}ms:${c.req.finalResponse?.status ?? 'none'}`)
        .slice(0, 40),
      killedAfterMove: killedAt - movingAt,
      warnings: rig.proxies.flatMap((p) => p.warnings.map((w) => w.slice(0, 300))).slice(0, 12),
    });
    for (const m of rig.monitors) assert.equal(m.exit, undefined, `${m.name} still runs`);
    for (const p of rig.proxies) assert.equal(p.exit, undefined, `${p.id} still runs`);
    // Why calls were refused, by proxy, when some were: a failure here once came and went.
    const why =
      load.connected() === load.sent()
        ? ''
        : JSON.stringify(
            await Promise.all(
              rig.proxies.map(async (p) =>
                [...(await p.metrics().catch(() => new Map<string, number>()))].filter(([k]) =>
                  /^fslb_proxy_(reservations|refusals)_total|^fslb_proxy_eligible_nodes/.test(k),
                ),
              ),
            ),
          );
    assert.equal(
      load.connected(),
      load.sent(),
      `every call connected through the reshard and the failover ${why}`,
    );
    const lines = [...rig.logLines(), ...rig.proxies.flatMap((p) => [...p.warnings, p.stderr])];
    assert.deepEqual(
      lines.filter((l) => /CROSSSLOT/i.test(l)),
      [],
      'no CROSSSLOT error logged',
    );
  });

  it('pool shards: the state of each shard on its own master, calls routed and settled in each, the CLI across them', async (t) => {
    const made = await startCluster(t);
    if (!made) return;
    const { cluster, client } = made;
    // Two tenants' pools, each routed by a header, in two shards: east's calls count against a
    // limit (one reservation script each), west's take advance slots.
    const route = (pool: string) => ({
      id: pool,
      match: { header: { name: 'X-Tenant', value: `^${pool}$` } },
      pools: [pool],
      limits: pool === 'east' ? ['cap-east'] : [],
    });
    const rig = await FaultRig.start(
      t,
      {
        redis: { section: { cluster: cluster.seeds, maxRetryDelayMs: 200 } },
        nodes: 2,
        monitors: 1,
        proxies: 1,
        config: {
          pools: [
            { id: 'east', nodes: ['fs1'], shard: 'east' },
            { id: 'west', nodes: ['fs2'], shard: 'west' },
          ],
          routes: [route('east'), route('west')],
          limits: [{ id: 'cap-east', key: 'all', maxCalls: 50 }],
        },
      },
      client,
    );
    const east = rig.keys.shard('east');
    const west = rig.keys.shard('west');
    assert.match(east.node('fs1'), /^\{fault-[0-9a-f]+:east\}:node:fs1$/);
    const keyslot = (key: string): Promise<number> => client.cluster('KEYSLOT', key);
    const eastSlot = await keyslot(east.nodes);
    const westSlot = await keyslot(west.nodes);
    const baseSlot = await keyslot(rig.keys.proxies);
    assert.notEqual(eastSlot, westSlot);
    // The two tags may hash to slots of one master: then one moves, as a reshard would.
    const eastAt = await cluster.masterOf(eastSlot);
    if ((await cluster.masterOf(westSlot)) === eastAt) {
      const to = (await cluster.masters()).find((p) => p !== eastAt);
      assert.ok(to !== undefined, 'another master');
      await cluster.migrateSlot(westSlot, to);
    }
    const [eastMaster, westMaster] = [await cluster.masterOf(eastSlot), await cluster.masterOf(westSlot)];
    assert.notEqual(eastMaster, westMaster, 'the shards are served by two masters');
    const onMaster = (port: number, key: string): Promise<number> => cluster.ask(port, (r) => r.exists(key));
    assert.equal(await onMaster(eastMaster, east.node('fs1')), 1, "fs1's record on east's master");
    assert.equal(await onMaster(westMaster, west.node('fs2')), 1, "fs2's record on west's master");
    assert.equal(
      await client.exists(rig.keys.node('fs1'), rig.keys.node('fs2')),
      0,
      'nothing under the prefix itself',
    );
    assert.deepEqual((await client.smembers(rig.keys.shards)).sort(), ['east', 'west']);

    // Calls of each tenant go to its pool, take their slot and limit in its shard, and settle there.
    const send = (tenant: string) => ({ tenant, req: rig.invite({ 'X-Tenant': tenant }) });
    // West's first call asks for advance slots, which the proxy books in west's shard.
    const calls = [send('west')];
    await waitFor("advance slots held in west's shard", async () =>
      (await client.zrange(west.resv('fs2'), 0, -1)).some((m) => m.startsWith('#')),
    ).catch(async (err: unknown) => {
      // What the proxy saw, for a failure that does not come back when run again.
      const p = rig.proxies[0];
      const ready = await p?.readyz().catch(() => undefined);
      const metrics = [...((await p?.metrics().catch(() => undefined)) ?? [])];
      throw new Error(
        `${err instanceof Error ? err.message : String(err)}; the proxy's view ${JSON.stringify(ready?.body.view)}, ` +
          `reservations ${JSON.stringify(metrics.filter(([k]) => k.startsWith('fslb_proxy_reservations_total')))}, ` +
          `west's first call answered ${calls[0]?.req?.finalResponse?.status ?? 'not yet'}, ` +
          `its warnings: ${(p?.warnings ?? []).slice(-5).join(' | ')}`,
      );
    });
    for (let i = 0; i < 39; i++) calls.push(send(i % 2 === 0 ? 'east' : 'west'));
    await waitFor('every call answered', () => calls.every((c) => c.req?.finalResponse !== undefined), {
      timeoutMs: 20_000,
    });
    for (const c of calls) {
      assert.equal(c.req?.finalResponse?.status, 200, `${c.tenant} call connected`);
      const node = rig.nodeOf(c.req.proxyCommands[0]?.destinations[0]);
      assert.equal(node, c.tenant === 'east' ? 'fs1' : 'fs2', `${c.tenant} call sent to its pool`);
    }
    const byOutcome = await rig.proxies[0]?.metrics();
    const advance = byOutcome?.get('fslb_proxy_reservations_total{outcome="advance"}') ?? 0;
    assert.ok(advance > 0, `west's calls took advance slots, booked in west's shard (${advance})`);
    const status = await cli(rig, 'status', '--json');
    const view = JSON.parse(status.stdout) as { nodes: { id: string; state: string }[] };
    assert.deepEqual(
      view.nodes.map((n) => `${n.id} ${n.state}`),
      ['fs1 up', 'fs2 up'],
      'the CLI reads every shard',
    );
    const drained = await cli(rig, 'drain', 'fs2', '--wait', '--timeout', '20s');
    assert.match(drained.stdout, /fs2 drained/);
    assert.equal(await client.hget(west.node('fs2'), 'admin'), 'drain');
    await waitFor('the proxy sees fs2 drained', async () => {
      const r = await rig.proxies[0]?.readyz();
      return r?.body.view?.eligible === 1;
    });
    await cli(rig, 'undrain', 'fs2');
    await rig.proxyReady(rig.proxies[0] ?? assert.fail('no proxy'));

    // Every call ended: no call's slot and no limit count left in either shard.
    await waitFor(
      'no reservation and no limit count left',
      async () => {
        const now = Date.now();
        const slots = await Promise.all([
          liveSlots(client, east.resv('fs1'), now),
          liveSlots(client, west.resv('fs2'), now),
        ]);
        const counted = await client.zcard(east.limit('cap-east:all'));
        return slots.every((c) => c.calls === 0) && counted === 0;
      },
      { timeoutMs: 10_000 },
    );
    // The shards list damaged: the CLI still reads every shard its file names, and a monitor
    // starting again writes the list anew, with one line saying so.
    await client.set(rig.keys.shards, 'garbage');
    const again = await cli(rig, 'status', '--json');
    assert.deepEqual(
      (JSON.parse(again.stdout) as { nodes: { id: string }[] }).nodes.map((n) => n.id),
      ['fs1', 'fs2'],
    );
    await rig.monitors[0]?.stop('SIGKILL');
    const restarted = await rig.restartMonitor(0);
    const repairs = () => restarted.grep(/repaired damaged keys/).filter((l) => l.includes(':shards'));
    await waitFor('the shards list written again, and the repair logged', async () => {
      const type = await client.type(rig.keys.shards);
      const members = type === 'set' ? (await client.smembers(rig.keys.shards)).sort().join() : type;
      return members === 'east,west' && repairs().length > 0;
    });
    assert.equal(repairs().length, 1, 'one line');

    report('redis cluster shards', { eastSlot, westSlot, baseSlot, eastMaster, westMaster });
    const lines = [...rig.logLines(), ...rig.proxies.flatMap((p) => [...p.warnings, p.stderr])];
    assert.deepEqual(
      lines.filter((l) => /CROSSSLOT|"level":"error"/i.test(l)),
      [],
      'no CROSSSLOT error, no error logged',
    );
  });

  it('a view read while its slot moves is refused, never half read, and the proxy reloads as soon as the move ends', async (t) => {
    const made = await calmCluster(t);
    if (!made) return;
    const { cluster, client } = made;
    // The proxy's own connections to the cluster: its command client and its sharded subscriber.
    const { log, text } = captureLogger('info');
    const conns = new RedisConnections(parseConfig({ redis: { cluster: cluster.seeds } }).redis, {
      name: 'view-test',
      log,
    });
    t.after(() => conns.close());
    const keys = new ClusterKeys(`view-${process.pid}`, { sharded: true });
    const store = new ClusterStore(conns.client, keys);
    const ids = Array.from({ length: 30 }, (_, i) => `fs${i + 1}`);
    for (const [i, id] of ids.entries()) {
      await store.upsertNode({ id, sip: `127.0.0.1:${5100 + i}`, weight: 1 });
      await client.set(keys.alive(id), '1', 'PX', 600_000);
    }
    // No periodic reload within the test: only a retry reloads.
    const view = new ClusterView();
    const sync = new ViewSync({ view, store, subscriber: conns.subscriber, resyncMs: 60_000, log });
    t.after(() => sync.close());
    await sync.start();
    assert.equal(view.nodes.length, 30);
    assert.ok(
      view.nodes.every((n) => n.alive),
      'every node alive at start',
    );

    // The slot half moved: the nodes set, the version counter and one node's keys are on the new
    // master, every other record still on the old one. A read that followed the set there would
    // find 29 records missing.
    const slot: number = await client.cluster('KEYSLOT', keys.nodes);
    const from = await cluster.masterOf(slot);
    const to = (await cluster.masters()).find((p) => p !== from) ?? assert.fail('another master');
    const move = await cluster.startMigration(slot, to);
    await move.keys(keys.nodes, keys.version, keys.node('fs1'), keys.alive('fs1'));
    // Refused as TRYAGAIN (some of a chunk's keys on each side) or, where the script is not yet
    // cached on the new master, as redirections ioredis gives up on: either way, not half read.
    await assert.rejects(
      store.readView(),
      /TRYAGAIN|MOVED|ASK/,
      'a half-moved slot is refused, not half read',
    );
    const reloads: string[] = [];
    sync.on('synced', (e) => reloads.push(e.why));
    await sync.resync('test');
    assert.equal(sync.source, ViewSource.LastKnown, 'routing on the last view while the slot moves');
    assert.equal(view.nodes.length, 30);
    assert.ok(
      view.nodes.every((n) => n.alive),
      'no node darkened by the move',
    );

    await move.finish();
    await waitFor('the view reloaded by its retry once the move ended', () => reloads.includes('retry'), {
      timeoutMs: 15_000,
    });
    assert.ok(!reloads.includes('periodic'), 'not by the periodic reload');
    assert.equal(sync.source, ViewSource.Live);
    assert.equal(view.nodes.length, 30);
    assert.ok(view.nodes.every((n) => n.alive));

    // Redis dropped the proxy's subscription to the events channel with the slot: it subscribes
    // again on the new master, reloads for what it missed, and then hears events there.
    const subscribers = async (): Promise<number> =>
      ((await cluster.ask(to, (r) => r.call('PUBSUB', 'SHARDNUMSUB', keys.events))) as [string, number])[1];
    await waitFor(
      'subscribed again on the new master',
      async () => reloads.includes('resubscribed') && (await subscribers()) === 1,
      { timeoutMs: 10_000 },
    );
    // The event itself reaches the proxy's subscriber (ioredis may reload the layout again and
    // the view reload with it, so the view's figure alone would not tell).
    const heard: string[] = [];
    onMessage(conns.subscriber, (channel, message) => {
      if (channel === keys.events) heard.push(message);
    });
    await store.upsertNode({ id: 'fs2', sip: '127.0.0.1:5101', weight: 5 });
    await waitFor('the change heard on the events channel after the move', () =>
      heard.some((m) => m.includes('"fs2"')),
    );
    await waitFor('the view has it', () => view.get('fs2')?.weight === 5);
    assert.doesNotMatch(text(), /record unreadable/);
    assert.match(text(), /cannot reload the view from redis/);
  });

  it('settling on a half-moved slot: the scripts that reach keys they do not name finish, and report no damage', async (t) => {
    const made = await calmCluster(t);
    if (!made) return;
    const { cluster, client } = made;
    const keys = new ClusterKeys(`settle-${process.pid}`, { sharded: true });
    const notes: string[] = [];
    const store = new ClusterStore(client, keys, { onRepaired: (n) => notes.push(...n) });
    for (const [i, id] of ['fs1', 'fs2'].entries()) {
      await store.upsertNode({ id, sip: `127.0.0.1:${5200 + i}`, weight: 1 });
      await client.set(keys.lease(id), `token-${id}`, 'PX', 600_000);
      await store.writeNode({
        id,
        token: `token-${id}`,
        owner: 'mon-a',
        livenessTtlMs: 600_000,
        loud: { state: 'up', sessions: 0, maxSessions: 10 },
      });
    }
    // Two calls, each with a slot on fs1 and on fs2 (its failover target took one too).
    const reserve = (call: string) =>
      store.reserveCall({ call, candidates: ['fs1', 'fs2'], slots: 2, failovers: 0, ttlMs: 600_000 });
    for (const call of ['a;1', 'b;1']) {
      const r = await reserve(call);
      assert.deepEqual(
        r.nodes.filter((n) => n.status === SlotStatus.Taken).map((n) => n.id),
        ['fs1', 'fs2'],
      );
    }

    // The slot half moved: the call keys and fs2's reservations already on the new master, every
    // key the scripts name still on the old one.
    const slot: number = await client.cluster('KEYSLOT', keys.nodes);
    const from = await cluster.masterOf(slot);
    const to = (await cluster.masters()).find((p) => p !== from) ?? assert.fail('another master');
    const move = await cluster.startMigration(slot, to);
    await move.keys(keys.call('a;1'), keys.resv('fs2'));

    // fs1's monitor settles call a: fs1's slot ends, the call key and fs2's slot are out of reach.
    const settled = await store.writeNode({
      id: 'fs1',
      token: 'token-fs1',
      owner: 'mon-a',
      livenessTtlMs: 600_000,
      loud: { state: 'up', sessions: 1, maxSessions: 10 },
      settle: ['a;1'],
    });
    assert.equal(settled.kind, 'changed');
    // Call b failed everywhere: its slot on fs1 ends, fs2's set is out of reach (no row for it).
    const released = await store.releaseCall('b;1', ['fs1', 'fs2']);
    assert.deepEqual(
      released.nodes.map((n) => n.id),
      ['fs1'],
    );
    await move.finish();
    assert.deepEqual(notes, [], 'nothing reported as damaged');
    assert.equal(await client.zcard(keys.resv('fs1')), 0, "fs1's slots ended");
    // What was out of reach is whole on the new master, left to lapse by its TTL.
    assert.deepEqual((await client.zrange(keys.resv('fs2'), 0, -1)).sort(), ['a;1', 'b;1']);
    assert.ok((await client.pttl(keys.call('a;1'))) > 0, "call a's key lapses by its TTL");
  });
});
