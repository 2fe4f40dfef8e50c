/**
 * How evenly four fslb-proxy processes spread a burst over ten FreeSWITCH simulators, by balance
 * mode: least loaded with reservations (the default), least loaded on the view alone
 * (`proxy.reservations: false`, the herd), and round robin (`proxy.balance: 'round-robin'`, with
 * reservations left on as they default). Each run: a fresh fleet (test/proxy/fleet.ts) of four
 * proxy child processes, each behind its own drachtio-server double in forward mode, one monitor,
 * ten simulators in a worker thread (no sessions-per-second limit), then every INVITE injected at
 * once, round robin over the doubles, and every call held until all are answered.
 *
 * Scenarios:
 *  - equal: ten empty nodes of 1000 calls, a 1000-call burst, in every mode;
 *  - near capacity (default mode only): ten nodes of 100 calls, a 1500-call burst, where a call
 *    sent to a full node is refused there: the run that can show overbooking;
 *  - unequal (only with BENCH_FAIRNESS_FULL=1, to keep `npm run bench` short): the same nodes
 *    starting with 0, 50, ..., 450 sessions (FsNode.setSessions): least loaded should fill the
 *    emptiest first, round robin hands every node the same share. Least loaded and round robin;
 *    BENCH_FAIRNESS_FULL=2 adds the herd, which sends some 650 calls at once to one simulator:
 *    its UDP receive buffer overflows and the retransmissions' backoff takes the run past a minute.
 *
 * Reported per run: calls per node and max/mean (1.0 = even), the final load (preload + calls),
 * the worst overshoot over the ideal (water-filling) share, INVITEs a node refused for capacity
 * while another node had room (overbooking; target 0), the proxies' own refusals, and how the
 * reservations went (redis, full, local-timeout: Redis silent for proxy.reserveTimeoutMs, or no
 * reply to that call within 1 s; the call then counted in that proxy only).
 *
 * Writes bench/results/proxy-fairness.json and .md: fairness_max_over_mean (equal nodes, the
 * default mode), fairness_herd_max_over_mean, fairness_rr_max_over_mean, overbooked_calls (every
 * run in the default mode, near capacity included).
 */
import { loadavg } from 'node:os';
import { Redis } from 'ioredis';
import { allFinal, outcomeOf, ProxyFleet } from '../test/proxy/fleet.js';
import { waitFor } from '../test/support/wait.js';
import { Children } from './support/children.js';
import { startBenchRedis } from './support/redis.js';
import { machine, table, writeBench } from './support/results.js';
import { entryPoint } from './support/runtime.js';

const CALLS = Number(process.env.BENCH_FAIRNESS_CALLS ?? 1000);
/** proxy.reserveTimeoutMs for every run when set (default: the proxy's own, 250 ms). */
const RESERVE_TIMEOUT_MS = process.env.BENCH_RESERVE_TIMEOUT_MS;
/** `proxy.loadPublishMs` for the proxies (an hour: no `load` messages), to weigh what they bring. */
const LOAD_PUBLISH_MS = process.env.BENCH_LOAD_PUBLISH_MS;
const NODES = 10;
const PROXIES = 4;
/** The proxies run from the built JS (built first when stale), as operators run them. */
const proxyEntry = entryPoint('proxy');

type Mode = 'least-loaded' | 'herd' | 'round-robin';
const modes: Record<Mode, Record<string, unknown>> = {
  'least-loaded': {},
  herd: { reservations: false },
  'round-robin': { balance: 'round-robin' },
};

const allModes = Object.keys(modes) as Mode[];
const FULL = Number(process.env.BENCH_FAIRNESS_FULL ?? 0);
const unequalModes: Mode[] = FULL >= 2 ? allModes : FULL >= 1 ? ['least-loaded', 'round-robin'] : [];

interface Scenario {
  name: string;
  calls: number;
  /** Calls each node takes (its Max-Sessions is one more). */
  takes: number;
  preload: number[];
}

const equal: Scenario = { name: 'equal', calls: CALLS, takes: 1000, preload: Array<number>(NODES).fill(0) };
const unequal: Scenario = {
  name: 'unequal',
  calls: CALLS,
  takes: 1000,
  preload: Array.from({ length: NODES }, (_, i) => i * 50),
};
const nearCapacity: Scenario = {
  name: 'near capacity',
  calls: 1500,
  takes: 100,
  preload: Array<number>(NODES).fill(0),
};

