/**
 * What one call costs Redis, from INFO commandstats, against a real local Redis with 100 nodes:
 *  - the reservation as a proxy sends it at default settings (the view's best `RESERVE_BATCH`
 *    candidates of one pool, failover targets from the view), against the shape it had before
 *    (6 candidates, 2 failover targets named by Redis) in the same run, the shapes taking turns;
 *  - a whole call: its reservation, the owner's write when FreeSWITCH counts it (the settle,
 *    with its event published), and the owner's write when it ends. From it, the calls per
 *    second one Redis core carries (1 s of CPU / CPU per call).
 *
 *  - how long a proxy's full resync at 1000 nodes holds Redis: one chunk (VIEW_CHUNK nodes), against
 *    the whole view read as one script.
 *
 * Env: BENCH_RESERVATIONS (5000 per shape and round).
 * Writes bench/results/redis-cost.json and .md: redis_cpu_us_per_reservation,
 * redis_cpu_us_per_call, redis_calls_per_s_per_core, read_view_block_ms_1000_nodes.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { ClusterKeys, ClusterStore, configSchema, createLogger, VIEW_CHUNK } from '@fslb/shared';
import {
  ADVANCE_REFRESH_MS,
  ADVANCE_SHARE,
  CallAccounting,
  ClusterView,
  RESERVE_BATCH,
  selectLeastLoaded,
  SlotMode,
  type CallSlots,
} from '@fslb/proxy';
import { deletePrefix, testPrefix } from '../test/support/redis.js';
import { Children } from './support/children.js';
import { benchNodes, startBenchRedis } from './support/redis.js';
import { machine, round, table, writeBench } from './support/results.js';

const RESERVATIONS = Number(process.env.BENCH_RESERVATIONS ?? 5000);
/** Calls per second offered to the proxy's own accounting in the advance-slot shape. */
const ADVANCE_CPS = Number(process.env.BENCH_ADVANCE_CPS ?? 2000);
/** The proxy's default advance slots per node (`proxy.advanceSlots`). */
const ADVANCE_MAX = configSchema.parse({}).proxy.advanceSlots;
const SLOT_TTL_MS = 3000;
const NODES = 100;
const started = performance.now();

const children = new Children();
const server = await startBenchRedis(children);
const redis = new Redis(server.url);
const prefix = testPrefix('bench-cost');
const store = new ClusterStore(redis, new ClusterKeys(prefix));
const ids = await benchNodes(store, NODES, 1_000_000);

/**
 * Redis CPU (µs) and calls of every command since the last RESETSTAT, from INFO commandstats.
 * A script's time includes the commands it runs, which are also counted under their own names:
 * fslb does its Redis work in scripts, so `scriptUsec` is what it costs Redis, and `usec` (every
 * command summed) counts the scripts' commands twice.
 */
async function commandStats(): Promise<{ usec: number; scripts: number; scriptUsec: number }> {
  const info = await redis.info('commandstats');
  let usec = 0;
  let scripts = 0;
  let scriptUsec = 0;
  for (const m of info.matchAll(/^cmdstat_([a-z|_-]+):calls=(\d+),usec=(\d+)/gm)) {
    if (m[1] === 'info' || m[1] === 'config|resetstat') continue;
    usec += Number(m[3]);
    if (m[1] === 'evalsha' || m[1] === 'eval') {
      scripts += Number(m[2]);
      scriptUsec += Number(m[3]);
    }
  }
  return { usec, scripts, scriptUsec };
}

interface Shape {
  name: string;
  candidates: number;
  failovers: number;
}
const shapes: Shape[] = [
  { name: 'default', candidates: RESERVE_BATCH, failovers: 0 },
  { name: 'before', candidates: 6, failovers: 2 },
];

