/**
 * CPU per INVITE in one fslb-proxy process at full load through a drachtio-server double: the
 * proxy runs as a child process from source (test/proxy/fleet.ts), its double in this process.
 * Offered rates step up (250 ... 4000 INVITE/s, 5 s each); the proxy child's CPU (user + system,
 * every thread) is read from /proc/<pid>/stat before and after each step.
 *
 * The double answers every proxy command itself with a scripted 200 (`respond`), not by
 * forwarding to fs-sim: fs-sim spends about a millisecond of CPU per call parsing SIP (sip.js'
 * grammar), which would saturate this process long before the proxy and make the bench measure
 * the simulator. (fs-sim never runs in the proxy's process either way; the scripted 200s only
 * keep this side light.) So no CHANNEL_CREATE ever settles a reservation: each slot lives until
 * its TTL (provisionalTimeout 1 s + reservationMarginMs 1 s), and the nodes are given a capacity
 * of 100000 calls so that thousands of live reservations never fill them. Every INVITE still
 * costs the proxy its full path: guards, selection, the reservation script in Redis, the proxy
 * command to the double, the outcome line in its log (level info, the default; stdout to
 * /dev/null) and the load figures it publishes.
 *
 * A step is clean when every INVITE got its final answer within 1 s and none timed out. This
 * process's CPU (the double, the monitor, the idle simulators) and Redis' are measured too: on a
 * small machine they compete with the proxy for cores and can be the bottleneck.
 *
 * Writes bench/results/proxy-cpu.json.
 */
import { readdirSync, readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import type { InjectedRequest } from '../test/drachtio-double/index.js';
import { ProxyFleet, type ProxyProcess } from '../test/proxy/fleet.js';
import { processCpuMicros } from '../test/support/proc-stat.js';
import { startRedis } from '../test/support/redis.js';
import { waitFor } from '../test/support/wait.js';

const RATES = (process.env.BENCH_CPU_RATES ?? '250,500,1000,1500,2000,3000,4000').split(',').map(Number);
const STEP_MS = Number(process.env.BENCH_CPU_STEP_MS ?? 5000);
const LATE_MS = 1000;

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
  /** Reservations by outcome in the step: redis, or local-timeout when Redis answered after reserveTimeoutMs. */
  reservations: Record<string, number>;
  clean: boolean;
}

const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;
const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;

/** The spawned redis-server's pid (by its --port argument), to read its CPU; null for a container or an external one. */
function redisPid(url: string): number | null {
  const port = new URL(url).port;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const args = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      // redis-server rewrites its title to `redis-server 127.0.0.1:<port>`.
      if (/redis-server/.test(args[0] ?? '') && args.join(' ').includes(`:${port}`)) return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  return null;
}

function benchCpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** Offers `rate` INVITE/s for STEP_MS, then waits for the stragglers (or their timeout). */
async function step(
  fleet: ProxyFleet,
  proxy: ProxyProcess,
  rate: number,
  redis: number | null,
): Promise<Step> {
  const sentAt = new Map<InjectedRequest, number>();
  const latency: number[] = [];
  const resv0 = await fleet.counterBy('fslb_proxy_reservations_total', 'outcome');
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const statuses: Record<string, number> = {};
  const cpu0 = proxy.cpuMicros();
  const bench0 = benchCpuMicros();
  const redis0 = redis === null ? 0 : processCpuMicros(redis);
  const t0 = performance.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = performance.now();
      const due = Math.min(Math.floor(((now - t0) * rate) / 1000), Math.floor((STEP_MS * rate) / 1000));
      for (; sent < due; sent++) {
        const req = fleet.invite();
        const at = performance.now();
        sentAt.set(req, at);
        const onChange = (): void => {
          const final = req.finalResponse;
          if (!final) return;
          req.off('changed', onChange);
          latency.push(performance.now() - at);
          statuses[final.status] = (statuses[final.status] ?? 0) + 1;
        };
        req.on('changed', onChange);
      }
      if (now - t0 >= STEP_MS) resolve();
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
  const resv1 = await fleet.counterBy('fslb_proxy_reservations_total', 'outcome');
  const reservations = Object.fromEntries(
    Object.entries(resv1)
      .map(([k, v]) => [k, v - (resv0[k] ?? 0)] as const)
      .filter(([, v]) => v > 0),
  );
  const cpu = proxy.cpuMicros() - cpu0;
  const bench = benchCpuMicros() - bench0;
  const redisCpu = redis === null ? null : processCpuMicros(redis) - redis0;
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
    proxy_cores: round(cpu / 1000 / wallMs, 2),
    bench_cpu_us_per_invite: round(bench / Math.max(1, sent)),
    bench_cores: round(bench / 1000 / wallMs, 2),
    redis_cpu_us_per_invite: redisCpu === null ? null : round(redisCpu / Math.max(1, sent)),
    redis_cores: redisCpu === null ? null : round(redisCpu / 1000 / wallMs, 2),
    proxy_rss_mb: round(proxy.memory().rss / 2 ** 20),
    bench_loop_delay_p99_ms: round(loop.percentile(99) / 1e6),
    reservations,
    clean: timeouts === 0 && within === sent && (statuses['200'] ?? 0) === sent,
  };
}

