/**
 * What pools, routes and limits cost per call, against the same work without them in the same
 * run:
 *  - decision time in the proxy (no I/O): the route decision (first match of 10 routes with
 *    regexes on the Request-URI and a header) plus choosing candidates pool by pool, against a
 *    plain least-loaded choice over the same 100 nodes;
 *  - the reservation script's round trip to a real local Redis, and its Redis CPU per call from
 *    INFO commandstats (EVALSHA time / calls), for four shapes of call: plain (4 candidates),
 *    pooled (the same 4 over 2 pools), with 1 limit, with 2 limits (maxCalls and maxCps).
 *
 * Env: BENCH_DECISIONS (50000), BENCH_RESERVATIONS (5000 per shape).
 * Writes bench/results/proxy-routing.json and .md: routing_decision_p99_us,
 * reservation_limit1_over_plain (round-trip p50 ratio), redis_us_per_reservation_plain,
 * redis_us_per_reservation_limit1.
 */
import { Redis } from 'ioredis';
import { ClusterKeys, ClusterStore, type LimitConfig, type LimitHold, type NodeRecord } from '@fslb/shared';
import { ClusterView, PoolNodes, RouteTable, selectLeastLoaded, type RoutableRequest } from '@fslb/proxy';
import { deletePrefix, testPrefix } from '../test/support/redis.js';
import { Children } from './support/children.js';
import { benchNodes, startBenchRedis } from './support/redis.js';
import { machine, round, summary, table, writeBench } from './support/results.js';

const DECISIONS = Number(process.env.BENCH_DECISIONS ?? 50_000);
const RESERVATIONS = Number(process.env.BENCH_RESERVATIONS ?? 5000);
const started = performance.now();

function record(id: string, sessions: number): NodeRecord {
  return {
    ...{ id, sip: `10.0.0.1:${5000 + Number(id.slice(2))}`, state: 'up', reason: '', sessions },
    ...{ maxSessions: 1000, cap: 0, idleCpu: 80, cps: 0, weight: 1, admin: '', owner: 'm', pool: '' },
    ...{ heartbeatAt: 1, updatedAt: 1, version: 1 },
  };
}

// --- Decision time -------------------------------------------------------------------------------
const NODES = 100;
const ids = Array.from({ length: NODES }, (_, i) => `fs${i}`);
const limits: LimitConfig[] = [
  { id: 'tenant', key: { header: 'X-Tenant' }, maxCalls: 100, status: 503, whenRedisDown: 'refuse' },
  { id: 'trunk', key: { source: true }, maxCps: 50, status: 503, whenRedisDown: 'refuse' },
];
const table10 = new RouteTable({
  pools: [0, 1, 2, 3].map((p) => ({ id: `p${p}`, nodes: ids.filter((_, i) => i % 4 === p) })),
  routes: [
    ...Array.from({ length: 8 }, (_, i) => ({
      id: `r${i}`,
      match: { ruriUser: `^9${i}\\d{3}$` },
      pools: ['p3'],
      limits: [],
    })),
    {
      id: 'tenant',
      match: { header: { name: 'X-Tenant', value: '^[a-z]+$' } },
      pools: ['p0', 'p1'],
      limits: ['tenant', 'trunk'],
    },
    { id: 'rest', pools: ['p2', 'p1'], limits: [] },
  ],
  limits,
});
const view = new ClusterView();
view.applySnapshot(
  {
    at: 1,
    version: 1,
    nodes: ids.map((id) => ({
      id,
      ok: true as const,
      record: record(id, Math.floor(Math.random() * 500)),
      alive: true,
      reservations: 0,
    })),
  },
  0,
);
const poolNodes = new PoolNodes<(typeof view.nodes)[number]>(table10);
const requests: RoutableRequest[] = Array.from({ length: 64 }, (_, i) => ({
  method: 'INVITE',
  sourceAddress: `192.0.2.${i}`,
  header: (n: string) => (n === 'X-Tenant' ? `tenant${String.fromCharCode(97 + (i % 26))}` : undefined),
  requestUri: () => `sip:+1555${1000 + i}@cluster.example.com`,
  fromUri: () => `sip:caller${i}@carrier.example.net`,
}));
const opts = { maxTargets: 6, random: Math.random };

