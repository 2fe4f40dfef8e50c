/**
 * Calls per second through real peers: SIPp caller -> a real drachtio-server -> ONE fslb-proxy
 * (a child process) -> two SIPp callees, at stepped offered rates; then the same steps with a
 * minimal drachtio-srf proxy app (bench/support/bare-srf-proxy.mjs) in fslb-proxy's place, on the
 * same drachtio-server, so that fslb's cost can be read against the least any srf app costs.
 *
 * - Nodes: two fs-sim FsNodes used only for their ESL side (an in-process monitor sees them up,
 *   Max-Sessions 1,000,000), each paired in the config with a SIPp callee's SIP address. No
 *   CHANNEL_CREATE ever settles a reservation, so every slot lapses by its TTL
 *   (proxy.provisionalTimeout 2 s + proxy.reservationMarginMs 1 s): up to rate x 3 s of them live.
 * - Calls: test/e2e/sipp/uac-contact.xml (ACK and BYE to the 200's Contact: no record-routing),
 *   no hold; callee bench/sipp/uas-via.xml. Callees are started afresh for every step.
 * - Per step: min(3000 calls, 4 s of calls); SIPp's exit code and -trace_stat figures; CPU from
 *   /proc/<pid>/stat (utime + stime, all threads) of the proxy, drachtio-server, redis-server and
 *   SIPp; the busiest thread of drachtio-server and the proxy's main thread; the proxy's RSS.
 * - "Highest clean rate": the highest step at which, and at every lower step, under 0.1 % of the
 *   calls failed AND the calls completed at >= 95 % of the offered rate. The pace condition matters:
 *   drachtio-server answers 100 Trying by itself, so a proxy that falls behind only delays calls
 *   and a short step ends before any timer fires; without it a burst the chain cannot sustain
 *   would count as clean. That rate is then held for 8 s (BENCH_CONFIRM_S); if it fails, the next
 *   lower clean rate is tried. The failures-only figure over the short steps is written too. A
 *   series stops after a step that lost over 20 % of its calls or fell below 80 % of the pace
 *   (drachtio-server's retransmissions would spill into the next steps).
 * - Other work on the machine skews every figure: each step first waits (10 s at most, 60 s per
 *   run) for the machine to be quiet, and a step with other work around is marked `contended`.
 *
 * Needs drachtio-server (FSLB_DRACHTIO_BIN or `drachtio` on PATH) and `sipp`; without them it
 * writes its JSON with null figures and the reason. Writes bench/results/proxy-real-cps.json.
 * Env: BENCH_RATES (comma list), BENCH_CALLS (3000), BENCH_STEP_S (4), BENCH_CONFIRM_S (8),
 * BENCH_INFO_RATE (1000), BENCH_PROXY_JSON (extra proxy settings, e.g. '{"recordRoute":true}').
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { ClusterKeys } from '@fslb/shared';
import { FsNode } from '@fslb/fs-sim';
import type { Monitor } from '@fslb/monitor';
import {
  drachtioBin,
  sippBin,
  startDrachtioServer,
  type RealDrachtio,
} from '../test/support/drachtio-server.js';
import { freeTcpPort, freeUdpPort } from '../test/support/net.js';
import { deletePrefix, startRedis, testPrefix, type TestRedis } from '../test/support/redis.js';
import { fromSource } from '../test/support/source-process.js';
import { waitFor } from '../test/support/wait.js';
import { config, startMonitor, waitForNode } from '../test/monitor/support.js';
import { proxyRawConfig } from '../test/proxy/support.js';
import { alive, Children } from './support/children.js';
import {
  busiestThreadDelta,
  childPids,
  clockTicksPerSecond,
  machineTicks,
  memoryMiB,
  processTicks,
  threadTicks,
} from '../test/support/proc-stat.js';
import {
  runUac,
  startUas,
  stopUas,
  type MessageRow,
  type Uas,
  type UacRun,
  type UasResult,
} from './support/sipp-run.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULT = new URL('results/proxy-real-cps.json', import.meta.url);
const RATES = (process.env.BENCH_RATES ?? '250,500,750,1000,1250,1500,1750,2000,2500,3000')
  .split(',')
  .map(Number);
const MAX_CALLS = Number(process.env.BENCH_CALLS ?? 3000);
const STEP_S = Number(process.env.BENCH_STEP_S ?? 4);
const INFO_RATE = Number(process.env.BENCH_INFO_RATE ?? 1000);
/** Length of the sustained run that confirms a series' highest clean rate. */
const CONFIRM_S = Number(process.env.BENCH_CONFIRM_S ?? 8);
/** Extra proxy settings for experiments, e.g. '{"recordRoute":true}' (recorded in the result). */
const PROXY_EXTRA = JSON.parse(process.env.BENCH_PROXY_JSON ?? '{}') as Record<string, unknown>;
const CLEAN_PCT = 0.1;
/** A step kept pace when its calls completed at 95 % of the offered rate or better. */
const PACE = 0.95;
const COLLAPSE_PCT = 20;
const COLLAPSE_PACE = 0.8;
const UDP_BUFFER = 8_388_608;
const NODES = 2;
const UAC_SCENARIO = join(ROOT, 'test/e2e/sipp/uac-contact.xml');
const UAS_SCENARIO = join(ROOT, 'bench/sipp/uas-via.xml');
const BARE_APP = join(ROOT, 'bench/support/bare-srf-proxy.mjs');
/** Monitor timings as the defaults have them (HTTP off, so nothing to bind). */
const MONITOR = {
  probeIntervalMs: 1000,
  probeTimeoutMs: 1500,
  leaseTtlMs: 5000,
  claimIntervalMs: 1000,
  maxBackoffMs: 10_000,
};

