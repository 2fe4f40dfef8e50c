import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClusterKeys } from './cluster-keys.js';
import { decodeClusterEvent, encodeClusterEvent } from './cluster-event.js';
import {
  decodeNodeRecord,
  decodeNodeRecordBySchema,
  encodeNodeRecord,
  type NodeRecord,
} from './node-record.js';

const record: NodeRecord = {
  id: 'fs1',
  sip: '10.0.0.1:5080',
  state: 'up',
  reason: '',
  sessions: 12,
  maxSessions: 500,
  cap: 500,
  idleCpu: 78.4,
  cps: 3,
  weight: 1.5,
  admin: '',
  owner: 'mon-a',
  pool: 'pstn',
  heartbeatAt: 1_764_000_000_123,
  updatedAt: 1_764_000_000_456,
  version: 42,
};

describe('node record codec', () => {
  it('round-trips through the hash form', () => {
    const hash = encodeNodeRecord(record);
    assert.ok(Object.values(hash).every((v) => typeof v === 'string'));
    assert.deepEqual(decodeNodeRecord(hash), { ok: true, value: record });
  });

  it('reports garbage fields instead of throwing', () => {
    const hash = { ...encodeNodeRecord(record), sessions: 'banana', state: 'sideways', weight: '0' };
    const r = decodeNodeRecord(hash);
    assert.equal(r.ok, false);
    assert.ok(!r.ok);
    assert.deepEqual(
      r.problems.map((p) => p.split(':')[0]),
      ['state', 'sessions', 'weight'],
    );
  });

  it('reports a missing record and missing required fields', () => {
    assert.deepEqual(decodeNodeRecord({}), { ok: false, problems: ['record is missing'] });
    const { sip: _sip, ...noSip } = encodeNodeRecord(record);
    const r = decodeNodeRecord(noSip);
    assert.ok(!r.ok && r.problems[0]?.startsWith('sip'));
  });

  it('reads every record exactly as the schema does, the quick path included', () => {
    const values = [
      '',
      '0',
      '7',
      '-1',
      '1.5',
      '-0.5',
      '01',
      '1e3',
      ' 1',
      '1 ',
      'NaN',
      'Infinity',
      '0x10',
      '9007199254740991',
      '9007199254740993',
      'up',
      'down',
      'draining',
      'unknown',
      'UP',
      'drain',
      'fs1',
      'fs 1',
      'x'.repeat(70),
    ];
    const base = encodeNodeRecord(record);
    let agreed = 0;
    for (const field of Object.keys(base)) {
      for (const v of [...values, undefined]) {
        const hash: Record<string, string> = Object.fromEntries(
          Object.entries({ ...base, [field]: v }).filter((e): e is [string, string] => e[1] !== undefined),
        );
        const quick = decodeNodeRecord(hash);
        const schema = decodeNodeRecordBySchema(hash);
        assert.deepEqual(quick, schema, `${field}=${String(v)}`);
        agreed++;
      }
    }
    assert.equal(agreed, Object.keys(base).length * (values.length + 1));
  });

  it('fills optional fields that an older writer left out', () => {
    const { cap: _c, idleCpu: _i, admin: _a, ...old } = encodeNodeRecord(record);
    const r = decodeNodeRecord(old);
    assert.ok(r.ok);
    assert.equal(r.value.cap, 0);
    assert.equal(r.value.admin, '');
  });
});

describe('cluster event codec', () => {
  it('round-trips node and removed events', () => {
    const node = { type: 'node' as const, id: 'fs1', version: 42, record };
    assert.deepEqual(decodeClusterEvent(encodeClusterEvent(node)), { ok: true, value: node });
    const removed = { type: 'removed' as const, id: 'fs1', version: 43 };
    assert.deepEqual(decodeClusterEvent(encodeClusterEvent(removed)), { ok: true, value: removed });
  });

  it('rejects garbage without throwing', () => {
    for (const bad of [
      'not json',
      '{}',
      '{"v":2,"type":"removed","id":"fs1","version":1}',
      '{"v":1,"type":"node","id":"fs1","version":1,"record":{"id":"fs1"}}',
      '{"v":1,"type":"removed","id":"../x","version":1}',
      JSON.stringify({ v: 1, type: 'node', id: 'fs2', version: 1, record: encodeNodeRecord(record) }),
      'null',
    ]) {
      const r = decodeClusterEvent(bad);
      assert.equal(r.ok, false, bad);
    }
  });
});

describe('cluster keys', () => {
  it('spells the documented names under the default prefix', () => {
    const k = new ClusterKeys();
    assert.deepEqual(
      [
        k.nodes,
        k.node('fs1'),
        k.alive('fs1'),
        k.lease('fs1'),
        k.monitors,
        k.monitor('m'),
        k.version,
        k.events,
        k.monitorEvents,
      ],
      [
        'fslb:nodes',
        'fslb:node:fs1',
        'fslb:alive:fs1',
        'fslb:lease:fs1',
        'fslb:monitors',
        'fslb:monitor:m',
        'fslb:version',
        'fslb:events',
        'fslb:monitor-events',
      ],
    );
  });

  it('keeps a hash-tagged prefix intact so every key shares one cluster slot', () => {
    const k = new ClusterKeys('{fslb}');
    assert.equal(k.node('fs1'), '{fslb}:node:fs1');
    assert.equal(k.lease('fs1'), '{fslb}:lease:fs1');
    assert.equal(k.events, '{fslb}:events');
    assert.equal(k.pattern, '{fslb}:*');
    assert.equal(new ClusterKeys('a*b').pattern, 'a\\*b:*');
  });

  it('hash-tags the prefix on a Redis Cluster and publishes events on a sharded channel', () => {
    const k = new ClusterKeys('fslb', { sharded: true });
    assert.equal(k.prefix, '{fslb}');
    assert.equal(k.node('fs1'), '{fslb}:node:fs1');
    assert.equal(k.eventsPublish, 'SPUBLISH {fslb}:events');
    assert.equal(new ClusterKeys('app:{x}', { sharded: true }).prefix, 'app:{x}');
    assert.equal(new ClusterKeys('fslb').eventsPublish, 'PUBLISH fslb:events');
  });

  it('refuses an unusable prefix', () => {
    assert.throws(() => new ClusterKeys(''), TypeError);
    assert.throws(() => new ClusterKeys('has space'), TypeError);
  });
});
