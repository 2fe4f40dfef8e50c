/**
 * Memory under a steady load: one fslb-proxy process and one fslb-monitor process (built JS, as
 * operators run them; default timings and log level) with 100 simulated nodes, for
 * BENCH_SOAK_S seconds (600 by default, the issue's ten minutes).
 *
 * - Calls: SIPp (test/e2e/sipp/uac-contact.xml) at BENCH_SOAK_CPS (50) calls a second through a
 *   real drachtio-server and the proxy to the nodes, each held BENCH_SOAK_HOLD_MS (4000) before
 *   SIPp's BYE, so about rate x hold calls are up at any time. Every call costs the proxy its whole
 *   INVITE path (a reservation in Redis included) and the monitor real CHANNEL_CREATE /
 *   CHANNEL_DESTROY events and the settling of the call's reservation.
 * - Nodes: 100 fs-sim nodes in a worker thread of this process, HEARTBEAT every 20 s as
 *   FreeSWITCH sends it (the monitor probes each every second anyway).
 * - Every 5 s: each process' RSS (/proc/<pid>/status) and V8 heap (its /metrics).
 *
 * Reported: the final RSS of each, and their growth: the highest RSS of the second half of the
 * run against the highest of the first, in MB per hour (RSS rises and falls with V8's collection
 * cycle, whose period is about as long as a half: a slope fitted over a half swings with the
 * phase); the least-squares slopes over the second half are given beside it.
 * `rss_growth_mb_per_hour` is the larger of the two processes' growth.
 *
 * Needs drachtio-server (FSLB_DRACHTIO_BIN or `drachtio` on PATH) and `sipp`; without them the
 * figures are null with the reason. Writes bench/results/soak.json and .md: proxy_rss_mb,
 * monitor_rss_mb, rss_growth_mb_per_hour, and soak_calls_failed_pct (the calls SIPp saw fail: a
 * soak whose calls fail is not measuring a proxy at work; their logs are then kept).
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { ClusterKeys } from '@fslb/shared';
import { WorkerSims } from '../test/proxy/sim-host.js';
import {
  drachtioBin,
  sippBin,
  startDrachtioServer,
  type RealDrachtio,
} from '../test/support/drachtio-server.js';
import { freeTcpPort, freeUdpPort } from '../test/support/net.js';
import { childPids, memoryMiB, processCpuMicros } from '../test/support/proc-stat.js';
import { testPrefix } from '../test/support/redis.js';
import { waitFor } from '../test/support/wait.js';
import { Children } from './support/children.js';
import { startBenchRedis } from './support/redis.js';
import { machine, round, slope, table, writeBench } from './support/results.js';
import { childEnv, entryPoint } from './support/runtime.js';
import { runUac, type UacRun } from './support/sipp-run.js';

const DURATION_S = Number(process.env.BENCH_SOAK_S ?? 600);
const CPS = Number(process.env.BENCH_SOAK_CPS ?? 50);
const HOLD_MS = Number(process.env.BENCH_SOAK_HOLD_MS ?? 4000);
const NODES = 100;
const SAMPLE_MS = 5000;
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FIGURES = ['proxy_rss_mb', 'monitor_rss_mb', 'rss_growth_mb_per_hour', 'soak_calls_failed_pct'];

interface Sample {
  t_s: number;
  proxy_rss_mb: number;
  monitor_rss_mb: number;
  /** V8 heap in use, then its size (what V8 holds from the system), then memory outside it (Buffers). */
  proxy_heap_mb: number | null;
  proxy_heap_total_mb: number | null;
  proxy_external_mb: number | null;
  monitor_heap_mb: number | null;
  monitor_heap_total_mb: number | null;
  monitor_external_mb: number | null;
}

const started = performance.now();
const loadAtStart = round(loadavg()[0] ?? NaN, 2);
const drachtio = drachtioBin();
const sipp = sippBin();
const skip =
  drachtio === undefined
    ? 'no drachtio-server: set FSLB_DRACHTIO_BIN to its binary or put `drachtio` on PATH'
    : sipp === undefined
      ? 'no SIPp: set FSLB_SIPP_BIN or put `sipp` (Debian package sip-tester) on PATH'
      : undefined;
