import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { ClusterKeys } from '@fslb/shared';
import { FsCluster } from '@fslb/fs-sim';
import type { Monitor } from '@fslb/monitor';
import { deletePrefix, testPrefix, useRedis } from '../support/redis.js';
import { fromSource } from '../support/source-process.js';
import { waitFor } from '../support/wait.js';
import { config, rawConfig, recordEvents, records, startMonitor, waitForNode } from './support.js';

const root = new URL('../..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'fslb-own-'));

describe('monitors sharing nodes', () => {
  const r = useRedis({ before, after });

  async function cluster(t: TestContext, count: number) {
    const prefix = testPrefix('own');
    const keys = new ClusterKeys(prefix);
    const sims = await FsCluster.start({ count, heartbeatMs: 500 });
    const monitors: Monitor[] = [];
    t.after(async () => {
      await Promise.all(monitors.map((m) => m.close()));
      await sims.close();
      await deletePrefix(r.client, prefix);
    });
    const ids = sims.nodes.map((_n, i) => `fs${i + 1}`);
    const add = async (id: string): Promise<Monitor> => {
      const m = await startMonitor(
        config({ redisUrl: r.server.url, prefix, nodes: sims.nodes, monitorId: id }),
      );
      monitors.push(m);
      return m;
    };
    return { prefix, keys, sims, ids, add, monitors };
  }

  async function owners(keys: ClusterKeys, ids: string[]): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const id of ids) out[id] = (await r.client.hget(keys.node(id), 'owner')) ?? '';
    return out;
  }

  it('two monitors split six nodes 3/3, and a third takes its share', async (t) => {
    const { keys, ids, add } = await cluster(t, 6);
    const a = await add('mon-a');
    await waitFor('mon-a owns all six while alone', () => a.ownedNodes.length === 6);
    const b = await add('mon-b');
    await waitFor('a 3/3 split', () => a.ownedNodes.length === 3 && b.ownedNodes.length === 3, {
      timeoutMs: 10_000,
    });
    assert.deepEqual([...a.ownedNodes, ...b.ownedNodes].sort(), ids);
    for (const id of ids) {
      const owner = a.ownedNodes.includes(id) ? 'mon-a' : 'mon-b';
      await waitForNode(
        r.client,
        keys,
        id,
        (h) => h.owner === owner && h.state === 'up',
        `owned by ${owner}`,
      );
    }
    const c = await add('mon-c');
    await waitFor(
      'a 2/2/2 split',
      () => a.ownedNodes.length === 2 && b.ownedNodes.length === 2 && c.ownedNodes.length === 2,
      { timeoutMs: 10_000 },
    );
    const o = await waitFor('records to follow', async () => {
      const x = await owners(keys, ids);
      return Object.values(x).filter((v) => v === 'mon-c').length === 2 ? x : undefined;
    });
    assert.equal(Object.keys(o).length, 6);
  });

  /** A monitor as its own process, the way operators run it, so that it can really be killed. */
  async function processMonitor(
    t: TestContext,
    prefix: string,
    sims: FsCluster,
    id: string,
  ): Promise<ChildProcess> {
    const file = join(dir, `${id}.json`);
    writeFileSync(
      file,
      JSON.stringify(rawConfig({ redisUrl: r.server.url, prefix, nodes: sims.nodes, monitorId: id })),
    );
    const child = spawn(process.execPath, fromSource('packages/monitor/src/main.ts', '--config', file), {
      cwd: root,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, FSLB_CONFIG: '' },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const keys = new ClusterKeys(prefix);
    await waitFor(
      `${id} to register (stderr: ${stderr})`,
      async () => (await r.client.zscore(keys.monitors, id)) !== null,
      { timeoutMs: 20_000 },
    );
    return child;
  }

  it('claims leases another monitor released at once, not at its next claim round', async (t) => {
    const prefix = testPrefix('notify');
    const keys = new ClusterKeys(prefix);
    const sims = await FsCluster.start({ count: 4, heartbeatMs: 500 });
    t.after(async () => {
      await sims.close();
      await deletePrefix(r.client, prefix);
    });
    const child = await processMonitor(t, prefix, sims, 'mon-leaving');
    // Its own claim round comes every 30 s: only the release notices can move nodes to it in time.
    const slow = await startMonitor(
      config({
        redisUrl: r.server.url,
        prefix,
        nodes: sims.nodes,
        monitorId: 'mon-slow',
        monitor: { claimIntervalMs: 30_000, leaseTtlMs: 60_000 },
      }),
    );
    t.after(() => slow.close());
    await waitFor('the leaving monitor to hand over half', () => slow.ownedNodes.length === 2, {
      timeoutMs: 10_000,
    });
    child.kill('SIGTERM');
    await once(child, 'exit');
    await waitFor('all four, long before a 30 s round', () => slow.ownedNodes.length === 4, {
      timeoutMs: 10_000,
    });
    for (const id of sims.nodes.map((_n, i) => `fs${i + 1}`)) {
      await waitForNode(
        r.client,
        keys,
        id,
        (h) => h.owner === 'mon-slow' && h.state === 'up',
        'owned by mon-slow',
      );
    }
  });

  for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
    it(`takes over every node of a monitor stopped by ${signal}, without a node flapping down`, async (t) => {
      const prefix = testPrefix('kill');
      const keys = new ClusterKeys(prefix);
      const sims = await FsCluster.start({ count: 4, heartbeatMs: 500 });
      t.after(async () => {
        await sims.close();
        await deletePrefix(r.client, prefix);
      });
      const ids = sims.nodes.map((_n, i) => `fs${i + 1}`);
      const child = await processMonitor(t, prefix, sims, 'mon-proc');
      const survivor = await startMonitor(
        config({ redisUrl: r.server.url, prefix, nodes: sims.nodes, monitorId: 'mon-stay' }),
      );
      t.after(() => survivor.close());
      await waitFor(
        'a 2/2 split',
        async () => {
          const o = await owners(keys, ids);
          const states = await Promise.all(ids.map((id) => r.client.hget(keys.node(id), 'state')));
          return (
            Object.values(o).filter((v) => v === 'mon-proc').length === 2 &&
            survivor.ownedNodes.length === 2 &&
            states.every((s) => s === 'up')
          );
        },
        { timeoutMs: 15_000 },
      );

      // Watch every change and every liveness key from here on.
      const events = await recordEvents(t, r.client, keys);
      let staleSeen = '';
      const watch = { on: true };
      const liveness = (async () => {
        while (watch.on) {
          const ttls = await Promise.all(ids.map((id) => r.client.pttl(keys.alive(id))));
          const i = ttls.findIndex((x) => x <= 0);
          if (i >= 0) staleSeen ||= `${ids[i] ?? '?'} liveness expired`;
          await new Promise((r) => setTimeout(r, 20));
        }
      })();

      const stoppedAt = Date.now();
      child.kill(signal);
      await once(child, 'exit');
      await waitFor('the survivor to own all four', () => survivor.ownedNodes.length === 4, {
        timeoutMs: 15_000,
      });
      const takeoverMs = Date.now() - stoppedAt;
      for (const id of ids)
        await waitForNode(r.client, keys, id, (h) => h.owner === 'mon-stay', 'owned by the survivor');
      watch.on = false;
      await liveness;
      assert.deepEqual(
        records(events)
          .filter((x) => x.state !== 'up')
          .map((x) => `${x.id}:${x.state}`),
        [],
        'no node may go anything but up during a takeover',
      );
      assert.equal(staleSeen, '');
      // SIGTERM hands leases back; SIGKILL leaves them to expire (lease TTL + a claim interval).
      const cfg = config({ redisUrl: r.server.url, prefix, nodes: sims.nodes });
      const bound = cfg.monitor.leaseTtlMs + 2 * cfg.monitor.claimIntervalMs + 2000;
      assert.ok(takeoverMs < bound, `takeover took ${takeoverMs} ms`);
      t.diagnostic(`takeover after ${signal}: ${takeoverMs} ms`);
    });
  }
});
