import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { ClusterKeys, ClusterStore, createLogger } from '@fslb/shared';
import { deletePrefix, testPrefix, useRedis } from '../../../test/support/redis.js';
import { redisRelay } from '../../../test/support/redis-relay.js';
import { seededView } from '../../../test/support/seeded-view.js';
import { waitFor } from '../../../test/support/wait.js';
import {
  CallAccounting,
  SlotMode,
  type AccountingObserver,
  type AccountingSettings,
  type ReserveOutcome,
} from './call-accounting.js';
import { ClusterView } from './view/cluster-view.js';

/** A proxy's accounting over `view`, with the settings these tests share unless given. */
function accountingOf(
  store: ClusterStore,
  view: ClusterView,
  client: Redis,
  settings: Partial<AccountingSettings>,
  observer: AccountingObserver = { reservation: () => undefined },
): CallAccounting {
  return new CallAccounting({
    store,
    view,
    settings: {
      maxTargets: 2,
      timeoutMs: 1000,
      ttlMs: 10_000,
      publishMs: 20,
      proxyId: 'p1',
      limitHoldMs: 20_000,
      ...settings,
    },
    observer,
    log: createLogger({ level: 'silent', name: 'test' }),
    redisReady: () => client.status === 'ready',
  });
}

/**
 * The reservation's timeout against a real Redis: a Redis that stops answering is given up on
 * after reserveTimeoutMs, but one that answers late while answering others is waited for, so that
 * a burst queued in Redis does not push calls onto local accounting the other proxies cannot see.
 */
describe('call accounting: a late Redis reply', () => {
  const TIMEOUT_MS = 100;
  const r = useRedis({ before, after });

  async function fixture(t: TestContext, client: Redis, timeoutMs = TIMEOUT_MS) {
    const { keys, view } = await seededView(t, r.client, { a: { max: 1000 }, b: { max: 1000 } });
    const store = new ClusterStore(client, keys);
    const accounting = accountingOf(store, view, client, { timeoutMs });
    return { keys, view, accounting };
  }

  it('waits for a Redis that answers other reservations, and takes every slot there', async (t) => {
    // Every reply three times the timeout late; a call is offered every fifth of the timeout. A
    // longer timeout than the others' here: a stall of this process or the relay longer than the
    // timeout less one interval (a busy host) would leave a call seeing no recent answer.
    const timeoutMs = 250;
    const relay = await redisRelay(new URL(r.server.url), 3 * timeoutMs);
    const client = new Redis(relay.url, { maxRetriesPerRequest: 1 });
    t.after(async () => {
      client.disconnect();
      await relay.close();
    });
    await client.ping();
    const { keys, view, accounting } = await fixture(t, client, timeoutMs);
    t.after(() => accounting.close());

    const calls: Promise<ReserveOutcome>[] = [];
    for (let i = 0; i < 30; i++) {
      calls.push(Promise.resolve(accounting.reserve(`call-${i}`, view.nodes)));
      await sleep(timeoutMs / 5);
    }
    const outcomes = await Promise.all(calls);
    const modes = outcomes.map((o) => (o.kind === 'reserved' ? o.slots.mode : o.kind));
    // Before the first reply arrives nothing says Redis is alive: the first calls go local.
    // From the first reply on, Redis is seen answering, and every later call waits for its own.
    const firstRedis = modes.indexOf(SlotMode.Redis);
    assert.ok(firstRedis > 0 && firstRedis <= 15, `modes: ${modes.join(',')}`);
    assert.deepEqual(
      modes.slice(firstRedis),
      modes.slice(firstRedis).map(() => SlotMode.Redis),
      `modes: ${modes.join(',')}`,
    );
    for (const o of outcomes.slice(firstRedis)) {
      assert.ok(o.ms > timeoutMs, `a late reply was waited for: ${o.ms} ms`);
    }
    // The calls counted in Redis are exactly those in its reservation sets (the local ones' late
    // replies released theirs).
    const held = (await r.client.zcard(keys.resv('a'))) + (await r.client.zcard(keys.resv('b')));
    assert.equal(held, modes.filter((m) => m === SlotMode.Redis).length);
    assert.equal(accounting.localSlots, firstRedis);
  });

  it('gives up after the timeout on a Redis that answers nothing', async (t) => {
    const client = new Redis(r.server.url, { maxRetriesPerRequest: 1 });
    const pauser = new Redis(r.server.url);
    t.after(async () => {
      await pauser.client('UNPAUSE').catch(() => undefined);
      pauser.disconnect();
      client.disconnect();
    });
    const { view, accounting } = await fixture(t, client);
    t.after(() => accounting.close());
    // One answered reservation first: Redis was alive a moment ago.
    const warm = await accounting.reserve('warm', view.nodes);
    assert.equal(warm.kind === 'reserved' && warm.slots.mode, SlotMode.Redis);
    await pauser.client('PAUSE', 400, 'ALL');
    const cold = await accounting.reserve('cold', view.nodes);
    assert.equal(cold.kind === 'reserved' && cold.slots.mode, SlotMode.Local);
    assert.ok(
      cold.ms < 3 * TIMEOUT_MS,
      `fell back after about the timeout, not the busy wait: ${cold.ms} ms`,
    );
  });
});

