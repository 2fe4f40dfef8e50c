import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ClusterKeys } from '@fslb/shared';
import { FsCluster } from '@fslb/fs-sim';
import { DrachtioDouble } from '../drachtio-double/index.js';
import { config, startMonitor, waitForNode } from '../monitor/support.js';
import { deletePrefix, testPrefix, useRedis } from '../support/redis.js';
import { fromSource } from '../support/source-process.js';
import { waitFor } from '../support/wait.js';
import { proxyRawConfig } from './support.js';

const root = new URL('../..', import.meta.url).pathname;

describe('fslb-proxy process on SIGTERM', () => {
  const r = useRedis({ before, after });

  it('answers new INVITEs 503, lets the call in progress finish, then exits 0', async (t) => {
    const prefix = testPrefix('term');
    const keys = new ClusterKeys(prefix);
    const sims = await FsCluster.start({ count: 1, heartbeatMs: 500 });
    const dir = mkdtempSync(join(tmpdir(), 'fslb-term-'));
    t.after(async () => {
      await sims.close();
      await deletePrefix(r.client, prefix);
      rmSync(dir, { recursive: true, force: true });
    });
    const monitor = await startMonitor(config({ redisUrl: r.server.url, prefix, nodes: sims.nodes }));
    t.after(() => monitor.close());
    await waitForNode(r.client, keys, 'fs1', (h) => h.state === 'up', 'up');
    const dx = await DrachtioDouble.start();
    t.after(() => dx.close());
    const file = join(dir, 'fslb.json');
    writeFileSync(
      file,
      JSON.stringify(
        proxyRawConfig({
          redisUrl: r.server.url,
          prefix,
          nodes: sims.nodes,
          drachtioPort: dx.port,
          proxyId: 'leaving',
        }),
      ),
    );
    const child = spawn(process.execPath, fromSource('packages/proxy/src/main.ts', '--config', file), {
      cwd: root,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, FSLB_CONFIG: '' },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    await dx.routed(['invite', 'options']);
    await waitFor(
      `view loaded (stderr: ${stderr})`,
      async () => {
        const p = await r.client.get(keys.proxy('leaving'));
        return p !== null && (JSON.parse(p) as { nodes: number }).nodes === 1;
      },
      { timeoutMs: 20_000 },
    );

    dx.onProxy(() => ({ kind: 'hold' }));
    const inProgress = dx.inject({ method: 'INVITE', sdp: true });
    const cmd = await inProgress.proxied();
    // An INVITE that reaches the proxy before it has handled the signal is still proxied: the
    // node answers it at once, so that the wait below tries again rather than hangs on it.
    dx.onProxy(() => ({ kind: 'respond', responses: [{ status: 486 }] }));
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const refused = await waitFor('a new INVITE refused', async () => {
      const res = await dx.inject({ method: 'INVITE', sdp: true }).final();
      return res.status === 503 ? res : undefined;
    });
    assert.equal(refused.reason, 'Shutting Down');
    assert.equal(refused.get('Retry-After'), '5');
    assert.equal(child.exitCode, null, 'still running while a call is in progress');
    cmd.answer({ kind: 'respond', responses: [{ status: 200 }] });
    assert.equal((await inProgress.final()).status, 200);
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0, stderr);
  });
});