const median = (xs: readonly number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/** Redis CPU per reservation of one shape (µs); releases what it took afterwards, unmeasured. */
async function reservations(shape: Shape, tag: string): Promise<number> {
  const taken: { call: string; nodes: string[] }[] = [];
  await redis.config('RESETSTAT');
  for (let i = 0; i < RESERVATIONS; i++) {
    const call = `${tag}-${i}@bench;ft`;
    const candidates = Array.from({ length: shape.candidates }, (_, k) => ids[(i + k * 7) % NODES] ?? 'fs0');
    const r = await store.reserveCall({
      call,
      candidates,
      slots: 1,
      failovers: shape.failovers,
      ttlMs: 3000,
    });
    taken.push({ call, nodes: r.taken });
  }
  const stats = await commandStats();
  for (const t of taken) await store.releaseCall(t.call, t.nodes);
  return stats.scriptUsec / Math.max(1, stats.scripts);
}

/**
 * The nodes' owners' writes, as a monitor makes them: `sessions` moved by `delta`, and the calls
 * (or advance slots) FreeSWITCH counted settled in the same write.
 */
function ownerWrites(): (id: string, delta: number, settle?: string) => Promise<unknown> {
  const sessions = new Map<string, number>(ids.map((id) => [id, 0]));
  return (id, delta, settle) => {
    const n = (sessions.get(id) ?? 0) + delta;
    sessions.set(id, n);
    return store.writeNode({
      id,
      token: 'tok',
      owner: 'bench',
      livenessTtlMs: 600_000,
      loud: { state: 'up', sessions: n, maxSessions: 1_000_000 },
      ...(settle ? { settle: [settle] } : {}),
    });
  };
}

/**
 * Redis CPU per reservation (µs) as a proxy makes them by default: its own CallAccounting with
 * advance slots, calls offered at ADVANCE_CPS (ticks of 5 ms) to the view's least-loaded
 * choice, each connected at once. Every script the proxy runs counts: advance-slot book-keeping
 * (grants, refreshes) and the reservations of calls that found no advance slot held. `advance`:
 * the share of calls proxied on one. With `settle`, each call's slot is also settled by the
 * owner's write and the call ended by another (a whole call).
 */
async function advanceCalls(tag: string, settle: boolean): Promise<{ us: number; advance: number }> {
  const view = new ClusterView();
  view.applySnapshot(await store.readView(), performance.now());
  const accounting = new CallAccounting({
    store,
    view,
    settings: {
      maxTargets: 3,
      timeoutMs: 250,
      ttlMs: SLOT_TTL_MS,
      publishMs: 0,
      proxyId: `bench-${tag}`,
      limitHoldMs: SLOT_TTL_MS,
      advance: {
        max: ADVANCE_MAX,
        share: ADVANCE_SHARE,
        refreshMs: ADVANCE_REFRESH_MS,
        ttlMs: SLOT_TTL_MS + 2 * ADVANCE_REFRESH_MS,
      },
    },
    observer: { reservation: () => undefined },
    log: createLogger({ level: 'silent', name: 'bench' }),
    redisReady: () => redis.status === 'ready',
  });
  const write = ownerWrites();
  const perTick = Math.max(1, Math.round((ADVANCE_CPS * 5) / 1000));
  // Warm: the proxy learns the demand and takes its first slots, unmeasured.
  const run = async (count: number, prefix: string): Promise<number> => {
    let onSlot = 0;
    const ends: Promise<unknown>[] = [];
    for (let i = 0; i < count;) {
      const tick = performance.now();
      for (let j = 0; j < perTick && i < count; j++, i++) {
        const call = `${prefix}-${i}@bench;ft`;
        const candidates = selectLeastLoaded(view.nodes, { maxTargets: 6, random: Math.random });
        const r = await accounting.reserve(call, candidates);
        if (r.kind !== 'reserved') throw new Error(`no slot: ${r.kind}`);
        const slots: CallSlots = r.slots;
        if (slots.mode === SlotMode.Advance) onSlot++;
        accounting.connected(slots);
        if (settle) {
          const member = slots.slot ?? call;
          ends.push(write(slots.node.id, 1, member).then(() => write(slots.node.id, -1)));
        }
      }
      const wait = 5 - (performance.now() - tick);
      if (wait > 0) await sleep(wait);
    }
    await Promise.all(ends);
    return onSlot;
  };
  await run(Math.min(1000, RESERVATIONS), `${tag}-warm`);
  await redis.config('RESETSTAT');
  const onSlot = await run(RESERVATIONS, tag);
  const stats = await commandStats();
  accounting.close();
  return { us: stats.scriptUsec / RESERVATIONS, advance: onSlot / RESERVATIONS };
}

/**
 * Redis CPU per whole call (µs): reserve, then the owner's settle write (sessions + 1, the call's
 * slot ended, an event published), then its write when the call ends (sessions - 1).
 */
async function wholeCalls(tag: string): Promise<number> {
  const write = ownerWrites();
  await redis.config('RESETSTAT');
  for (let i = 0; i < RESERVATIONS; i++) {
    const call = `${tag}-${i}@bench;ft`;
    const candidates = Array.from({ length: RESERVE_BATCH }, (_, k) => ids[(i + k * 7) % NODES] ?? 'fs0');
    const r = await store.reserveCall({ call, candidates, slots: 1, failovers: 0, ttlMs: 3000 });
    const node = r.taken[0];
    if (node === undefined) throw new Error('no slot taken');
    await write(node, 1, call);
    await write(node, -1);
  }
  const stats = await commandStats();
  return stats.scriptUsec / RESERVATIONS;
}

const perReservation = new Map<string, number[]>([
  ...shapes.map((s): [string, number[]] => [s.name, []]),
  ['advance', []],
]);
const perCall: number[] = [];
const perCallAdvance: number[] = [];
const advanceShare: number[] = [];
for (const shape of shapes) await reservations(shape, `warm-${shape.name}`);
for (let r = 0; r < 3; r++) {
  for (const shape of shapes)
    perReservation.get(shape.name)?.push(await reservations(shape, `${shape.name}-${r}`));
  const a = await advanceCalls(`advance-${r}`, false);
  perReservation.get('advance')?.push(a.us);
  advanceShare.push(a.advance);
  perCall.push(await wholeCalls(`call-${r}`));
  perCallAdvance.push((await advanceCalls(`advance-call-${r}`, true)).us);
}

/**
 * How long a proxy's full resync holds Redis at 1000 nodes: the longest script of a read in
 * chunks (VIEW_CHUNK, the default), against the same read as one script, medians of 5 reads each.
 */
const bigPrefix = testPrefix('bench-view');
const big = new ClusterStore(redis, new ClusterKeys(bigPrefix));
await benchNodes(big, 1000, 1000);
async function longestScriptMs(chunk: number): Promise<number> {
  const runs: number[] = [];
  for (let i = 0; i < 5; i++) {
    await redis.config('RESETSTAT');
    const calls = Math.ceil(1000 / chunk);
    await big.readView({ chunk });
    const stats = await commandStats();
    // Chunks are alike in size: the longest is about the mean of the script calls.
    runs.push(stats.scriptUsec / Math.max(1, Math.min(stats.scripts, calls + 1)) / 1000);
  }
  return round(median(runs), 3);
}
const viewChunkMs = await longestScriptMs(VIEW_CHUNK);
const viewWholeMs = await longestScriptMs(1000);
await deletePrefix(redis, bigPrefix);

await deletePrefix(redis, prefix);
redis.disconnect();
await server.close();
await children.stopAll();

const us = (name: string): number => round(median(perReservation.get(name) ?? []), 2);
const callUsRoundTrip = round(median(perCall), 2);
const callUs = round(median(perCallAdvance), 2);
const onSlotPct = round(median(advanceShare) * 100, 1);
const result = {
  machine: machine(),
  date: new Date().toISOString(),
  nodes: NODES,
  reservations: RESERVATIONS,
  reserve_batch: RESERVE_BATCH,
  advance_cps: ADVANCE_CPS,
  redis_cpu_us_per_reservation: us('advance'),
  calls_on_advance_slots_pct: onSlotPct,
  redis_cpu_us_per_reservation_round_trip: us('default'),
  redis_cpu_us_per_reservation_before: us('before'),
  redis_cpu_us_per_call: callUs,
  redis_cpu_us_per_call_round_trip: callUsRoundTrip,
  redis_calls_per_s_per_core: Math.round(1_000_000 / callUs),
  read_view_block_ms_1000_nodes: viewChunkMs,
  read_view_whole_ms_1000_nodes: viewWholeMs,
  runs: {
    per_reservation: Object.fromEntries(perReservation),
    per_call: perCallAdvance,
    per_call_round_trip: perCall,
    on_advance_slots: advanceShare,
  },
  redis: server.kind,
  duration_s: round((performance.now() - started) / 1000, 1),
};
console.log(
  `Redis CPU per reservation at defaults (advance slots, ${ADVANCE_CPS} calls/s, ${onSlotPct} % of calls on one): ` +
    `${result.redis_cpu_us_per_reservation} µs; one round trip per call: ${us('default')} µs (${RESERVE_BATCH} ` +
    `candidates), ${result.redis_cpu_us_per_reservation_before} µs (6 candidates, 2 failovers); per whole call ` +
    `${callUs} µs (${callUsRoundTrip} with a round trip per call; ${result.redis_calls_per_s_per_core} calls/s per ` +
    `Redis core); a full resync at 1000 nodes holds Redis ${viewChunkMs} ms at a time in chunks of ${VIEW_CHUNK} ` +
    `(${viewWholeMs} ms as one script)`,
);
writeBench(
  'redis-cost',
  result,
  `## redis-cost: what a call costs Redis

${NODES} nodes in a local Redis; ${RESERVATIONS} calls per shape and round, three rounds taking turns; medians of Redis CPU / calls (INFO commandstats). At defaults a proxy holds advance slots: its own CallAccounting offered ${ADVANCE_CPS} calls/s put ${onSlotPct} % of them on one, and every script it ran (book-keeping, and reservations of calls that found none) counts.

${table(
  ['what', 'Redis CPU µs'],
  [
    [`reservation at defaults (advance slots, ${ADVANCE_CPS} calls/s)`, us('advance')],
    [
      `reservation as one round trip per call (${RESERVE_BATCH} candidates, failover targets from the view)`,
      us('default'),
    ],
    ['reservation as sent before (6 candidates, 2 failover targets named by Redis)', us('before')],
    ['a whole call at defaults: advance slot + settle write (with its event) + end write', callUs],
    ['a whole call with a round trip per call: reservation + settle write + end write', callUsRoundTrip],
  ],
)}

A proxy's full resync at 1000 nodes holds Redis for ${viewChunkMs} ms at a time, read in chunks of ${VIEW_CHUNK} nodes (the default); read as one script it would hold it for ${viewWholeMs} ms.

One Redis core carries about ${result.redis_calls_per_s_per_core} calls/s at that cost (1 s / CPU per call). Took ${result.duration_s} s.`,
);