interface RunResult {
  scenario: string;
  mode: Mode;
  calls: number;
  preload: number[];
  calls_per_node: number[];
  /** New calls: max / mean. */
  max_over_mean: number;
  /** Preload + new calls at the end. */
  load_per_node: number[];
  load_max_over_mean: number;
  /** The even share: every node filled to one level (water-filling), the emptiest first. */
  ideal_load_per_node: number[];
  /** The most calls any node holds beyond its ideal share. */
  overshoot_calls: number;
  /** Mean over nodes of |final load - ideal load|, in calls. */
  mean_deviation_calls: number;
  /** The busiest node's final load. */
  max_load: number;
  connected: number;
  /** INVITEs a node refused for capacity while another node had room. */
  overbooked_calls: number;
  node_refusals: number;
  /** Calls whose caller got a node's refusal (not the proxy's No Capacity). */
  failed: number;
  failed_over: number;
  proxy_refusals: number;
  burst_ms: number;
  reservations: Record<string, number>;
  warnings: number;
}

const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d;
const maxOverMean = (xs: number[]): number => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return mean === 0 ? NaN : round(Math.max(...xs) / mean);
};

/** Water-filling: `calls` poured onto nodes with these loads, each up to `cap`; the final loads. */
function idealLoads(preload: number[], calls: number, cap: number): number[] {
  const loads = [...preload];
  for (let left = calls; left > 0; left--) {
    let best = -1;
    for (let i = 0; i < loads.length; i++) {
      const l = loads[i] ?? cap;
      if (l < cap && (best < 0 || l < (loads[best] ?? cap))) best = i;
    }
    if (best < 0) break;
    loads[best] = (loads[best] ?? 0) + 1;
  }
  return loads;
}

async function run(redis: { url: string; client: Redis }, s: Scenario, mode: Mode): Promise<RunResult> {
  const fleet = await ProxyFleet.start({
    redis,
    proxies: PROXIES,
    nodes: NODES,
    proxyArgs: (file) => proxyEntry.args('--config', file),
    sims: 'worker',
    sim: { maxSessions: s.takes + 1, sessionsPerSecond: 1_000_000 },
    // The simulators parse each SIP message in about a millisecond of CPU (sip.js' grammar) and
    // share two cores with everything else: the last INVITEs of a 1000-call burst wait seconds
    // for their 100 Trying. A long provisional timeout and relaxed probes keep that from turning
    // into spurious failovers or nodes marked down, which would measure the harness, not the proxy.
    proxy: {
      provisionalTimeout: '30s',
      ...(RESERVE_TIMEOUT_MS === undefined ? {} : { reserveTimeoutMs: Number(RESERVE_TIMEOUT_MS) }),
      ...(LOAD_PUBLISH_MS === undefined ? {} : { loadPublishMs: Number(LOAD_PUBLISH_MS) }),
      ...modes[mode],
    },
    monitor: { probeIntervalMs: 1000, probeTimeoutMs: 3000, leaseTtlMs: 10_000 },
    beforeProxies: async (sims, { keys }) => {
      for (const [i, n] of s.preload.entries()) await sims.setSessions(i, n);
      await waitFor(
        'preloaded sessions in every record',
        async () => {
          const got = await Promise.all(
            s.preload.map((_n, i) => redis.client.hget(keys.node(`fs${i + 1}`), 'sessions')),
          );
          return got.every((x, i) => x === String(s.preload[i]));
        },
        { timeoutMs: 10_000 },
      );
    },
  });
  try {
    const t0 = performance.now();
    const requests = Array.from({ length: s.calls }, () => fleet.invite());
    await allFinal(requests, 90_000);
    const burstMs = performance.now() - t0;
    const outcomes = requests.map(outcomeOf);
    const stats = await fleet.stats();
    const callsPerNode = stats.map((n) => n.calls);
    const load = stats.map((n) => n.sessions);
    const ideal = idealLoads(s.preload, s.calls, s.takes);
    const result: RunResult = {
      scenario: s.name,
      mode,
      calls: s.calls,
      preload: s.preload,
      calls_per_node: callsPerNode,
      max_over_mean: maxOverMean(callsPerNode),
      load_per_node: load,
      load_max_over_mean: maxOverMean(load),
      ideal_load_per_node: ideal,
      overshoot_calls: Math.max(...load.map((l, i) => l - (ideal[i] ?? 0))),
      mean_deviation_calls: round(
        load.reduce((sum, l, i) => sum + Math.abs(l - (ideal[i] ?? 0)), 0) / load.length,
        1,
      ),
      max_load: Math.max(...load),
      connected: outcomes.filter((o) => o.kind === 'connected').length,
      overbooked_calls: stats.reduce((sum, n) => sum + n.refusedWhileRoom, 0),
      node_refusals: stats.reduce((sum, n) => sum + (n.refused['max-sessions'] ?? 0), 0),
      failed: outcomes.filter((o) => o.kind === 'failed' || o.kind === 'pending').length,
      failed_over: outcomes.filter((o) => o.targetStatuses.length > 1).length,
      proxy_refusals: outcomes.filter((o) => o.kind === 'proxy-refused').length,
      burst_ms: Math.round(burstMs),
      reservations: await fleet.counterBy('fslb_proxy_reservations_total', 'outcome'),
      warnings: fleet.warnings().length,
    };
    for (const w of fleet.warnings().slice(0, 5)) console.log(`  warning ${w}`);
    await fleet.hangupAll(requests, s.preload, 60_000);
    return result;
  } finally {
    await fleet.close();
  }
}

