import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { createLogger, type ClusterStore } from '@fslb/shared';
import type { ClusterView } from './view/cluster-view.js';
import { useRedis } from '../../../test/support/redis.js';
import { seededView } from '../../../test/support/seeded-view.js';
import { waitFor } from '../../../test/support/wait.js';
import { AdvanceSlots, type AdvanceDeps } from './advance-slots.js';

/** A proxy's advance slots against a real Redis, apart from the rest of the proxy. */
describe('advance slots (against a real Redis)', () => {
  const r = useRedis({ before, after });

  /** A proxy's advance slots on `store`, closed when the test ends; `deps` replaces the defaults. */
  function advanceSlots(
    t: TestContext,
    store: ClusterStore,
    view: ClusterView,
    max: number,
    deps: Partial<AdvanceDeps> = {},
  ): AdvanceSlots {
    const slots = new AdvanceSlots({
      store,
      settings: { max, share: 4, refreshMs: 60_000, ttlMs: 10_000 },
      proxyId: 'px',
      log: createLogger({ level: 'silent', name: 'test' }),
      redisReady: () => r.client.status === 'ready',
      node: (id) => view.get(id),
      learn: () => undefined,
      onLost: () => undefined,
      ...deps,
    });
    t.after(() => slots.close());
    return slots;
  }

  it('hands back the slots of a node that left the cluster, and keeps the others', async (t) => {
    const redis = r.client;
    const { keys, store, view } = await seededView(t, redis, { a: { max: 1000 }, b: { max: 1000 } });
    const left = new Set<string>();
    let lost = 0;
    const slots = advanceSlots(t, store, view, 8, {
      node: (id) => (left.has(id) ? undefined : view.get(id)),
      onLost: () => lost++,
    });
    const [a, b] = [view.get('a'), view.get('b')];
    assert.ok(a && b);
    const members = async (id: string) =>
      (await redis.zrange(keys.resv(id), 0, -1)).filter((m) => m.startsWith('#'));

    slots.take(a, performance.now());
    slots.take(b, performance.now());
    await waitFor(
      'slots held on both nodes',
      async () => (await members('a')).length > 0 && (await members('b')).length > 0,
    );
    const onA = await members('a');

    // b is removed from the cluster (its keys go with it) and leaves this proxy's view.
    await store.removeNode('b');
    left.add('b');
    slots.take(a, performance.now());
    slots.take(a, performance.now());
    await waitFor('b handed back', () => slots.held === a.advance);
    assert.equal(lost, 0, 'a node that left is not taken for a Redis that lost its state');
    const still = await members('a');
    assert.ok(
      onA.some((m) => still.includes(m)),
      "a's slots are still held in Redis",
    );
    assert.ok(a.advance > 0);
  });

  it('asks for slots earlier once its book-keeping calls have been slow', async (t) => {
    const redis = r.client;
    const { store, view } = await seededView(t, redis, { a: { max: 100_000 } });
    let calls = 0;
    const slots = advanceSlots(t, store, view, 256, { learn: () => calls++ });
    const a = view.get('a');
    assert.ok(a);
    const takeDownTo = (left: number) => {
      while (a.advance > left) assert.ok(slots.take(a, performance.now()));
    };
    // A thousand calls over the last second had it first: a demand of about 630/s.
    const start = performance.now() - 1000;
    for (let i = 0; i < 1000; i++) slots.take(a, start + i);
    await waitFor('its slots held', () => a.advance === 256);
    assert.ok(slots.leadMs < 100, `an idle Redis answers at once (lead ${slots.leadMs.toFixed(1)} ms)`);

    // Redis stalls for 200 ms while the proxy asks for more (at a quarter of 256 left): a
    // book-keeping call of 100 ms or more makes the lead 200 ms or more, whatever part of the
    // pause passed before it was sent (under a loaded test run, 100 ms of pause once left 90).
    const other = redis.duplicate();
    t.after(() => other.disconnect());
    await other.client('PAUSE', 200, 'ALL');
    takeDownTo(64);
    await waitFor('a slow book-keeping call measured', () => slots.leadMs >= 200);
    await waitFor('its slots held again', () => a.advance === 256);

    // Now it asks while the calls of such a wait are still left, long before a quarter.
    const before = calls;
    takeDownTo(120);
    await waitFor('more slots asked for with 120 of 256 left', () => calls > before);
    await waitFor('its slots held again', () => a.advance === 256);
  });
});
