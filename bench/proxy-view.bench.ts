/**
 * How fast the views of four fslb-proxy processes follow the cluster, along the real path: a
 * simulated node -> ESL -> the monitor -> its fenced write in Redis and the fslb:events message ->
 * each proxy's subscriber -> its in-memory view. Each proxy child loads bench/support/view-probe.ts,
 * which reports every change of its view the moment it is made (monotonic clock, shared by every
 * process on the machine); nothing is polled.
 *
 * One fleet (test/proxy/fleet.ts): 4 proxy processes, their drachtio-server doubles, one monitor
 * process with the DEFAULT timings (probe every 1000 ms, timeout 1500 ms, lease 5000 ms), 24
 * simulated nodes in this process (HEARTBEAT every 1000 ms), proxies with the default resync
 * (5 s), so that a change reaches them by pub/sub, not by a periodic reload. Every process is
 * started from source.
 *
 * - propagation: real calls (fs-sim's SIP UAC, straight to the node) on fs1..fs4 at once: each
 *   INVITE raises the node's count (CHANNEL_CREATE), each BYE lowers it (CHANNEL_DESTROY). From
 *   the moment the simulator takes that request (parsed; it then counts the call and writes the
 *   event to the monitor at once) until every proxy's view holds the new count; the
 *   next change on that node waits for it, then for a random 0-40 ms, so that some changes fall
 *   inside the monitor's 20 ms coalescing window after its previous write, as under real traffic.
 *   BENCH_PROPAGATION_CHANGES (1200) changes in all.
 * - crash: fs5..fs14, one after another: every socket closed (FsNode.crash()); from then until
 *   every proxy holds the node out of routing (not eligible). Also when Redis said `down`.
 * - stall: fs15..fs24: nothing answered, sockets open (FsNode.stall()), started 370 ms apart (so
 *   that they fall at every phase of the probe timer) and measured each on its own; the monitor
 *   finds a stall only when a probe times out, so this is probe interval + timeout at worst.
 *
 * Writes bench/results/proxy-view.json and .md: propagation_p50_ms, propagation_p99_ms,
 * crash_detect_ms and stall_detect_ms (the slowest of the trials: every proxy excluded the node).
 */
import { loadavg } from 'node:os';
import { Redis } from 'ioredis';
import { decodeClusterEvent } from '@fslb/shared';
import { SipUac, type UacCall } from '@fslb/fs-sim';
import { ProxyFleet } from '../test/proxy/fleet.js';
import { Children } from './support/children.js';
import { startBenchRedis } from './support/redis.js';
import { machine, round, summary, table, writeBench } from './support/results.js';
import { monoNow, msBetween, viewProbeArgs, ViewWatch } from './support/view-watch.js';

const CHANGES = Number(process.env.BENCH_PROPAGATION_CHANGES ?? 1200);
const CHURN_NODES = 4;
const CRASH_TRIALS = Number(process.env.BENCH_CRASH_TRIALS ?? 10);
const STALL_TRIALS = Number(process.env.BENCH_STALL_TRIALS ?? 10);
const STALL_STAGGER_MS = 370;
const PROXIES = 4;
const MONITOR = { probeIntervalMs: 1000, probeTimeoutMs: 1500, leaseTtlMs: 5000, claimIntervalMs: 1000 };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const started = performance.now();
/** The machine's 1-minute load when the bench started: other work skews every figure here. */
const loadAtStart = round(loadavg()[0] ?? NaN, 2);
const children = new Children();
const server = await startBenchRedis(children);
const client = new Redis(server.url);
const watch = await ViewWatch.start();
process.env.BENCH_VIEW_PROBE = String(watch.port);
const fleet = await ProxyFleet.start({
  redis: { url: server.url, client },
  proxies: PROXIES,
  nodes: CHURN_NODES + CRASH_TRIALS + STALL_TRIALS,
  sims: 'local',
  sim: { maxSessions: 10_000, heartbeatMs: 1000 },
  monitor: MONITOR,
  // Its own process, as in production: the simulators' SIP parsing in this one never delays it.
  monitorProcess: true,
  proxy: { resyncIntervalMs: 5000 },
  execArgv: viewProbeArgs(),
});
const proxies = fleet.proxies.map((p) => p.id);
const uac = await SipUac.start();

/** When Redis said each node was no longer up (this process' receipt of the fslb:events message). */
const downAt = new Map<string, bigint>();
const sub = client.duplicate();
sub.on('message', (_c: string, m: string) => {
  const at = monoNow();
  const e = decodeClusterEvent(m);
  if (!e.ok || e.value.type !== 'node') return;
  const { id, record } = e.value;
  if (record.state !== 'up' && !downAt.has(id)) downAt.set(id, at);
});
await sub.subscribe(fleet.keys.events);

interface Change {
  node: string;
  /** Until every proxy's view held the new count. */
  all_ms: number;
  per_proxy_ms: number[];
}

