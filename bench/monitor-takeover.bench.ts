/**
 * Monitor failover with default timings (lease 5000 ms, claim every 1000 ms): a monitor process
 * owning half of four simulated nodes is stopped by SIGTERM or SIGKILL, and we time how long
 * until the surviving monitor has written every one of those nodes as their owner.
 *
 * False downs: every node stays healthy throughout, so a proxy must never judge one unfit for
 * calls on the way. From the signal until 1.5 s after the takeover, a node counts as seen down when
 * any of these happened: a record published on fslb:events with a state other than `up`; its
 * record read (every 20 ms) with a state other than `up` or no capacity; its liveness key
 * (`fslb:alive:<id>`) expired or deleted (Redis keyspace notifications, so even a gap of a
 * millisecond is caught) or found missing. `false_downs` is the number of (trial, node) pairs
 * seen down, over every trial of both signals; the target is 0.
 *
 * Writes bench/results/monitor-takeover.json and .md: takeover_ms (the slowest SIGKILL trial),
 * false_downs.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { ClusterKeys, createLogger, decodeClusterEvent, parseConfig } from '@fslb/shared';
import { Monitor } from '@fslb/monitor';
import { FsCluster } from '@fslb/fs-sim';
import { testPrefix } from '../test/support/redis.js';
import { waitFor } from '../test/support/wait.js';
import { Children } from './support/children.js';
import { startBenchRedis } from './support/redis.js';
import { machine, round, table, writeBench } from './support/results.js';
import { childEnv, entryPoint } from './support/runtime.js';

const TRIALS = Number(process.env.BENCH_TRIALS ?? 3);
const LEASE_TTL_MS = 5000;
const CLAIM_INTERVAL_MS = 1000;
/** How long after the takeover nodes are still watched for a false down (past the new owner's first probe). */
const AFTER_MS = 1500;
/** The stopped monitor runs from the built JS (built first when stale), as operators run it. */
const monitorEntry = entryPoint('monitor');
const root = new URL('..', import.meta.url).pathname;
const started = performance.now();
const dir = mkdtempSync(join(tmpdir(), 'fslb-bench-'));
const children = new Children();
const server = await startBenchRedis(children);
const redis = new Redis(server.url);
// Expired and deleted keys announced on __keyevent@0__:expired / :del.
await redis.config('SET', 'notify-keyspace-events', 'Exg');

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

interface Trial {
  ms: number;
  /** Nodes seen not fit for calls, with what showed it first. */
  seenDown: Record<string, string>;
}

