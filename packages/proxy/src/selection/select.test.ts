import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hashString } from './hash.js';
import { hasRoom, selectByAor, selectLeastLoaded, selectWithAffinity, type SelectNode } from './select.js';

/** A node as plain values; eligible, tier 0 and weight 1 unless given. */
function node(id: string, sessions: number, maxSessions: number, more: Partial<SelectNode> = {}): SelectNode {
  return {
    id,
    sessions,
    maxSessions,
    reservations: 0,
    weight: 1,
    eligible: true,
    tier: 0,
    idHash: hashString(id),
    ...more,
  };
}

/** A seeded uniform source (mulberry32), so that spread tests are repeatable. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ids = (ns: readonly SelectNode[]) => ns.map((n) => n.id);

describe('selectLeastLoaded', () => {
  it('puts the least loaded node first and the next best behind it', () => {
    const nodes = [node('a', 50, 100), node('b', 10, 100), node('c', 30, 100), node('d', 70, 100)];
    assert.deepEqual(ids(selectLeastLoaded(nodes, { maxTargets: 3, random: seeded(1) })), ['b', 'c', 'a']);
  });

  it('scores by (sessions + reservations) / capacity, so a big node takes more', () => {
    const nodes = [node('small', 5, 10), node('big', 40, 100)];
    assert.deepEqual(ids(selectLeastLoaded(nodes, { maxTargets: 2, random: seeded(2) })), ['big', 'small']);
    const reserved = [node('a', 10, 100, { reservations: 30 }), node('b', 35, 100)];
    assert.deepEqual(ids(selectLeastLoaded(reserved, { maxTargets: 1, random: seeded(2) })), ['b']);
  });

  it('fills a node of weight 2 to twice the load of a node of weight 1', () => {
    const nodes = [node('w1', 0, 1000), node('w2', 0, 1000, { weight: 2 })];
    const load = new Map([
      ['w1', 0],
      ['w2', 0],
    ]);
    const random = seeded(3);
    for (let i = 0; i < 300; i++) {
      const view = nodes.map((n) => ({ ...n, sessions: load.get(n.id) ?? 0 }));
      const first = selectLeastLoaded(view, { maxTargets: 1, random })[0]!;
      load.set(first.id, (load.get(first.id) ?? 0) + 1);
    }
    assert.deepEqual([load.get('w1'), load.get('w2')], [100, 200]);
  });

  it('never returns a node that is not eligible or has no room, and returns nothing when none has', () => {
    const nodes = [
      node('down', 0, 100, { eligible: false }),
      node('full', 100, 100),
      node('reserved-full', 90, 100, { reservations: 10 }),
      node('unknown-capacity', 0, 0),
      node('ok', 99, 100),
    ];
    assert.deepEqual(ids(selectLeastLoaded(nodes, { maxTargets: 5, random: seeded(4) })), ['ok']);
    assert.deepEqual(selectLeastLoaded(nodes.slice(0, 4), { maxTargets: 3, random: seeded(4) }), []);
    assert.equal(hasRoom(node('x', 99, 100, { reservations: 1 })), false);
  });

  it('spreads first choices evenly over equally loaded nodes (no herd between proxies)', () => {
    const nodes = ['a', 'b', 'c', 'd', 'e'].map((id) => node(id, 20, 100));
    const counts = new Map<string, number>();
    const random = seeded(5);
    for (let i = 0; i < 5000; i++) {
      const id = selectLeastLoaded(nodes, { maxTargets: 1, random })[0]!.id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    for (const [id, c] of counts) assert.ok(c > 850 && c < 1150, `${id}: ${c}`);
    assert.equal(counts.size, 5);
  });

  it('picks a node one call above the least loaded now and then, and never one two calls above it', () => {
    const nodes = [node('a', 10, 100), node('b', 11, 100), node('c', 12, 100)];
    const firsts = new Set<string>();
    const random = seeded(6);
    for (let i = 0; i < 500; i++) firsts.add(selectLeastLoaded(nodes, { maxTargets: 1, random })[0]!.id);
    assert.deepEqual([...firsts].sort(), ['a', 'b']);
  });

  it('returns distinct targets, at most maxTargets', () => {
    const nodes = ['a', 'b', 'c', 'd'].map((id) => node(id, 0, 10));
    const r = selectLeastLoaded(nodes, { maxTargets: 3, random: seeded(7) });
    assert.equal(r.length, 3);
    assert.equal(new Set(ids(r)).size, 3);
    assert.deepEqual(selectLeastLoaded(nodes, { maxTargets: 0, random: seeded(7) }), []);
  });

  it('prefers a lower tier and spills to the next only when the first is full', () => {
    const nodes = [node('far', 0, 100, { tier: 1 }), node('near', 90, 100), node('near-full', 100, 100)];
    assert.deepEqual(ids(selectLeastLoaded(nodes, { maxTargets: 3, random: seeded(8) })), ['near', 'far']);
  });
});

describe('selectWithAffinity', () => {
  const cluster = ['fs1', 'fs2', 'fs3', 'fs4', 'fs5'].map((id) => node(id, 0, 100));

  it('sends every call with the same key to the same node, whatever the load', () => {
    const first = selectWithAffinity(cluster, 'conf-42', { maxTargets: 3, random: seeded(9) });
    const loaded = cluster.map((n) => (n.id === first[0]!.id ? { ...n, sessions: 90 } : n));
    for (let i = 0; i < 20; i++) {
      const r = selectWithAffinity(loaded, 'conf-42', { maxTargets: 3, random: seeded(i) });
      assert.equal(r[0]!.id, first[0]!.id);
      assert.equal(r.length, 3);
      assert.equal(new Set(ids(r)).size, 3);
    }
  });

  it('moves only the keys of a node that leaves', () => {
    const keys = Array.from({ length: 2000 }, (_, i) => `conf-${i}`);
    const before = new Map(
      keys.map((k) => [k, selectWithAffinity(cluster, k, { maxTargets: 1, random: Math.random })[0]!.id]),
    );
    const without = cluster.filter((n) => n.id !== 'fs3');
    let moved = 0;
    for (const k of keys) {
      const now = selectWithAffinity(without, k, { maxTargets: 1, random: Math.random })[0]!.id;
      if (now !== before.get(k)) {
        moved++;
        assert.equal(before.get(k), 'fs3', `${k} moved from ${before.get(k)} to ${now}`);
      }
    }
    const share = [...before.values()].filter((v) => v === 'fs3').length;
    assert.equal(moved, share);
    assert.ok(share > 300 && share < 500, String(share));
  });

  it('moves a key off a node that is full, and back when it has room', () => {
    const home = selectWithAffinity(cluster, 'conf-7', { maxTargets: 1, random: seeded(1) })[0]!.id;
    const full = cluster.map((n) => (n.id === home ? { ...n, sessions: 100 } : n));
    assert.notEqual(selectWithAffinity(full, 'conf-7', { maxTargets: 1, random: seeded(1) })[0]!.id, home);
    assert.equal(selectWithAffinity(cluster, 'conf-7', { maxTargets: 1, random: seeded(1) })[0]!.id, home);
  });

  it('shares keys by weight', () => {
    const weighted = [node('w1', 0, 100), node('w3', 0, 100, { weight: 3 })];
    let w3 = 0;
    for (let i = 0; i < 4000; i++) {
      if (selectWithAffinity(weighted, `k${i}`, { maxTargets: 1, random: Math.random })[0]!.id === 'w3') w3++;
    }
    assert.ok(w3 > 2850 && w3 < 3150, String(w3));
  });
});

describe('selectByAor', () => {
  const cluster = ['fs1', 'fs2', 'fs3', 'fs4'].map((id) => node(id, 0, 100));

  it('orders every target by rendezvous rank for the AOR, ignoring load', () => {
    const a = selectByAor(cluster, 'sip:alice@example.com', 3);
    const loaded = cluster.map((n) => ({ ...n, sessions: n.id === a[0]!.id ? 99 : 0 }));
    assert.deepEqual(ids(selectByAor(loaded, 'sip:alice@example.com', 3)), ids(a));
    assert.equal(a.length, 3);
  });

  it('keeps a user on their node while others come and go; only the leaving node users move', () => {
    const users = Array.from({ length: 1000 }, (_, i) => `sip:u${i}@example.com`);
    const before = new Map(users.map((u) => [u, selectByAor(cluster, u, 1)[0]!.id]));
    const drained = cluster.map((n) => (n.id === 'fs2' ? { ...n, eligible: false } : n));
    for (const u of users) {
      const now = selectByAor(drained, u, 1)[0]!.id;
      if (before.get(u) !== 'fs2') assert.equal(now, before.get(u));
      else assert.notEqual(now, 'fs2');
    }
    const grown = [...cluster, node('fs5', 0, 100)];
    for (const u of users) {
      const now = selectByAor(grown, u, 1)[0]!.id;
      assert.ok(now === before.get(u) || now === 'fs5');
    }
  });
});