/** `count` changes of node `index`'s session count, each waited for in every proxy's view. */
async function churn(index: number, count: number): Promise<Change[]> {
  const node = fleet.nodes[index];
  if (!node) throw new Error(`no node ${index}`);
  const id = fleet.ids[index] ?? '';
  // The change's moment: when the node took the INVITE or BYE that makes it (parsed, before it
  // counted the call and wrote the channel event to the monitor). Stamped before that write, not
  // after it: this process can lose its core right after the write while the monitor already runs.
  let wanted = '';
  let changedAt = 0n;
  node.on('sipRequest', (method, callId) => {
    if (changedAt === 0n && `${method} ${callId}` === wanted) changedAt = monoNow();
  });
  let channelEvents = 0;
  node.on('event', (e) => {
    if (e.name === 'CHANNEL_CREATE' || e.name === 'CHANNEL_DESTROY') channelEvents++;
  });
  const out: Change[] = [];
  let call: UacCall | undefined;
  let sessions = node.sessions;
  for (let k = 0; k < count; k++) {
    const target = call ? sessions - 1 : sessions + 1;
    const seen = watch.until(id, proxies, (v) => v.sessions === target, 10_000);
    changedAt = 0n;
    const events = channelEvents;
    if (call) {
      wanted = `BYE ${call.callId}`;
      const r = await call.bye();
      if (r.status !== 200) throw new Error(`${id}: BYE answered ${r.status}`);
      call = undefined;
    } else {
      call = uac.invite({ host: '127.0.0.1', port: node.sipPort });
      wanted = `INVITE ${call.callId}`;
      const r = await call.final();
      if (r.status !== 200) throw new Error(`${id}: INVITE answered ${r.status}`);
    }
    const at = await seen;
    if (changedAt === 0n || channelEvents !== events + 1)
      throw new Error(`${id}: change ${k} was not one request and one channel event`);
    sessions = target;
    const per = proxies.map((p) => msBetween(changedAt, at.get(p) ?? changedAt));
    out.push({ node: id, all_ms: Math.max(...per), per_proxy_ms: per });
    await sleep(Math.random() * 40);
  }
  if (call) await call.bye();
  return out;
}

interface Trial {
  node: string;
  /** Until Redis published the node as not up (as received by this process). */
  redis_ms: number | null;
  /** Until every proxy held it out of routing. */
  all_ms: number;
  per_proxy_ms: number[];
}

async function exclusion(index: number, fault: 'crash' | 'stall'): Promise<Trial> {
  const node = fleet.nodes[index];
  const id = fleet.ids[index] ?? '';
  if (!node) throw new Error(`no node ${index}`);
  const seen = watch.until(id, proxies, (v) => !v.eligible, 15_000);
  const t0 = monoNow();
  if (fault === 'crash') await node.crash();
  else node.stall();
  const at = await seen;
  const per = proxies.map((p) => msBetween(t0, at.get(p) ?? t0));
  const down = downAt.get(id);
  return {
    node: id,
    redis_ms: down === undefined ? null : round(msBetween(t0, down), 2),
    all_ms: round(Math.max(...per), 2),
    per_proxy_ms: per.map((x) => round(x, 2)),
  };
}

const changes: Change[] = [];
const crashes: Trial[] = [];
const stalls: Trial[] = [];
try {
  const perNode = Math.ceil(CHANGES / CHURN_NODES);
  const t0 = performance.now();
  const churned = await Promise.all(Array.from({ length: CHURN_NODES }, (_x, i) => churn(i, perNode)));
  changes.push(...churned.flat());
  const churnS = (performance.now() - t0) / 1000;
  console.log(
    `propagation: ${changes.length} changes in ${round(churnS)} s, until every proxy saw it (ms): ${JSON.stringify(
      summary(
        changes.map((c) => c.all_ms),
        2,
      ),
    )}`,
  );

  for (let i = 0; i < CRASH_TRIALS; i++) {
    crashes.push(await exclusion(CHURN_NODES + i, 'crash'));
    await sleep(200);
  }
  console.log(`crash -> every proxy (ms): ${crashes.map((t) => t.all_ms).join(' ')}`);

  const stalled = await Promise.all(
    Array.from({ length: STALL_TRIALS }, async (_x, i) => {
      await sleep(i * STALL_STAGGER_MS);
      return exclusion(CHURN_NODES + CRASH_TRIALS + i, 'stall');
    }),
  );
  stalls.push(...stalled);
  console.log(`stall -> every proxy (ms): ${stalls.map((t) => round(t.all_ms, 0)).join(' ')}`);
} finally {
  for (const n of fleet.nodes) n.unstall();
  await uac.close();
  sub.disconnect();
  await fleet.close();
  client.disconnect();
  await watch.close();
  await server.close();
}

const all = changes.map((c) => c.all_ms);
const each = changes.flatMap((c) => c.per_proxy_ms);
const prop = summary(all, 2);
const crash = summary(
  crashes.map((t) => t.all_ms),
  1,
);
const stall = summary(
  stalls.map((t) => t.all_ms),
  0,
);
const redisMs = (ts: Trial[], d: number): ReturnType<typeof summary> =>
  summary(
    ts.flatMap((t) => (t.redis_ms === null ? [] : [t.redis_ms])),
    d,
  );
