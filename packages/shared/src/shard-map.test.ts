import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClusterKeys } from './cluster-keys.js';
import { ShardMap } from './shard-map.js';

describe('pool shards', () => {
  const pools = [
    { id: 'a', nodes: ['fs1', 'fs2'], shard: 'east' },
    { id: 'b', nodes: ['fs3'], shard: 'west' },
    { id: 'c', nodes: ['fs4'] },
  ];

  it('gives each shard a hash tag of its own on a Redis Cluster', () => {
    const map = new ShardMap(new ClusterKeys('fslb', { sharded: true }), pools);
    assert.equal(map.of('fs1').node('fs1'), '{fslb:east}:node:fs1');
    assert.equal(map.of('fs2').resv('fs2'), '{fslb:east}:resv:fs2');
    assert.equal(map.of('fs3').events, '{fslb:west}:events');
    assert.equal(map.of('fs3').eventsPublish, 'SPUBLISH {fslb:west}:events');
    assert.equal(map.of('fs4').node('fs4'), '{fslb}:node:fs4', 'a pool without a shard: the prefix');
    assert.equal(map.of('unknown').nodes, '{fslb}:nodes');
    assert.deepEqual(
      map.all.map((k) => k.prefix),
      ['{fslb}', '{fslb:east}', '{fslb:west}'],
    );
    assert.deepEqual(map.names, ['east', 'west']);
    assert.ok(map.split);
    // Presence and the registry stay under the prefix.
    assert.equal(map.base.proxies, '{fslb}:proxies');
    assert.equal(map.base.shards, '{fslb}:shards');
  });

  it('changes no key on a single Redis, nor under a prefix that carries its own hash tag', () => {
    for (const base of [new ClusterKeys('fslb'), new ClusterKeys('app:{x}', { sharded: true })]) {
      const map = new ShardMap(base, pools);
      assert.equal(map.all.length, 1);
      assert.equal(map.of('fs1'), base);
      assert.equal(map.of('fs3').node('fs3'), `${base.prefix}:node:fs3`);
      assert.ok(!map.split);
    }
    assert.deepEqual(new ShardMap(new ClusterKeys('fslb'), pools).names, []);
  });

  it('lets a reload add nodes to a shard, not add a shard or move a node', () => {
    const base = new ClusterKeys('fslb', { sharded: true });
    const map = new ShardMap(base, pools);
    const grown = pools.map((p) => (p.id === 'b' ? { ...p, nodes: ['fs3', 'fs5'] } : p));
    assert.ok(map.compatible(new ShardMap(base, grown)));
    const moved = pools.map((p) => (p.id === 'c' ? { ...p, shard: 'west' } : p));
    assert.ok(!map.compatible(new ShardMap(base, moved)), 'fs4 moved, and the prefix lost its nodes');
    const added = [...pools, { id: 'd', nodes: ['fs6'], shard: 'north' }];
    assert.ok(!map.compatible(new ShardMap(base, added)));
    const swapped = [
      { id: 'a', nodes: ['fs1'], shard: 'east' },
      { id: 'b', nodes: ['fs2', 'fs3'], shard: 'west' },
      { id: 'c', nodes: ['fs4'] },
    ];
    assert.ok(!map.compatible(new ShardMap(base, swapped)), 'fs2 moved from east to west');
  });
});