function show(r: RunResult): void {
  console.log(
    `${`${r.scenario}, ${r.mode}`.padEnd(26)} calls/node ${r.calls_per_node.join(' ')}  max/mean ${r.max_over_mean}\n` +
      `${''.padEnd(26)} load ${r.load_per_node.join(' ')} (ideal ${r.ideal_load_per_node.join(' ')}; overshoot ${r.overshoot_calls}, mean deviation ${r.mean_deviation_calls})\n` +
      `${''.padEnd(26)} connected ${r.connected}  proxy 503 ${r.proxy_refusals}  node refusals ${r.node_refusals} ` +
      `(with room elsewhere ${r.overbooked_calls})  failed ${r.failed}  failed over ${r.failed_over}  ` +
      `reservations ${JSON.stringify(r.reservations)}  burst ${r.burst_ms} ms`,
  );
}

/** The machine's 1-minute load when the bench started: other work skews every figure here. */
const loadAtStart = round(loadavg()[0] ?? NaN, 2);
const children = new Children();
const server = await startBenchRedis(children);
const client = new Redis(server.url);
const started = performance.now();
const runs: RunResult[] = [];
try {
  console.log(`bursts over ${PROXIES} proxy processes and ${NODES} simulated nodes:`);
  const plan: [Scenario, Mode][] = [
    ...allModes.map((m): [Scenario, Mode] => [equal, m]),
    [nearCapacity, 'least-loaded'],
    ...unequalModes.map((m): [Scenario, Mode] => [unequal, m]),
  ];
  for (const [s, mode] of plan) {
    const r = await run({ url: server.url, client }, s, mode);
    runs.push(r);
    show(r);
  }
} finally {
  client.disconnect();
  await server.close();
  await children.stopAll();
}