const crashRedis = redisMs(crashes, 1);
const stallRedis = redisMs(stalls, 0);
const loadAtEnd = round(loadavg()[0] ?? NaN, 2);
const notes: Record<string, string> = {};
if (prop.p99 > 50)
  notes.propagation_p99_ms =
    `${all.filter((x) => x > 50).length} of ${changes.length} changes took over 50 ms to reach all four proxies (one proxy: p99 ${summary(each, 2).p99} ms); ` +
    `the path is ESL, the monitor's 20 ms coalescing window, one Redis write and pub/sub: the rest is waiting for a core ` +
    `(load average ${loadAtStart} at the start, ${loadAtEnd} at the end, on ${machine().cores} cores shared by 4 proxies, the monitor, Redis and this process).`;
if (crashes.length > 0 && crash.max > 500)
  notes.crash_detect_ms = `the slowest of ${crashes.length} trials (p50 ${crash.p50} ms; Redis had it after ${crashRedis.max} ms at worst): see the trials in proxy-view.json.`;
if (stalls.length > 0 && stall.max > 3000)
  notes.stall_detect_ms = `the slowest of ${stalls.length} trials (p50 ${stall.p50} ms; Redis had it after ${stallRedis.max} ms at worst); a stall is found by a probe timing out: at most probe interval + timeout (2.5 s) plus the propagation.`;
const result = {
  machine: machine(),
  date: new Date().toISOString(),
  load_average_1m: { start: loadAtStart, end: loadAtEnd },
  notes,
  propagation_p50_ms: changes.length > 0 ? prop.p50 : null,
  propagation_p99_ms: changes.length > 0 ? prop.p99 : null,
  crash_detect_ms: crashes.length > 0 ? crash.max : null,
  stall_detect_ms: stalls.length > 0 ? stall.max : null,
  settings: {
    proxies: PROXIES,
    monitor: { ...MONITOR, coalesceMs: 20 },
    proxy_resync_ms: 5000,
    sim_heartbeat_ms: 1000,
  },
  propagation: {
    changes: changes.length,
    nodes: CHURN_NODES,
    until_every_proxy_ms: prop,
    each_proxy_ms: summary(each, 2),
    over_50ms: all.filter((x) => x > 50).length,
  },
  crash: { until_every_proxy_ms: crash, until_redis_ms: crashRedis, trials: crashes },
  stall: {
    until_every_proxy_ms: stall,
    until_redis_ms: stallRedis,
    stagger_ms: STALL_STAGGER_MS,
    trials: stalls,
  },
  duration_s: round((performance.now() - started) / 1000),
};
writeBench(
  'proxy-view',
  result,
  `## proxy-view: how fast 4 proxies' views follow the cluster

Monitor process with default timings (probe ${MONITOR.probeIntervalMs} ms, timeout ${MONITOR.probeTimeoutMs} ms, coalescing 20 ms), proxies with the default resync (5 s): times from the simulated node taking the INVITE or BYE that changes its count (it writes the channel event to the monitor at once), or from the fault, until **every one** of the 4 proxy processes had it in its view (crash and stall: the slowest of the trials is the figure).

${table(
  ['what', 'n', 'p50 ms', 'p99 ms', 'max ms', 'Redis had it (p50 / max ms)'],
  [
    ['session change (real call: INVITE or BYE)', prop.n, prop.p50, prop.p99, prop.max, null],
    [
      'crash (sockets closed): excluded',
      crash.n,
      crash.p50,
      crash.p99,
      crash.max,
      `${crashRedis.p50} / ${crashRedis.max}`,
    ],
    [
      'stall (nothing answered): excluded',
      stall.n,
      stall.p50,
      stall.p99,
      stall.max,
      `${stallRedis.p50} / ${stallRedis.max}`,
    ],
  ],
)}

A session change in one proxy's view (not the slowest of four): p50 ${result.propagation.each_proxy_ms.p50} ms, p99 ${result.propagation.each_proxy_ms.p99} ms. The path: ESL to the monitor, which writes at once unless it wrote that node less than 20 ms before (coalescing: then at the end of those 20 ms), the fenced write and its fslb:events message, each proxy's subscriber. "Redis said down" is when this process (which also runs the simulators) received the message: an upper bound. ${result.propagation.over_50ms} of ${changes.length} changes took over 50 ms. Load average ${result.load_average_1m.start} at the start, ${result.load_average_1m.end} at the end. Took ${result.duration_s} s.`,
);
console.log(
  `propagation p50 ${prop.p50} ms, p99 ${prop.p99} ms ; crash excluded by every proxy in ${crash.p50} ms (max ${crash.max}); stall ${stall.p50} ms (max ${stall.max}); ${result.duration_s} s`,
);
