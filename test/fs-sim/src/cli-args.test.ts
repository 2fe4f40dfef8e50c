import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { parseCli } from './cli-args.js';

describe('parseCli', () => {
  it('takes the documented defaults', () => {
    const r = parseCli([]);
    assert.ok(!r.help && 'options' in r);
    assert.deepEqual(r.options.cluster, {
      count: 1,
      eslPort: 8021,
      sipPort: 5080,
      host: '127.0.0.1',
      password: 'ClueCon',
      maxSessions: 100,
      heartbeatMs: 1000,
      holdMs: 0,
      answerDelayMs: 0,
      sessionsPerSecond: 1000,
      idleCpu: 98.5,
    });
  });

  it('reads every flag', () => {
    const r = parseCli(
      '--esl-port 18021 --sip-port 15080 --count 3 --password pw --max-sessions 7 --heartbeat-ms 250 --hold-ms 900 --paused --refuse-auth --hostname-prefix n --challenge'.split(
        ' ',
      ),
    );
    assert.ok(!r.help && 'options' in r);
    assert.equal(r.options.cluster.count, 3);
    assert.equal(r.options.cluster.eslPort, 18021);
    assert.equal(r.options.cluster.holdMs, 900);
    assert.equal(r.options.cluster.hostnamePrefix, 'n');
    assert.equal(r.options.cluster.challenge, true);
    assert.equal(r.options.paused, true);
    assert.equal(r.options.refuseAuth, true);
    assert.equal(r.options.aclReject, false);
  });

  it('lists every problem, by flag', () => {
    const r = parseCli(['--count', '0', '--max-sessions', 'lots', '--idle-cpu', '101']);
    assert.ok(!r.help && 'problems' in r);
    assert.deepEqual(r.problems.map((p) => p.split(':')[0]).sort(), [
      '--count',
      '--idle-cpu',
      '--max-sessions',
    ]);
  });

  it('refuses overlapping port ranges and unknown flags', () => {
    const overlap = parseCli(['--esl-port', '5000', '--sip-port', '5001', '--count', '3']);
    assert.ok(!overlap.help && 'problems' in overlap);
    assert.match(overlap.problems.join(), /overlap/);
    const unknown = parseCli(['--nope']);
    assert.ok(!unknown.help && 'problems' in unknown);
  });
});
