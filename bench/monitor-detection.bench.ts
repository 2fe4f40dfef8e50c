/**
 * How fast a node's failure reaches Redis: the time from a simulated crash (sockets closed) and
 * from a stall (sockets open, nothing answered) to the `state=down` event on fslb:events, with
 * the monitor's default timings (probe every 1000 ms, timeout 1500 ms). Also the time from a
 * pause (which FreeSWITCH announces with no event, so the probe must find it) to `draining`,
 * from a SIP INVITE sent to the node to the event carrying the new session count (channel
 * events), and from a count changed behind the monitor's back to its correction (probe).
 *
 * Every proxy's view of the same faults (what routing sees) is bench/proxy-view.bench.ts.
 * Env: BENCH_TRIALS (2). Writes bench/results/monitor-detection.json and .md.
 */
import { Redis } from 'ioredis';
import { ClusterKeys, createLogger, decodeClusterEvent, parseConfig, type NodeRecord } from '@fslb/shared';
import { Monitor } from '@fslb/monitor';
import { FsNode, SipUac } from '@fslb/fs-sim';
import { testPrefix } from '../test/support/redis.js';
import { Children } from './support/children.js';
import { startBenchRedis } from './support/redis.js';
import { machine, table, writeBench } from './support/results.js';

const TRIALS = Number(process.env.BENCH_TRIALS ?? 2);
const started = performance.now();
const children = new Children();
const server = await startBenchRedis(children);
const redis = new Redis(server.url);
const log = createLogger({ level: 'silent' });

interface Scene {
  node: FsNode;
  monitor: Monitor;
  next: (pred: (r: NodeRecord) => boolean) => Promise<number>;
  close: () => Promise<void>;
}

async function scene(): Promise<Scene> {
  const prefix = testPrefix('bench');
  const keys = new ClusterKeys(prefix);
  const node = await FsNode.start({ heartbeatMs: 20_000 });
  const cfg = parseConfig(
    {
      redis: { url: server.url },
      prefix,
      nodes: [
        {
          id: 'fs1',
          sip: `127.0.0.1:${node.sipPort}`,
          esl: { host: '127.0.0.1', port: node.eslPort, password: 'ClueCon' },
        },
      ],
      monitor: { id: 'bench', http: { port: 0 } },
    },
    {},
  );
  const sub = redis.duplicate();
  const waiters: { pred: (r: NodeRecord) => boolean; resolve: (t: number) => void }[] = [];
  await sub.subscribe(keys.events);
  sub.on('message', (_c: string, m: string) => {
    const at = performance.now();
    const e = decodeClusterEvent(m);
    if (!e.ok || e.value.type !== 'node') return;
    const rec = e.value.record;
    for (const w of [...waiters]) {
      if (w.pred(rec)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(at);
      }
    }
  });
  const next = (pred: (r: NodeRecord) => boolean): Promise<number> =>
    new Promise((resolve) => waiters.push({ pred, resolve }));
  const up = next((r) => r.state === 'up');
  const monitor = new Monitor({ config: cfg, log, http: false });
  await monitor.start();
  await up;
  return {
    node,
    monitor,
    next,
    close: async () => {
      await monitor.close();
      await node.close();
      sub.disconnect();
    },
  };
}

function stats(xs: number[]): { n: number; min: number; median: number; max: number; mean: number } {
  const s = [...xs].sort((a, b) => a - b);
  const r = (v: number): number => Math.round(v * 10) / 10;
  return {
    n: s.length,
    min: r(s[0] ?? 0),
    median: r(s[Math.floor(s.length / 2)] ?? 0),
    max: r(s[s.length - 1] ?? 0),
    mean: r(s.reduce((a, b) => a + b, 0) / Math.max(1, s.length)),
  };
}

const crash: number[] = [];
const stall: number[] = [];
const pause: number[] = [];
const sessions: number[] = [];
const reconcile: number[] = [];
const uac = await SipUac.start();
for (let i = 0; i < TRIALS; i++) {
  {
    const s = await scene();
    const down = s.next((r) => r.state === 'down');
    const t0 = performance.now();
    await s.node.crash();
    crash.push((await down) - t0);
    await s.close();
  }
  {
    const s = await scene();
    const draining = s.next((r) => r.state === 'draining');
    let t0 = performance.now();
    s.node.pause();
    pause.push((await draining) - t0);
    s.node.resume();
    await s.next((r) => r.state === 'up');
    const one = s.next((r) => r.sessions === 1);
    t0 = performance.now();
    const call = uac.invite({ host: '127.0.0.1', port: s.node.sipPort });
    sessions.push((await one) - t0);
    await call.final();
    await call.bye();
    await s.next((r) => r.sessions === 0);
    const seven = s.next((r) => r.sessions === 7);
    t0 = performance.now();
    s.node.setSessions(7);
    reconcile.push((await seven) - t0);
    const down = s.next((r) => r.state === 'down');
    t0 = performance.now();
    s.node.stall();
    stall.push((await down) - t0);
    s.node.unstall();
    await s.close();
  }
}

await uac.close();
redis.disconnect();
await server.close();

const result = {
  machine: machine(),
  date: new Date().toISOString(),
  trials: TRIALS,
  settings: { probeIntervalMs: 1000, probeTimeoutMs: 1500 },
  crashToDownMs: stats(crash),
  stallToDownMs: stats(stall),
  pauseToDrainingMs: stats(pause),
  inviteToSessionEventMs: stats(sessions),
  silentCountChangeToEventMs: stats(reconcile),
  duration_s: Math.round((performance.now() - started) / 100) / 10,
};
console.log(JSON.stringify(result, null, 2));
const rowOf = (what: string, s: ReturnType<typeof stats>): (string | number)[] => [
  what,
  s.n,
  s.min,
  s.median,
  s.max,
];
writeBench(
  'monitor-detection',
  result,
  `## monitor-detection: how fast a node's state reaches Redis (one monitor, default timings)

Probe every 1000 ms, timeout 1500 ms; ${TRIALS} trials; from the fault to the fslb:events message that carries it, ms.

${table(
  ['what', 'n', 'min', 'median', 'max'],
  [
    rowOf('crash (sockets closed) -> down', result.crashToDownMs),
    rowOf('stall (nothing answered) -> down', result.stallToDownMs),
    rowOf('pause (no event) -> draining', result.pauseToDrainingMs),
    rowOf('INVITE to the node -> new session count published', result.inviteToSessionEventMs),
    rowOf('count changed silently -> corrected (probe)', result.silentCountChangeToEventMs),
  ],
)}

Took ${result.duration_s} s.`,
);
