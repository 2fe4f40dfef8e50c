/**
 * A fleet's reservations against one Redis and against a Redis Cluster of 3 masters (with a
 * replica each), first with every node in one slot, then with the nodes in 3 pool shards whose
 * slots are served by the 3 masters (the aggregate is `fleet_reservations_per_s_cluster`): 16 proxy clients (16 connections, each with its own `ClusterStore`, 8
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
  /** The busiest master's process CPU over the run, % of a core. */
  redis_busy_percent: number;
  /** Every master's that served fslb's slots, in the order given. */
  masters_busy_percent: number[];
  errors: number;
}

/** Nodes per pool shard in the sharded cluster run: node i is in shard `s<i % SHARDS>`. */
const SHARDS = 3;
const shardOfNode = (id: string): string => `s${Number(id.slice(2)) % SHARDS}`;

/**
 * Runs the fleet: one client per entry of `clients`, each a function giving the store of a
 * node's shard; `masters` are the processes that serve fslb's slots, whose stats are read.
 */
async function fleet(
  clients: ((id: string) => ClusterStore)[],
  masters: { client: Redis; pid: number | undefined }[],
): Promise<FleetRun> {
  const ids = Array.from({ length: NODES }, (_, i) => `fs${i}`);
  let done = 0;
  let errors = 0;
  let stop = false;
  for (const m of masters) await m.client.config('RESETSTAT');
  const ticks0 = masters.map((m) => (m.pid === undefined ? undefined : processTicks(m.pid)));
  const t0 = performance.now();
  const loops = clients.flatMap((storeOf, c) =>
    Array.from({ length: IN_FLIGHT }, async (_, k) => {
      for (let i = 0; !stop; i++) {
        // Two candidates of one pool, 501 apart (a multiple of SHARDS): the same shard.
        const a = ids[(i * 31 + c * 7 + k) % NODES] ?? 'fs0';
        const b = ids[(i * 31 + c * 7 + k + 501) % NODES] ?? 'fs1';
        try {
          await storeOf(a).reserveCall({
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
  const busy = masters.map((m, j) => {
    const before = ticks0[j];
    const after = m.pid === undefined ? undefined : processTicks(m.pid);
    if (after === undefined || before === undefined) return NaN;
    return round(((after - before) / hz / elapsed) * 100, 1);
  });
  let calls = 0;
  let usec = 0;
  for (const m of masters) {
    const s = /^cmdstat_evalsha:calls=(\d+),usec=(\d+)/m.exec(await m.client.info('commandstats'));
    calls += Number(s?.[1] ?? 0);
    usec += Number(s?.[2] ?? 0);
  }
  return {
    reservations_per_s: Math.round(done / elapsed),
    redis_cpu_us_per_reservation: calls > 0 ? round(usec / calls, 2) : NaN,
    redis_busy_percent: Math.max(...busy),
    masters_busy_percent: busy,
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
const one = await fleet(
  oneStores.map((s) => () => s),
  [{ client: oneClients[0] as Redis, pid: server.pid }],
);
const ev = await eventsPhase(server.url, onePrefix, oneStores[0] as ClusterStore);
for (const c of oneClients) c.disconnect();
await server.close();

// --- Redis Cluster -----------------------------------------------------------------------------
// First every node under the prefix's one hash tag (one slot, one master), then the nodes split
// into SHARDS pool shards whose slots are served by SHARDS different masters.
let clusterOneSlot: FleetRun | undefined;
let cluster: FleetRun | undefined;
let clusterWhy = await clusterUnavailable();
if (clusterWhy === undefined) {
  const rc = await TestRedisCluster.start(3);
  const opened: { disconnect(): void }[] = [];
  try {
    const clients = Array.from(
      { length: CLIENTS },
      () => new Cluster(rc.seeds, { scaleReads: 'master', redisOptions: { maxRetriesPerRequest: 2 } }),
    );
    opened.push(...clients);
    const masterOfKey = async (key: string): Promise<{ client: Redis; pid: number | undefined }> => {
      const port = await rc.masterOf(await (clients[0] as Cluster).cluster('KEYSLOT', key));
      const client = rc.node(port);
      opened.push(client);
      return { client, pid: rc.pidOf(port) };
    };

    const prefix = testPrefix('bench-fleet');
    const stores = clients.map((c) => new ClusterStore(c, new ClusterKeys(prefix, { sharded: true })));
    const first = stores[0] as ClusterStore;
    await benchNodes(first, NODES, 1_000_000_000);
    clusterOneSlot = await fleet(
      stores.map((s) => () => s),
      [await masterOfKey(first.keys.nodes)],
    );

    const shardedPrefix = testPrefix('bench-shards');
    const base = new ClusterKeys(shardedPrefix, { sharded: true });
    const names = Array.from({ length: SHARDS }, (_, i) => `s${i}`);
    // Each shard's slot on a master of its own, moved there as a reshard would.
    const ports = await rc.masters();
    for (const [i, name] of names.entries()) {
      const slot = await (clients[0] as Cluster).cluster('KEYSLOT', base.shard(name).nodes);
      const want = ports[i % ports.length];
      if (want !== undefined && (await rc.masterOf(slot)) !== want) await rc.migrateSlot(slot, want);
    }
    const shardedStores = clients.map((c) => {
      const root = new ClusterStore(c, base);
      return (id: string) => root.shard(base.shard(shardOfNode(id)));
    });
    const storeOf = shardedStores[0] as (id: string) => ClusterStore;
    await benchNodes(storeOf('fs0'), NODES, 1_000_000_000, storeOf);
    const masters = await Promise.all(names.map((n) => masterOfKey(base.shard(n).nodes)));
    cluster = await fleet(shardedStores, masters);
  } catch (err) {
    clusterWhy = `the cluster run failed: ${String(err)}`;
  } finally {
    for (const c of opened) c.disconnect();
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
  fleet_reservations_per_s_cluster_one_slot: clusterOneSlot?.reservations_per_s ?? null,
  proxy_cpu_us_per_event: median(ev.cpu_us_per_event),
  proxy_cpu_percent_on_events: median(ev.cpu_percent),
  events: ev,
  one_redis: one,
  cluster: cluster ?? { skipped: clusterWhy },
  cluster_one_slot: clusterOneSlot ?? { skipped: clusterWhy },
  shards: SHARDS,
  duration_s: round((performance.now() - started) / 1000, 1),
};
const row = (name: string, r: FleetRun | undefined): (string | number)[] =>
  r
    ? [
        name,
        r.reservations_per_s,
        r.redis_cpu_us_per_reservation,
        r.masters_busy_percent.map((b) => `${b} %`).join(' / '),
        r.errors,
      ]
    : [name, `skipped: ${clusterWhy ?? ''}`, '', '', ''];
console.log(
  `events: ${ev.events_per_s}/s over ${NODES} nodes; each of ${EVENT_PROXIES} proxies' views spent ` +
    `${ev.cpu_us_per_event.join(' / ')} µs of CPU per event (${ev.cpu_percent.join(' / ')} % of a core)`,
);
console.log(
  `fleet of ${CLIENTS} clients x ${IN_FLIGHT} in flight over ${NODES} nodes: one Redis ${one.reservations_per_s}/s ` +
    `(${one.redis_cpu_us_per_reservation} µs each, Redis ${one.redis_busy_percent} % busy); cluster ` +
    (cluster && clusterOneSlot
      ? `in one slot ${clusterOneSlot.reservations_per_s}/s (its master ${clusterOneSlot.redis_busy_percent} % busy), ` +
        `in ${SHARDS} shards ${cluster.reservations_per_s}/s (${cluster.redis_cpu_us_per_reservation} µs each, masters ${cluster.masters_busy_percent.join(' / ')} % busy)`
      : `skipped: ${clusterWhy ?? ''}`),
);
writeBench(
  'redis-fleet',
  result,
  `## redis-fleet: a fleet's reservations on one Redis and on a Redis Cluster

${CLIENTS} proxy clients, ${IN_FLIGHT} reservations in flight each, ${NODES} nodes, ${SECONDS} s each, two candidates per reservation:

${table(
  ['Redis', 'reservations/s', 'Redis CPU µs each', 'masters busy', 'errors'],
  [
    row('one Redis', one),
    row('Redis Cluster, 3 masters + 3 replicas, every node in one slot', clusterOneSlot),
    row(`the same cluster, nodes in ${SHARDS} pool shards on ${SHARDS} masters`, cluster),
  ],
)}

What each proxy spends on events: ${EVENT_PROXIES} processes holding fslb-proxy's view (ClusterView + ViewSync, nothing else) followed ${NODES} nodes while owners' writes published ${ev.events_per_s} node events/s for ${SECONDS} s; each ended with Redis' session counts. CPU per event: ${ev.cpu_us_per_event.join(' / ')} µs; share of a core: ${ev.cpu_percent.join(' / ')} %. A proxy's own reservations publish nothing (proxy.loadPublishMs 0), so this grows with the calls the cluster carries, not with the number of proxies.

Under the prefix's one hash tag one master serves every reservation: the cluster adds failover, not throughput. With pool shards each master serves its own shard's nodes. "Busy" is each master process' CPU over the run; below 100 % the clients (one Node.js process on the same ${machine().cores}-core machine) set the pace, not Redis. Took ${result.duration_s} s.`,
);
