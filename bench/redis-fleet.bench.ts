/**
 * A fleet's reservations against one Redis and against a Redis Cluster of 3 masters (with a
 * replica each): 16 proxy clients (16 connections, each with its own `ClusterStore`, 8
 * reservations in flight each) reserving as fast as they can over 1000 nodes, as a proxy sends
 * them at default settings (two candidates), for a fixed time. Reports reservations/s, the Redis
 * CPU per reservation (INFO commandstats of the master that holds fslb's slot), and how busy that
 * master's process was: below 100 % the clients, not Redis, set the pace (this benchmark runs
 * its clients in one Node.js process on the same machine).
 *
 * Then what each proxy spends on events: EVENT_PROXIES followers (bench/support/event-follower.ts,
 * fslb-proxy's own ClusterView and ViewSync, each a process of its own) follow the one Redis'
 * 1000 nodes while owners' writes change `sessions` on them at BENCH_EVENT_RATE events/s; their
 * CPU comes from /proc, and each must end with the same sessions as Redis holds.
 *
 * Env: BENCH_FLEET_SECONDS (5), BENCH_EVENT_RATE (2000).
 * Writes bench/results/redis-fleet.json and .md: fleet_reservations_per_s_one_redis,
 * fleet_reservations_per_s_cluster, proxy_cpu_us_per_event, proxy_cpu_percent_on_events.
 */
import { createInterface } from 'node:readline';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Cluster, Redis } from 'ioredis';
import { ClusterKeys, ClusterStore } from '@fslb/shared';
import { clockTicksPerSecond, processCpuMicros, processTicks } from '../test/support/proc-stat.js';
import { clusterUnavailable, TestRedisCluster } from '../test/support/redis-cluster.js';
import { testPrefix } from '../test/support/redis.js';
import { Children } from './support/children.js';
import { benchNodes, startBenchRedis } from './support/redis.js';
import { machine, round, table, writeBench } from './support/results.js';

const SECONDS = Number(process.env.BENCH_FLEET_SECONDS ?? 5);
const CLIENTS = 16;
const IN_FLIGHT = 8;
const NODES = 1000;
const EVENT_PROXIES = 4;
const EVENT_RATE = Number(process.env.BENCH_EVENT_RATE ?? 2000);
const started = performance.now();
const hz = clockTicksPerSecond();

interface FleetRun {
  reservations_per_s: number;
  redis_cpu_us_per_reservation: number;
  redis_busy_percent: number;
  errors: number;
}

/** Runs the fleet against `clients` (one store each); `master` reads the slot owner's stats. */
async function fleet(
  stores: ClusterStore[],
  master: { client: Redis; pid: number | undefined },
): Promise<FleetRun> {
  const ids = Array.from({ length: NODES }, (_, i) => `fs${i}`);
  let done = 0;
  let errors = 0;
  let stop = false;
  await master.client.config('RESETSTAT');
  const ticks0 = master.pid === undefined ? undefined : processTicks(master.pid);
  const t0 = performance.now();
  const loops = stores.flatMap((store, c) =>
    Array.from({ length: IN_FLIGHT }, async (_, k) => {
      for (let i = 0; !stop; i++) {
        const a = ids[(i * 31 + c * 7 + k) % NODES] ?? 'fs0';
        const b = ids[(i * 31 + c * 7 + k + 500) % NODES] ?? 'fs1';
        try {
          await store.reserveCall({
            call: `c${c}-${k}-${i}@fleet;t`,
            candidates: [a, b],
            slots: 1,
            failovers: 0,
            ttlMs: 1000,
          });
          done++;
        } catch {
          errors++;
        }
      }
    }),
  );
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  stop = true;
  await Promise.all(loops);
  const elapsed = (performance.now() - t0) / 1000;
  const ticks1 = master.pid === undefined ? undefined : processTicks(master.pid);
  const info = await master.client.info('commandstats');
  const m = /^cmdstat_evalsha:calls=(\d+),usec=(\d+)/m.exec(info);
  return {
    reservations_per_s: Math.round(done / elapsed),
    redis_cpu_us_per_reservation: m ? round(Number(m[2]) / Math.max(1, Number(m[1])), 2) : NaN,
    redis_busy_percent:
      ticks0 === undefined || ticks1 === undefined ? NaN : round(((ticks1 - ticks0) / hz / elapsed) * 100, 1),
    errors,
  };
}

