/**
 * A fleet's reservations against one Redis and against a Redis Cluster of 3 masters (with a
 * replica each): 16 proxy clients (16 connections, each with its own `ClusterStore`, 8
 * reservations in flight each) reserving as fast as they can over 1000 nodes, as a proxy sends
 * them at default settings (two candidates), for a fixed time. Reports reservations/s, the Redis
 * CPU per reservation (INFO commandstats of the master that holds fslb's slot), and how busy that
 * master's process was: below 100 % the clients, not Redis, set the pace (this benchmark runs
 * its clients in one Node.js process on the same machine).
 *
 * Env: BENCH_FLEET_SECONDS (5).
 * Writes bench/results/redis-fleet.json and .md: fleet_reservations_per_s_one_redis,
 * fleet_reservations_per_s_cluster.
 */
import { Cluster, Redis } from 'ioredis';
import { ClusterKeys, ClusterStore } from '@fslb/shared';
import { clockTicksPerSecond, processTicks } from '../test/support/proc-stat.js';
import { clusterUnavailable, TestRedisCluster } from '../test/support/redis-cluster.js';
import { testPrefix } from '../test/support/redis.js';
import { Children } from './support/children.js';
import { benchNodes, startBenchRedis } from './support/redis.js';
import { machine, round, table, writeBench } from './support/results.js';

const SECONDS = Number(process.env.BENCH_FLEET_SECONDS ?? 5);
const CLIENTS = 16;
const IN_FLIGHT = 8;
const NODES = 1000;
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

const children = new Children();
// --- One Redis ---------------------------------------------------------------------------------
const server = await startBenchRedis(children);
const oneClients = Array.from({ length: CLIENTS }, () => new Redis(server.url));
const onePrefix = testPrefix('bench-fleet');
const oneStores = oneClients.map((c) => new ClusterStore(c, new ClusterKeys(onePrefix)));
await benchNodes(oneStores[0] as ClusterStore, NODES, 1_000_000_000);
const one = await fleet(oneStores, { client: oneClients[0] as Redis, pid: server.pid });
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
  one_redis: one,
  cluster: cluster ?? { skipped: clusterWhy },
  duration_s: round((performance.now() - started) / 1000, 1),
};
const row = (name: string, r: FleetRun | undefined): (string | number)[] =>
  r
    ? [name, r.reservations_per_s, r.redis_cpu_us_per_reservation, `${r.redis_busy_percent} %`, r.errors]
    : [name, `skipped: ${clusterWhy ?? ''}`, '', '', ''];
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

fslb's keys share one hash tag, so one master of the cluster serves every reservation: the cluster adds failover, not throughput. "Busy" is the master process' CPU over the run; below 100 % the clients (one Node.js process on the same ${machine().cores}-core machine) set the pace, not Redis. Took ${result.duration_s} s.`,
);