async function trial(signal: 'SIGTERM' | 'SIGKILL'): Promise<Trial> {
  const prefix = testPrefix('bench');
  const keys = new ClusterKeys(prefix);
  const sims = await FsCluster.start({ count: 4 });
  const ids = sims.nodes.map((_n, i) => `fs${i + 1}`);
  const file = join(dir, `${prefix}.json`);
  writeFileSync(file, JSON.stringify(raw(prefix, sims, 'proc')));
  const child = children.spawn(process.execPath, monitorEntry.args('--config', file), {
    cwd: root,
    stdio: 'ignore',
    env: childEnv(),
  });
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

  const seenDown: Record<string, string> = {};
  const down = (id: string, why: string): void => {
    seenDown[id] ??= why;
  };
  const aliveKeys = new Map(ids.map((id) => [keys.alive(id), id]));
  const sub = redis.duplicate();
  sub.on('message', (channel: string, m: string) => {
    if (channel === keys.events) {
      const e = decodeClusterEvent(m);
      if (e.ok && e.value.type === 'node' && e.value.record.state !== 'up')
        down(e.value.id, `published state ${e.value.record.state}`);
      return;
    }
    const id = aliveKeys.get(m);
    if (id !== undefined) down(id, `liveness key ${channel.split(':').pop() ?? ''}`);
  });
  await sub.subscribe(keys.events, '__keyevent@0__:expired', '__keyevent@0__:del');
  const watch = { on: true };
  const watcher = (async () => {
    while (watch.on) {
      for (const id of ids) {
        const [[, h], [, alive]] = (await redis
          .multi()
          .hmget(keys.node(id), 'state', 'maxSessions')
          .exists(keys.alive(id))
          .exec()) as [[null, (string | null)[]], [null, number]];
        if (h[0] !== 'up' || !(Number(h[1]) > 0)) down(id, `record state ${h[0] ?? 'missing'}`);
        if (alive !== 1) down(id, 'liveness key missing');
      }
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
  await new Promise((r) => setTimeout(r, AFTER_MS));
  watch.on = false;
  await watcher;
  sub.disconnect();
  await stay.close();
  await sims.close();
  return { ms: Math.round(ms), seenDown };
}

const bySignal: Record<string, { ms: number[]; seenDown: Record<string, string>[] }> = {};
try {
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    const runs: Trial[] = [];
    for (let i = 0; i < TRIALS; i++) runs.push(await trial(signal));
    bySignal[signal] = { ms: runs.map((r) => r.ms), seenDown: runs.map((r) => r.seenDown) };
    console.log(
      `${signal}: takeover ${runs.map((r) => r.ms).join(', ')} ms; nodes seen down ${runs.map((r) => Object.keys(r.seenDown).length).join(', ')}`,
    );
  }
} finally {
  redis.disconnect();
  await server.close();
  await children.stopAll();
  rmSync(dir, { recursive: true, force: true });
}

const stats = (xs: number[]): { min: number; median: number; max: number } => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0] ?? NaN, median: s[Math.floor(s.length / 2)] ?? NaN, max: s[s.length - 1] ?? NaN };
};
const term = bySignal.SIGTERM ?? { ms: [], seenDown: [] };
const kill = bySignal.SIGKILL ?? { ms: [], seenDown: [] };
const falseDowns = [...term.seenDown, ...kill.seenDown].reduce((a, s) => a + Object.keys(s).length, 0);
const notes: Record<string, string> = {};
if (falseDowns > 0)
  notes.false_downs = `seen down, by trial: ${JSON.stringify([...term.seenDown, ...kill.seenDown].filter((x) => Object.keys(x).length > 0))}`;
if (kill.ms.length > 0 && stats(kill.ms).max > LEASE_TTL_MS + 1000)
  notes.takeover_ms = `SIGKILL takeovers took ${kill.ms.join(', ')} ms: the lease (${LEASE_TTL_MS} ms) expires, then the survivor claims at its next round (every ${CLAIM_INTERVAL_MS} ms).`;
const result = {
  machine: machine(),
  date: new Date().toISOString(),
  notes,
  takeover_ms: kill.ms.length > 0 ? stats(kill.ms).max : null,
  false_downs: falseDowns,
  trials: TRIALS,
  leaseTtlMs: LEASE_TTL_MS,
  claimIntervalMs: CLAIM_INTERVAL_MS,
  target_ms: LEASE_TTL_MS + 1000,
  monitor_runtime: monitorEntry.runtime,
  SIGTERM: { takeoverMs: stats(term.ms), runs: term.ms, seenDown: term.seenDown },
  SIGKILL: { takeoverMs: stats(kill.ms), runs: kill.ms, seenDown: kill.seenDown },
  duration_s: round((performance.now() - started) / 1000),
};
console.log(JSON.stringify(result, null, 2));
writeBench(
  'monitor-takeover',
  result,
  `## monitor-takeover: a monitor owning half of 4 nodes stops; the other takes them over

Default timings (lease ${LEASE_TTL_MS} ms, claim every ${CLAIM_INTERVAL_MS} ms), ${TRIALS} trials per signal. "Seen down": a node published with a state other than up, read so every 20 ms, or its liveness key expired, deleted or missing, from the signal until ${AFTER_MS / 1000} s after the takeover.

${table(
  ['signal', 'takeover ms (min / median / max)', 'nodes seen down'],
  [
    [
      'SIGTERM',
      `${result.SIGTERM.takeoverMs.min} / ${result.SIGTERM.takeoverMs.median} / ${result.SIGTERM.takeoverMs.max}`,
      term.seenDown.reduce((a, s) => a + Object.keys(s).length, 0),
    ],
    [
      'SIGKILL',
      `${result.SIGKILL.takeoverMs.min} / ${result.SIGKILL.takeoverMs.median} / ${result.SIGKILL.takeoverMs.max}`,
      kill.seenDown.reduce((a, s) => a + Object.keys(s).length, 0),
    ],
  ],
)}

Took ${result.duration_s} s.`,
);
