import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fairShare, planClaims, rankNodes } from './ownership.js';

const nodes = ['fs1', 'fs2', 'fs3', 'fs4', 'fs5', 'fs6'];

describe('ownership', () => {
  it('computes the fair share as ceil(nodes / monitors)', () => {
    assert.equal(fairShare(6, 2), 3);
    assert.equal(fairShare(6, 4), 2);
    assert.equal(fairShare(7, 2), 4);
    assert.equal(fairShare(6, 0), 6);
    assert.equal(fairShare(0, 3), 0);
  });

  it('ranks nodes differently per monitor, and stably', () => {
    const a = rankNodes('mon-a', nodes);
    assert.deepEqual(rankNodes('mon-a', [...nodes].reverse()), a);
    assert.deepEqual([...a].sort(), nodes);
    const others = ['mon-b', 'mon-c', 'mon-d'].map((m) => rankNodes(m, nodes).join());
    assert.ok(others.some((o) => o !== a.join()));
  });

  it('claims free nodes up to the share, best ranked first', () => {
    const free = new Map(nodes.map((n) => [n, 1000]));
    const plan = planClaims({
      monitorId: 'mon-a',
      nodes,
      owned: new Set(),
      freeSince: free,
      liveMonitors: 2,
      now: 1000,
      starvingAfterMs: 3000,
    });
    assert.equal(plan.share, 3);
    assert.deepEqual(plan.claim, rankNodes('mon-a', nodes).slice(0, 3));
    assert.equal(plan.release, undefined);
  });

  it('hands back its worst-ranked node when over the share, one per round', () => {
    const plan = planClaims({
      monitorId: 'mon-a',
      nodes,
      owned: new Set(nodes),
      freeSince: new Map(),
      liveMonitors: 2,
      now: 0,
      starvingAfterMs: 3000,
    });
    assert.deepEqual(plan.claim, []);
    assert.equal(plan.release, rankNodes('mon-a', nodes).at(-1));
  });

  it('claims a node left free too long even past its share', () => {
    const plan = planClaims({
      monitorId: 'mon-a',
      nodes,
      owned: new Set(['fs1', 'fs2', 'fs3']),
      freeSince: new Map([
        ['fs4', 0],
        ['fs5', 9000],
      ]),
      liveMonitors: 2,
      now: 10_000,
      starvingAfterMs: 3000,
    });
    assert.deepEqual(plan.claim, ['fs4']);
  });
});
