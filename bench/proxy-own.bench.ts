/**
 * fslb-proxy's own CPU per INVITE, without drachtio-srf: the proxy's Router and CallAccounting,
 * built from a default configuration exactly as fslb-proxy builds them (`routerParts`,
 * `accountingSettings`), with its view loaded from a real Redis of 100 nodes (BENCH_OWN_NODES) and advance slots
 * booked there, take INVITEs that are plain objects whose proxy() answers 200 at once. What is
 * left is fslb's own work per INVITE: admission, the route, selection, the advance slot (and the
 * Redis round trip of a call that finds none), the proxy command's options, the outcome line in
 * a buffered log to /dev/null and the metrics. srf's parsing of drachtio-server's messages is
 * not in it: `proxy-cpu` and `proxy-real-cps` measure it beside a bare srf app.
 *
 * INVITEs are offered at BENCH_OWN_RATE a second (2000) for BENCH_OWN_SECONDS (3), at log level
 * info (the default: an outcome line only for calls that did not connect), info with a line for
 * every call (log.calls all) and warn in turn, BENCH_OWN_ROUNDS (3) times each after a warm-up (medians), from 64 source addresses and with the
 * replica's INVITE budget (proxy.maxCps) above the rate, so that every INVITE is routed; this process' CPU over each run, less
 * what the same run costs with no INVITE, divided by the INVITEs. Stable across runs where the
 * end-to-end figures are not: no other process shares the work. No slot lapses during the run
 * (bench/support/settlement.ts). BENCH_OWN_PROXY adds proxy settings (JSON), for investigations.
 * Writes bench/results/proxy-own.json and .md: proxy_own_us_per_invite (info),
 * proxy_own_us_per_invite_warn, proxy_own_us_per_invite_all_lines, and the outcome line's cost.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { ClusterKeys, ClusterStore, createLogger, parseConfig } from '@fslb/shared';
import {
  accountingSettings,
  CallAccounting,
  ClusterView,
  ProxyMetrics,
  Router,
  routerParts,
  type InboundRequest,
  type ProxyResult,
} from '@fslb/proxy';
import { testPrefix } from '../test/support/redis.js';
import { waitFor } from '../test/support/wait.js';
import { Children } from './support/children.js';
import { benchNodes, startBenchRedis } from './support/redis.js';
import { machine, quantile, round, table, writeBench } from './support/results.js';
import { NO_LAPSE_MARGIN_MS } from './support/settlement.js';

const RATE = Number(process.env.BENCH_OWN_RATE ?? 2000);
const SECONDS = Number(process.env.BENCH_OWN_SECONDS ?? 3);
/** Runs per log level, alternating; the median is the figure (this VM's speed wanders). */
const ROUNDS = Number(process.env.BENCH_OWN_ROUNDS ?? 3);
const NODES = Number(process.env.BENCH_OWN_NODES ?? 100);
const ALL_LINES = 'info, log.calls all';
const started = performance.now();

const answer: ProxyResult = {
  connected: true,
  finalStatus: 200,
  responses: [{ address: '127.0.0.1', port: 5080, status: 200 }],
  contact: 'sip:fs@127.0.0.1:5080',
  challenge: undefined,
};

let seq = 0;

/**
 * An INVITE as DrachtioLink hands it to the router, answered 200 by its first target at once.
 * Sources: 64 carrier addresses, each well within the default per-source rate.
 */
function invite(done: () => void): InboundRequest {
  const callId = `${randomUUID()}@bench`;
  return {
    method: 'INVITE',
    callId,
    sourceAddress: `192.0.2.${(seq++ % 64) + 1}`,
    sourcePort: 5060,
    protocol: 'udp',
    canceled: false,
    header: () => undefined,
    fromTag: () => 'f1',
    toTag: () => undefined,
    credentials: () => undefined,
    toUri: () => 'sip:1000@cluster.example.com',
    requestUri: () => 'sip:1000@cluster.example.com',
    fromUri: () => 'sip:caller@carrier.example.net',
    respond: () => done(),
    proxy: () => {
      // The outcome is dealt with after the router's await, as srf's promise settles.
      setImmediate(done);
      return Promise.resolve(answer);
    },
  };
}

function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** Offers `rate` INVITEs a second for `seconds` (none when rate is 0); returns CPU µs and INVITEs done. */
async function offer(
  router: Router | undefined,
  rate: number,
  seconds: number,
): Promise<{ cpu: number; done: number }> {
  let sent = 0;
  let done = 0;
  const cpu0 = cpuMicros();
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = performance.now();
      const due = Math.min(Math.floor(((now - t0) * rate) / 1000), Math.floor(seconds * rate));
      for (; sent < due; sent++) router?.handle(invite(() => done++));
      if (now - t0 >= seconds * 1000) resolve();
      else setTimeout(tick, 2);
    };
    tick();
  });
  await waitFor('every INVITE dealt with', () => done >= sent, { timeoutMs: 10_000, intervalMs: 5 });
  return { cpu: cpuMicros() - cpu0, done };
}

interface Run {
  level: string;
  invites: number;
  us_per_invite: number;
  reservations: Record<string, number>;
}