describe('call accounting: a node that left the view', () => {
  const r = useRedis({ before, after });

  it('ends at once a slot Redis took on a node this proxy no longer knows', async (t) => {
    const redis = r.client;
    const prefix = testPrefix();
    t.after(() => deletePrefix(redis, prefix));
    const keys = new ClusterKeys(prefix);
    const store = new ClusterStore(redis, keys);
    await store.upsertNode({ id: 'a', sip: '127.0.0.1:5070', weight: 1 });
    await redis.set(keys.lease('a'), 'tok-a', 'PX', 30_000);
    await store.writeNode({
      id: 'a',
      token: 'tok-a',
      owner: 'mon',
      livenessTtlMs: 30_000,
      loud: { state: 'up', sessions: 0, maxSessions: 10 },
    });
    const view = new ClusterView();
    view.applySnapshot(await store.readView(), performance.now());
    const accounting = accountingOf(store, view, redis, { ttlMs: 60_000 });
    t.after(() => accounting.close());
    const candidates = [...view.nodes];
    // The node leaves this proxy's view while the script runs: an operator removed it, say.
    const pending = accounting.reserve('gone;t1', candidates);
    view.applyEvent({ type: 'removed', id: 'a', version: view.version() + 1 }, performance.now());
    const outcome = await pending;
    assert.equal(outcome.kind, 'full', 'the call cannot use a node the proxy does not know');
    await waitFor('the slot ended', async () => (await redis.zcard(keys.resv('a'))) === 0);
    assert.equal(await redis.exists(keys.call('gone;t1')), 0);
  });
});

describe('call accounting: advance slots', () => {
  const r = useRedis({ before, after });

  it("takes the next candidate's advance slot when the first choice holds none, before any round trip", async (t) => {
    const redis = r.client;
    const { keys, store, view } = await seededView(t, redis, { a: { max: 1000 }, b: { max: 1000 } });
    const outcomes: string[] = [];
    const accounting = accountingOf(
      store,
      view,
      redis,
      { publishMs: 0, advance: { max: 8, share: 4, refreshMs: 60_000, ttlMs: 10_000 } },
      { reservation: (outcome) => void outcomes.push(outcome) },
    );
    t.after(() => accounting.close());
    const [a, b] = [view.get('a'), view.get('b')];
    assert.ok(a && b);
    // Demand on b only: this proxy is granted slots there, none on a.
    for (let i = 0; i < 3; i++) await accounting.reserve(`warm-${i};t`, [b, a]);
    await waitFor('advance slots held on b', () => b.advance > 0);
    const heldOnB = b.advance;
    assert.equal(a.advance, 0);

    outcomes.length = 0;
    const r1 = await accounting.reserve('call-1;t', [a, b]);
    assert.ok(r1.kind === 'reserved', r1.kind);
    assert.equal(r1.slots.mode, SlotMode.Advance, 'no round trip');
    assert.equal(r1.slots.node.id, 'b', "b's slot, a having none");
    assert.deepEqual(
      r1.targets.map((n) => n.id),
      ['b', 'a'],
      'the node holding the slot first, the other as its failover',
    );
    assert.equal(b.advance, heldOnB - 1);
    assert.deepEqual(outcomes, ['advance']);
    const slotMembers = (await redis.zrange(keys.resv('b'), 0, -1)).filter((m) => m.startsWith('#'));
    assert.ok(slotMembers.includes(r1.slots.slot ?? ''), 'the slot is a member of b in Redis');

    // Only a candidate of the first choice's pool stands in for it.
    const r2 = await accounting.reserve('call-2;t', [a, b], { groups: [1, 2] });
    assert.ok(r2.kind === 'reserved');
    assert.equal(r2.slots.mode, SlotMode.Redis, 'b is in a later pool: a round trip, a first');
    assert.equal(r2.slots.node.id, 'a');
  });
});