const find = (scenario: string, mode: Mode): RunResult => {
  const r = runs.find((x) => x.scenario === scenario && x.mode === mode);
  if (!r) throw new Error(`no run ${scenario}/${mode}`);
  return r;
};
/** Every run in the default mode: equal, near capacity, and unequal when it ran. */
const defaults = runs.filter((r) => r.mode === 'least-loaded');
const near = find('near capacity', 'least-loaded');
/** Reservations counted in one proxy only (Redis late or unreachable): the one way a node can be overbooked. */
const local = defaults.reduce(
  (sum, r) =>
    sum + Object.entries(r.reservations).reduce((a, [k, v]) => a + (k.startsWith('local') ? v : 0), 0),
  0,
);
const overbooked = defaults.reduce((sum, r) => sum + r.overbooked_calls, 0);
const notes: Record<string, string> = {};
if (overbooked > 0) {
  notes.overbooked_calls =
    local > 0
      ? `${local} reservation(s) in the default-mode bursts were counted in one proxy only (${JSON.stringify(defaults.map((r) => r.reservations))}): ` +
        `Redis answered nothing for proxy.reserveTimeoutMs (${RESERVE_TIMEOUT_MS ?? 250} ms), or nothing to that call within 1 s, while the instant burst of ${nearCapacity.calls} INVITEs ` +
        `held every core of this machine (${near.burst_ms} ms to pass through), so those calls went ahead on local accounting, by design, ` +
        `and the other proxies could not see them: ${overbooked} INVITE(s) then met a full node while another had room (each was failed over or answered 503). ` +
        `Without a late reply there is no overbooking; BENCH_RESERVE_TIMEOUT_MS raises the timeout for this benchmark.`
      : `${overbooked} INVITE(s) met a full node while another had room although every reservation was made in Redis: a defect, see the runs in proxy-fairness.json.`;
}
const result = {
  machine: machine(),
  notes,
  date: new Date().toISOString(),
  load_average_1m: { start: loadAtStart, end: round(loadavg()[0] ?? NaN, 2) },
  calls: CALLS,
  nodes: NODES,
  proxies: PROXIES,
  reserve_timeout_ms: RESERVE_TIMEOUT_MS === undefined ? 'default (50)' : Number(RESERVE_TIMEOUT_MS),
  proxy_runtime: proxyEntry.runtime,
  fairness_max_over_mean: find('equal', 'least-loaded').max_over_mean,
  fairness_herd_max_over_mean: find('equal', 'herd').max_over_mean,
  fairness_rr_max_over_mean: find('equal', 'round-robin').max_over_mean,
  /** Every default-mode run: INVITEs a node refused for capacity while another node had room. */
  overbooked_calls: overbooked,
  proxy_refused_calls: defaults.reduce((sum, r) => sum + r.proxy_refusals, 0),
  /** The 1500-call burst into 10 x 100 in the default mode. */
  overbooked_calls_near_capacity: near.overbooked_calls,
  failed_calls_near_capacity: near.failed,
  /** Unequal start: per mode, the busiest node's load, the worst overshoot and the mean deviation from the ideal share. */
  unequal: Object.fromEntries(
    unequalModes.map((m) => {
      const r = find('unequal', m);
      return [
        m,
        {
          max_load: r.max_load,
          overshoot_calls: r.overshoot_calls,
          mean_deviation_calls: r.mean_deviation_calls,
        },
      ];
    }),
  ),
  runs,
  duration_s: round((performance.now() - started) / 1000, 1),
};
console.log(
  `fairness max/mean (equal nodes): least-loaded ${result.fairness_max_over_mean}, herd ${result.fairness_herd_max_over_mean}, ` +
    `round-robin ${result.fairness_rr_max_over_mean}; overbooked calls (default mode) ${result.overbooked_calls}, ` +
    `near capacity ${result.overbooked_calls_near_capacity} (failed ${result.failed_calls_near_capacity})` +
    (unequalModes.length > 0
      ? `; unequal start (busiest node, worst overshoot, mean deviation from the ideal share): ${JSON.stringify(result.unequal)}`
      : '') +
    `; ${result.duration_s} s`,
);
writeBench(
  'proxy-fairness',
  result,
  `## proxy-fairness: bursts over ${PROXIES} proxy processes and ${NODES} simulated nodes

Every INVITE injected at once, round robin over the proxies' drachtio-server doubles; calls held until all are answered. max/mean: the busiest node's new calls over the mean (1.00 = even). Overbooked: INVITEs a node refused for capacity while another node had room.

${table(
  [
    'scenario',
    'mode',
    'calls per node',
    'max/mean',
    'connected',
    'proxy 503',
    'overbooked',
    'reservations',
    'burst ms',
  ],
  runs.map((r) => [
    `${r.scenario} (${r.calls} calls${r.scenario === 'near capacity' ? ` into ${NODES} x ${nearCapacity.takes}` : ''})`,
    r.mode === 'herd' ? 'least loaded, no reservations (herd)' : r.mode,
    r.calls_per_node.join(' '),
    r.max_over_mean,
    r.connected,
    r.proxy_refusals,
    r.overbooked_calls,
    JSON.stringify(r.reservations),
    r.burst_ms,
  ]),
)}

Load average ${result.load_average_1m.start} at the start, ${result.load_average_1m.end} at the end. Took ${result.duration_s} s.`,
);