const TCK = clockTicksPerSecond();
const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d;
const ms = (ticks: number): number => (ticks * 1000) / TCK;
const sleep = (t: number): Promise<void> => new Promise((r) => setTimeout(r, t));

const machine = {
  cpu: `${cpus().length} x ${cpus()[0]?.model ?? 'unknown'}`,
  memory_gib: round(totalmem() / 2 ** 30, 1),
  kernel: release(),
  node: process.version,
  clk_tck: TCK,
};

function writeResult(result: Record<string, unknown>): void {
  mkdirSync(new URL('results/', import.meta.url), { recursive: true });
  writeFileSync(RESULT, `${JSON.stringify(result, null, 2)}\n`);
}

// ---------------------------------------------------------------------------------- skip
const drachtio = drachtioBin();
const sipp = sippBin();
const skip =
  drachtio === undefined || (drachtio.includes('/') && !existsSync(drachtio))
    ? `no drachtio-server: set FSLB_DRACHTIO_BIN to its binary or put \`drachtio\` on PATH${drachtio ? ` (${drachtio} does not exist)` : ''}`
    : sipp === undefined
      ? 'sipp (Debian package sip-tester) is not on PATH'
      : undefined;
if (skip !== undefined) {
  console.log(`proxy-real-cps skipped: ${skip}`);
  writeResult({
    machine,
    date: new Date().toISOString(),
    skipped: skip,
    real_cps_fslb: null,
    real_cps_bare: null,
    real_cps_ratio: null,
    proxy_cpu_ms_per_call: null,
  });
  process.exit(0);
}

// ---------------------------------------------------------------------------------- types
interface App {
  readonly kind: 'fslb' | 'bare';
  readonly level: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  readonly httpPort: number | undefined;
}

interface Step {
  rate: number;
  calls_offered: number;
  attempted: number;
  successful: number;
  failed: number;
  failed_pct: number;
  sipp_exit: number | null;
  retransmissions: number;
  failures: Record<string, number>;
  first_error?: string;
  wall_s: number;
  /** Successful calls over SIPp's whole run (start to last call's end). */
  achieved_cps: number;
  kept_pace: boolean;
  /** Under 0.1 % failed and kept pace. */
  clean: boolean;
  proxy_cpu_ms_per_call: number;
  drachtio_cpu_ms_per_call: number;
  redis_cpu_ms_per_call: number | null;
  uac_cpu_ms_per_call: number;
  uas_cpu_ms_per_call: number;
  /** Share of one core over the step's wall time. */
  proxy_cpu_pct: number;
  proxy_main_thread_pct: number;
  drachtio_cpu_pct: number;
  drachtio_busiest_thread_pct: number;
  uac_cpu_pct: number;
  machine_busy_pct: number;
  proxy_rss_mib: number | null;
  proxy_rss_peak_mib: number | null;
  calls_per_callee: number[];
  /** CPU used outside this benchmark's processes during the step (other work on the machine), % of one core. */
  other_processes_core_pct: number;
  /** Machine busy just before the step (our processes idle), % of one core, and the wait for it to calm. */
  machine_before_core_pct: number;
  waited_for_quiet_ms: number;
  /** Other work ran during the step: its figures are suspect. */
  contended: boolean;
  sipp_messages: string[];
  callees_failed?: number[];
  callee_messages?: string[][];
  callee_first_error?: string[];
  proxy_counters?: Record<string, number>;
  reservation_mean_ms?: number | null;
  reservation_over_10ms_pct?: number | null;
  proxy_event_loop_lag_p99_ms?: number | null;
  proxy_event_loop_lag_max_ms?: number | null;
  proxy_gc_ms?: number;
  settle_ms: number;
}

interface Skipped {
  rate: number;
  skipped: string;
}

// ---------------------------------------------------------------------------------- state
const children = new Children();
const work = mkdtempSync(join(tmpdir(), 'fslb-real-cps-'));
let redisServer: TestRedis | undefined;
let redis: Redis | undefined;
let prefix = '';
let sims: FsNode[] = [];
let monitor: Monitor | undefined;
let drachtioServer: RealDrachtio | undefined;
let drachtioPid = 0;
let redisPid: number | undefined;
let uasPorts: number[] = [];
let udpBuffers = 'unchanged';
let restoreBuffers: (() => void) | undefined;
let proxyRuntime = '';
let proxyArgs: (configFile: string) => string[] = () => [];
const proxyLogs: Record<string, unknown>[] = [];
/** Each app's CPU with no calls, % of one core. */
const idlePct: Record<string, number> = {};

