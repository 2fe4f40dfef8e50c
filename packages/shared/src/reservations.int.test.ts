import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { deletePrefix, startRedis, testPrefix, type TestRedis } from '../../../test/support/redis.js';
import { seedNodes } from '../../../test/support/seed-nodes.js';
import { waitFor } from '../../../test/support/wait.js';
import { decodeClusterEvent, type ClusterEvent } from './cluster-event.js';
import { ClusterKeys } from './cluster-keys.js';
import { ClusterStore, SlotStatus, type AdvanceBook } from './cluster-store.js';

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
    await seedNodes(store, nodes);
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

  it('ends the slots of an earlier attempt when the same call is reserved again as a retry', async () => {
    const { keys, store } = await cluster({ a: { sessions: 0, max: 10 }, b: { sessions: 0, max: 10 } });
    await reserve(store, 'again', ['a'], 1);
    await store.reserveCall({
      call: 'again',
      candidates: ['b'],
      slots: 1,
      failovers: 1,
      ttlMs: 3000,
      retry: true,
    });
    assert.equal(await redis.zcard(keys.resv('a')), 0);
    assert.equal(await redis.zcard(keys.resv('b')), 1);
    assert.equal(await redis.get(keys.call('again')), 'b');
    // A first attempt does not look its call up: the slot of another attempt stays until it lapses.
    await reserve(store, 'again', ['a'], 1);
    assert.equal(await redis.zcard(keys.resv('b')), 1);
    assert.equal(await redis.get(keys.call('again')), 'a');
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

  describe('advance slots', () => {
    const opts = { ttlMs: 5000, share: 4, prefix: '#px.t:' };
    const book = (id: string, o: Partial<AdvanceBook> = {}): AdvanceBook => ({
      id,
      want: 16,
      first: 1,
      held: 0,
      drop: [],
      busy: [],
      keep: [],
      ...o,
    });

    it('grants what the proxy wants within its share of the room above the margin, and nothing near full', async () => {
      const { keys, store } = await cluster({
        big: { sessions: 0, max: 1000 },
        mid: { sessions: 0, max: 40 },
        small: { sessions: 0, max: 12 },
        busy: { sessions: 900, max: 1000 },
        drained: { sessions: 0, max: 1000, admin: 'drain' },
        down: { sessions: 0, max: 1000, state: 'down' },
      });
      const r = await store.advanceSlots(
        ['big', 'mid', 'small', 'busy', 'drained', 'down'].map((id) => book(id)),
        opts,
      );
      const rows = Object.fromEntries(r.nodes.map((n) => [n.id, [n.status, n.allowed, n.granted]]));
      // big: may hold (1000 - 250) / 4, wants 16; mid: (40 - 16) / 4 = 6; small: 12 is under the
      // margin of 16; busy: (100 - 250) / 4 is nothing; drained and down take no calls.
      assert.deepEqual(rows, {
        big: [1, 187, 16],
        mid: [1, 6, 6],
        small: [1, 0, 0],
        busy: [1, 0, 0],
        drained: [SlotStatus.Ineligible, 0, 0],
        down: [SlotStatus.Ineligible, 0, 0],
      });
      // Members of the reservation set like any call's slot: counted by everyone.
      const members = await redis.zrange(keys.resv('mid'), 0, -1);
      assert.deepEqual(members.sort(), ['#px.t:1', '#px.t:2', '#px.t:3', '#px.t:4', '#px.t:5', '#px.t:6']);
      const reserved = await reserve(store, 'c1;t', ['mid'], 0);
      assert.deepEqual(
        reserved.nodes.map((n) => n.reservations),
        [7],
      );
    });

    it('refreshes what is held, reports what is gone, drops what was spent, and keeps the share when asked again', async () => {
      const { keys, store } = await cluster({ a: { sessions: 0, max: 40 } });
      await store.advanceSlots([book('a', { want: 3 })], opts);
      await redis.zrem(keys.resv('a'), '#px.t:2');
      await redis.zadd(keys.resv('a'), Date.now() + 100, '#px.t:3');
      const r = await store.advanceSlots(
        [book('a', { want: 3, first: 10, held: 2, drop: ['#px.t:1'], keep: ['#px.t:2', '#px.t:3'] })],
        opts,
      );
      const row = r.nodes[0]!;
      // #2 is gone, #3 refreshed, #1 removed; two new ones (#10, #11) make the 3 wanted.
      assert.deepEqual([row.missing, row.allowed, row.granted], [[1], 6, 2]);
      const scores = await redis.zrange(keys.resv('a'), 0, -1, 'WITHSCORES');
      const byMember = new Map<string, number>();
      for (let i = 0; i < scores.length; i += 2) byMember.set(scores[i]!, Number(scores[i + 1]));
      assert.deepEqual([...byMember.keys()].sort(), ['#px.t:10', '#px.t:11', '#px.t:3']);
      assert.ok((byMember.get('#px.t:3') ?? 0) > Date.now() + 4000, 'refreshed for the TTL');
      assert.equal(row.reservations, 3);
    });

    it('is settled by the owner with the call it was proxied on', async () => {
      const { keys, store } = await cluster({ a: { sessions: 0, max: 1000 } });
      await store.advanceSlots([book('a', { want: 2 })], opts);
      const w = await store.writeNode({
        id: 'a',
        token: 'tok-a',
        owner: 'mon',
        livenessTtlMs: 30_000,
        loud: { state: 'up', sessions: 1, maxSessions: 1000 },
        settle: ['call-1;t', '#px.t:1'],
      });
      assert.equal(w.kind, 'changed');
      assert.deepEqual(await redis.zrange(keys.resv('a'), 0, -1), ['#px.t:2']);
      assert.equal(await redis.exists(keys.call('#px.t:1')), 0);
    });

    it('starts a reservation set of another type afresh, with a note', async () => {
      const { keys } = await cluster({ a: { sessions: 0, max: 1000 } });
      await redis.set(keys.resv('a'), 'junk');
      const notes: string[] = [];
      const store = new ClusterStore(redis, keys, { onRepaired: (n) => notes.push(...n) });
      const r = await store.advanceSlots([book('a', { want: 2, held: 1, keep: ['#px.t:7'] })], opts);
      assert.deepEqual([r.nodes[0]?.missing, r.nodes[0]?.granted], [[1], 2]);
      assert.equal(await redis.type(keys.resv('a')), 'zset');
      assert.equal(notes.length, 1);
      assert.match(notes[0] ?? '', /a string where a zset belongs; deleted/);
    });
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

  describe('pools and limits', () => {
    const tenant = (maxCalls: number, maxCps = 0) => [{ entry: 'tenant:acme', maxCalls, maxCps }];

    it('takes the slot in the first pool with room and names failover targets from that pool only', async () => {
      const { store } = await cluster({
        p1: { sessions: 5, max: 5 },
        p2: { sessions: 0, max: 5 },
        q1: { sessions: 0, max: 5 },
        q2: { sessions: 1, max: 5 },
        r1: { sessions: 0, max: 5 },
      });
      const r = await store.reserveCall({
        call: 'spill',
        candidates: ['p1', 'q2', 'q1', 'r1'],
        groups: [1, 2, 2, 3],
        slots: 1,
        failovers: 2,
        ttlMs: 3000,
      });
      assert.deepEqual(r.taken, ['q1']);
      assert.deepEqual(r.failovers, ['q2']);
      const stay = await store.reserveCall({
        call: 'stay',
        candidates: ['p2', 'q1'],
        groups: [1, 2],
        slots: 1,
        failovers: 2,
        ttlMs: 3000,
      });
      assert.deepEqual([stay.taken, stay.failovers], [['p2'], []]);
    });

    it('never admits more calls than maxCalls, however many clients reserve at once, and a refused call holds nothing', async () => {
      const { keys } = await cluster({ a: { sessions: 0, max: 100 }, b: { sessions: 0, max: 100 } });
      const clients = [0, 1, 2, 3].map(() => new Redis(server.url));
      try {
        const stores = clients.map((c) => new ClusterStore(c, keys));
        const results = await Promise.all(
          Array.from({ length: 40 }, (_, i) =>
            (stores[i % 4] as ClusterStore).reserveCall({
              call: `burst-${i}`,
              candidates: ['a', 'b'],
              slots: 1,
              failovers: 1,
              ttlMs: 3000,
              limits: tenant(10),
            }),
          ),
        );
        const admitted = results.filter((r) => r.taken.length === 1);
        const refused = results.filter((r) => r.overLimit);
        assert.equal(admitted.length, 10);
        assert.equal(refused.length, 30);
        for (const r of refused) {
          assert.deepEqual(
            [r.taken, r.failovers, r.overLimit?.kind, r.overLimit?.count],
            [[], [], 'calls', 10],
          );
        }
        assert.equal(await redis.zcard(keys.limit('tenant:acme')), 10);
        assert.equal((await redis.zcard(keys.resv('a'))) + (await redis.zcard(keys.resv('b'))), 10);
      } finally {
        for (const c of clients) c.disconnect();
      }
    });

    it('takes no limit when no pool has room', async () => {
      const { keys, store } = await cluster({ a: { sessions: 5, max: 5 } });
      const r = await store.reserveCall({
        call: 'nowhere',
        candidates: ['a'],
        slots: 1,
        failovers: 0,
        ttlMs: 3000,
        limits: tenant(10, 5),
      });
      assert.deepEqual([r.taken, r.overLimit], [[], undefined]);
      assert.equal(await redis.exists(keys.limit('tenant:acme'), keys.rate('tenant:acme')), 0);
    });

    it('admits at most maxCps calls in any second', async () => {
      const { keys, store } = await cluster({ a: { sessions: 0, max: 1000 } });
      const r = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          store.reserveCall({
            call: `cps-${i}`,
            candidates: ['a'],
            slots: 1,
            failovers: 0,
            ttlMs: 3000,
            limits: tenant(0, 5),
          }),
        ),
      );
      assert.equal(r.filter((x) => x.taken.length === 1).length, 5);
      assert.deepEqual([...new Set(r.filter((x) => x.overLimit).map((x) => x.overLimit?.kind))], ['cps']);
      assert.ok((await redis.pttl(keys.rate('tenant:acme'))) > 0);
    });

    it('a released call leaves its limit; a live call counts until the owner ends it, and a full list replaces the record', async () => {
      const { keys, store } = await cluster({ a: { sessions: 0, max: 100 } });
      const take = (call: string) =>
        store.reserveCall({
          call,
          candidates: ['a'],
          slots: 1,
          failovers: 0,
          ttlMs: 3000,
          limits: tenant(2),
        });
      assert.equal((await take('c1')).taken.length, 1);
      assert.equal((await take('c2')).taken.length, 1);
      assert.equal((await take('c3')).overLimit?.kind, 'calls');
      await store.releaseCall('c2', ['a'], ['tenant:acme']);
      assert.equal((await take('c3')).taken.length, 1);

      // c1 connected: its monitor makes it live; a proxy's release no longer ends it.
      const live = await store.liveCalls('a', 'tok-a', {
        kind: 'delta',
        started: [{ call: 'c1', entries: ['tenant:acme'] }],
        ended: [],
      });
      assert.deepEqual(live, { fenced: false, started: 1, ended: 0 });
      assert.equal(await redis.zscore(keys.limit('tenant:acme'), 'c1'), 'inf');
      await store.releaseCall('c1', ['a'], ['tenant:acme']);
      assert.equal(await redis.zscore(keys.limit('tenant:acme'), 'c1'), 'inf');
      assert.deepEqual(await redis.hgetall(keys.live('a')), { c1: 'tenant:acme' });

      // Fenced: another token writes nothing.
      assert.equal((await store.liveCalls('a', 'stale', { kind: 'full', calls: [] })).fenced, true);
      assert.equal(await redis.zscore(keys.limit('tenant:acme'), 'c1'), 'inf');

      // Redis lost the counter: a full list puts it back; a call missing from the list ends.
      await redis.del(keys.limit('tenant:acme'));
      await store.liveCalls('a', 'tok-a', {
        kind: 'full',
        calls: [{ call: 'c4', entries: ['tenant:acme', 'trunk:t1'] }],
      });
      assert.deepEqual(await redis.zrange(keys.limit('tenant:acme'), 0, -1), ['c4']);
      assert.deepEqual(await redis.zrange(keys.limit('trunk:t1'), 0, -1), ['c4']);
      assert.deepEqual(await redis.hgetall(keys.live('a')), { c4: 'tenant:acme trunk:t1' });
      const ended = await store.liveCalls('a', 'tok-a', { kind: 'delta', started: [], ended: ['c4'] });
      assert.equal(ended.ended, 1);
      assert.equal(await redis.exists(keys.limit('tenant:acme'), keys.limit('trunk:t1'), keys.live('a')), 0);
    });

    it('a node down ends its live calls and the limit holds of its calls in setup, and nothing of another node', async () => {
      const { keys, store } = await cluster({ a: { sessions: 0, max: 100 }, b: { sessions: 0, max: 100 } });
      const take = (call: string, node: string) =>
        store.reserveCall({
          call,
          candidates: [node],
          slots: 1,
          failovers: 0,
          ttlMs: 3000,
          limitHoldMs: 60_000,
          limits: tenant(10),
        });
      await take('live-a', 'a');
      await take('setup-a', 'a');
      await take('setup-b', 'b');
      assert.equal(await redis.get(keys.call('setup-a')), 'a =tenant:acme');
      await store.liveCalls('a', 'tok-a', {
        kind: 'delta',
        started: [{ call: 'live-a', entries: ['tenant:acme'] }],
        ended: [],
      });
      const down = await store.liveCalls('a', 'tok-a', { kind: 'down' });
      assert.deepEqual(down, { fenced: false, started: 0, ended: 1 });
      assert.deepEqual(await redis.zrange(keys.limit('tenant:acme'), 0, -1), ['setup-b']);
    });
  });
});