/** One proxy process at `logLevel`; `rates` stepped up until a step is not clean. */
async function series(
  redis: { url: string; client: Redis },
  logLevel: string,
  rates: readonly number[],
): Promise<{ steps: Step[]; idleUsPerSec: number; idleRss: number; memory: { rss: number; peak: number } }> {
  const fleet = await ProxyFleet.start({
    redis,
    proxies: 1,
    nodes: 10,
    sim: { maxSessions: 100_001 },
    logLevel,
    childStdout: 'ignore',
  });
  try {
    const proxy = fleet.proxies[0];
    if (!proxy) throw new Error('no proxy');
    proxy.double.onProxy(() => ({ kind: 'respond', responses: [{ status: 200 }] }));
    const redisServer = redisPid(redis.url);

    // Idle: what the proxy costs with no traffic (presence, resyncs, gauges, events).
    const idle0 = proxy.cpuMicros();
    const idleAt = performance.now();
    await new Promise((r) => setTimeout(r, 3000));
    const idleUsPerSec = ((proxy.cpuMicros() - idle0) * 1000) / (performance.now() - idleAt);
    const idleRss = proxy.memory().rss;

    // Warm-up: JIT and connections.
    await step(fleet, proxy, 200, redisServer);
    const steps: Step[] = [];
    console.log(
      `offered/s  sent  answered  <=1s  timeouts  achieved/s  p50 ms  p99 ms  proxy µs/INVITE (cores)  bench µs/INVITE (cores)  redis µs/INVITE (cores)  proxy RSS MB  bench loop p99 ms  reservations`,
    );
    for (const rate of rates) {
      const s = await step(fleet, proxy, rate, redisServer);
      steps.push(s);
      console.log(
        `${String(s.offered_per_s).padStart(9)}  ${String(s.sent).padStart(5)}  ${String(s.answered).padStart(8)}  ${String(s.answered_within_1s).padStart(5)}  ` +
          `${String(s.timeouts).padStart(8)}  ${String(s.achieved_per_s).padStart(10)}  ${String(s.latency_ms.p50).padStart(6)}  ${String(s.latency_ms.p99).padStart(6)}  ` +
          `${String(s.proxy_cpu_us_per_invite).padStart(15)} (${s.proxy_cores})  ${String(s.bench_cpu_us_per_invite).padStart(15)} (${s.bench_cores})  ` +
          `${String(s.redis_cpu_us_per_invite).padStart(15)} (${s.redis_cores})  ${s.proxy_rss_mb}  ${s.bench_loop_delay_p99_ms}  ${JSON.stringify(s.reservations)}${s.clean ? '' : `  NOT CLEAN ${JSON.stringify(s.statuses)}`}`,
      );
      if (!s.clean) break;
      // Let the reservations of this step lapse so that every step starts from the same state.
      await new Promise((r) => setTimeout(r, 2500));
    }
    const memory = proxy.memory();
    const warnings = fleet.warnings();
    if (warnings.length > 0) console.log(`proxy warnings: ${warnings.length}, first: ${warnings[0]}`);
    return { steps, idleUsPerSec, idleRss, memory };
  } finally {
    await fleet.close();
  }
}

/** The machine's 1-minute load when the bench started: other work skews every figure here. */
const loadAtStart = round(loadavg()[0] ?? NaN, 2);
const server = await startRedis();
const client = new Redis(server.url);
let main: Awaited<ReturnType<typeof series>>;
try {
  console.log('log level info (the default: one outcome line per INVITE):');
  main = await series({ url: server.url, client }, 'info', RATES);
} finally {
  client.disconnect();
  await server.close();
}
const steps = main.steps;
const clean = steps.filter((s) => s.clean);
const best = clean[clean.length - 1];
const result = {
  machine: `${process.platform} ${process.arch}, node ${process.version}`,
  date: new Date().toISOString(),
  load_average_1m: { start: loadAtStart, end: round(loadavg()[0] ?? NaN, 2) },
  answers: 'scripted 200 from the double (no fs-sim in the path)',
  step_ms: STEP_MS,
  proxy_cpu_us_per_invite: best?.proxy_cpu_us_per_invite ?? null,
  proxy_max_cps_through_double: best?.offered_per_s ?? 0,
  /** The highest clean rate at which every reservation was answered by Redis in time (none counted locally). */
  proxy_max_cps_all_reserved:
    clean.filter((s) => Object.keys(s.reservations).every((k) => k === 'redis')).at(-1)?.offered_per_s ?? 0,
  proxy_rss_mb: round(main.memory.rss / 2 ** 20),
  proxy_peak_rss_mb: round(main.memory.peak / 2 ** 20),
  proxy_idle_rss_mb: round(main.idleRss / 2 ** 20),
  proxy_idle_cpu_us_per_s: round(main.idleUsPerSec),
  first_unclean_rate: steps.find((s) => !s.clean)?.offered_per_s ?? null,
  /** The highest clean rate whose p99 stayed under 100 ms (no queue building up in the proxy). */
  proxy_max_cps_p99_under_100ms: clean.filter((s) => s.latency_ms.p99 < 100).at(-1)?.offered_per_s ?? 0,
  steps,
};
console.log(
  `proxy: ${result.proxy_cpu_us_per_invite} µs CPU per INVITE at ${result.proxy_max_cps_through_double} INVITE/s (highest clean rate); ` +
    `every reservation in Redis up to ${result.proxy_max_cps_all_reserved}/s; idle ${result.proxy_idle_cpu_us_per_s} µs/s; RSS ${result.proxy_rss_mb} MB (peak ${result.proxy_peak_rss_mb} MB, idle ${result.proxy_idle_rss_mb} MB); ` +
    `p99 under 100 ms up to ${result.proxy_max_cps_p99_under_100ms}/s` +
    (result.first_unclean_rate === null ? '' : `; first unclean rate ${result.first_unclean_rate}/s`),
);
mkdirSync(new URL('results/', import.meta.url), { recursive: true });
writeFileSync(new URL('results/proxy-cpu.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`);
