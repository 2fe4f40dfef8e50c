import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readFlag, readHeartbeat, readProfileRunning, readStatus } from './fs-readings.js';
import { assessNode, backoffDelay, effectiveMaxSessions, type CoreFacts } from './node-health.js';
import { SessionCount } from './session-count.js';

const status = [
  'UP 0 years, 0 days, 2 hours, 9 minutes, 54 seconds, 455 milliseconds, 408 microseconds',
  'FreeSWITCH (Version 1.10.12 -release 64bit) is ready',
  '11773 session(s) since startup',
  '4759 session(s) - peak 5159, last 5min 4759',
  '72 session(s) per Sec out of max 1000, peak 107, last 5min 97',
  '10000 session(s) max',
  'min idle cpu 0.00/3.07',
  'Current Stack Size/Max 240K/8192K',
  '',
].join('\n');

describe('reading FreeSWITCH replies', () => {
  it('reads `status`', () => {
    assert.deepEqual(readStatus(status), {
      ready: true,
      sessions: 4759,
      maxSessions: 10000,
      cps: 72,
      idleCpu: 3.07,
    });
    assert.equal(readStatus(status.replace('is ready', 'is not ready'))?.ready, false);
    assert.equal(readStatus('-ERR status Command not found!\n'), undefined);
  });

  it('reads fsctl flags and profile status', () => {
    assert.equal(readFlag('true\n'), true);
    assert.equal(readFlag('false'), false);
    assert.equal(readFlag('-ERR no'), undefined);
    assert.equal(readProfileRunning('Invalid Profile!\n'), false);
    assert.equal(readProfileRunning('====\nName             \texternal\nDomain Name      \tN/A\n'), true);
  });

  it('reads HEARTBEAT headers, ignoring garbage', () => {
    const h: Record<string, string> = {
      'Session-Count': '7',
      'Max-Sessions': '1000',
      'Session-Per-Sec': '2',
      'Idle-CPU': '78.400000',
      'Event-Info': 'System Ready',
    };
    assert.deepEqual(
      readHeartbeat((n) => h[n]),
      { sessions: 7, maxSessions: 1000, cps: 2, idleCpu: 78.4 },
    );
    assert.equal(readHeartbeat((n) => (n === 'Session-Count' ? 'banana' : undefined)).sessions, undefined);
  });
});

describe('health rule', () => {
  const up: CoreFacts = { connected: true, ready: true, paused: false, shutdownRequested: false };
  it('is up when connected and nothing is wrong', () => {
    assert.deepEqual(assessNode(up), { state: 'up', reason: '' });
  });
  it('is down with the reason when not connected', () => {
    assert.deepEqual(assessNode({ ...up, connected: false, downReason: 'probe timeout' }), {
      state: 'down',
      reason: 'probe timeout',
    });
  });
  it('drains for a shutdown, a pause, a core not ready, or a stopped profile, in that order', () => {
    assert.equal(assessNode({ ...up, shutdownRequested: true, paused: true }).reason, 'shutdown requested');
    assert.equal(assessNode({ ...up, paused: true }).reason, 'paused');
    assert.equal(assessNode({ ...up, ready: false }).reason, 'core not ready');
    assert.deepEqual(assessNode({ ...up, profile: { name: 'external', running: false } }), {
      state: 'draining',
      reason: 'profile external not RUNNING',
    });
    assert.equal(assessNode({ ...up, profile: { name: 'external', running: true } }).state, 'up');
  });
  it('publishes the lower of the two session caps, FreeSWITCH taking one less than its Max-Sessions', () => {
    assert.equal(effectiveMaxSessions(1000, 500), 500);
    assert.equal(effectiveMaxSessions(100, 500), 99);
    assert.equal(effectiveMaxSessions(100, undefined), 99);
    assert.equal(effectiveMaxSessions(undefined, 500), 500);
    assert.equal(effectiveMaxSessions(undefined, undefined), 0);
  });
  it('backs off exponentially with a cap and jitter', () => {
    assert.equal(
      backoffDelay(1, 250, 10_000, () => 1),
      250,
    );
    assert.equal(
      backoffDelay(3, 250, 10_000, () => 1),
      1000,
    );
    assert.equal(
      backoffDelay(30, 250, 10_000, () => 1),
      10_000,
    );
    assert.equal(
      backoffDelay(30, 250, 10_000, () => 0),
      5000,
    );
  });
});

describe('session count', () => {
  it('follows creates and destroys once per channel', () => {
    const c = new SessionCount();
    assert.ok(c.created('a'));
    assert.ok(c.created('b'));
    assert.ok(!c.created('a'));
    assert.ok(c.destroyed('a'));
    assert.ok(!c.destroyed('a'));
    assert.equal(c.value, 1);
  });
  it('counts down channels that existed before it started, never below zero', () => {
    const c = new SessionCount();
    c.reconcile(2);
    assert.ok(c.destroyed('old-1'));
    assert.equal(c.value, 1);
    assert.ok(c.destroyed('old-2'));
    assert.ok(!c.destroyed('old-3'));
    assert.equal(c.value, 0);
  });
  it('takes the authoritative count over drift', () => {
    const c = new SessionCount();
    c.created('x');
    c.created('y');
    assert.ok(c.reconcile(5));
    assert.equal(c.value, 5);
    assert.ok(!c.reconcile(5));
  });
  it('keeps the channels counted after a reading when that reading is reconciled late', () => {
    const c = new SessionCount();
    c.created('x');
    // FreeSWITCH answers `status` with 1; a CREATE read right after it is handled first.
    const atReading = c.moved;
    c.created('y');
    assert.ok(!c.reconcile(1 + c.moved - atReading));
    assert.equal(c.value, 2);
    assert.ok(c.destroyed('y'));
    assert.equal(c.value, 1);
  });
});
