import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fromSource } from '../support/source-process.js';
import { waitFor } from '../support/wait.js';
import { FaultRig } from './rig.js';
import { clusterHealthy, report, useFaultRedis } from './support.js';

const root = new URL('../..', import.meta.url).pathname;

/**
 * Bad input under a steady call load: malformed Event Socket frames from a node, and a bad
 * configuration file given to running monitors (reload) and to new processes (start).
 */
describe('faults: bad input', () => {
  const redis = useFaultRedis({ before, after });

  it('malformed ESL frames of every kind: the monitor reconnects or skips them, calls go on', async (t) => {
    const r = redis();
    const rig = await FaultRig.start(
      t,
      { redis: { url: r.url }, nodes: 2, monitors: 1, proxies: 1 },
      r.client,
    );
    const load = rig.load(25);
    await waitFor('calls connecting', () => load.connected() >= 10);
    const fs1 = rig.node('fs1');
    const startedAt = Date.now();
    for (const kind of ['bad-json', 'bad-percent', 'bad-values', 'short-body', 'garbage']) {
      fs1.proc.command(`malformed ${kind}`);
      await waitFor(
        `fs-sim sent ${kind}`,
        () => fs1.proc.grep(new RegExp(`malformed frame \\(${kind}\\)`)).length > 0,
      );
      // Each kind is survived: the node is up again (after a reconnect, for the frames that
      // break the stream) before the next one.
      await clusterHealthy(rig, { timeoutMs: 3000 });
    }
    await waitFor(
      'calls after the last frame',
      () => load.connected(Date.now() - 100) >= 0 && load.sent(startedAt) >= 60,
    );
    await load.stop();
    const monitor = rig.monitors[0];
    assert.ok(monitor);
    report('malformed ESL frames', {
      outcomes: load.summary(startedAt),
      reconnects: monitor.grep(/lease acquired|connected|ESL/i).length,
    });
    assert.equal(monitor.exit, undefined, 'the monitor still runs');
    assert.equal(load.connected(startedAt), load.sent(startedAt), 'every call connected');
    assert.ok(monitor.grep(/"level":"(warn|error)"/).length >= 1, 'the monitor logged what it met');
  });

  it('a bad configuration: running monitors keep the last good one; new processes refuse to start', async (t) => {
    const r = redis();
    const rig = await FaultRig.start(
      t,
      { redis: { url: r.url }, nodes: 2, monitors: 2, proxies: 1 },
      r.client,
    );
    const good = readFileSync(rig.configFile, 'utf8');
    const load = rig.load(25);
    await waitFor('calls connecting', () => load.connected() >= 10);

    // Reload: a file that is not even JSON, then one with a bad value.
    const startedAt = Date.now();
    for (const bad of ['{ "nodes": [ oops', good.replace(/"probeIntervalMs":\d+/, '"probeIntervalMs":-5')]) {
      writeFileSync(rig.configFile, bad);
      for (const m of rig.monitors) m.signal('SIGHUP');
      await waitFor('both monitors refused it', () =>
        rig.monitors.every(
          (m) => m.grep(/new configuration is invalid; keeping the last good one/).length >= 1,
        ),
      );
      await clusterHealthy(rig, { timeoutMs: 2000 });
    }
    // Start: a monitor and a proxy given the bad file exit 2, naming the problem.
    for (const main of ['packages/monitor/src/main.ts', 'packages/proxy/src/main.ts']) {
      const child = spawn(process.execPath, fromSource(main, '--config', rig.configFile), {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, FSLB_CONFIG: '' },
      });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 2, `${main}: ${err}`);
      assert.match(err, /monitor\.probeIntervalMs/);
    }
    writeFileSync(rig.configFile, good);
    for (const m of rig.monitors) m.signal('SIGHUP');
    await waitFor('both monitors took the good file again', () =>
      rig.monitors.every((m) => m.grep(/configuration reloaded/).length >= 1),
    );
    await waitFor('calls after', () => load.sent(startedAt) >= 40);
    await load.stop();
    report('bad configuration', { outcomes: load.summary(startedAt) });
    assert.equal(load.connected(startedAt), load.sent(startedAt), 'every call connected');
    for (const m of rig.monitors) assert.equal(m.exit, undefined, `${m.name} still runs`);
  });
});
