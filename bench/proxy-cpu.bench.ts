/**
 * CPU per INVITE in one fslb-proxy process at full load through a drachtio-server double: the
 * proxy runs as a child process (test/proxy/fleet.ts) from the built JS, its double in this process.
 * Offered rates step up (BENCH_CPU_RATES, 1000 ... 4000 INVITE/s, BENCH_CPU_STEP_MS 2 s each)
 * until a step is not clean; the proxy child's CPU (user + system, every thread) is read from
 * /proc/<pid>/stat before and after each step. The figure is the CPU per INVITE at the highest
 * clean rate.
 *
 * The double answers every proxy command itself with a scripted 200 (`respond`), not by
 * forwarding to fs-sim: fs-sim spends about a millisecond of CPU per call parsing SIP (sip.js'
 * grammar), which would saturate this process long before the proxy and make the bench measure
 * the simulator. So no CHANNEL_CREATE ever settles a reservation, and none lapses during the run
 * either (reservationMarginMs 30 min, bench/support/settlement.ts): every call's slot stays
 * counted, as a settled call's session would be; the nodes are given a capacity of 100001 calls
 * so that the tens of thousands of slots never fill them. Every INVITE still costs
 * the proxy its full path: guards, selection, the reservation script in Redis, the proxy command
 * to the double, the outcome line in its log (level info, the default; stdout to /dev/null) and
 * the load figures it publishes.
 *
 * The baseline: the least a drachtio-srf proxy app costs (bench/support/bare-srf-proxy.mjs: every
 * INVITE proxied to one destination, nothing else), through the same kind of double at the same
 * rate. srf's own work (parsing each message drachtio sends, building the proxy command) is in
 * both; the difference is fslb's own.
 *
 * A step is clean when every INVITE got its final answer within 1 s and none timed out. This
 * process's CPU (the double, the monitor, the idle simulators) and Redis' are measured too: on a
 * small machine they compete with the proxy for cores and can be the bottleneck.
 *
 * BENCH_CPU_PROXY='{"advanceSlots":0}' (JSON) sets proxy settings, for investigations.
 * BENCH_CPU_PROF=<dir> runs the proxy with --cpu-prof (its profile is written there on exit).
 * Writes bench/results/proxy-cpu.json and .md: proxy_cpu_us_per_invite.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { DrachtioDouble, type InjectedRequest } from '../test/drachtio-double/index.js';
import { ProxyFleet } from '../test/proxy/fleet.js';
import { clockTicksPerSecond, memoryMiB, processCpuMicros } from '../test/support/proc-stat.js';
import { waitFor } from '../test/support/wait.js';
import { alive, Children } from './support/children.js';
import { startBenchRedis } from './support/redis.js';
import { machine, table, writeBench } from './support/results.js';
import { childEnv, entryPoint } from './support/runtime.js';
import { NO_LAPSE_MARGIN_MS } from './support/settlement.js';

const RATES = (process.env.BENCH_CPU_RATES ?? '1000,2000,3000,4000').split(',').map(Number);
const STEP_MS = Number(process.env.BENCH_CPU_STEP_MS ?? 2000);
const PROF_DIR = process.env.BENCH_CPU_PROF;
/** The proxy's log level (info, the default, writes one outcome line per INVITE). */
const LOG_LEVEL = process.env.BENCH_CPU_LOG ?? 'info';
/** Proxy settings to try (JSON, merged into the proxy section), for investigations: BENCH_CPU_PROXY='{"advanceSlots":0}'. */
const PROXY_SETTINGS = JSON.parse(process.env.BENCH_CPU_PROXY ?? '{}') as Record<string, unknown>;
const LATE_MS = 1000;
const TICKS = clockTicksPerSecond();
const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The proxy runs from the built JS (built first when stale), as operators run it. */
const proxyEntry = entryPoint('proxy');

