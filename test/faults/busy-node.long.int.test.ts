import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../support/wait.js';
import { FaultRig } from './rig.js';
import { report, useFaultRedis } from './support.js';

/**
 * A busy node under a steady call load, with the monitor's default probe timings: its process
 * frozen 300 ms of every 500 ms for a minute answers late but within the probe timeout, so it
 * stays up. A minute of mostly waiting: `scripts/run-tests.mjs` runs `*.long.int.test.ts` files
 * beside the others rather than in turn, and the load the others put on the host only makes the
 * zero-false-downs condition harder.
 */
describe('faults: a busy node', () => {
  const redis = useFaultRedis({ before, after });

  it('a busy node is not a hung one: frozen 300 ms of every 500 ms for a minute, with zero false downs', async (t) => {
    const r = redis();
    // The monitor's default probe settings (interval 1 s, timeout 1.5 s): a node that answers
    // 300 ms late is slow, not gone.
    const monitor = { probeIntervalMs: 1000, probeTimeoutMs: 1500, leaseTtlMs: 5000, claimIntervalMs: 1000 };
    const rig = await FaultRig.start(
      t,
      { redis: { url: r.url }, nodes: 2, monitors: 1, proxies: 1, monitor },
      r.client,
    );
    const busy = rig.node('fs1');
    const downs: string[] = [];
    const sub = r.client.duplicate();
    t.after(() => sub.disconnect());
    sub.on('message', (_c: string, m: string) => {
      if (m.includes('"id":"fs1"') && /"state":"(down|draining|unknown)"/.test(m)) downs.push(m);
    });
    await sub.subscribe(rig.keys.events);
    const load = rig.load(50);
    const startedAt = Date.now();
    // The stop-and-go comes from a shell loop of its own: driven from this process's event loop,
    // a stall here (a busy host) could hold the node frozen past the probe timeout: hung, not busy.
    const driver = spawn(
      'sh',
      [
        '-c',
        `while :; do kill -STOP ${busy.proc.pid}; sleep 0.3; kill -CONT ${busy.proc.pid}; sleep 0.2; done`,
      ],
      { stdio: 'ignore' },
    );
    const stopDriver = async (): Promise<void> => {
      if (driver.exitCode === null && driver.signalCode === null) {
        const exited = once(driver, 'exit');
        driver.kill('SIGKILL');
        await exited;
      }
      busy.proc.signal('SIGCONT');
    };
    t.after(stopDriver);
    await waitFor('a minute of stop-and-go', () => Date.now() - startedAt >= 60_000, {
      timeoutMs: 65_000,
      intervalMs: 250,
    });
    assert.equal(driver.exitCode, null, 'the stop-and-go loop ran the whole minute');
    await stopDriver();
    await load.stop();
    const state = await r.client.hget(rig.keys.node('fs1'), 'state');
    const toBusy = load.sentTo('fs1', startedAt).length;
    report('busy node', {
      falseDowns: downs.length,
      callsToBusyNode: toBusy,
      outcomes: load.summary(startedAt),
    });
    // On a failure, what the monitor said about the node (which command went unanswered, and when).
    const said = rig
      .logLines()
      .filter((l) => l.includes('fs1') && /node down|no answer|timed out|timeout/i.test(l))
      .slice(0, 5)
      .join('\n');
    assert.equal(downs.length, 0, `no down event for the busy node: ${downs[0] ?? ''}\n${said}`);
    assert.equal(state, 'up');
    assert.ok(toBusy >= 100, `the busy node kept taking calls (${toBusy})`);
  });
});
