import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChannelTable, LIST_LAG_MS } from './channel-table.js';

describe('ChannelTable', () => {
  it('keeps the calls with limit entries from create to destroy', () => {
    const t = new ChannelTable();
    assert.equal(t.created('u1', 'c1;f', ['tenant:a'], 0), true);
    assert.equal(t.created('u2', 'c2;f', [], 0), true);
    assert.equal(t.created('u1', 'c1;f', ['tenant:a'], 1), false);
    assert.deepEqual(t.limited(), [{ call: 'c1;f', entries: ['tenant:a'] }]);
    assert.deepEqual(t.destroyed('u1', 5), { call: 'c1;f', entries: ['tenant:a'] });
    assert.equal(t.destroyed('u1', 6), undefined);
    assert.deepEqual(t.limited(), []);
    // A create that comes after its destroy (a list read before the end) does not bring it back.
    assert.equal(t.created('u1', 'c1;f', ['tenant:a'], 7), false);
  });

  it('reconciles with a list: adds what it lacks, drops what ended unseen once older than the list lag', () => {
    const t = new ChannelTable();
    t.created('old', 'c-old;f', ['tenant:a'], 0);
    t.created('young', 'c-young;f', ['tenant:a'], 10_000);
    const listed = new Set(['new']);
    assert.deepEqual(t.unknown(listed), ['new']);
    const r = t.reconcile(
      listed,
      new Map([['new', { call: 'c-new;f', entries: ['tenant:b'] }]]),
      10_000 + LIST_LAG_MS - 1,
      10_000 + LIST_LAG_MS,
    );
    assert.deepEqual(r, { added: 1, removed: 1 });
    assert.deepEqual(
      t
        .limited()
        .map((c) => c.call)
        .sort(),
      ['c-new;f', 'c-young;f'],
    );
    t.clear();
    assert.equal(t.size, 0);
  });

  it('forgets destroyed channels after a minute, whether or not a reconcile runs', () => {
    const t = new ChannelTable();
    for (let i = 0; i < 100; i++) t.destroyed(`u${i}`, i);
    assert.equal(t.remembered, 100);
    t.destroyed('late', 60_050);
    assert.equal(t.remembered, 51);
    // Remembered: a create read late from a list does not bring it back.
    assert.equal(t.created('u99', 'c;f', [], 60_060), false);
  });
});