interface Step {
  offered_per_s: number;
  sent: number;
  answered: number;
  answered_within_1s: number;
  timeouts: number;
  statuses: Record<string, number>;
  achieved_per_s: number;
  latency_ms: { p50: number; p99: number; max: number };
  proxy_cpu_us_per_invite: number;
  /** The part of it spent in the kernel (socket writes and reads: loopback TCP to Redis and the double). */
  proxy_system_us_per_invite: number;
  /** Proxy CPU over the step, in cores (1.0 = one core busy). */
  proxy_cores: number;
  bench_cpu_us_per_invite: number;
  bench_cores: number;
  redis_cpu_us_per_invite: number | null;
  redis_cores: number | null;
  /** The proxy's resident set after the step, MB. */
  proxy_rss_mb: number;
  /** This process' event-loop delay (the double's own queueing shows here). */
  bench_loop_delay_p99_ms: number;
  /** Reservations by outcome in the step: redis, or local-timeout when Redis was silent for reserveTimeoutMs or did not answer within 1 s. */
  reservations: Record<string, number>;
  clean: boolean;
}

/** What a step drives: INVITEs into a double, answered by an app process whose CPU is read. */
interface Target {
  inject: () => InjectedRequest;
  pid: number;
  /** Reservations by outcome so far (fslb-proxy's /metrics; empty for the bare app). */
  reservations: () => Promise<Record<string, number>>;
}

const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;
const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;

/** utime and stime of a process (every thread), in µs, from /proc/<pid>/stat. */
function cpuSplit(pid: number): { user: number; system: number } {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const us = (ticks: string | undefined): number => (Number(ticks) * 1e6) / TICKS;
  return { user: us(f[11]), system: us(f[12]) };
}

function benchCpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** Offers `rate` INVITE/s for `stepMs`, then waits for the stragglers (or their timeout). */
async function step(
  target: Target,
  rate: number,
  redis: number | undefined,
  stepMs = STEP_MS,
): Promise<Step> {
  const latency: number[] = [];
  const resv0 = await target.reservations();
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const statuses: Record<string, number> = {};
  const cpu0 = processCpuMicros(target.pid);
  const split0 = cpuSplit(target.pid);
  const bench0 = benchCpuMicros();
  const redis0 = redis === undefined ? 0 : processCpuMicros(redis);
  const t0 = performance.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = performance.now();
      const due = Math.min(Math.floor(((now - t0) * rate) / 1000), Math.floor((stepMs * rate) / 1000));
      for (; sent < due; sent++) {
        const req = target.inject();
        const at = performance.now();
        const onChange = (): void => {
          const final = req.finalResponse;
          if (!final) return;
          req.off('changed', onChange);
          latency.push(performance.now() - at);
          statuses[final.status] = (statuses[final.status] ?? 0) + 1;
        };
        req.on('changed', onChange);
      }
      if (now - t0 >= stepMs) resolve();
      else setTimeout(tick, 2);
    };
    tick();
  });
  const sendMs = performance.now() - t0;
  // Stragglers: every answer, or the late limit past the last INVITE.
  await waitFor('answers', () => latency.length === sent || performance.now() - t0 > sendMs + 3 * LATE_MS, {
    timeoutMs: 10_000,
    intervalMs: 20,
  });
  const wallMs = performance.now() - t0;
  loop.disable();
  const resv1 = await target.reservations();
  const reservations = Object.fromEntries(
    Object.entries(resv1)
      .map(([k, v]) => [k, v - (resv0[k] ?? 0)] as const)
      .filter(([, v]) => v > 0),
  );
  const cpu = processCpuMicros(target.pid) - cpu0;
  const system = cpuSplit(target.pid).system - split0.system;
  const bench = benchCpuMicros() - bench0;
  const redisCpu = redis === undefined ? null : processCpuMicros(redis) - redis0;
  latency.sort((a, b) => a - b);
  const within = latency.filter((l) => l <= LATE_MS).length;
  const timeouts = sent - latency.length;
  return {
    offered_per_s: rate,
    sent,
    answered: latency.length,
    answered_within_1s: within,
    timeouts,
    statuses,
    achieved_per_s: round((latency.length * 1000) / sendMs),
    latency_ms: {
      p50: round(percentile(latency, 0.5), 2),
      p99: round(percentile(latency, 0.99), 2),
      max: round(latency[latency.length - 1] ?? NaN, 2),
    },
    proxy_cpu_us_per_invite: round(cpu / Math.max(1, sent)),
    proxy_system_us_per_invite: round(system / Math.max(1, sent)),
    proxy_cores: round(cpu / 1000 / wallMs, 2),
    bench_cpu_us_per_invite: round(bench / Math.max(1, sent)),
    bench_cores: round(bench / 1000 / wallMs, 2),
    redis_cpu_us_per_invite: redisCpu === null ? null : round(redisCpu / Math.max(1, sent)),
    redis_cores: redisCpu === null ? null : round(redisCpu / 1000 / wallMs, 2),
    proxy_rss_mb: round(memoryMiB(target.pid)?.rss ?? NaN),
    bench_loop_delay_p99_ms: round(loop.percentile(99) / 1e6),
    reservations,
    clean: timeouts === 0 && within === sent && (statuses['200'] ?? 0) === sent,
  };
}

