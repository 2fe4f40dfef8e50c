import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { deletePrefix, startRedis, testPrefix, type TestRedis } from '../../../test/support/redis.js';
import { waitFor } from '../../../test/support/wait.js';
import { ClusterKeys } from './cluster-keys.js';
import { decodeClusterEvent, type ClusterEvent } from './cluster-event.js';
import { ClusterStore } from './cluster-store.js';
import { MAX_LEASE_TTL_MS } from './config/schema.js';

describe('cluster store (Lua scripts against a real Redis)', () => {
  let server: TestRedis;
  let redis: Redis;
  let sub: Redis;
  const prefixes: string[] = [];
  before(async () => {
    server = await startRedis();
    redis = new Redis(server.url);
    sub = new Redis(server.url);
  });
  after(async () => {
    for (const p of prefixes) await deletePrefix(redis, p);
    redis.disconnect();
    sub.disconnect();
    await server.close();
  });

  async function fixture(prefix = testPrefix()) {
    prefixes.push(prefix);
    const keys = new ClusterKeys(prefix);
    const store = new ClusterStore(redis, keys);
    const events: ClusterEvent[] = [];
    const garbage: string[] = [];
    await sub.subscribe(keys.events);
    sub.on('message', (ch: string, msg: string) => {
      if (ch !== keys.events) return;
      const d = decodeClusterEvent(msg);
      if (d.ok) events.push(d.value);
      else garbage.push(msg);
    });
    return { keys, store, events, garbage };
  }

  async function takeLease(keys: ClusterKeys, id: string, token: string): Promise<void> {
    await redis.set(keys.lease(id), token, 'PX', 10_000);
  }

  for (const prefix of ['plain', '{tagged}']) {
    it(`upserts a node, publishes it, and reads it back (${prefix} prefix)`, async () => {
      const { keys, store, events, garbage } = await fixture(`${prefix}-${testPrefix()}`);
      const v1 = await store.upsertNode({ id: 'fs1', sip: '10.0.0.1:5080', weight: 1, cap: 500 });
      assert.ok(v1 > 0);
      assert.equal(await store.upsertNode({ id: 'fs1', sip: '10.0.0.1:5080', weight: 1, cap: 500 }), 0);
      const v2 = await store.upsertNode({ id: 'fs1', sip: '10.0.0.1:5090', weight: 2, cap: 500 });
      assert.ok(v2 > v1);
      assert.deepEqual(await redis.smembers(keys.nodes), ['fs1']);
      const hash = await redis.hgetall(keys.node('fs1'));
      assert.equal(hash.state, 'unknown');
      assert.equal(hash.sip, '10.0.0.1:5090');
      assert.equal(hash.maxSessions, '500');
      assert.equal(hash.version, String(v2));
      await waitFor('two events', () => events.length === 2);
      assert.deepEqual(
        events.map((e) => [e.type, e.type === 'load' ? 0 : e.version]),
        [
          ['node', v1],
          ['node', v2],
        ],
      );
      assert.deepEqual(garbage, []);
      const { records, invalid } = await store.readNodes();
      assert.deepEqual(invalid, []);
      assert.equal(records[0]?.weight, 2);
    });
  }

  it('lets the lease holder write, publishes only loud changes, and refreshes liveness every time', async () => {
    const { keys, store, events } = await fixture();
    await store.upsertNode({ id: 'fs1', sip: 'h:5080', weight: 1 });
    await takeLease(keys, 'fs1', 'tok-a');
    const w = { id: 'fs1', token: 'tok-a', owner: 'mon-a', livenessTtlMs: 3000 };
    const r1 = await store.writeNode({
      ...w,
      loud: { state: 'up', sessions: 3 },
      quiet: { heartbeatAt: 111 },
    });
    assert.equal(r1.kind, 'changed');
    const r2 = await store.writeNode({
      ...w,
      loud: { state: 'up', sessions: 3 },
      quiet: { heartbeatAt: 222 },
    });
    assert.deepEqual(r2, { kind: 'unchanged', admin: '' });
    const hash = await redis.hgetall(keys.node('fs1'));
    assert.equal(hash.heartbeatAt, '222');
    assert.equal(hash.owner, 'mon-a');
    assert.equal(await redis.get(keys.alive('fs1')), 'mon-a');
    const ttl = await redis.pttl(keys.alive('fs1'));
    assert.ok(ttl > 2000 && ttl <= 3000, String(ttl));
    await waitFor('two events', () => events.length === 2);
    const last = events[1];
    assert.ok(last?.type === 'node' && last.record.state === 'up' && last.record.sessions === 3);
    assert.equal(events.length, 2);
  });

  it('fences a writer whose lease token is not the current one', async () => {
    const { keys, store } = await fixture();
    await store.upsertNode({ id: 'fs1', sip: 'h:5080', weight: 1 });
    await takeLease(keys, 'fs1', 'new-owner');
    await store.writeNode({
      id: 'fs1',
      token: 'new-owner',
      owner: 'mon-b',
      livenessTtlMs: 3000,
      loud: { state: 'up' },
    });
    const stale = await store.writeNode({
      id: 'fs1',
      token: 'old-owner',
      owner: 'mon-a',
      livenessTtlMs: 3000,
      loud: { state: 'down', reason: 'probe timeout' },
    });
    assert.deepEqual(stale, { kind: 'fenced' });
    const hash = await redis.hgetall(keys.node('fs1'));
    assert.equal(hash.state, 'up');
    assert.equal(hash.owner, 'mon-b');
    assert.equal(await redis.get(keys.alive('fs1')), 'mon-b');
    await redis.del(keys.lease('fs1'));
    const noLease = await store.writeNode({
      id: 'fs1',
      token: 'new-owner',
      owner: 'mon-b',
      livenessTtlMs: 3000,
      loud: { state: 'down' },
    });
    assert.deepEqual(noLease, { kind: 'fenced' });
  });

  it('removes a node: event, keys gone, and its old owner cannot bring it back', async () => {
    const { keys, store, events } = await fixture();
    await store.upsertNode({ id: 'fs1', sip: 'h:5080', weight: 1 });
    await store.upsertNode({ id: 'fs2', sip: 'h:5081', weight: 1 });
    // A live call on fs1 counted on a limit, and one on fs2: only fs1's leaves the counter.
    await takeLease(keys, 'fs1', 'tok1');
    await takeLease(keys, 'fs2', 'tok2');
    await store.liveCalls('fs1', 'tok1', { kind: 'full', calls: [{ call: 'c1;t', entries: ['tenant:a'] }] });
    await store.liveCalls('fs2', 'tok2', { kind: 'full', calls: [{ call: 'c2;t', entries: ['tenant:a'] }] });
    const v = await store.removeNode('fs1');
    assert.deepEqual(await redis.zrange(keys.limit('tenant:a'), 0, -1), ['c2;t']);
    assert.equal(await redis.exists(keys.live('fs1')), 0);
    await redis.del(keys.lease('fs1'));
    assert.ok(v > 0);
    assert.equal(await store.removeNode('fs1'), 0);
    assert.deepEqual(await store.nodeIds(), ['fs2']);
    assert.equal(await redis.exists(keys.node('fs1')), 0);
    await takeLease(keys, 'fs1', 'tok');
    const r = await store.writeNode({
      id: 'fs1',
      token: 'tok',
      owner: 'm',
      livenessTtlMs: 1000,
      loud: { state: 'up' },
    });
    assert.deepEqual(r, { kind: 'removed' });
    assert.equal(await redis.exists(keys.node('fs1')), 0);
    await waitFor('removed event', () => events.find((e) => e.type === 'removed'));
    assert.deepEqual(events.at(-1), { type: 'removed', id: 'fs1', version: v });
  });

  it('versions rise across nodes and across a remove and re-add', async () => {
    const { store } = await fixture();
    const a = await store.upsertNode({ id: 'a', sip: 'h:1', weight: 1 });
    const b = await store.upsertNode({ id: 'b', sip: 'h:2', weight: 1 });
    const rm = await store.removeNode('a');
    const again = await store.upsertNode({ id: 'a', sip: 'h:1', weight: 1 });
    assert.ok(a < b && b < rm && rm < again);
  });

  it('reads the view in chunks: every node once, with the counter before and after', async () => {
    const { keys, store } = await fixture();
    const ids = Array.from({ length: 57 }, (_, i) => `n${String(i).padStart(2, '0')}`);
    for (const id of ids) await store.upsertNode({ id, sip: 'h:5080', weight: 1 });
    await redis.hset(keys.node('n03'), 'sessions', 'banana');
    const before = Number(await redis.get(keys.version));
    const view = await store.readView({ chunk: 10 });
    assert.deepEqual(
      view.nodes.map((n) => n.id),
      ids,
    );
    assert.deepEqual(
      view.nodes.filter((n) => !n.ok).map((n) => n.id),
      ['n03'],
    );
    assert.equal(view.version, before);
    assert.equal(view.startVersion, before);
    // A nodes set damaged into another type reads as no node, not an error.
    await redis.del(keys.nodes);
    await redis.set(keys.nodes, 'x');
    assert.deepEqual((await store.readView()).nodes, []);
  });

  it('skips and reports a record edited into garbage, and keeps reading the rest', async () => {
    const { keys, store } = await fixture();
    await store.upsertNode({ id: 'fs1', sip: 'h:5080', weight: 1 });
    await store.upsertNode({ id: 'fs2', sip: 'h:5081', weight: 1 });
    await redis.hset(keys.node('fs1'), 'sessions', 'banana');
    await redis.sadd(keys.nodes, 'ghost');
    const { records, invalid } = await store.readNodes();
    assert.deepEqual(
      records.map((r) => r.id),
      ['fs2'],
    );
    assert.deepEqual(invalid.map((i) => i.id).sort(), ['fs1', 'ghost']);
    assert.match(invalid.find((i) => i.id === 'fs1')?.problems[0] ?? '', /sessions/);
  });

  it('reads leases of any TTL a monitor may have as held, and deletes only keys no monitor writes', async () => {
    const { keys, store } = await fixture();
    // A monitor with a 1.5 s lease must leave alone the lease of one configured with 60 s or the
    // maximum: deleting it would hand a watched node to a second owner.
    await redis.set(keys.lease('short'), 'a', 'PX', 1500);
    await redis.set(keys.lease('long'), 'b', 'PX', 60_000);
    await redis.set(keys.lease('max'), 'c', 'PX', MAX_LEASE_TTL_MS);
    await redis.set(keys.lease('forever'), 'd');
    await redis.set(keys.lease('beyond'), 'e', 'PX', MAX_LEASE_TTL_MS + 60_000);
    const ids = ['short', 'long', 'max', 'forever', 'beyond', 'none'];
    assert.deepEqual(await store.leasesHeld(ids), [true, true, true, false, false, false]);
    assert.deepEqual(await Promise.all(ids.map((id) => redis.get(keys.lease(id)))), [
      'a',
      'b',
      'c',
      null,
      null,
      null,
    ]);
  });

  it('counts live monitors and forgets one that leaves or expires', async () => {
    const { keys, store } = await fixture();
    assert.equal(await store.monitorPresence('m1', 5000, { id: 'm1' }), 1);
    assert.equal(await store.monitorPresence('m2', 5000, { id: 'm2' }), 2);
    assert.equal(await store.monitorPresence('m3', 1, { id: 'm3' }), 3);
    assert.deepEqual(JSON.parse((await redis.get(keys.monitor('m1'))) ?? 'null'), { id: 'm1' });
    await waitFor('m3 to expire', async () => (await store.monitorPresence('m1', 5000, { id: 'm1' })) === 2);
    assert.equal(await store.monitorPresence('m2', 5000, null), 1);
    assert.equal(await redis.exists(keys.monitor('m2')), 0);
  });
});