const run = { interrupted: false };
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    run.interrupted = true;
    console.error(`proxy-real-cps: ${sig}, cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------- setup helpers
function raiseUdpBuffers(): void {
  const read = (k: string): number => Number(readFileSync(`/proc/sys/net/core/${k}`, 'utf8').trim());
  const before = { rmem_max: read('rmem_max'), rmem_default: read('rmem_default') };
  if (before.rmem_max >= UDP_BUFFER && before.rmem_default >= UDP_BUFFER) {
    udpBuffers = `already ${before.rmem_max}/${before.rmem_default}`;
    return;
  }
  const r = spawnSync(
    'sysctl',
    ['-w', `net.core.rmem_max=${UDP_BUFFER}`, `net.core.rmem_default=${UDP_BUFFER}`],
    {
      encoding: 'utf8',
    },
  );
  if (r.status === 0 && read('rmem_default') >= UDP_BUFFER) {
    udpBuffers = `raised to ${UDP_BUFFER} (rmem_max, rmem_default) for the run, restored after`;
    restoreBuffers = () => {
      spawnSync(
        'sysctl',
        ['-w', `net.core.rmem_max=${before.rmem_max}`, `net.core.rmem_default=${before.rmem_default}`],
        {
          stdio: 'ignore',
        },
      );
    };
  } else {
    udpBuffers = `not raised (${(r.stderr || r.error?.message || 'sysctl failed').trim()}); rmem_max ${before.rmem_max}, rmem_default ${before.rmem_default}`;
  }
}

/** Sources of a package newer than its build output (tests and declarations aside). */
function staleSources(pkg: string): string[] {
  const src = join(ROOT, 'packages', pkg, 'src');
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts')) {
        const js = join(ROOT, 'packages', pkg, 'dist', relative(src, p).replace(/\.ts$/, '.js'));
        if (!existsSync(js) || statSync(js).mtimeMs < statSync(p).mtimeMs) out.push(relative(ROOT, p));
      }
    }
  };
  walk(src);
  return out;
}

/** The built proxy (packages/proxy/dist) when it is current or can be built; else its sources via tsx. */
function chooseProxyRuntime(): void {
  let stale = [...staleSources('shared'), ...staleSources('proxy')];
  let built = '';
  if (stale.length > 0) {
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    const r = spawnSync(process.execPath, [tsc, '-b', 'packages/proxy'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 180_000,
    });
    built = r.status === 0 ? ' (rebuilt with tsc -b packages/proxy first)' : '';
    if (r.status === 0) stale = [];
    else
      console.log(`tsc -b packages/proxy failed; running the proxy from source:\n${r.stdout.slice(-1000)}`);
  }
  if (stale.length === 0 && existsSync(join(ROOT, 'packages/proxy/dist/main.js'))) {
    proxyRuntime = `built JS: node packages/proxy/dist/main.js${built}`;
    proxyArgs = (file) => ['packages/proxy/dist/main.js', '--config', file];
  } else {
    proxyRuntime = 'source: node --import tsx packages/proxy/src/main.ts (the build was stale or missing)';
    proxyArgs = (file) => fromSource('packages/proxy/src/main.ts', '--config', file);
  }
}

/** The environment of an app child: no FSLB_* or REDIS_URL override of its config file. */
function appEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('FSLB_') && k !== 'REDIS_URL'),
  );
}

async function startFslb(level: 'warn' | 'info'): Promise<App> {
  if (!redisServer) throw new Error('no redis');
  const httpPort = await freeTcpPort();
  const raw = proxyRawConfig({
    redisUrl: redisServer.url,
    prefix,
    nodes: sims,
    drachtioPort: drachtioServer?.appPort ?? 0,
    proxyId: `bench-${level}`,
    nodeExtra: (_n, i) => ({ sip: `127.0.0.1:${uasPorts[i] ?? 0}` }),
    monitor: MONITOR,
    proxy: {
      // The defaults (test support shortens some), except what the brief fixes.
      provisionalTimeout: '2s',
      finalTimeout: '30s',
      resyncIntervalMs: 5000,
      http: { host: '127.0.0.1', port: httpPort },
      // Every call comes from one source address; the rate steps go past the default maxCps.
      rateLimit: { perSourcePerSec: 1_000_000, burst: 1_000_000 },
      maxCps: 1_000_000,
      ...PROXY_EXTRA,
    },
  });
  raw.log = { level };
  const file = join(work, `fslb-${level}.json`);
  writeFileSync(file, JSON.stringify(raw, null, 2));
  const logFile = join(work, `fslb-${level}.log`);
  const out = openSync(logFile, 'w');
  const child = children.spawn(process.execPath, proxyArgs(file), {
    cwd: ROOT,
    stdio: ['ignore', out, out],
    env: appEnv(),
  });
  closeSync(out);
  await waitFor(
    'fslb-proxy ready (/readyz)',
    async () => {
      if (!alive(child)) throw new Error(`fslb-proxy exited: ${readFileSync(logFile, 'utf8').slice(-2000)}`);
      const r = await fetch(`http://127.0.0.1:${httpPort}/readyz`, {
        signal: AbortSignal.timeout(1000),
      }).catch(() => undefined);
      return r?.status === 200;
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  return { kind: 'fslb', level, child, pid: child.pid ?? 0, logFile, httpPort };
}

async function startBare(): Promise<App> {
  const logFile = join(work, 'bare.log');
  const out = openSync(logFile, 'w');
  const child = children.spawn(
    process.execPath,
    [
      BARE_APP,
      '127.0.0.1',
      String(drachtioServer?.appPort ?? 0),
      drachtioServer?.secret ?? '',
      `127.0.0.1:${uasPorts[0] ?? 0}`,
    ],
    { cwd: ROOT, stdio: ['ignore', out, out], env: appEnv() },
  );
  closeSync(out);
  await waitFor(
    'bare srf app connected',
    () => {
      if (!alive(child)) throw new Error(`bare app exited: ${readFileSync(logFile, 'utf8')}`);
      return readFileSync(logFile, 'utf8').includes('connected');
    },
    { timeoutMs: 15_000, intervalMs: 50 },
  );
  return { kind: 'bare', level: '-', child, pid: child.pid ?? 0, logFile, httpPort: undefined };
}

