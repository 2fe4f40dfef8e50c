import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { slotTargets } from './advance-slots.js';

describe('advance slots: how many a node wants, and when to ask for more', () => {
  it('wants about half a second of demand and asks again at a quarter of it on a quick round trip', () => {
    // 20 calls/s, a book-keeping call answered within a few ms.
    const t = slotTargets(20, 7, 256);
    assert.equal(t.want, 11);
    assert.equal(t.low, 11 / 4);
  });

  it('asks earlier when the round trip would outlast a quarter of what it holds', () => {
    const quick = slotTargets(600, 7, 256);
    // 85 ms from asking to the answer (a busy host): 51 calls arrive meanwhile.
    const slow = slotTargets(600, 85, 256);
    const slower = slotTargets(600, 200, 256);
    assert.equal(quick.want, 256);
    assert.equal(quick.low, 64);
    assert.equal(slow.low, 64, 'a quarter of 256 still covers 85 ms at 600/s');
    assert.equal(slower.low, 121, 'the calls of a 200 ms wait, plus one');
    assert.ok(slower.low <= slower.want);
  });

  it('holds twice the calls of a wait when that is more than the horizon', () => {
    // 10 calls/s with a 400 ms wait: 5 for the horizon, 2 x 4 for the wait, plus one.
    const t = slotTargets(10, 400, 256);
    assert.equal(t.want, 9);
    assert.equal(t.low, 5);
  });

  it('never wants more than the setting, nor asks below what it wants', () => {
    const t = slotTargets(5000, 500, 64);
    assert.equal(t.want, 64);
    assert.equal(t.low, 64);
    assert.deepEqual(slotTargets(0, 7, 256), { want: 1, low: 1 });
  });
});
