import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NodeRecord, ViewSnapshot } from '@fslb/shared';
import { ClusterView, EventEffect } from './cluster-view.js';
import { hostPortOf, sipUri } from './view-node.js';

function rec(id: string, version: number, more: Partial<NodeRecord> = {}): NodeRecord {
  return {
    id,
    sip: `10.0.0.${id.length}:5080`,
    state: 'up',
    reason: '',
    sessions: 0,
    maxSessions: 100,
    cap: 0,
    idleCpu: 90,
    cps: 0,
    weight: 1,
    admin: '',
    owner: 'mon',
    pool: '',
    heartbeatAt: 1,
    updatedAt: 1,
    version,
    ...more,
  };
}

function snapshot(at: number, version: number, nodes: [NodeRecord, boolean, number][]): ViewSnapshot {
  return {
    at,
    version,
    nodes: nodes.map(([record, alive, reservations]) => ({
      id: record.id,
      ok: true,
      record,
      alive,
      reservations,
    })),
  };
}

describe('ClusterView', () => {
  it('loads a snapshot: records, liveness, reservations; eligibility from state, drain and liveness', () => {
    const v = new ClusterView();
    const r = v.applySnapshot(
      snapshot(1000, 10, [
        [rec('a', 3, { sessions: 5 }), true, 2],
        [rec('b', 4, { state: 'down' }), true, 0],
        [rec('c', 5, { admin: 'drain' }), true, 0],
        [rec('d', 6), false, 0],
        [rec('e', 7, { maxSessions: 0 }), true, 0],
      ]),
      1,
    );
    assert.deepEqual(r.added, ['a', 'b', 'c', 'd', 'e']);
    assert.deepEqual(
      v.nodes.map((n) => [n.id, n.eligible, n.sessions, n.reservations]),
      [
        ['a', true, 5, 2],
        ['b', false, 0, 0],
        ['c', false, 0, 0],
        ['d', false, 0, 0],
        ['e', false, 0, 0],
      ],
    );
    assert.equal(v.version(), 10);
    assert.equal(v.get('a')?.destination, 'sip:10.0.0.1:5080');
  });

  it('applies node events newer than what it holds, ignores older ones, and flags a skipped version', () => {
    const v = new ClusterView();
    v.applySnapshot(snapshot(1000, 10, [[rec('a', 10), true, 0]]), 1);
    assert.equal(
      v.applyEvent(
        { type: 'node', id: 'a', version: 11, record: rec('a', 11, { state: 'down' }), at: 2000 },
        2,
      ),
      EventEffect.Applied,
    );
    assert.equal(v.get('a')?.eligible, false);
    assert.equal(
      v.applyEvent({ type: 'node', id: 'a', version: 9, record: rec('a', 9) }, 3),
      EventEffect.Stale,
    );
    assert.equal(v.get('a')?.record.state, 'down');
    assert.equal(
      v.applyEvent(
        { type: 'node', id: 'a', version: 14, record: rec('a', 14), at: 3000, reservations: 1 },
        4,
      ),
      EventEffect.Gap,
    );
    assert.equal(v.get('a')?.eligible, true);
    assert.equal(v.get('a')?.reservations, 1);
  });

  it('follows each pool shard on its own: versions, gaps and snapshots', () => {
    const v = new ClusterView();
    v.applySnapshot(snapshot(1000, 50, [[rec('a', 50), true, 0]]), 1, '');
    v.applySnapshot(snapshot(1000, 3, [[rec('e', 3), true, 0]]), 1, '{fslb:east}');
    assert.equal(v.version(), 50);
    assert.equal(v.version('{fslb:east}'), 3);
    // The next version of each shard is no gap, however far apart the counters are.
    assert.equal(
      v.applyEvent(
        { type: 'node', id: 'e', version: 4, record: rec('e', 4, { sessions: 7 }), at: 2000 },
        2,
        '{fslb:east}',
      ),
      EventEffect.Applied,
    );
    assert.equal(v.get('e')?.sessions, 7);
    assert.equal(
      v.applyEvent({ type: 'node', id: 'a', version: 51, record: rec('a', 51), at: 2000 }, 2, ''),
      EventEffect.Applied,
    );
    assert.equal(
      v.applyEvent({ type: 'node', id: 'e', version: 6, record: rec('e', 6), at: 2100 }, 3, '{fslb:east}'),
      EventEffect.Gap,
      'east skipped its version 5',
    );
    // A snapshot of one shard drops that shard's missing nodes only.
    v.applySnapshot(snapshot(3000, 60, []), 4, '');
    assert.deepEqual(
      v.nodes.map((n) => n.id),
      ['e'],
    );
    // A node's event on another shard's channel (left there by a move) is not applied.
    assert.equal(
      v.applyEvent(
        { type: 'node', id: 'e', version: 61, record: rec('e', 61, { state: 'down' }), at: 3100 },
        5,
        '',
      ),
      EventEffect.Stale,
    );
    assert.equal(v.get('e')?.record.state, 'up');
  });

  it('adds a node from an event and removes one on a newer removal', () => {
    const v = new ClusterView();
    v.applySnapshot(snapshot(1000, 1, []), 1);
    v.applyEvent({ type: 'node', id: 'n', version: 2, record: rec('n', 2), at: 5, reservations: 0 }, 2);
    assert.deepEqual(
      v.nodes.map((n) => n.id),
      ['n'],
    );
    v.applyEvent({ type: 'removed', id: 'n', version: 3 }, 3);
    assert.deepEqual(v.nodes, []);
  });

  it('orders load figures by Redis time, whoever wrote them', () => {
    const v = new ClusterView();
    v.applySnapshot(snapshot(1000, 1, [[rec('a', 1, { sessions: 1 }), true, 0]]), 1);
    v.applyLoad({ id: 'a', sessions: 3, reservations: 4, at: 3000 });
    v.applyLoad({ id: 'a', sessions: 9, reservations: 9, at: 2000 });
    assert.deepEqual([v.get('a')?.sessions, v.get('a')?.reservations], [3, 4]);
    // A record event newer in version but older in time changes the record, not the load.
    v.applyEvent(
      {
        type: 'node',
        id: 'a',
        version: 2,
        record: rec('a', 2, { sessions: 7, weight: 3 }),
        at: 2500,
        reservations: 0,
      },
      2,
    );
    assert.deepEqual([v.get('a')?.sessions, v.get('a')?.reservations, v.get('a')?.weight], [3, 4, 3]);
    // A snapshot older than the figures keeps them too.
    v.applySnapshot(snapshot(2900, 2, [[rec('a', 2, { sessions: 0 }), true, 0]]), 3);
    assert.deepEqual([v.get('a')?.sessions, v.get('a')?.reservations], [3, 4]);
    v.applySnapshot(snapshot(4000, 2, [[rec('a', 2, { sessions: 6 }), true, 1]]), 4);
    assert.deepEqual([v.get('a')?.sessions, v.get('a')?.reservations], [6, 1]);
  });

  it('counts in-flight and local reservations on top of Redis figures', () => {
    const v = new ClusterView();
    v.applySnapshot(snapshot(1000, 1, [[rec('a', 1), true, 2]]), 1);
    const a = v.get('a')!;
    a.pending++;
    a.local += 2;
    assert.equal(a.reservations, 5);
  });

  it('drops nodes a snapshot no longer has and holds out unreadable ones', () => {
    const v = new ClusterView();
    v.applySnapshot(
      snapshot(1000, 1, [
        [rec('a', 1), true, 0],
        [rec('b', 1), true, 0],
      ]),
      1,
    );
    const r = v.applySnapshot(
      {
        at: 2000,
        version: 2,
        nodes: [{ id: 'a', ok: false, problems: ['sessions: expected a whole number'] }],
      },
      2,
    );
    assert.deepEqual(r.removed, ['b']);
    assert.deepEqual(r.unreadable, [{ id: 'a', problems: ['sessions: expected a whole number'] }]);
    assert.equal(v.get('a')?.eligible, false);
  });

  it('keeps a node that a read in chunks may have passed: one added after the read began', () => {
    const v = new ClusterView();
    v.applySnapshot(snapshot(1000, 5, [[rec('a', 5), true, 0]]), 1);
    // The read began at version 6; node b came by event at version 7 while it ran.
    assert.equal(
      v.applyEvent({ type: 'node', id: 'b', version: 7, record: rec('b', 7) }, 2),
      EventEffect.Gap,
    );
    const r = v.applySnapshot({ ...snapshot(2000, 8, [[rec('a', 5), true, 0]]), startVersion: 6 }, 3);
    assert.deepEqual(r.removed, []);
    assert.ok(v.get('b'));
    // Absent from a read that began after its version: gone.
    const later = v.applySnapshot({ ...snapshot(3000, 9, [[rec('a', 5), true, 0]]), startVersion: 8 }, 4);
    assert.deepEqual(later.removed, ['b']);
  });

  it('trusts a snapshot whose counter went backwards (the version key was lost)', () => {
    const v = new ClusterView();
    v.applySnapshot(snapshot(1000, 500, [[rec('a', 500), true, 0]]), 1);
    v.applySnapshot(snapshot(2000, 3, [[rec('a', 3, { state: 'down' }), true, 0]]), 2);
    assert.equal(v.get('a')?.record.state, 'down');
    assert.equal(v.version(), 3);
  });

  it('marks a node unavailable until news says otherwise', () => {
    const v = new ClusterView();
    v.applySnapshot(snapshot(1000, 1, [[rec('a', 1), true, 0]]), 1);
    v.markUnavailable('a');
    assert.equal(v.get('a')?.eligible, false);
    v.applyEvent({ type: 'node', id: 'a', version: 2, record: rec('a', 2), at: 2000, reservations: 0 }, 2);
    assert.equal(v.get('a')?.eligible, true);
  });
});

describe('SIP destinations', () => {
  it('makes a URI of host:port and keeps a URI', () => {
    assert.equal(sipUri('10.0.0.1:5080'), 'sip:10.0.0.1:5080');
    assert.equal(sipUri('sip:fs1.example.com;transport=tcp'), 'sip:fs1.example.com;transport=tcp');
  });
  it('reads host:port of a URI to match responses, with default ports and IPv6', () => {
    assert.equal(hostPortOf('sip:10.0.0.1:5080'), '10.0.0.1:5080');
    assert.equal(hostPortOf('sip:FS1.example.com;transport=tcp'), 'fs1.example.com:5060');
    assert.equal(hostPortOf('sips:10.0.0.1'), '10.0.0.1:5061');
    assert.equal(hostPortOf('sip:[2001:db8::1]:5080'), '2001:db8::1:5080');
    assert.equal(hostPortOf('sip:user@10.0.0.2:5070'), '10.0.0.2:5070');
  });
});