/** Stops an app (SIGTERM: fslb-proxy drains first) and notes how it went and what it logged. */
async function stopApp(app: App): Promise<void> {
  const tookMs = await children.stop(app.child, 'SIGTERM', 5000);
  const text = existsSync(app.logFile) ? readFileSync(app.logFile, 'utf8') : '';
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const byMsg = new Map<string, number>();
  let routed = 0;
  const outcomes: Record<string, number> = {};
  const warnings: string[] = [];
  for (const l of lines) {
    let j: { level?: string; msg?: string; outcome?: string } | undefined;
    try {
      j = JSON.parse(l) as typeof j;
    } catch {
      j = undefined;
    }
    if (j?.msg === 'request routed') {
      routed++;
      const o = j.outcome ?? '?';
      outcomes[o] = (outcomes[o] ?? 0) + 1;
      continue;
    }
    if (j?.level !== 'info' && warnings.length < 5) warnings.push(l.slice(0, 400));
    const key = j ? `${j.level ?? '?'}: ${j.msg ?? ''}` : l.slice(0, 160);
    byMsg.set(key, (byMsg.get(key) ?? 0) + 1);
  }
  proxyLogs.push({
    app: app.kind,
    level: app.level,
    exit: { code: app.child.exitCode, signal: app.child.signalCode, stop_ms: Math.round(tookMs) },
    log_bytes: text.length,
    request_routed_lines: routed,
    request_routed_outcomes: outcomes,
    other_lines: Object.fromEntries(byMsg),
    first_warnings: warnings,
  });
}

/** Every sample of the proxy's /metrics, by `name{labels}` (empty for the bare app). */
async function scrape(app: App): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (app.httpPort === undefined) return out;
  const r = await fetch(`http://127.0.0.1:${app.httpPort}/metrics`, {
    signal: AbortSignal.timeout(2000),
  }).catch(() => undefined);
  const text = r ? await r.text() : '';
  for (const line of text.split('\n')) {
    const m = /^(fslb_proxy_\w+)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (m) out.set(`${(m[1] ?? '').slice('fslb_proxy_'.length)}${m[2] ?? ''}`, Number(m[3]));
  }
  return out;
}