function timeIt(n: number, fn: (i: number) => void): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    fn(i);
    out.push((performance.now() - t0) * 1000);
  }
  return out;
}
const plainChoice = (): void => void selectLeastLoaded(view.nodes, opts);
const routedChoice = (i: number): void => {
  const d = table10.decide(requests[i & 63] as RoutableRequest);
  if (d.kind !== 'route') return;
  for (const pool of d.pools) selectLeastLoaded(poolNodes.get(pool, view.nodes), opts);
};
timeIt(DECISIONS, plainChoice);
timeIt(DECISIONS, routedChoice);
const plainUs = summary(timeIt(DECISIONS, plainChoice), 2);
const routedUs = summary(timeIt(DECISIONS, routedChoice), 2);
const decideOnlyUs = summary(
  timeIt(DECISIONS, (i) => void table10.decide(requests[i & 63] as RoutableRequest)),
  2,
);

// --- Reservation round trip and Redis CPU -------------------------------------------------------
const children = new Children();
const server = await startBenchRedis(children);
const redis = new Redis(server.url);
const prefix = testPrefix('bench-routing');
const keys = new ClusterKeys(prefix);
const store = new ClusterStore(redis, keys);
await benchNodes(store, 10, 1_000_000);

interface Shape {
  name: string;
  groups?: number[];
  limits: (i: number) => LimitHold[];
}
const shapes: Shape[] = [
  { name: 'plain', limits: () => [] },
  { name: 'pooled', groups: [1, 1, 2, 2], limits: () => [] },
  { name: 'limit1', limits: (i) => [{ entry: `tenant:t${i % 50}`, maxCalls: 1_000_000, maxCps: 0 }] },
  {
    name: 'limit2',
    limits: (i) => [
      { entry: `tenant:t${i % 50}`, maxCalls: 1_000_000, maxCps: 0 },
      { entry: 'trunk:carrier-a', maxCalls: 0, maxCps: 1_000_000 },
    ],
  },
];

async function evalshaStats(): Promise<{ calls: number; usec: number }> {
  const info = await redis.info('commandstats');
  let calls = 0;
  let usec = 0;
  for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+),usec=(\d+)/gm)) {
    calls += Number(m[1]);
    usec += Number(m[2]);
  }
  return { calls, usec };
}

/**
 * Each shape is measured three times, the shapes taking turns, so that a moment of other work on
 * the machine does not land on one shape alone: round trips are pooled, Redis CPU is the median.
 */