const median = (xs: readonly number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

interface EventsRun {
  events: number;
  events_per_s: number;
  /** Per follower: CPU µs per event, and % of one core, over the run. */
  cpu_us_per_event: number[];
  cpu_percent: number[];
}

/** Lines a child prints, awaited one by one. */
function lines(child: ChildProcess): () => Promise<string> {
  const queue: string[] = [];
  const waiting: ((l: string) => void)[] = [];
  if (!child.stdout) throw new Error('child without stdout');
  createInterface({ input: child.stdout }).on('line', (l) => {
    const w = waiting.shift();
    if (w) w(l);
    else queue.push(l);
  });
  return () => {
    const l = queue.shift();
    return l !== undefined ? Promise.resolve(l) : new Promise((resolve) => waiting.push(resolve));
  };
}

/** Followers' CPU while owners' writes publish node events at EVENT_RATE for SECONDS. */
async function eventsPhase(url: string, prefix: string, store: ClusterStore): Promise<EventsRun> {
  const script = fileURLToPath(new URL('support/event-follower.ts', import.meta.url));
  const followers = Array.from({ length: EVENT_PROXIES }, () => {
    const child = children.spawn(
      process.execPath,
      ['--conditions=@fslb/source', '--import', 'tsx', script, url, prefix],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    return { child, next: lines(child) };
  });
  for (const f of followers) {
    const ready = await f.next();
    if (!ready.startsWith('ready')) throw new Error(`follower: ${ready}`);
  }
  const sessions = new Map<string, number>();
  const ids = Array.from({ length: NODES }, (_, i) => `fs${i}`);
  const cpu0 = followers.map((f) => processCpuMicros(f.child.pid ?? 0));
  const t0 = performance.now();
  let events = 0;
  let i = 0;
  const perTick = Math.max(1, Math.round(EVENT_RATE / 100));
  while (performance.now() - t0 < SECONDS * 1000) {
    const tick = performance.now();
    const writes: Promise<unknown>[] = [];
    for (let j = 0; j < perTick; j++, i++) {
      const id = ids[(i * 7) % NODES] ?? 'fs0';
      // Calls come and go: each write moves the node's count, so each one is an event.
      const n = (sessions.get(id) ?? 0) + (i % 3 === 2 ? -1 : 1);
      sessions.set(id, Math.max(0, n));
      writes.push(
        store
          .writeNode({
            id,
            token: 'tok',
            owner: 'bench',
            livenessTtlMs: 600_000,
            loud: { state: 'up', sessions: Math.max(0, n), maxSessions: 1_000_000_000 },
          })
          .then((w) => {
            if (w.kind === 'changed') events++;
          }),
      );
    }
    await Promise.all(writes);
    const wait = 10 - (performance.now() - tick);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  const elapsed = (performance.now() - t0) / 1000;
  // Every follower's view ends where Redis is: the events were applied, not dropped.
  let expected = 0;
  for (const v of sessions.values()) expected += v;
  for (const f of followers) {
    const deadline = performance.now() + 5000;
    for (;;) {
      f.child.stdin?.write('report\n');
      const got = Number((await f.next()).split(' ')[1]);
      if (got === expected) break;
      if (performance.now() > deadline)
        throw new Error(`a follower's view holds ${got} sessions, Redis ${expected}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const cpu = followers.map((f, k) => processCpuMicros(f.child.pid ?? 0) - (cpu0[k] ?? 0));
  for (const f of followers) await children.stop(f.child);
  return {
    events,
    events_per_s: Math.round(events / elapsed),
    cpu_us_per_event: cpu.map((c) => round(c / Math.max(1, events), 2)),
    cpu_percent: cpu.map((c) => round((c / 1e6 / elapsed) * 100, 1)),
  };
}

const children = new Children();
// --- One Redis ---------------------------------------------------------------------------------
const server = await startBenchRedis(children);
const oneClients = Array.from({ length: CLIENTS }, () => new Redis(server.url));
const onePrefix = testPrefix('bench-fleet');
const oneStores = oneClients.map((c) => new ClusterStore(c, new ClusterKeys(onePrefix)));
await benchNodes(oneStores[0] as ClusterStore, NODES, 1_000_000_000);
const one = await fleet(oneStores, { client: oneClients[0] as Redis, pid: server.pid });
const ev = await eventsPhase(server.url, onePrefix, oneStores[0] as ClusterStore);
for (const c of oneClients) c.disconnect();
await server.close();

// --- Redis Cluster -----------------------------------------------------------------------------
let cluster: FleetRun | undefined;
let clusterWhy = await clusterUnavailable();
if (clusterWhy === undefined) {
  const rc = await TestRedisCluster.start(3);
  try {
    const clients = Array.from(
      { length: CLIENTS },
      () => new Cluster(rc.seeds, { scaleReads: 'master', redisOptions: { maxRetriesPerRequest: 2 } }),
    );
    const prefix = testPrefix('bench-fleet');
    const stores = clients.map((c) => new ClusterStore(c, new ClusterKeys(prefix, { sharded: true })));
    const first = stores[0] as ClusterStore;
    await benchNodes(first, NODES, 1_000_000_000);
    const slot = await (clients[0] as Cluster).cluster('KEYSLOT', first.keys.nodes);
    const port = await rc.masterOf(slot);
    const masterClient = rc.node(port);
    cluster = await fleet(stores, { client: masterClient, pid: rc.pidOf(port) });
    masterClient.disconnect();
    for (const c of clients) c.disconnect();
  } catch (err) {
    clusterWhy = `the cluster run failed: ${String(err)}`;
  } finally {
    await rc.close();
  }
}
await children.stopAll();

const result = {
  machine: machine(),
  date: new Date().toISOString(),
  clients: CLIENTS,
  in_flight_per_client: IN_FLIGHT,
  nodes: NODES,
  seconds: SECONDS,
  fleet_reservations_per_s_one_redis: one.reservations_per_s,
  fleet_reservations_per_s_cluster: cluster?.reservations_per_s ?? null,
  proxy_cpu_us_per_event: median(ev.cpu_us_per_event),
  proxy_cpu_percent_on_events: median(ev.cpu_percent),
  events: ev,
  one_redis: one,
  cluster: cluster ?? { skipped: clusterWhy },
  duration_s: round((performance.now() - started) / 1000, 1),
};
const row = (name: string, r: FleetRun | undefined): (string | number)[] =>
  r
    ? [name, r.reservations_per_s, r.redis_cpu_us_per_reservation, `${r.redis_busy_percent} %`, r.errors]
    : [name, `skipped: ${clusterWhy ?? ''}`, '', '', ''];
console.log(
  `events: ${ev.events_per_s}/s over ${NODES} nodes; each of ${EVENT_PROXIES} proxies' views spent ` +
    `${ev.cpu_us_per_event.join(' / ')} µs of CPU per event (${ev.cpu_percent.join(' / ')} % of a core)`,
);
console.log(
  `fleet of ${CLIENTS} clients x ${IN_FLIGHT} in flight over ${NODES} nodes: one Redis ${one.reservations_per_s}/s ` +
    `(${one.redis_cpu_us_per_reservation} µs each, Redis ${one.redis_busy_percent} % busy); cluster ` +
    (cluster
      ? `${cluster.reservations_per_s}/s (${cluster.redis_cpu_us_per_reservation} µs each, its master ${cluster.redis_busy_percent} % busy)`
      : `skipped: ${clusterWhy ?? ''}`),
);
writeBench(
  'redis-fleet',
  result,
  `## redis-fleet: a fleet's reservations on one Redis and on a Redis Cluster

${CLIENTS} proxy clients, ${IN_FLIGHT} reservations in flight each, ${NODES} nodes, ${SECONDS} s each, two candidates per reservation:

${table(
  ['Redis', 'reservations/s', 'Redis CPU µs each', 'the master busy', 'errors'],
  [row('one Redis', one), row('Redis Cluster, 3 masters + 3 replicas', cluster)],
)}

What each proxy spends on events: ${EVENT_PROXIES} processes holding fslb-proxy's view (ClusterView + ViewSync, nothing else) followed ${NODES} nodes while owners' writes published ${ev.events_per_s} node events/s for ${SECONDS} s; each ended with Redis' session counts. CPU per event: ${ev.cpu_us_per_event.join(' / ')} µs; share of a core: ${ev.cpu_percent.join(' / ')} %. A proxy's own reservations publish nothing (proxy.loadPublishMs 0), so this grows with the calls the cluster carries, not with the number of proxies.

fslb's keys share one hash tag, so one master of the cluster serves every reservation: the cluster adds failover, not throughput. "Busy" is the master process' CPU over the run; below 100 % the clients (one Node.js process on the same ${machine().cores}-core machine) set the pace, not Redis. Took ${result.duration_s} s.`,
);