const children = new Children();
const server = await startBenchRedis(children);
const redis = new Redis(server.url);
const runs: Run[] = [];
try {
  const prefix = testPrefix('bench-own');
  const store = new ClusterStore(redis, new ClusterKeys(prefix));
  const ids = await benchNodes(store, NODES, 1_000_000);
  const config = parseConfig(
    {
      redis: { url: server.url },
      prefix,
      nodes: ids.map((id, i) => ({
        id,
        sip: `127.0.0.1:${5080 + i}`,
        esl: { host: '127.0.0.1', password: 'ClueCon' },
      })),
      // The replica's INVITE budget (1000/s by default) above the offered rate: every INVITE routed.
      // No slot lapses during the run (see NO_LAPSE_MARGIN_MS); BENCH_OWN_PROXY (JSON proxy
      // settings) may say otherwise.
      proxy: {
        maxCps: RATE * 4,
        reservationMarginMs: NO_LAPSE_MARGIN_MS,
        ...(JSON.parse(process.env.BENCH_OWN_PROXY ?? '{}') as object),
      },
    },
    {},
  );
  // The same run with nothing offered: the timers' and the advance slots' idle cost.
  const idle = await offer(undefined, 0, SECONDS);
  // The default (info, an outcome line for calls that did not connect: none here), info with a
  // line for every call (log.calls all), and warn.
  const variants = [
    { label: 'info', level: 'info', calls: 'failed' },
    { label: ALL_LINES, level: 'info', calls: 'all' },
    { label: 'warn', level: 'warn', calls: 'failed' },
  ] as const;
  for (const { label, level, calls } of Array.from({ length: ROUNDS }, () => variants).flat()) {
    const log = createLogger(
      { level, name: 'fslb-proxy' },
      pino.destination({ dest: '/dev/null', sync: false, minLength: 4096 }),
    );
    const view = new ClusterView();
    view.applySnapshot(await store.readView(), performance.now());
    const metrics = new ProxyMetrics();
    const accounting = new CallAccounting({
      store,
      view,
      // A proxy id per run: the slots of an earlier run, still lapsing in Redis, are not this one's.
      settings: { ...accountingSettings(config), proxyId: `bench-own-${runs.length}` },
      observer: {
        reservation: (outcome, ms) => metrics.reservation(outcome, ms),
      },
      log,
      redisReady: () => redis.status === 'ready',
    });
    const parts = routerParts(config, performance.now());
    const router = new Router({
      view,
      accounting,
      metrics,
      log,
      ...parts,
      settings: { ...parts.settings, callLog: calls },
    });
    try {
      await offer(router, RATE, 1);
      // prom-client hands out its live values: copy them.
      const before = (await metrics.reservations.get()).values.map((v) => ({ ...v }));
      const r = await offer(router, RATE, SECONDS);
      const after = await metrics.reservations.get();
      const reservations: Record<string, number> = {};
      for (const v of after.values) {
        const was = before.find((b) => b.labels.outcome === v.labels.outcome)?.value ?? 0;
        if (v.value > was) reservations[String(v.labels.outcome)] = v.value - was;
      }
      runs.push({
        level: label,
        invites: r.done,
        us_per_invite: round((r.cpu - idle.cpu) / Math.max(1, r.done), 1),
        reservations,
      });
    } finally {
      router.close();
      accounting.close();
    }
  }
} finally {
  redis.disconnect();
  await server.close();
  await children.stopAll();
}

const medianOf = (level: string): number | undefined => {
  const xs = runs
    .filter((r) => r.level === level)
    .map((r) => r.us_per_invite)
    .sort((a, b) => a - b);
  return xs.length > 0 ? quantile(xs, 0.5) : undefined;
};
const infoUs = medianOf('info');
const allUs = medianOf(ALL_LINES);
const warnUs = medianOf('warn');
const result = {
  machine: machine(),
  date: new Date().toISOString(),
  rate: RATE,
  seconds: SECONDS,
  nodes: NODES,
  rounds: ROUNDS,
  proxy_own_us_per_invite: infoUs ?? null,
  proxy_own_us_per_invite_warn: warnUs ?? null,
  proxy_own_us_per_invite_all_lines: allUs ?? null,
  outcome_line_us: infoUs !== undefined && allUs !== undefined ? round(allUs - infoUs, 1) : null,
  runs,
  duration_s: round((performance.now() - started) / 1000, 1),
};
console.log(
  `fslb's own CPU per INVITE (medians): info ${infoUs ?? '—'} µs, info with a line per call ${allUs ?? '—'} µs, warn ${warnUs ?? '—'} µs`,
);
for (const r of runs) {
  console.log(
    `${r.level}: ${r.us_per_invite} µs of fslb's own CPU per INVITE over ${r.invites} INVITEs at ${RATE}/s; reservations ${JSON.stringify(r.reservations)}`,
  );
}
writeBench(
  'proxy-own',
  result,
  `## proxy-own: fslb-proxy's own CPU per INVITE, without drachtio-srf

The proxy's Router and CallAccounting as fslb-proxy builds them (default settings, ${NODES} nodes in a real Redis, advance slots), INVITEs as plain objects answered 200 at once, ${RATE}/s for ${SECONDS} s; CPU of this process less an idle run of the same length.

${table(
  ['logging', 'µs per INVITE', 'INVITEs', 'reservations'],
  runs.map((r) => [r.level, r.us_per_invite, r.invites, JSON.stringify(r.reservations)]),
)}

Medians of ${ROUNDS} runs of each, in turn: **${infoUs ?? '—'} µs** at the default (info, an outcome line only for calls that did not connect), ${allUs ?? '—'} µs with a line for every call (\`log.calls: all\`): the line costs ${result.outcome_line_us ?? '—'} µs; ${warnUs ?? '—'} µs at warn. Took ${result.duration_s} s.`,
);