if (skip !== undefined) {
  console.log(`soak skipped: ${skip}`);
  writeBench(
    'soak',
    {
      machine: machine(),
      date: new Date().toISOString(),
      skipped: skip,
      ...Object.fromEntries(FIGURES.map((k) => [k, null])),
      notes: Object.fromEntries(FIGURES.map((k) => [k, skip])),
    },
    `## soak: skipped\n\n${skip}`,
  );
  process.exit(0);
}

/** V8 heap in use and its size, and external memory (MB), from a process' /metrics (prom-client's defaults). */
async function heapMb(
  port: number,
): Promise<{ used: number | null; total: number | null; external: number | null }> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(4000) });
    const text = await r.text();
    const read = (name: string): number | null => {
      const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
      return m ? round(Number(m[1]) / 2 ** 20, 2) : null;
    };
    return {
      used: read('nodejs_heap_size_used_bytes'),
      total: read('nodejs_heap_size_total_bytes'),
      external: read('nodejs_external_memory_bytes'),
    };
  } catch {
    // A slow answer loses this sample's heap figures only.
    return { used: null, total: null, external: null };
  }
}

const children = new Children();
const work = mkdtempSync(join(tmpdir(), 'fslb-soak-'));
const samples: Sample[] = [];
/** What the run leaves for the report (set inside the try). */
interface RunState {
  stopping: boolean;
  cpu: { proxy: number; monitor: number; drachtio: number };
  logs: { proxy: string; monitor: string };
  uac: UacRun | undefined;
  runtime: { proxy: string; monitor: string };
}
const run: RunState = {
  stopping: false,
  cpu: { proxy: 0, monitor: 0, drachtio: 0 },
  logs: { proxy: '', monitor: '' },
  uac: undefined,
  runtime: { proxy: '', monitor: '' },
};
const server = await startBenchRedis(children);
const redis = new Redis(server.url);
let sims: WorkerSims | undefined;
let drachtioServer: RealDrachtio | undefined;
try {
  const prefix = testPrefix('soak');
  const keys = new ClusterKeys(prefix);
  sims = await WorkerSims.start({ count: NODES, heartbeatMs: 20_000, maxSessions: 1000 });
  drachtioServer = await startDrachtioServer(drachtio as string, await freeUdpPort());
  const appPort = String(drachtioServer.appPort);
  const drachtioPid = childPids(process.pid, (c) => c.includes(`--port ${appPort} `))[0];
  if (drachtioPid === undefined) throw new Error('cannot find the drachtio-server process');
  children.adopt(drachtioPid);
  const proxyEntry = entryPoint('proxy');
  const monitorEntry = entryPoint('monitor');
  run.runtime = { proxy: proxyEntry.runtime, monitor: monitorEntry.runtime };
  const ports = { monitor: await freeTcpPort(), proxy: await freeTcpPort() };
  const file = join(work, 'fslb.json');
  writeFileSync(
    file,
    JSON.stringify({
      redis: { url: server.url },
      prefix,
      nodes: sims.nodes.map((n, i) => ({
        id: `fs${i + 1}`,
        sip: `127.0.0.1:${n.sipPort}`,
        esl: { host: '127.0.0.1', port: n.eslPort, password: 'ClueCon' },
      })),
      monitor: { id: 'soak-monitor', http: { host: '127.0.0.1', port: ports.monitor } },
      proxy: {
        id: 'soak-proxy',
        drachtio: { host: '127.0.0.1', port: drachtioServer.appPort, secret: drachtioServer.secret },
        http: { host: '127.0.0.1', port: ports.proxy },
        // Every INVITE comes from SIPp's one address.
        rateLimit: { perSourcePerSec: 1_000_000, burst: 1_000_000 },
      },
    }),
  );
  const start = (name: 'proxy' | 'monitor', args: string[]): number => {
    const log = join(work, `${name}.log`);
    run.logs[name] = log;
    const out = openSync(log, 'w');
    const child = children.spawn(process.execPath, args, {
      cwd: ROOT,
      stdio: ['ignore', out, out],
      env: childEnv(),
    });
    closeSync(out);
    child.once('exit', (code, signal) => {
      if (!run.stopping)
        console.error(`${name} exited (${code ?? signal}): ${readFileSync(log, 'utf8').slice(-1500)}`);
    });
    if (child.pid === undefined) throw new Error(`${name} did not start`);
    return child.pid;
  };

  const monitor = start('monitor', monitorEntry.args('--config', file));
  for (let i = 1; i <= NODES; i++) {
    await waitFor(`fs${i} up`, async () => (await redis.hget(keys.node(`fs${i}`), 'state')) === 'up', {
      timeoutMs: 60_000,
      intervalMs: 50,
    });
  }
  const proxy = start('proxy', proxyEntry.args('--config', file));
  await waitFor(
    'proxy ready with every node',
    async () => {
      const r = await fetch(`http://127.0.0.1:${ports.proxy}/readyz`, { signal: AbortSignal.timeout(1000) });
      const body = (await r.json()) as { view?: { eligible?: number } };
      return r.status === 200 && body.view?.eligible === NODES;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  console.log(
    `soak: ${NODES} nodes, ${CPS} calls/s held ${HOLD_MS} ms, ${DURATION_S} s; proxy ${proxyEntry.runtime}; monitor ${monitorEntry.runtime}`,
  );

  const cpu0 = {
    proxy: processCpuMicros(proxy),
    monitor: processCpuMicros(monitor),
    drachtio: processCpuMicros(drachtioPid),
  };
  const t0 = performance.now();
  const sample = async (): Promise<void> => {
    const p = memoryMiB(proxy);
    const m = memoryMiB(monitor);
    if (!p || !m) throw new Error(`the ${p ? 'monitor' : 'proxy'} is gone: see its log`);
    const ph = await heapMb(ports.proxy);
    const mh = await heapMb(ports.monitor);
    samples.push({
      t_s: round((performance.now() - t0) / 1000),
      proxy_rss_mb: round(p.rss),
      monitor_rss_mb: round(m.rss),
      proxy_heap_mb: ph.used,
      proxy_heap_total_mb: ph.total,
      proxy_external_mb: ph.external,
      monitor_heap_mb: mh.used,
      monitor_heap_total_mb: mh.total,
      monitor_external_mb: mh.external,
    });
    const last = samples[samples.length - 1];
    if (last && samples.length % 12 === 0)
      console.log(
        `  ${last.t_s} s: proxy RSS ${last.proxy_rss_mb} MB (heap ${last.proxy_heap_mb ?? '?'}), monitor RSS ${last.monitor_rss_mb} MB (heap ${last.monitor_heap_mb ?? '?'})`,
      );
  };
  const uac = runUac(children, {
    sipp: sipp as string,
    scenario: join(ROOT, 'test/e2e/sipp/uac-contact.xml'),
    target: `127.0.0.1:${drachtioServer.sipPort}`,
    port: await freeUdpPort(),
    rate: CPS,
    calls: CPS * DURATION_S,
    holdMs: HOLD_MS,
    dir: work,
  });
  const caller = { done: false };
  void uac.then(() => (caller.done = true));
  for (let next = 0; next <= DURATION_S * 1000 && !caller.done; next += SAMPLE_MS) {
    await new Promise((r) => setTimeout(r, Math.max(0, next - (performance.now() - t0))));
    await sample();
  }
  run.cpu = {
    proxy: processCpuMicros(proxy) - cpu0.proxy,
    monitor: processCpuMicros(monitor) - cpu0.monitor,
    drachtio: processCpuMicros(drachtioPid) - cpu0.drachtio,
  };
  run.uac = await uac;
} finally {
  run.stopping = true;
  await children.stopAll();
  await drachtioServer?.close();
  await sims?.close();
  redis.disconnect();
  await server.close();
}

const warnings = (log: string): string[] =>
  (log ? readFileSync(log, 'utf8') : '').split('\n').filter((l) => /"level":"(warn|error|fatal)"/.test(l));
const proxyWarnings = warnings(run.logs.proxy);
const monitorWarnings = warnings(run.logs.monitor);
// A run where calls failed keeps its logs for the one who reads why (BENCH_KEEP_WORK: always).
const failedCalls = run.uac.attempted - run.uac.successful;
if (failedCalls > 0 || process.env.BENCH_KEEP_WORK) {
  console.log(`kept the proxy's and the monitor's logs in ${work} (${failedCalls} calls failed)`);
} else {
  rmSync(work, { recursive: true, force: true });
}

const second = samples.filter((s) => s.t_s >= DURATION_S / 2);
const perHour = (f: (s: Sample) => number | null): number | null => {
  const pts = second.flatMap((s) => {
    const y = f(s);
    return y === null ? [] : [{ x: s.t_s / 3600, y }];
  });
  const k = slope(pts);
  return Number.isFinite(k) ? round(k, 1) : null;
};
const last = samples[samples.length - 1];
const first = samples[0];
const growth = {
  proxy_rss: perHour((s) => s.proxy_rss_mb),
  monitor_rss: perHour((s) => s.monitor_rss_mb),
  proxy_heap: perHour((s) => s.proxy_heap_mb),
  monitor_heap: perHour((s) => s.monitor_heap_mb),
  proxy_heap_total: perHour((s) => s.proxy_heap_total_mb),
  monitor_heap_total: perHour((s) => s.monitor_heap_total_mb),
  proxy_external: perHour((s) => s.proxy_external_mb),
  monitor_external: perHour((s) => s.monitor_external_mb),
};
const peak = (f: (s: Sample) => number): number => Math.max(...samples.map(f));
/**
 * Growth as a leak shows it: the highest RSS of the second half against the highest of the
 * first, per hour. RSS follows V8's collection cycle (the proxy's went from about 80 to 112 MB and
 * back every 150 s or so), as long as the half over which a slope is fitted: a slope read 100 MB/h
 * in one run and -68 in another of the same code. A peak that keeps rising is a leak.
 */
const halfS = DURATION_S / 2;
const peakGrowth = (f: (s: Sample) => number): number | null => {
  const a = samples.filter((s) => s.t_s < halfS).map(f);
  const b = samples.filter((s) => s.t_s >= halfS).map(f);
  if (a.length === 0 || b.length === 0) return null;
  return round(((Math.max(...b) - Math.max(...a)) * 3600) / halfS, 1);
};
const peakGrowthPerHour = {
  proxy_rss: peakGrowth((s) => s.proxy_rss_mb),
  monitor_rss: peakGrowth((s) => s.monitor_rss_mb),
};
const uac = run.uac;
const calls = { attempted: uac.attempted, successful: uac.successful, failures: uac.failures };
const failedPct = uac.attempted > 0 ? round((100 * failedCalls) / uac.attempted, 2) : null;
const notes: Record<string, string> = {};
if (failedPct !== null && failedPct > 0.1) {
  notes.soak_calls_failed_pct =
    `${failedCalls} of ${calls.attempted} calls failed (${JSON.stringify(calls.failures)}); ` +
    `the first warnings logged: ${[...proxyWarnings, ...monitorWarnings].slice(0, 2).join(' ') || 'none'}`;
}
if ((peakGrowthPerHour.proxy_rss ?? 0) > 20 || (peakGrowthPerHour.monitor_rss ?? 0) > 20) {
  notes.rss_growth_mb_per_hour =
    `the highest RSS of the second half against the first: proxy ${peakGrowthPerHour.proxy_rss} MB/h, monitor ${peakGrowthPerHour.monitor_rss} MB/h; ` +
    `least-squares slopes over the second half: the proxy's RSS ${growth.proxy_rss} MB/h (V8 heap size ${growth.proxy_heap_total}, external ${growth.proxy_external}), ` +
    `the monitor's ${growth.monitor_rss} MB/h (heap size ${growth.monitor_heap_total}, external ${growth.monitor_external}); ` +
    `${failedCalls} of ${calls.attempted} calls failed. See the samples in soak.json.`;
}
const result = {
  machine: machine(),
  date: new Date().toISOString(),
  load_average_1m: { start: loadAtStart, end: round(loadavg()[0] ?? NaN, 2) },
  notes,
  soak_calls_failed_pct: failedPct,
  proxy_rss_mb: last?.proxy_rss_mb ?? null,
  monitor_rss_mb: last?.monitor_rss_mb ?? null,
  rss_growth_mb_per_hour:
    peakGrowthPerHour.proxy_rss === null || peakGrowthPerHour.monitor_rss === null
      ? null
      : Math.max(peakGrowthPerHour.proxy_rss, peakGrowthPerHour.monitor_rss),
  settings: { nodes: NODES, cps: CPS, hold_ms: HOLD_MS, duration_s: DURATION_S, sample_ms: SAMPLE_MS },
  runtime: run.runtime,
  peak_growth_mb_per_hour: peakGrowthPerHour,
  growth_mb_per_hour_second_half: growth,
  peak: { proxy_rss_mb: peak((s) => s.proxy_rss_mb), monitor_rss_mb: peak((s) => s.monitor_rss_mb) },
  calls,
  cpu_us_per_call: {
    proxy: round(run.cpu.proxy / Math.max(1, uac.attempted)),
    monitor: round(run.cpu.monitor / Math.max(1, uac.attempted)),
    drachtio_server: round(run.cpu.drachtio / Math.max(1, uac.attempted)),
  },
  warnings: {
    proxy: proxyWarnings.length,
    monitor: monitorWarnings.length,
    first: [...proxyWarnings, ...monitorWarnings].slice(0, 3),
  },
  samples,
  duration_s: round((performance.now() - started) / 1000),
};
writeBench(
  'soak',
  result,
  `## soak: one proxy and one monitor, ${NODES} nodes, ${CPS} calls/s for ${round(DURATION_S / 60)} min

SIPp -> drachtio-server -> fslb-proxy -> ${NODES} simulated nodes, calls held ${HOLD_MS / 1000} s (about ${(CPS * HOLD_MS) / 1000} up at once); proxy and monitor ${run.runtime.proxy.startsWith('built') ? 'from the built JS' : 'from source (the build failed)'} with default settings and log level. ${calls.successful} of ${calls.attempted} calls succeeded${Object.keys(calls.failures).length > 0 ? ` (failed: ${JSON.stringify(calls.failures)})` : ''}. Growth is the highest RSS of the second half against the highest of the first, per hour (RSS rises and falls with V8's collections); the least-squares slopes over the second half are beside it.

${table(
  [
    'process',
    'RSS first / final / peak MB',
    'RSS growth MB/h: peaks, slope',
    'V8 heap in use first / final MB',
    'growth MB/h: heap in use, heap size, external',
    'CPU µs per call',
  ],
  [
    [
      'fslb-proxy',
      `${first?.proxy_rss_mb ?? '—'} / ${last?.proxy_rss_mb ?? '—'} / ${result.peak.proxy_rss_mb}`,
      `${peakGrowthPerHour.proxy_rss}, ${growth.proxy_rss}`,
      `${first?.proxy_heap_mb ?? '—'} / ${last?.proxy_heap_mb ?? '—'}`,
      `${growth.proxy_heap}, ${growth.proxy_heap_total}, ${growth.proxy_external}`,
      result.cpu_us_per_call.proxy,
    ],
    [
      'fslb-monitor',
      `${first?.monitor_rss_mb ?? '—'} / ${last?.monitor_rss_mb ?? '—'} / ${result.peak.monitor_rss_mb}`,
      `${peakGrowthPerHour.monitor_rss}, ${growth.monitor_rss}`,
      `${first?.monitor_heap_mb ?? '—'} / ${last?.monitor_heap_mb ?? '—'}`,
      `${growth.monitor_heap}, ${growth.monitor_heap_total}, ${growth.monitor_external}`,
      result.cpu_us_per_call.monitor,
    ],
  ],
)}

Warnings logged: proxy ${proxyWarnings.length}, monitor ${monitorWarnings.length}. Load average ${result.load_average_1m.start} at the start, ${result.load_average_1m.end} at the end. Took ${result.duration_s} s.`,
);
console.log(
  `soak: proxy RSS ${result.proxy_rss_mb} MB (growth: peaks ${peakGrowthPerHour.proxy_rss} MB/h, slope ${growth.proxy_rss} MB/h, heap ${growth.proxy_heap} MB/h), monitor RSS ${result.monitor_rss_mb} MB (growth: peaks ${peakGrowthPerHour.monitor_rss} MB/h, slope ${growth.monitor_rss} MB/h, heap ${growth.monitor_heap} MB/h); ` +
    `${calls.successful}/${calls.attempted} calls; ${result.duration_s} s`,
);
