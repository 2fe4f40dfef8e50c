import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { deletePrefix, startRedis, testPrefix, type TestRedis } from '../../../test/support/redis.js';
import { waitFor } from '../../../test/support/wait.js';
import { decodeClusterEvent, type ClusterEvent } from './cluster-event.js';
import { ClusterKeys } from './cluster-keys.js';
import { ClusterStore, SlotStatus } from './cluster-store.js';

/**
 * The reservation scripts against a real Redis: exact slots across concurrent callers, the
 * three endings (settled by the monitor's fenced write, released by the proxy, lapsed by TTL),
 * and the consistent snapshot proxies load their view from.
 */
describe('reservations (Lua scripts against a real Redis)', () => {
  let server: TestRedis;
  let redis: Redis;
  const prefixes: string[] = [];
  before(async () => {
    server = await startRedis();
    redis = new Redis(server.url);
  });
  after(async () => {
    for (const p of prefixes) await deletePrefix(redis, p);
    redis.disconnect();
    await server.close();
  });

  /** Nodes up, watched, with room as given. */
  async function cluster(
    nodes: Record<string, { sessions: number; max: number; state?: string; admin?: string }>,
  ) {
    const prefix = testPrefix();
    prefixes.push(prefix);
    const keys = new ClusterKeys(prefix);
    const store = new ClusterStore(redis, keys);
    for (const [id, n] of Object.entries(nodes)) {
      await store.upsertNode({ id, sip: `127.0.0.1:${5000 + Object.keys(nodes).indexOf(id)}`, weight: 1 });
      await redis.set(keys.lease(id), `tok-${id}`, 'PX', 30_000);
      await store.writeNode({
        id,
        token: `tok-${id}`,
        owner: 'mon',
        livenessTtlMs: 30_000,
        loud: { state: n.state ?? 'up', sessions: n.sessions, maxSessions: n.max },
      });
      if (n.admin) await redis.hset(keys.node(id), 'admin', n.admin);
    }
    return { keys, store };
  }

  const reserve = (store: ClusterStore, callId: string, candidates: string[], failovers = 2) =>
    store.reserveCall({ call: callId, candidates, slots: 1, failovers, ttlMs: 3000 });

  it('takes a slot on the least loaded candidate by Redis counts and names failover targets with room', async () => {
    const { keys, store } = await cluster({
      full: { sessions: 10, max: 10 },
      a: { sessions: 0, max: 10 },
      b: { sessions: 10, max: 10 },
      c: { sessions: 2, max: 10 },
      d: { sessions: 0, max: 10 },
    });
    const r = await reserve(store, 'call-1@host', ['full', 'a', 'b', 'c', 'd'], 1);
    assert.deepEqual(r.taken, ['a']);
    assert.deepEqual(r.failovers, ['c']);
    assert.deepEqual(
      r.nodes.map((n) => [n.id, n.status, n.sessions, n.reservations, n.maxSessions]),
      [
        ['full', SlotStatus.Full, 10, 0, 10],
        ['a', SlotStatus.Taken, 0, 1, 10],
        ['b', SlotStatus.Full, 10, 0, 10],
        ['c', SlotStatus.Room, 2, 0, 10],
        ['d', SlotStatus.Skipped, 0, 0, 10],
      ],
    );
    assert.ok(r.at > 1.7e15 && Number.isInteger(r.at), String(r.at));
    assert.equal(await redis.get(keys.call('call-1@host')), 'a');
    assert.equal(await redis.zcard(keys.resv('c')), 0);
    const left = Number(await redis.zscore(keys.resv('a'), 'call-1@host')) - Date.now();
    assert.ok(left > 2000 && left <= 3000, String(left));
    const pttl = await redis.pttl(keys.call('call-1@host'));
    assert.ok(pttl > 2000 && pttl <= 3000, String(pttl));
  });

  it('chooses by Redis counts, weights included, whatever order the proxy gave', async () => {
    const { keys, store } = await cluster({
      busy: { sessions: 6, max: 10 },
      reserved: { sessions: 1, max: 10 },
      light: { sessions: 2, max: 10 },
    });
    for (let i = 0; i < 3; i++) await redis.zadd(keys.resv('reserved'), Date.now() + 10_000, `other-${i}`);
    const r = await reserve(store, 'pick', ['busy', 'reserved', 'light'], 2);
    assert.deepEqual(r.taken, ['light']);
    assert.deepEqual(r.failovers, ['busy', 'reserved']);
    await redis.hset(keys.node('busy'), 'weight', '4');
    const w = await reserve(store, 'pick-weighted', ['reserved', 'light', 'busy'], 0);
    assert.deepEqual(w.taken, ['busy']);
    // Affinity: the proxy's first choice wins while it has room, however loaded.
    const pinned = await store.reserveCall({
      call: 'pinned',
      candidates: ['reserved', 'light'],
      slots: 1,
      failovers: 1,
      ttlMs: 3000,
      inOrder: true,
    });
    assert.deepEqual([pinned.taken, pinned.failovers], [['reserved'], ['light']]);
  });

  it('refuses nodes that cannot take calls in Redis: down, drained, unwatched, unknown capacity, unreadable', async () => {
    const { keys, store } = await cluster({
      down: { sessions: 0, max: 10, state: 'down' },
      drained: { sessions: 0, max: 10, admin: 'drain' },
      unwatched: { sessions: 0, max: 10 },
      nocap: { sessions: 0, max: 0 },
      garbage: { sessions: 0, max: 10 },
      ok: { sessions: 0, max: 10 },
    });
    await redis.del(keys.alive('unwatched'));
    await redis.hset(keys.node('garbage'), 'sessions', 'banana');
    const r = await reserve(store, 'c1', ['down', 'drained', 'unwatched', 'nocap', 'garbage', 'ok'], 0);
    assert.deepEqual(
      r.nodes.map((n) => n.status),
      [-1, -1, -1, -1, -1, 1],
    );
    assert.deepEqual(r.taken, ['ok']);
  });

  it('never lets concurrent callers take more slots than a node has room for', async () => {
    const { keys } = await cluster({ a: { sessions: 20, max: 50 }, b: { sessions: 45, max: 50 } });
    const clients = [0, 1, 2, 3].map(() => new Redis(server.url));
    try {
      const stores = clients.map((c) => new ClusterStore(c, keys));
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, i) => reserve(stores[i % 4]!, `burst-${i}`, ['a', 'b'], 0)),
      );
      const taken = results.flatMap((r) => r.taken);
      assert.equal(taken.filter((t) => t === 'a').length, 30);
      assert.equal(taken.filter((t) => t === 'b').length, 5);
      assert.equal(results.filter((r) => r.taken.length === 0).length, 65);
      assert.equal(await redis.zcard(keys.resv('a')), 30);
      assert.equal(await redis.zcard(keys.resv('b')), 5);
    } finally {
      for (const c of clients) c.disconnect();
    }
  });

  it('releases every slot of a call, idempotently, even without the call key', async () => {
    const { keys, store } = await cluster({
      a: { sessions: 0, max: 10 },
      b: { sessions: 0, max: 10 },
      c: { sessions: 0, max: 10 },
    });
    await reserve(store, 'x', ['b']);
    await redis.zadd(keys.resv('a'), Date.now() + 5000, 'x');
    await redis.zadd(keys.resv('c'), Date.now() + 5000, 'x');
    await reserve(store, 'y', ['b']);
    const r = await store.releaseCall('x', ['a', 'c']);
    assert.deepEqual(r.nodes, [
      { id: 'b', reservations: 1 },
      { id: 'a', reservations: 0 },
      { id: 'c', reservations: 0 },
    ]);
    assert.equal(await redis.exists(keys.call('x')), 0);
    await store.releaseCall('x', ['a', 'b', 'c']);
    assert.deepEqual(await redis.zrange(keys.resv('b'), 0, -1), ['y']);
    await redis.del(keys.call('y'));
    await store.releaseCall('y', ['b']);
    assert.equal(await redis.zcard(keys.resv('b')), 0);
  });

  it('ends the slots of an earlier attempt when the same Call-ID is reserved again', async () => {
    const { keys, store } = await cluster({ a: { sessions: 0, max: 10 }, b: { sessions: 0, max: 10 } });
    await reserve(store, 'again', ['a'], 1);
    await reserve(store, 'again', ['b'], 1);
    assert.equal(await redis.zcard(keys.resv('a')), 0);
    assert.equal(await redis.zcard(keys.resv('b')), 1);
    assert.equal(await redis.get(keys.call('again')), 'b');
  });

  it('does not count lapsed slots', async () => {
    const { keys, store } = await cluster({ a: { sessions: 0, max: 1 } });
    await store.reserveCall({ call: 'short', candidates: ['a'], slots: 1, failovers: 0, ttlMs: 50 });
    assert.equal((await reserve(store, 'second', ['a'])).taken.length, 0);
    await waitFor(
      'slot lapses',
      async () =>
        (await redis.zscore(keys.resv('a'), 'short')) !== null &&
        Number(await redis.zscore(keys.resv('a'), 'short')) < Date.now(),
    );
    assert.deepEqual((await reserve(store, 'third', ['a'])).taken, ['a']);
  });

  it('settles a call in the monitor fenced write: sessions up, every slot of the call gone, one event', async () => {
    const { keys, store } = await cluster({ a: { sessions: 0, max: 10 }, b: { sessions: 0, max: 10 } });
    const sub = new Redis(server.url);
    const events: ClusterEvent[] = [];
    try {
      await sub.subscribe(keys.events);
      sub.on('message', (_c: string, m: string) => {
        const d = decodeClusterEvent(m);
        if (d.ok) events.push(d.value);
      });
      await reserve(store, 'settle-me', ['b']);
      // A call sent to b first, that failed over to a: a's CHANNEL_CREATE ends b's slot too.
      await reserve(store, 'other', ['a']);
      const w = await store.writeNode({
        id: 'a',
        token: 'tok-a',
        owner: 'mon',
        livenessTtlMs: 30_000,
        loud: { state: 'up', sessions: 1, maxSessions: 10 },
        settle: ['settle-me'],
      });
      assert.equal(w.kind, 'changed');
      assert.deepEqual(await redis.zrange(keys.resv('a'), 0, -1), ['other']);
      assert.equal(await redis.zcard(keys.resv('b')), 0);
      assert.equal(await redis.exists(keys.call('settle-me')), 0);
      await waitFor('settle event', () => events.some((e) => e.type === 'node' && e.id === 'a'));
      const e = events.find((x) => x.type === 'node' && x.id === 'a');
      assert.ok(e?.type === 'node');
      assert.equal(e.record.sessions, 1);
      assert.equal(e.reservations, 1);
      assert.ok((e.at ?? 0) > 1.7e15);
      // Settling alone (no loud change) still bumps the version, so proxies learn the slot ended.
      await reserve(store, 'third', ['a'], 1);
      const again = await store.writeNode({
        id: 'a',
        token: 'tok-a',
        owner: 'mon',
        livenessTtlMs: 30_000,
        loud: { state: 'up', sessions: 1, maxSessions: 10 },
        settle: ['third'],
      });
      assert.equal(again.kind, 'changed');
      // A fenced writer settles nothing.
      await reserve(store, 'fourth', ['a'], 1);
      const fenced = await store.writeNode({
        id: 'a',
        token: 'stale',
        owner: 'mon-old',
        livenessTtlMs: 30_000,
        loud: { sessions: 2 },
        settle: ['fourth'],
      });
      assert.deepEqual(fenced, { kind: 'fenced' });
      assert.ok((await redis.zrange(keys.resv('a'), 0, -1)).includes('fourth'));
    } finally {
      sub.disconnect();
    }
  });

  it('keeps node versions rising when the version counter is lost', async () => {
    const { keys, store } = await cluster({ a: { sessions: 0, max: 10 } });
    const before = Number(await redis.hget(keys.node('a'), 'version'));
    await redis.del(keys.version);
    const w = await store.writeNode({
      id: 'a',
      token: 'tok-a',
      owner: 'mon',
      livenessTtlMs: 30_000,
      loud: { sessions: 4 },
    });
    assert.ok(w.kind === 'changed' && w.version > before, JSON.stringify(w));
    assert.equal(Number(await redis.get(keys.version)), w.version);
  });

  it('reads one consistent snapshot: records, liveness, live reservations, version; damage reported per node', async () => {
    const { keys, store } = await cluster({
      a: { sessions: 3, max: 10 },
      b: { sessions: 0, max: 5 },
      c: { sessions: 0, max: 5 },
    });
    await reserve(store, 'r1', ['a'], 1);
    await reserve(store, 'r2', ['a'], 1);
    await redis.del(keys.alive('b'));
    await redis.del(keys.node('c'));
    await redis.set(keys.node('c'), 'not a hash');
    const v = await store.readView();
    assert.equal(v.version, Number(await redis.get(keys.version)));
    assert.deepEqual(
      v.nodes.map((n) => (n.ok ? [n.id, n.record.sessions, n.alive, n.reservations] : [n.id, 'bad'])),
      [
        ['a', 3, true, 2],
        ['b', 0, false, 0],
        ['c', 'bad'],
      ],
    );
    const c = v.nodes[2];
    assert.ok(c && !c.ok && /WRONGTYPE/.test(c.problems.join()), JSON.stringify(c));
    await redis.set(keys.resv('a'), 'garbage');
    const v2 = await store.readView();
    assert.equal(v2.nodes[0]?.ok && v2.nodes[0].reservations, 0);
    // A reservation set damaged into another type is started afresh by the next reservation.
    assert.deepEqual((await reserve(store, 'r3', ['a'], 1)).taken, ['a']);
    assert.equal(await redis.type(keys.resv('a')), 'zset');
  });
});