const rtts = new Map<string, number[]>(shapes.map((s) => [s.name, []]));
const cpu = new Map<string, number[]>(shapes.map((s) => [s.name, []]));
async function run(shape: Shape, tag: string, measure: boolean): Promise<void> {
  const taken: { call: string; nodes: string[]; limits: string[] }[] = [];
  if (measure) await redis.config('RESETSTAT');
  for (let i = 0; i < RESERVATIONS; i++) {
    const call = `${tag}-${i}@bench;ft`;
    const candidates = [i, i + 3, i + 7, i + 1].map((k) => `fs${k % 10}`);
    const holds = shape.limits(i);
    const t0 = performance.now();
    const r = await store.reserveCall({
      call,
      candidates,
      slots: 1,
      failovers: 2,
      ttlMs: 3000,
      limitHoldMs: 20_000,
      ...(shape.groups ? { groups: shape.groups } : {}),
      limits: holds,
    });
    if (measure) rtts.get(shape.name)?.push(performance.now() - t0);
    taken.push({ call, nodes: r.taken, limits: holds.map((h) => h.entry) });
  }
  if (measure) {
    const stats = await evalshaStats();
    cpu.get(shape.name)?.push(stats.usec / Math.max(1, stats.calls));
  }
  for (const t of taken) await store.releaseCall(t.call, t.nodes, t.limits);
}
for (const shape of shapes) await run(shape, `warm-${shape.name}`, false);
for (let round = 0; round < 3; round++) {
  for (const shape of shapes) await run(shape, `${shape.name}-${round}`, true);
}
const median = (xs: readonly number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const reservations: Record<string, { rtt_ms: ReturnType<typeof summary>; redis_us: number }> = {};
for (const shape of shapes) {
  reservations[shape.name] = {
    rtt_ms: summary(rtts.get(shape.name) ?? [], 3),
    redis_us: round(median(cpu.get(shape.name) ?? []), 2),
  };
}
await deletePrefix(redis, prefix);
redis.disconnect();
await server.close();

const r = (name: string) => reservations[name] as { rtt_ms: ReturnType<typeof summary>; redis_us: number };
const result = {
  machine: machine(),
  date: new Date().toISOString(),
  decisions: DECISIONS,
  reservations: RESERVATIONS,
  nodes: NODES,
  decision_us: { plain: plainUs, routed: routedUs, route_decision_only: decideOnlyUs },
  routing_decision_p99_us: routedUs.p99,
  routing_decision_p50_over_plain: round(routedUs.p50 / plainUs.p50, 2),
  reservation: reservations,
  reservation_limit1_over_plain: round(r('limit1').rtt_ms.p50 / r('plain').rtt_ms.p50, 2),
  redis_us_per_reservation_plain: r('plain').redis_us,
  redis_us_per_reservation_pooled: r('pooled').redis_us,
  redis_us_per_reservation_limit1: r('limit1').redis_us,
  redis_us_per_reservation_limit2: r('limit2').redis_us,
  redis: server.kind,
  duration_s: round((performance.now() - started) / 1000, 1),
};
console.log(
  `decision (µs, ${NODES} nodes): plain p50 ${plainUs.p50} p99 ${plainUs.p99}; ` +
    `routed (10 routes, 4 pools) p50 ${routedUs.p50} p99 ${routedUs.p99}; route decision alone p50 ${decideOnlyUs.p50} p99 ${decideOnlyUs.p99}`,
);
for (const s of shapes) {
  const x = r(s.name);
  console.log(
    `reservation ${s.name.padEnd(6)}: round trip p50 ${x.rtt_ms.p50} ms p99 ${x.rtt_ms.p99} ms; Redis CPU ${x.redis_us} µs a call`,
  );
}
writeBench(
  'proxy-routing',
  result,
  `## proxy-routing: what pools, routes and limits cost per call

Decision time in the proxy over ${NODES} nodes (${DECISIONS} decisions each), µs:

${table(
  ['choice', 'p50', 'p99', 'max'],
  [
    ['plain least-loaded, one pool', plainUs.p50, plainUs.p99, plainUs.max],
    [
      'route decision + candidates pool by pool (10 routes, 4 pools)',
      routedUs.p50,
      routedUs.p99,
      routedUs.max,
    ],
    ['route decision alone', decideOnlyUs.p50, decideOnlyUs.p99, decideOnlyUs.max],
  ],
)}

The reservation script against a local Redis (4 candidates, 1 slot + 2 failovers), ${RESERVATIONS} calls per shape three times over, the shapes taking turns; Redis CPU is the median of the three (EVALSHA time / calls in INFO commandstats):

${table(
  ['shape', 'round trip p50 ms', 'p99 ms', 'Redis CPU µs a call (commandstats)'],
  shapes.map((s) => [s.name, r(s.name).rtt_ms.p50, r(s.name).rtt_ms.p99, r(s.name).redis_us]),
)}

Every shape is one round trip. Took ${result.duration_s} s.`,
);
await children.stopAll();
