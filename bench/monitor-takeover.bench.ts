/**
 * Monitor failover with default timings (lease 5000 ms, claim every 1000 ms): a monitor process
 * owning half of four simulated nodes is stopped by SIGTERM or SIGKILL, and we time how long
 * until the surviving monitor has written every one of those nodes as their owner. Also checks
 * that no node's liveness key expired during the takeover.
 *
 * Writes bench/results/monitor-takeover.json.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { ClusterKeys, createLogger, parseConfig } from '@fslb/shared';
import { Monitor } from '@fslb/monitor';
import { FsCluster } from '@fslb/fs-sim';
import { startRedis, testPrefix } from '../test/support/redis.js';
import { waitFor } from '../test/support/wait.js';

const TRIALS = Number(process.env.BENCH_TRIALS ?? 3);
const root = new URL('..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'fslb-bench-'));
const server = await startRedis();
const redis = new Redis(server.url);

function raw(prefix: string, sims: FsCluster, id: string): Record<string, unknown> {
  return {
    redis: { url: server.url },
    prefix,
    nodes: sims.nodes.map((n, i) => ({
      id: `fs${i + 1}`,
      sip: `127.0.0.1:${n.sipPort}`,
      esl: { host: '127.0.0.1', port: n.eslPort, password: 'ClueCon' },
    })),
    monitor: { id, http: { port: 0 } },
    log: { level: 'silent' },
  };
}

async function trial(signal: 'SIGTERM' | 'SIGKILL'): Promise<{ ms: number; staleKeys: number }> {
  const prefix = testPrefix('bench');
  const keys = new ClusterKeys(prefix);
  const sims = await FsCluster.start({ count: 4 });
  const ids = sims.nodes.map((_n, i) => `fs${i + 1}`);
  const file = join(dir, `${prefix}.json`);
  writeFileSync(file, JSON.stringify(raw(prefix, sims, 'proc')));
  const child = spawn(
    process.execPath,
    ['--conditions=@fslb/source', '--import', 'tsx', 'packages/monitor/src/main.ts', '--config', file],
    { cwd: root, stdio: 'ignore' },
  );
  await waitFor('child registered', async () => (await redis.zscore(keys.monitors, 'proc')) !== null, {
    timeoutMs: 20_000,
  });
  const stay = new Monitor({
    config: parseConfig(raw(prefix, sims, 'stay'), {}),
    log: createLogger({ level: 'silent' }),
    http: false,
  });
  await stay.start();
  await waitFor(
    '2/2 split',
    async () => {
      const owners = await Promise.all(ids.map((id) => redis.hget(keys.node(id), 'owner')));
      return owners.filter((o) => o === 'proc').length === 2 && stay.ownedNodes.length === 2;
    },
    { timeoutMs: 30_000 },
  );
  let stale = 0;
  const watch = { on: true };
  const watcher = (async () => {
    while (watch.on) {
      const ttls = await Promise.all(ids.map((id) => redis.pttl(keys.alive(id))));
      stale += ttls.filter((t) => t <= 0).length;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const t0 = performance.now();
  child.kill(signal);
  await once(child, 'exit');
  await waitFor(
    'survivor owns all',
    async () => {
      const owners = await Promise.all(ids.map((id) => redis.hget(keys.node(id), 'owner')));
      return owners.every((o) => o === 'stay');
    },
    { timeoutMs: 30_000, intervalMs: 5 },
  );
  const ms = performance.now() - t0;
  watch.on = false;
  await watcher;
  await stay.close();
  await sims.close();
  return { ms: Math.round(ms), staleKeys: stale };
}

const result: Record<string, unknown> = {
  when: new Date().toISOString(),
  trials: TRIALS,
  leaseTtlMs: 5000,
  claimIntervalMs: 1000,
};
for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
  const runs = [];
  for (let i = 0; i < TRIALS; i++) runs.push(await trial(signal));
  const ms = runs.map((r) => r.ms).sort((a, b) => a - b);
  result[signal] = {
    takeoverMs: { min: ms[0], median: ms[Math.floor(ms.length / 2)], max: ms[ms.length - 1] },
    livenessKeyExpiries: runs.reduce((a, r) => a + r.staleKeys, 0),
  };
}
console.log(JSON.stringify(result, null, 2));
mkdirSync(new URL('results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('results/monitor-takeover.json', import.meta.url),
  `${JSON.stringify(result, null, 2)}\n`,
);
redis.disconnect();
await server.close();