function showHeader(): void {
  console.log(
    `offered/s  sent  answered  <=1s  timeouts  achieved/s  p50 ms  p99 ms  app µs/INVITE, sys (cores)  bench µs/INVITE (cores)  redis µs/INVITE (cores)  app RSS MB  bench loop p99 ms  reservations`,
  );
}

function show(s: Step): void {
  console.log(
    `${String(s.offered_per_s).padStart(9)}  ${String(s.sent).padStart(5)}  ${String(s.answered).padStart(8)}  ${String(s.answered_within_1s).padStart(5)}  ` +
      `${String(s.timeouts).padStart(8)}  ${String(s.achieved_per_s).padStart(10)}  ${String(s.latency_ms.p50).padStart(6)}  ${String(s.latency_ms.p99).padStart(6)}  ` +
      `${String(s.proxy_cpu_us_per_invite).padStart(13)}, ${s.proxy_system_us_per_invite} (${s.proxy_cores})  ${String(s.bench_cpu_us_per_invite).padStart(15)} (${s.bench_cores})  ` +
      `${String(s.redis_cpu_us_per_invite).padStart(15)} (${s.redis_cores})  ${s.proxy_rss_mb}  ${s.bench_loop_delay_p99_ms}  ${JSON.stringify(s.reservations)}${s.clean ? '' : `  NOT CLEAN ${JSON.stringify(s.statuses)}`}`,
  );
}

/** One proxy process at `logLevel`; `rates` stepped up until a step is not clean. */
async function series(
  redis: { url: string; client: Redis; pid: number | undefined },
  logLevel: string,
  rates: readonly number[],
): Promise<{ steps: Step[]; idleUsPerSec: number; idleRss: number; memory: { rss: number; peak: number } }> {
  const fleet = await ProxyFleet.start({
    redis,
    proxies: 1,
    nodes: 10,
    sim: { maxSessions: 100_001 },
    // No slot lapses during the run (see NO_LAPSE_MARGIN_MS); BENCH_CPU_PROXY may say otherwise.
    proxy: { reservationMarginMs: NO_LAPSE_MARGIN_MS, ...PROXY_SETTINGS },
    logLevel,
    childStdout: 'ignore',
    proxyArgs: (file) => proxyEntry.args('--config', file),
    ...(PROF_DIR ? { execArgv: ['--cpu-prof', `--cpu-prof-dir=${PROF_DIR}`] } : {}),
  });
  try {
    const proxy = fleet.proxies[0];
    if (!proxy) throw new Error('no proxy');
    proxy.double.onProxy(() => ({ kind: 'respond', responses: [{ status: 200 }] }));
    const target: Target = {
      inject: () => fleet.invite(),
      pid: proxy.pid,
      reservations: () => fleet.counterBy('fslb_proxy_reservations_total', 'outcome'),
    };

    // Idle: what the proxy costs with no traffic (presence, resyncs, gauges, events).
    const idle0 = proxy.cpuMicros();
    const idleAt = performance.now();
    await new Promise((r) => setTimeout(r, 2000));
    const idleUsPerSec = ((proxy.cpuMicros() - idle0) * 1000) / (performance.now() - idleAt);
    const idleRss = proxy.memory().rss;

    // Warm-up: JIT and connections.
    await step(target, 300, redis.pid, 2000);
    const steps: Step[] = [];
    showHeader();
    for (const rate of rates) {
      const s = await step(target, rate, redis.pid);
      steps.push(s);
      show(s);
      if (!s.clean) break;
      // A pause between steps, so that each starts from a quiet machine.
      await new Promise((r) => setTimeout(r, 2200));
    }
    const memory = proxy.memory();
    const warnings = fleet.warnings();
    if (warnings.length > 0) console.log(`proxy warnings: ${warnings.length}, first: ${warnings[0]}`);
    return { steps, idleUsPerSec, idleRss, memory };
  } finally {
    await fleet.close();
  }
}