/** What the proxy's own metrics say about one step (scraped before and after it). */
function proxyFigures(before: Map<string, number>, after: Map<string, number>): Record<string, unknown> {
  if (after.size === 0) return {};
  const d = (k: string): number => (after.get(k) ?? 0) - (before.get(k) ?? 0);
  const counters: Record<string, number> = {};
  for (const k of after.keys()) {
    if (/^(requests|reservations|target_failures)_total\{/.test(k) && d(k) !== 0) counters[k] = d(k);
  }
  const n = d('reservation_duration_seconds_count{outcome="redis"}');
  const within10 = d('reservation_duration_seconds_bucket{le="0.01",outcome="redis"}');
  let gc = 0;
  for (const k of after.keys()) if (k.startsWith('process_nodejs_gc_duration_seconds_sum')) gc += d(k);
  // prom-client resets its event-loop delay histogram at every scrape: these cover the step.
  const lag = (k: string): number | null => {
    const v = after.get(`process_nodejs_eventloop_lag_${k}_seconds`);
    return v === undefined ? null : round(v * 1000, 1);
  };
  return {
    proxy_counters: counters,
    reservation_mean_ms:
      n > 0 ? round((d('reservation_duration_seconds_sum{outcome="redis"}') / n) * 1000) : null,
    reservation_over_10ms_pct: n > 0 ? round(((n - within10) / n) * 100, 2) : null,
    proxy_event_loop_lag_p99_ms: lag('p99'),
    proxy_event_loop_lag_max_ms: lag('max'),
    proxy_gc_ms: round(gc * 1000, 1),
  };
}

/** Waits until drachtio-server and the app are idle again (retransmissions of a bad step over). */
async function settle(app: App): Promise<number> {
  const t0 = performance.now();
  const busy = (): number => (processTicks(drachtioPid) ?? 0) + (processTicks(app.pid) ?? 0);
  while (performance.now() - t0 < 15_000) {
    const a = busy();
    await sleep(500);
    if (busy() - a <= Math.ceil(TCK * 0.04)) break;
  }
  return Math.round(performance.now() - t0);
}

// ---------------------------------------------------------------------------------- one step
/** One line of SIPp's message table. */
function row(m: MessageRow): string {
  return (
    `${m.msg} ${m.count}` +
    (m.retrans ? ` retrans ${m.retrans}` : '') +
    (m.timeout ? ` timeout ${m.timeout}` : '') +
    (m.unexpected ? ` unexpected ${m.unexpected}` : '')
  );
}

async function runStep(app: App, rate: number, calls: number): Promise<{ step: Step; uac: UacRun }> {
  const before = await waitQuiet();
  const dir = mkdtempSync(join(work, `step-${app.kind}-${rate}-`));
  const uas: Uas[] = [];
  for (const port of uasPorts) uas.push(await startUas(children, sipp as string, UAS_SCENARIO, port, dir));
  const c0 = await scrape(app);
  const self0 = process.cpuUsage();
  const p0 = processTicks(app.pid) ?? 0;
  const pt0 = threadTicks(app.pid);
  const d0 = processTicks(drachtioPid) ?? 0;
  const dt0 = threadTicks(drachtioPid);
  const r0 = redisPid === undefined ? undefined : processTicks(redisPid);
  const u0 = uas.map((u) => processTicks(u.child.pid ?? 0) ?? 0);
  const m0 = machineTicks();
  const uac = await runUac(children, {
    sipp: sipp as string,
    scenario: UAC_SCENARIO,
    target: `127.0.0.1:${drachtioServer?.sipPort ?? 0}`,
    port: await freeUdpPort(),
    rate,
    calls,
    dir,
  });
  // The proxy's last outcome lines and metrics follow the last final response by a moment.
  await sleep(300);
  if (!alive(app.child))
    throw new Error(`${app.kind} app died during the ${rate} calls/s step: see ${app.logFile}`);
  // Shares of a core are over the calls' own time (SIPp's run), not the idle moments around it.
  const wallS = uac.wallMs / 1000;
  const p1 = processTicks(app.pid) ?? 0;
  const pt1 = threadTicks(app.pid);
  const d1 = processTicks(drachtioPid) ?? 0;
  const dt1 = threadTicks(drachtioPid);
  const r1 = redisPid === undefined ? undefined : processTicks(redisPid);
  const u1 = uas.map((u) => processTicks(u.child.pid ?? 0) ?? 0);
  const m1 = machineTicks();
  const mem = memoryMiB(app.pid);
  const c1 = await scrape(app);
  const self = process.cpuUsage(self0);
  const callees: UasResult[] = [];
  for (const u of uas) callees.push(await stopUas(children, u));
  const n = Math.max(1, uac.attempted);
  const achieved = uac.successful / (uac.wallMs / 1000);
  const pct = (ticks: number): number => round((ticks / TCK / wallS) * 100, 1);
  // Busy time outside our processes (approximate: /proc/stat and per-process times differ by a few %).
  const otherPct = pct(
    m1.busy -
      m0.busy -
      (p1 - p0) -
      (d1 - d0) -
      (r1 ?? 0) +
      (r0 ?? 0) -
      uac.cpuTicks -
      u1.reduce((a, b, i) => a + b - (u0[i] ?? 0), 0) -
      ((self.user + self.system) / 1e6) * TCK,
  );
  const step: Step = {
    rate,
    calls_offered: calls,
    attempted: uac.attempted,
    successful: uac.successful,
    failed: uac.failed,
    failed_pct: round((uac.failed / n) * 100, 2),
    sipp_exit: uac.exitCode,
    retransmissions: uac.retransmissions,
    failures: uac.failures,
    ...(uac.firstError ? { first_error: uac.firstError } : {}),
    wall_s: round(wallS, 2),
    achieved_cps: round(achieved, 0),
    kept_pace: achieved >= PACE * rate,
    clean: (uac.failed / n) * 100 < CLEAN_PCT && achieved >= PACE * rate,
    proxy_cpu_ms_per_call: round(ms(p1 - p0) / n),
    drachtio_cpu_ms_per_call: round(ms(d1 - d0) / n),
    redis_cpu_ms_per_call: r0 === undefined || r1 === undefined ? null : round(ms(r1 - r0) / n),
    uac_cpu_ms_per_call: round(ms(uac.cpuTicks) / n),
    uas_cpu_ms_per_call: round(ms(u1.reduce((a, b, i) => a + b - (u0[i] ?? 0), 0)) / n),
    proxy_cpu_pct: pct(p1 - p0),
    proxy_main_thread_pct: pct((pt1.get(app.pid) ?? 0) - (pt0.get(app.pid) ?? 0)),
    drachtio_cpu_pct: pct(d1 - d0),
    drachtio_busiest_thread_pct: pct(busiestThreadDelta(dt0, dt1)),
    uac_cpu_pct: pct(uac.cpuTicks),
    machine_busy_pct: round(((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total)) * 100, 1),
    proxy_rss_mib: mem ? round(mem.rss, 1) : null,
    proxy_rss_peak_mib: mem ? round(mem.peak, 1) : null,
    calls_per_callee: callees.map((c) => c.calls),
    ...(uac.failed > 0
      ? {
          callees_failed: callees.map((c) => c.failed),
          callee_messages: callees.map((c) => c.messages.map(row)),
          callee_first_error: callees.map((c) => c.firstError),
        }
      : {}),
    other_processes_core_pct: otherPct,
    machine_before_core_pct: before.busyCorePct,
    waited_for_quiet_ms: before.waitedMs,
    contended: before.busyCorePct >= 15 || otherPct >= 25,
    sipp_messages: uac.messages.map(row),
    ...proxyFigures(c0, c1),
    settle_ms: await settle(app),
  };
  rmSync(dir, { recursive: true, force: true });
  return { step, uac };
}

function show(label: string, s: Step): void {
  console.log(
    `  ${label.padEnd(10)} ${String(s.rate).padStart(5)}/s  ${String(s.successful).padStart(5)}/${String(s.attempted).padEnd(5)} ` +
      `failed ${String(s.failed_pct).padStart(6)} %  done ${String(s.achieved_cps).padStart(4)}/s${s.kept_pace ? ' ' : '!'}  proxy ${s.proxy_cpu_ms_per_call.toFixed(3)} ms/call (${s.proxy_main_thread_pct} % main thread)  ` +
      `drachtio ${s.drachtio_cpu_ms_per_call.toFixed(3)} ms/call (busiest thread ${s.drachtio_busiest_thread_pct} %)  ` +
      `machine ${s.machine_busy_pct} %  rss ${s.proxy_rss_mib ?? '-'} MiB  retrans ${s.retransmissions}` +
      (s.contended ? `  CONTENDED (others ${s.other_processes_core_pct} % of a core)` : '') +
      (s.failed > 0
        ? `  [${Object.entries(s.failures)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')}]`
        : ''),
  );
}

/** The app's CPU with no calls (timers, presence, resyncs), in % of one core over 2 s. */
async function idleCpu(app: App): Promise<number> {
  const t0 = processTicks(app.pid) ?? 0;
  const w0 = performance.now();
  await sleep(2000);
  return round(((((processTicks(app.pid) ?? 0) - t0) / TCK) * 100000) / (performance.now() - w0), 2);
}

/**
 * Other work on this machine (a test suite, another benchmark) skews every figure here. Before a
 * step, wait up to 10 s (60 s over the whole run) for the machine to be quiet: under 15 % of one
 * core busy over half a second while our processes idle. Returns how long it waited.
 */
async function waitQuiet(): Promise<{ waitedMs: number; busyCorePct: number }> {
  const t0 = performance.now();
  for (;;) {
    const m0 = machineTicks();
    await sleep(500);
    const m1 = machineTicks();
    const busy = ((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total)) * cpus().length * 100;
    const waited = performance.now() - t0;
    if (busy < 15 || waited > 10_000 || quiet.waitedMs + waited > 60_000) {
      quiet.waitedMs += waited;
      return { waitedMs: Math.round(waited), busyCorePct: round(busy, 1) };
    }
  }
}
const quiet = { waitedMs: 0 };

/** Unmeasured calls first, so that the JIT and the sockets are warm. */
async function warmUp(app: App): Promise<void> {
  const { step } = await runStep(app, 250, 500);
  console.log(`  warm-up: ${step.successful}/${step.attempted} calls at 250/s`);
}

async function series(app: App, label: string): Promise<(Step | Skipped)[]> {
  idlePct[label] = await idleCpu(app);
  await warmUp(app);
  const out: (Step | Skipped)[] = [];
  let collapsedAt: number | undefined;
  for (const rate of RATES) {
    if (collapsedAt !== undefined) {
      out.push({
        rate,
        skipped: `not run: at ${collapsedAt} calls/s the series lost over ${COLLAPSE_PCT} % of its calls or fell below ${COLLAPSE_PACE * 100} % of the pace`,
      });
      continue;
    }
    const { step } = await runStep(app, rate, Math.min(MAX_CALLS, Math.round(rate * STEP_S)));
    show(label, step);
    out.push(step);
    if (step.failed_pct > COLLAPSE_PCT || step.achieved_cps < COLLAPSE_PACE * rate) collapsedAt = rate;
  }
  return out;
}

const ran = (steps: readonly (Step | Skipped)[]): Step[] => steps.filter((s): s is Step => !('skipped' in s));

/** The highest rate at which this step and every lower one passed `ok`. */
function highest(steps: readonly (Step | Skipped)[], ok: (s: Step) => boolean): number | null {
  let best: number | null = null;
  for (const s of ran(steps)) {
    if (!ok(s)) break;
    best = s.rate;
  }
  return best;
}
const highestClean = (steps: readonly (Step | Skipped)[]): number | null => highest(steps, (s) => s.clean);
const highestNoFailures = (steps: readonly (Step | Skipped)[]): number | null =>
  highest(steps, (s) => s.failed_pct < CLEAN_PCT);

/** At the first step that was not clean (and the last clean one): who was busiest. */
function degradeReport(steps: readonly (Step | Skipped)[]): Record<string, unknown> {
  const r = ran(steps);
  const i = r.findIndex((s) => !s.clean);
  const pick = (s: Step | undefined): Record<string, unknown> | null =>
    s
      ? {
          rate: s.rate,
          failed_pct: s.failed_pct,
          achieved_cps: s.achieved_cps,
          reservation_mean_ms: s.reservation_mean_ms ?? null,
          proxy_event_loop_lag_max_ms: s.proxy_event_loop_lag_max_ms ?? null,
          other_processes_core_pct: s.other_processes_core_pct,
          machine_busy_pct: s.machine_busy_pct,
          drachtio_busiest_thread_pct: s.drachtio_busiest_thread_pct,
          drachtio_cpu_pct: s.drachtio_cpu_pct,
          proxy_main_thread_pct: s.proxy_main_thread_pct,
          proxy_cpu_pct: s.proxy_cpu_pct,
          uac_cpu_pct: s.uac_cpu_pct,
          failures: s.failures,
          retransmissions: s.retransmissions,
        }
      : null;
  return {
    first_unclean: i < 0 ? null : pick(r[i]),
    last_clean: pick(i < 0 ? r[r.length - 1] : i > 0 ? r[i - 1] : undefined),
  };
}

/**
 * A series' figure: its highest clean rate held for CONFIRM_S seconds (short steps can hide a
 * backlog that a sustained load turns into failures). A rate that fails this is replaced by the
 * next lower clean rate, twice at most.
 */
async function confirm(app: App, label: string, steps: readonly (Step | Skipped)[]): Promise<Confirmation> {
  const top = highestClean(steps);
  const tries: Step[] = [];
  const rates = ran(steps)
    .filter((s) => top !== null && s.rate <= top)
    .map((s) => s.rate)
    .reverse()
    .slice(0, 3);
  for (const rate of rates) {
    const { step } = await runStep(app, rate, Math.round(rate * CONFIRM_S));
    show(`${label} ${CONFIRM_S}s`, step);
    tries.push(step);
    if (step.clean) return { rate, tries };
  }
  return { rate: null, tries };
}

interface Confirmation {
  rate: number | null;
  tries: Step[];
}

async function cleanup(): Promise<void> {
  await children.stopAll().catch(() => undefined);
  await monitor?.close().catch(() => undefined);
  await Promise.all(sims.map((s) => s.close().catch(() => undefined)));
  await drachtioServer?.close().catch(() => undefined);
  if (redis && prefix) await deletePrefix(redis, prefix).catch(() => undefined);
  redis?.disconnect();
  await redisServer?.close().catch(() => undefined);
  restoreBuffers?.();
  restoreBuffers = undefined;
  rmSync(work, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------- run
const started = performance.now();
let failure: unknown;
const result: Record<string, unknown> = { machine, date: new Date().toISOString() };
try {
  raiseUdpBuffers();
  console.log(`UDP buffers: ${udpBuffers}`);
  chooseProxyRuntime();
  console.log(`fslb-proxy runs from ${proxyRuntime}`);

  redisServer = await startRedis();
  if (redisServer.kind === 'spawned') {
    const port = new URL(redisServer.url).port;
    // redis-server retitles itself `redis-server 127.0.0.1:<port>`.
    redisPid = childPids(process.pid, (c) => c.includes('redis-server') && c.includes(`:${port}`))[0];
    if (redisPid !== undefined) children.adopt(redisPid);
  }
  redis = new Redis(redisServer.url);
  prefix = testPrefix('cps');
  const keys = new ClusterKeys(prefix);
  uasPorts = [];
  for (let i = 0; i < NODES; i++) uasPorts.push(await freeUdpPort());
  sims = await Promise.all(
    Array.from({ length: NODES }, () =>
      FsNode.start({ maxSessions: 1_000_000, sessionsPerSecond: 1_000_000 }),
    ),
  );
  monitor = await startMonitor(
    config({
      redisUrl: redisServer.url,
      prefix,
      nodes: sims,
      monitor: MONITOR,
      nodeExtra: (_n, i) => ({ sip: `127.0.0.1:${uasPorts[i] ?? 0}` }),
    }),
  );
  for (let i = 1; i <= NODES; i++) {
    await waitForNode(
      redis,
      keys,
      `fs${i}`,
      // The monitor publishes Max-Sessions - 1, as FreeSWITCH refuses the Nth call.
      (h) => h.state === 'up' && Number(h.maxSessions) >= 999_999,
      'up',
      20_000,
    );
  }

  drachtioServer = await startDrachtioServer(drachtio as string, await freeUdpPort());
  const appPort = String(drachtioServer.appPort);
  const dpid = childPids(process.pid, (c) => c.includes(`--port ${appPort} `))[0];
  if (dpid === undefined) throw new Error('cannot find the drachtio-server process');
  drachtioPid = dpid;
  children.adopt(dpid);
  const drachtioVersion = /version (\S+)/.exec(drachtioServer.output())?.[1] ?? 'unknown';
  const sippVersion =
    /SIPp (\S+)/.exec(spawnSync(sipp as string, ['-v'], { encoding: 'utf8' }).stdout)?.[1] ?? 'unknown';
  const git = (args: string[]): string =>
    spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' }).stdout.trim();
  Object.assign(result, {
    // What was measured: the proxy runs from the working tree, edits included.
    code: {
      commit: git(['rev-parse', '--short', 'HEAD']),
      uncommitted_in_packages: git(['status', '--porcelain', '--', 'packages'])
        .split('\n')
        .filter((l) => l !== ''),
    },
    drachtio_server: `${drachtioVersion} (${drachtio})`,
    sipp: sippVersion,
    proxy_runtime: proxyRuntime,
    proxy_settings_extra: PROXY_EXTRA,
    udp_buffers: udpBuffers,
    redis: redisServer.kind,
  });
  console.log(
    `drachtio-server ${drachtioVersion}, SIPp ${sippVersion}, redis ${redisServer.kind}, callees on ${uasPorts.join(', ')}`,
  );

  // fslb-proxy, log level warn, every rate, then its best rate sustained.
  const steps: Record<string, unknown> = {};
  result.steps = steps;
  console.log('fslb-proxy (log level warn):');
  let app = await startFslb('warn');
  const fslbSteps = await series(app, 'fslb');
  steps.fslb = fslbSteps;
  const fslbConfirmed = await confirm(app, 'fslb', fslbSteps);
  steps.fslb_confirm = fslbConfirmed.tries;
  await stopApp(app);

  // The same proxy at log level info (one 'request routed' line per call) at one clean rate.
  const fslbClean = fslbConfirmed.rate;
  const infoRate = Math.min(INFO_RATE, fslbClean ?? RATES[0] ?? 250);
  console.log(`fslb-proxy (log level info) at ${infoRate} calls/s:`);
  app = await startFslb('info');
  await warmUp(app);
  const { step: infoStep } = await runStep(app, infoRate, Math.min(MAX_CALLS, Math.round(infoRate * STEP_S)));
  steps.fslb_info = infoStep;
  show('fslb info', infoStep);
  await stopApp(app);

  // The baseline: a bare srf proxy app on the same drachtio-server.
  console.log('bare drachtio-srf proxy app:');
  app = await startBare();
  const bareSteps = await series(app, 'bare');
  steps.bare = bareSteps;
  const bareConfirmed = await confirm(app, 'bare', bareSteps);
  steps.bare_confirm = bareConfirmed.tries;
  await stopApp(app);

  const bareClean = bareConfirmed.rate;
  const warnAtInfoRate = ran(fslbSteps).find((s) => s.rate === infoRate);
  const perRate = (steps: readonly (Step | Skipped)[], k: keyof Step): Record<string, unknown> =>
    Object.fromEntries(ran(steps).map((s) => [String(s.rate), s[k]]));
  Object.assign(result, {
    real_cps_fslb: fslbClean,
    real_cps_bare: bareClean,
    real_cps_ratio: fslbClean !== null && bareClean ? round(fslbClean / bareClean, 2) : null,
    clean_definition:
      `under ${CLEAN_PCT} % of calls failed AND calls completed at >= ${PACE * 100} % of the offered rate, at that rate and every lower ` +
      `short step, then held for ${CONFIRM_S} s (else the next lower clean rate is tried)`,
    real_cps_fslb_short_steps: highestClean(fslbSteps),
    real_cps_bare_short_steps: highestClean(bareSteps),
    // Failures alone over the short steps (the literal definition). Short steps let queues hide overload (drachtio-server
    // answers 100 Trying itself, so a late proxy only delays calls), hence the pace condition above.
    real_cps_fslb_failures_only: highestNoFailures(fslbSteps),
    real_cps_bare_failures_only: highestNoFailures(bareSteps),
    // Clean at the highest rate tried: the real limit is higher (and the ratio lower than shown).
    real_cps_fslb_is_lower_bound: fslbClean === RATES[RATES.length - 1],
    real_cps_bare_is_lower_bound: bareClean === RATES[RATES.length - 1],
    proxy_cpu_ms_per_call: perRate(fslbSteps, 'proxy_cpu_ms_per_call'),
    bare_cpu_ms_per_call: perRate(bareSteps, 'proxy_cpu_ms_per_call'),
    drachtio_cpu_ms_per_call: {
      fslb: perRate(fslbSteps, 'drachtio_cpu_ms_per_call'),
      bare: perRate(bareSteps, 'drachtio_cpu_ms_per_call'),
    },
    failed_pct: { fslb: perRate(fslbSteps, 'failed_pct'), bare: perRate(bareSteps, 'failed_pct') },
    log_level_cost: {
      rate: infoRate,
      warn_proxy_cpu_ms_per_call: warnAtInfoRate?.proxy_cpu_ms_per_call ?? null,
      info_proxy_cpu_ms_per_call: infoStep.proxy_cpu_ms_per_call,
      info_failed_pct: infoStep.failed_pct,
      note: "info writes one JSON 'request routed' line per call (pino, synchronous) to a file here; a pipe to a log collector costs more",
    },
    app_idle_cpu_pct: idlePct,
    contended_steps: Object.entries(steps).flatMap(([series, v]) =>
      (Array.isArray(v) ? (v as (Step | Skipped)[]) : [v as Step])
        .filter((x) => 'contended' in x && x.contended)
        .map((x) => `${series} ${x.rate}/s`),
    ),
    waited_for_quiet_s: round(quiet.waitedMs / 1000, 1),
    degrade: { fslb: degradeReport(fslbSteps), bare: degradeReport(bareSteps) },
    reservations_note:
      'No CHANNEL_CREATE arrives for SIPp calls: every reservation lapsed by its TTL (provisionalTimeout 2 s + reservationMarginMs 1 s), ' +
      'so up to rate x 3 s slots were live per moment; the nodes had Max-Sessions 1,000,000 so none was refused for want of room.',
    setup:
      `SIPp caller (${relative(ROOT, UAC_SCENARIO)}, no hold) -> drachtio-server -> one app process -> ${NODES} SIPp callees (${relative(ROOT, UAS_SCENARIO)}); ` +
      `fslb: ${NODES} fs-sim nodes (ESL only) watched by an in-process monitor with default timings, proxy maxCps 1e6/s, rateLimit 1e6/s, recordRoute off, ` +
      `min(${MAX_CALLS} calls, ${STEP_S} s) per step, the best clean rate then held ${CONFIRM_S} s; bare: req.proxy to the first callee only. All on loopback, one machine.`,
    steps,
    app_logs: proxyLogs,
    duration_s: round((performance.now() - started) / 1000, 1),
  });
} catch (err) {
  failure = err;
  result.error = err instanceof Error ? err.message : String(err);
  result.app_logs = proxyLogs;
  result.duration_s = round((performance.now() - started) / 1000, 1);
} finally {
  await cleanup();
}
if (run.interrupted) process.exit(130);
writeResult(result);
if (failure === undefined) {
  console.log(
    `highest clean rate (< ${CLEAN_PCT} % failed, >= ${PACE * 100} % of the pace): fslb ${String(result.real_cps_fslb)} calls/s, bare srf ${String(result.real_cps_bare)} calls/s, ` +
      `ratio ${String(result.real_cps_ratio)}; took ${String(result.duration_s)} s`,
  );
  console.log('(reservations lapsed by TTL: no CHANNEL_CREATE arrives for SIPp calls)');
} else {
  console.error(failure);
  process.exit(1);
}