/** The bare srf app through a double of its own, answered the same way, at `rate`. */
async function bare(children: Children, rate: number): Promise<Step> {
  const double = await DrachtioDouble.start({ waitTimeoutMs: 15_000 });
  const dir = mkdtempSync(join(tmpdir(), 'fslb-cpu-bare-'));
  const log = join(dir, 'bare.log');
  const out = openSync(log, 'w');
  const child = children.spawn(
    process.execPath,
    ['bench/support/bare-srf-proxy.mjs', '127.0.0.1', String(double.port), double.secret, '127.0.0.1:5080'],
    { cwd: ROOT, stdio: ['ignore', out, out], env: childEnv() },
  );
  closeSync(out);
  try {
    double.onProxy(() => ({ kind: 'respond', responses: [{ status: 200 }] }));
    await double.routed(['invite']);
    if (!alive(child) || child.pid === undefined) throw new Error(`bare app: ${readFileSync(log, 'utf8')}`);
    const target: Target = {
      inject: () => double.inject({ method: 'INVITE', sdp: true }),
      pid: child.pid,
      reservations: () => Promise.resolve({}),
    };
    await step(target, 300, undefined, 2000);
    const s = await step(target, rate, undefined);
    showHeader();
    show(s);
    return s;
  } finally {
    await children.stop(child);
    await double.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The machine's 1-minute load when the bench started: other work skews every figure here. */
const loadAtStart = round(loadavg()[0] ?? NaN, 2);
const started = performance.now();
const children = new Children();
const server = await startBenchRedis(children);
const client = new Redis(server.url);
let main: Awaited<ReturnType<typeof series>>;
let baseline: Step | undefined;
try {
  console.log(`fslb-proxy, log level ${LOG_LEVEL} (info, the default, writes one outcome line per INVITE):`);
  main = await series({ url: server.url, client, pid: server.pid }, LOG_LEVEL, RATES);
  const best = main.steps.filter((s) => s.clean).at(-1);
  if (best) {
    console.log(`bare drachtio-srf proxy app at ${best.offered_per_s}/s:`);
    baseline = await bare(children, best.offered_per_s);
  }
} finally {
  client.disconnect();
  await server.close();
  await children.stopAll();
}
const steps = main.steps;
const clean = steps.filter((s) => s.clean);
const best = clean[clean.length - 1];
const figure = best?.proxy_cpu_us_per_invite ?? null;
const notes: Record<string, string> = {};
if (figure === null) notes.proxy_cpu_us_per_invite = `no step was clean, not even ${RATES[0] ?? '?'}/s`;
else if (figure > 150 && baseline && best) {
  notes.proxy_cpu_us_per_invite =
    `at ${best.offered_per_s}/s fslb-proxy used ${figure} µs per INVITE; a bare drachtio-srf app doing nothing but req.proxy() used ` +
    `${baseline.proxy_cpu_us_per_invite} µs through the same double at the same rate, so srf's own handling of the messages is ` +
    `${Math.round((baseline.proxy_cpu_us_per_invite / figure) * 100)} % of the figure and fslb's own work (guards, selection, the ` +
    `reservation script's round trip, the outcome log line, load messages) ${round(figure - baseline.proxy_cpu_us_per_invite)} µs. ` +
    `See proxy-cpu's summary.`;
}
const result = {
  machine: machine(),
  date: new Date().toISOString(),
  load_average_1m: { start: loadAtStart, end: round(loadavg()[0] ?? NaN, 2) },
  proxy_cpu_us_per_invite: figure,
  notes,
  answers: 'scripted 200 from the double (no fs-sim in the path)',
  proxy_runtime: proxyEntry.runtime,
  step_ms: STEP_MS,
  proxy_max_cps_through_double: best?.offered_per_s ?? 0,
  /** The highest clean rate at which every reservation was answered by Redis in time (none counted locally). */
  proxy_max_cps_all_reserved:
    clean.filter((s) => Object.keys(s.reservations).every((k) => k === 'redis')).at(-1)?.offered_per_s ?? 0,
  bare_srf_cpu_us_per_invite: baseline?.proxy_cpu_us_per_invite ?? null,
  fslb_own_cpu_us_per_invite:
    figure !== null && baseline ? round(figure - baseline.proxy_cpu_us_per_invite) : null,
  proxy_rss_mb: round(main.memory.rss / 2 ** 20),
  proxy_peak_rss_mb: round(main.memory.peak / 2 ** 20),
  proxy_idle_rss_mb: round(main.idleRss / 2 ** 20),
  proxy_idle_cpu_us_per_s: round(main.idleUsPerSec),
  first_unclean_rate: steps.find((s) => !s.clean)?.offered_per_s ?? null,
  /** The highest clean rate whose p99 stayed under 100 ms (no queue building up in the proxy). */
  proxy_max_cps_p99_under_100ms: clean.filter((s) => s.latency_ms.p99 < 100).at(-1)?.offered_per_s ?? 0,
  steps,
  baseline,
  duration_s: round((performance.now() - started) / 1000),
};
console.log(
  `proxy: ${result.proxy_cpu_us_per_invite} µs CPU per INVITE at ${result.proxy_max_cps_through_double} INVITE/s (highest clean rate; bare srf app ${result.bare_srf_cpu_us_per_invite} µs); ` +
    `every reservation in Redis up to ${result.proxy_max_cps_all_reserved}/s; idle ${result.proxy_idle_cpu_us_per_s} µs/s; RSS ${result.proxy_rss_mb} MB (peak ${result.proxy_peak_rss_mb} MB, idle ${result.proxy_idle_rss_mb} MB); ` +
    `p99 under 100 ms up to ${result.proxy_max_cps_p99_under_100ms}/s` +
    (result.first_unclean_rate === null ? '' : `; first unclean rate ${result.first_unclean_rate}/s`) +
    `; ${result.duration_s} s`,
);
writeBench(
  'proxy-cpu',
  result,
  `## proxy-cpu: one fslb-proxy process through a drachtio-server double (scripted 200s), log level info

CPU per INVITE of the proxy process (every thread) at each offered rate, ${STEP_MS / 1000} s steps until one is not clean (every INVITE answered within 1 s); the figure is the highest clean rate's.

${table(
  [
    'offered/s',
    'answered <= 1 s',
    'p50 / p99 ms',
    'proxy µs per INVITE',
    'proxy cores',
    'RSS MB',
    'reservations',
  ],
  steps.map((s) => [
    s.offered_per_s,
    `${s.answered_within_1s}/${s.sent}${s.clean ? '' : ' (not clean)'}`,
    `${s.latency_ms.p50} / ${s.latency_ms.p99}`,
    s.proxy_cpu_us_per_invite,
    s.proxy_cores,
    s.proxy_rss_mb,
    JSON.stringify(s.reservations),
  ]),
)}

Baseline, a bare drachtio-srf app (req.proxy() and nothing else) at ${baseline?.offered_per_s ?? '—'}/s through the same double: **${baseline?.proxy_cpu_us_per_invite ?? '—'} µs per INVITE**; fslb's own share at that rate ${result.fslb_own_cpu_us_per_invite ?? '—'} µs. Idle proxy: ${result.proxy_idle_cpu_us_per_s} µs of CPU per second. Load average ${result.load_average_1m.start} at the start, ${result.load_average_1m.end} at the end. Took ${result.duration_s} s.`,
);
