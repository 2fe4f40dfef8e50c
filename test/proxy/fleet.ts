/**
 * A fleet of real `fslb-proxy` processes for tests and benchmarks: N child processes started from
 * source (`packages/proxy/src/main.ts`, the way operators run the proxy), each connected to its
 * own drachtio-server double in this process, over one Redis, with simulated FreeSWITCH nodes
 * watched by one real monitor (in this process, fast timings).
 *
 * All proxies read one config file; their id, drachtio port and HTTP port come from the
 * environment overrides (FSLB_PROXY_ID, FSLB_DRACHTIO_PORT, FSLB_PROXY_HTTP_PORT), as replicas
 * sharing a config would. `start` resolves once every double has an authenticated connection
 * with routes `invite` and `options` and every proxy's /readyz says ready with every node
 * eligible. `close` kills every child itself (SIGTERM, then SIGKILL after a grace), never
 * through an npm/npx wrapper, and a process exit kills any child left.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { ClusterKeys, parseConfig } from '@fslb/shared';
import type { FsNode, FsNodeOptions } from '@fslb/fs-sim';
import type { Monitor } from '@fslb/monitor';
import {
  DrachtioDouble,
  type DrachtioDoubleOptions,
  type InjectedRequest,
  type SipMessage,
} from '../drachtio-double/index.js';
import { rawConfig, startMonitor, waitForNode } from '../monitor/support.js';
import { freeTcpPort } from '../support/net.js';
import { deletePrefix, liveSlots, testPrefix } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { memoryMiB, processCpuMicros } from '../support/proc-stat.js';
import { fromSource } from '../support/source-process.js';
import { LocalSims, WorkerSims, type NodeStats, type SimHost } from './sim-host.js';
import { testProxy } from './support.js';

const root = new URL('../..', import.meta.url).pathname;

export interface FleetOptions {
  /** The shared Redis: its URL for the components, a client for the harness' own reads. */
  redis: { url: string; client: Redis };
  /** Proxy processes, each with its own double. */
  proxies: number;
  /** Simulated nodes fs1..fsN. */
  nodes: number;
  /** Options of every simulated node (maxSessions, sessionsPerSecond...); heartbeat 500 ms by default. */
  sim?: Omit<FsNodeOptions, 'hostname' | 'coreUuid'>;
  /**
   * Where the simulators run: `local` (this thread; `fleet.nodes` gives the FsNodes) or `worker`
   * (a worker thread of their own, for bursts of hundreds of calls; see sim-host.ts).
   */
  sims?: 'local' | 'worker';
  /** Merged into the proxy section of the config (after the fleet's defaults). */
  proxy?: Record<string, unknown>;
  /** Merged into the monitor section (after test/monitor/support.ts' fast timings). */
  monitor?: Record<string, unknown>;
  /** Top-level sections of the config every component reads (pools, routes, limits). */
  config?: Record<string, unknown>;
  /**
   * Run the monitor as a child process from source (`fleet.monitorChild`), as in production,
   * instead of in this process (`fleet.monitor`): then this process' own work (simulators parsing
   * SIP, a load generator) never delays it. Benchmarks of timing use it.
   */
  monitorProcess?: boolean;
  /** Runs after the monitor reports every node up and before the proxies start (preload sessions...). */
  beforeProxies?: (sims: SimHost, fleet: { keys: ClusterKeys }) => Promise<void> | void;
  /** The children's log level; `warn` by default, so that only what is odd is printed. */
  logLevel?: string;
  /** What the children's stdout (their pino log) becomes; `capture` (the default) keeps warnings. */
  childStdout?: 'capture' | 'ignore';
  /** Extra Node.js flags for the children (`--cpu-prof`, `--max-old-space-size=...`). */
  execArgv?: readonly string[];
  /**
   * The Node.js arguments that run a proxy with a config file; from source by default
   * (`fromSource('packages/proxy/src/main.ts', '--config', file)`). Benchmarks pass the built JS.
   */
  proxyArgs?: (configFile: string) => string[];
  /** Options of every double (forward mode by default). */
  double?: DrachtioDoubleOptions;
  /** How long start may take before it fails, in ms (30 s by default). */
  startTimeoutMs?: number;
}

/**
 * Defaults of the fleet's proxy section: all INVITEs come from one source, so its limit is
 * raised, and bursts and rate steps go past the replica's default maxCps, so that is raised too.
 */
export const fleetProxyDefaults = {
  rateLimit: { perSourcePerSec: 1_000_000, burst: 1_000_000 },
  maxCps: 1_000_000,
};

/** One fslb-proxy child process and the double it is connected to. */
export class ProxyProcess {
  /** Log lines of level warn and above (JSON as the proxy wrote them), at most 200. */
  readonly warnings: string[] = [];
  #stderr = '';
  #exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly #exited: Promise<void>;
  readonly #killOnExit = (): void => {
    this.child.kill('SIGKILL');
  };

  constructor(
    readonly id: string,
    readonly child: ChildProcess,
    readonly double: DrachtioDouble,
    readonly httpPort: number,
  ) {
    process.on('exit', this.#killOnExit);
    this.#exited = once(child, 'exit').then(([code, signal]) => {
      this.#exit = { code: code as number | null, signal: signal as NodeJS.Signals | null };
      process.off('exit', this.#killOnExit);
    });
    child.stderr?.on('data', (d: Buffer) => (this.#stderr = (this.#stderr + d.toString()).slice(-8000)));
    let partial = '';
    child.stdout?.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (this.warnings.length < 200 && /"level":"(warn|error|fatal)"/.test(line)) this.warnings.push(line);
      }
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Whether the process has exited, and how. */
  get exit(): { code: number | null; signal: NodeJS.Signals | null } | undefined {
    return this.#exit;
  }

  /** The last 8 kB of stderr (a config error, a crash). */
  get stderr(): string {
    return this.#stderr;
  }

  /** GET /readyz: its status and JSON body. */
  async readyz(): Promise<{ status: number; body: ReadyBody }> {
    const res = await fetch(`http://127.0.0.1:${this.httpPort}/readyz`, {
      signal: AbortSignal.timeout(2000),
    });
    return { status: res.status, body: (await res.json()) as ReadyBody };
  }

  /** GET /metrics, as `name{labels}` -> value. */
  async metrics(): Promise<Map<string, number>> {
    const res = await fetch(`http://127.0.0.1:${this.httpPort}/metrics`, {
      signal: AbortSignal.timeout(2000),
    });
    const out = new Map<string, number>();
    for (const line of (await res.text()).split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const i = line.lastIndexOf(' ');
      out.set(line.slice(0, i), Number(line.slice(i + 1)));
    }
    return out;
  }

  /** Slots this proxy has taken in Redis so far: one by one, or ahead of time (advance slots). */
  async slotsTakenInRedis(): Promise<number> {
    const m = await this.metrics();
    return (
      (m.get('fslb_proxy_reservations_total{outcome="redis"}') ?? 0) +
      (m.get('fslb_proxy_reservations_total{outcome="advance"}') ?? 0)
    );
  }

  /** CPU time (user + system, every thread) the process has used, in µs, from /proc/<pid>/stat. */
  cpuMicros(): number {
    return processCpuMicros(this.pid);
  }

  /** Resident set size now and at its peak, in bytes, from /proc/<pid>/status. */
  memory(): { rss: number; peak: number } {
    const m = memoryMiB(this.pid);
    return m ? { rss: m.rss * 2 ** 20, peak: m.peak * 2 ** 20 } : { rss: NaN, peak: NaN };
  }

  /** Sends `signal` and waits for the exit; SIGKILL after `graceMs`. Idempotent. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
    if (this.#exit) return;
    this.child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs)));
    const done = await Promise.race([this.#exited.then(() => true), grace]);
    clearTimeout(timer);
    if (!done) {
      this.child.kill('SIGKILL');
      await this.#exited;
    }
  }

  /** Resolves when the process has exited. */
  exited(): Promise<void> {
    return this.#exited;
  }
}

/** What the proxy's /readyz answers (see FslbProxy.ready()). */
export interface ReadyBody {
  status: string;
  state?: string;
  drachtio?: string;
  view?: { source: string; ageMs: number | null; nodes: number; eligible: number };
  inFlight?: number;
  localSlots?: number;
}

export class ProxyFleet {
  /** What start set up, undone in reverse order by close. */
  #cleanup: (() => Promise<void> | void)[] = [];
  #closing: Promise<void> | undefined;
  #turn = 0;

  private constructor(
    readonly prefix: string,
    readonly keys: ClusterKeys,
    readonly sims: SimHost,
    /** The monitor, when it runs in this process (the default). */
    readonly monitor: Monitor | undefined,
    /** The monitor's process, with `monitorProcess`. */
    readonly monitorChild: ChildProcess | undefined,
    readonly proxies: readonly ProxyProcess[],
    readonly ids: readonly string[],
    readonly redis: Redis,
    readonly dir: string,
  ) {}

  /** The simulated nodes themselves, in id order (fs1 first); only when they run in this thread. */
  get nodes(): readonly FsNode[] {
    if (!(this.sims instanceof LocalSims)) throw new Error('the simulators run in a worker: use fleet.sims');
    return this.sims.nodes;
  }

  get doubles(): DrachtioDouble[] {
    return this.proxies.map((p) => p.double);
  }

  /**
   * Starts the simulators, the monitor (and waits until it has every node up), one double per
   * proxy, then the proxy processes (in parallel), and waits until all are ready. On failure
   * everything started is stopped before the error is thrown.
   */
  static async start(o: FleetOptions): Promise<ProxyFleet> {
    const prefix = testPrefix('fleet');
    const keys = new ClusterKeys(prefix);
    const timeoutMs = o.startTimeoutMs ?? 30_000;
    const dir = mkdtempSync(join(tmpdir(), 'fslb-fleet-'));
    const cleanup: (() => Promise<void> | void)[] = [
      () => rmSync(dir, { recursive: true, force: true }),
      async () => {
        await deletePrefix(o.redis.client, prefix);
      },
    ];
    const undo = async (): Promise<void> => {
      for (const f of cleanup.reverse()) await Promise.resolve(f()).catch(() => undefined);
    };
    try {
      const simOptions = { count: o.nodes, heartbeatMs: 500, ...o.sim };
      const sims = await (o.sims === 'worker' ? WorkerSims.start(simOptions) : LocalSims.start(simOptions));
      cleanup.push(() => sims.close());
      const ids = sims.nodes.map((_n, i) => `fs${i + 1}`);
      // test/monitor/support.ts' config (fast monitor timings), with the nodes wherever they run.
      const raw = {
        ...rawConfig({ redisUrl: o.redis.url, prefix, nodes: [], monitor: { ...o.monitor } }),
        nodes: sims.nodes.map((n, i) => ({
          id: ids[i],
          sip: `127.0.0.1:${n.sipPort}`,
          esl: { host: '127.0.0.1', port: n.eslPort, password: 'ClueCon' },
        })),
        ...o.config,
      };
      let monitor: Monitor | undefined;
      let monitorChild: ChildProcess | undefined;
      if (o.monitorProcess) {
        const monitorFile = join(dir, 'monitor.json');
        writeFileSync(monitorFile, JSON.stringify(raw));
        const child = spawn(
          process.execPath,
          fromSource('packages/monitor/src/main.ts', '--config', monitorFile),
          { cwd: root, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, FSLB_CONFIG: '' } },
        );
        monitorChild = child;
        const kill = (): void => void child.kill('SIGKILL');
        process.on('exit', kill);
        cleanup.push(async () => {
          process.off('exit', kill);
          if (child.exitCode !== null || child.signalCode !== null) return;
          const exited = once(child, 'exit');
          child.kill('SIGKILL');
          await exited;
        });
      } else {
        const m = await startMonitor(parseConfig(raw, {}));
        monitor = m;
        cleanup.push(() => m.close());
      }
      for (const id of ids) {
        await waitForNode(
          o.redis.client,
          keys,
          id,
          (h) => h.state === 'up' && Number(h.maxSessions) > 0,
          'up',
          timeoutMs,
        );
      }
      await o.beforeProxies?.(sims, { keys });

      const doubles = await Promise.all(
        Array.from({ length: o.proxies }, () =>
          DrachtioDouble.start({ waitTimeoutMs: timeoutMs, ...o.double }),
        ),
      );
      for (const dx of doubles) cleanup.push(() => dx.close());
      // One file for every replica; id, drachtio port and HTTP port come from the environment.
      const file = join(dir, 'proxy.json');
      const proxySection = {
        ...testProxy,
        drachtio: { host: '127.0.0.1', port: doubles[0]?.port ?? 1, secret: 'cymru' },
        ...fleetProxyDefaults,
        ...o.proxy,
      };
      writeFileSync(
        file,
        JSON.stringify({ ...raw, proxy: proxySection, log: { level: o.logLevel ?? 'warn' } }),
      );

      const proxies: ProxyProcess[] = [];
      for (const [i, dx] of doubles.entries()) {
        const id = `proxy-${i + 1}`;
        const httpPort = await freeTcpPort();
        const child = spawn(
          process.execPath,
          [
            ...(o.execArgv ?? []),
            ...(o.proxyArgs?.(file) ?? fromSource('packages/proxy/src/main.ts', '--config', file)),
          ],
          {
            cwd: root,
            stdio: ['ignore', o.childStdout === 'ignore' ? 'ignore' : 'pipe', 'pipe'],
            env: {
              ...process.env,
              FSLB_CONFIG: '',
              FSLB_PROXY_ID: id,
              FSLB_DRACHTIO_PORT: String(dx.port),
              FSLB_PROXY_HTTP_PORT: String(httpPort),
            },
          },
        );
        const p = new ProxyProcess(id, child, dx, httpPort);
        proxies.push(p);
        cleanup.push(() => p.stop('SIGKILL'));
      }
      const fleet = new ProxyFleet(
        prefix,
        keys,
        sims,
        monitor,
        monitorChild,
        proxies,
        ids,
        o.redis.client,
        dir,
      );
      await Promise.all(proxies.map((p) => fleet.#ready(p, timeoutMs)));
      fleet.#cleanup = cleanup;
      return fleet;
    } catch (err) {
      await undo();
      throw err;
    }
  }

  async #ready(p: ProxyProcess, timeoutMs: number): Promise<void> {
    const alive = (): void => {
      if (p.exit) throw new Error(`${p.id} exited (${JSON.stringify(p.exit)}): ${p.stderr}`);
    };
    await Promise.race([p.double.routed(['invite', 'options'], timeoutMs), p.exited().then(() => alive())]);
    alive();
    await waitFor(
      `${p.id} ready with ${this.ids.length} eligible nodes`,
      async () => {
        alive();
        const r = await p.readyz();
        return r.status === 200 && r.body.view?.eligible === this.ids.length && r.body.view.source === 'live';
      },
      { timeoutMs, intervalMs: 50 },
    );
    // Its presence key names the view it announced (written every 2 s; the first at start).
    await waitFor(
      `${p.id} presence key`,
      async () => {
        const v = await this.redis.get(this.keys.proxy(p.id));
        return v !== null && (JSON.parse(v) as { nodes?: number }).nodes !== undefined;
      },
      { timeoutMs, intervalMs: 50 },
    );
  }

  /** Injects an INVITE with a G.711 offer on the next double in turn (round robin). */
  invite(headers?: Record<string, string>, more: { toUser?: string } = {}): InjectedRequest {
    const dx = this.proxies[this.#turn++ % this.proxies.length]?.double;
    if (!dx) throw new Error('no proxy in the fleet');
    return dx.inject({ method: 'INVITE', sdp: true, ...(headers ? { headers } : {}), ...more });
  }

  /** The node id whose SIP port a destination (`sip:127.0.0.1:port`) names. */
  nodeOf(destination: string): string | undefined {
    const port = Number(/:(\d+)(?:[;>]|$)/.exec(destination)?.[1]);
    const i = this.sims.nodes.findIndex((n) => n.sipPort === port);
    return i < 0 ? undefined : this.ids[i];
  }

  /** What every simulated node lived through (calls, peak sessions, refusals). */
  stats(): Promise<NodeStats[]> {
    return this.sims.stats();
  }

  /**
   * Calls' live reservations per node (members of `<prefix>:resv:<id>` that have not lapsed),
   * advance slots that proxies hold ahead of time left out.
   */
  async reservations(): Promise<Record<string, number>> {
    // Live ones: a lapsed member stays until the node's owner sweeps it at its next write.
    const [sec, usec] = await this.redis.time();
    const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    const counts = await Promise.all(this.ids.map((id) => liveSlots(this.redis, this.keys.resv(id), now)));
    return Object.fromEntries(this.ids.map((id, i) => [id, counts[i]?.calls ?? 0]));
  }

  /** `sessions` and `maxSessions` of every node's record in Redis. */
  async records(): Promise<Record<string, { sessions: number; maxSessions: number }>> {
    const out: Record<string, { sessions: number; maxSessions: number }> = {};
    for (const id of this.ids) {
      const h = await this.redis.hmget(this.keys.node(id), 'sessions', 'maxSessions');
      out[id] = { sessions: Number(h[0]), maxSessions: Number(h[1]) };
    }
    return out;
  }

  /**
   * Hangs up every connected call among `requests` (BYE from the double, as the caller), then
   * waits until every node's session count (simulator and Redis record) is back to `baseline`
   * (default 0 each) and no reservation is left.
   */
  async hangupAll(
    requests: readonly InjectedRequest[],
    baseline?: readonly number[],
    timeoutMs = 15_000,
  ): Promise<void> {
    await Promise.all(
      requests.filter((r) => r.call?.state === 'confirmed').map((r) => r.hangup().catch(() => 0)),
    );
    const want = baseline ?? this.ids.map(() => 0);
    await waitFor(
      'every node back to its baseline sessions and no reservation left',
      async () => {
        const sim = (await this.sims.stats()).map((n) => n.sessions);
        const recs = await this.records();
        const resv = await this.reservations();
        const ok =
          sim.every((s, i) => s === want[i]) &&
          this.ids.every((id, i) => recs[id]?.sessions === want[i]) &&
          Object.values(resv).every((n) => n === 0);
        return ok || undefined;
      },
      { timeoutMs, intervalMs: 20 },
    );
  }

  /**
   * A counter of every proxy's /metrics summed by one label, e.g.
   * `counterBy('fslb_proxy_reservations_total', 'outcome')` -> { redis: 30, full: 15 }.
   */
  async counterBy(name: string, label: string): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    const re = new RegExp(`^${name}\\{(?:.*,)?${label}="([^"]*)"`);
    for (const m of await Promise.all(this.proxies.map((p) => p.metrics()))) {
      for (const [key, value] of m) {
        const v = re.exec(key)?.[1];
        if (v !== undefined) out[v] = (out[v] ?? 0) + value;
      }
    }
    return out;
  }

  /** Warning lines every proxy logged so far. */
  warnings(): string[] {
    return this.proxies.flatMap((p) => p.warnings.map((w) => `${p.id}: ${w}`));
  }

  /**
   * Stops every proxy (SIGTERM, SIGKILL after `graceMs`), then the doubles, the monitor and the
   * simulators, and deletes the fleet's keys. Idempotent.
   */
  close(graceMs = 5000): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.all(this.proxies.map((p) => p.stop('SIGTERM', graceMs)));
      for (const f of this.#cleanup.reverse()) await Promise.resolve(f()).catch(() => undefined);
    })();
    return this.#closing;
  }
}

/** How one injected INVITE ended, from what the double saw. */
export interface InviteOutcome {
  kind: 'connected' | 'proxy-refused' | 'failed' | 'pending';
  /** The final status the caller got (0 while pending). */
  status: number;
  reason: string;
  /** The proxy's own answer (a refusal), when it gave one. */
  proxyAnswer?: SipMessage;
  /** Final statuses of the targets tried, in order (the `continue`s). */
  targetStatuses: number[];
  /** Targets that answered 503 (refused for capacity, pause, shutdown...). */
  refusedByNode: number;
  /** The node (by destination) that set up the call. */
  destination?: string;
}

export function outcomeOf(req: InjectedRequest): InviteOutcome {
  const final = req.finalResponse;
  const own = req.responses.find((r) => r.status >= 200);
  const cmd = req.proxyCommands[0];
  const targetStatuses = cmd ? cmd.reply.continues.map((m) => m.status) : [];
  const refusedByNode = targetStatuses.filter((s) => s === 503).length;
  const common = { targetStatuses, refusedByNode };
  if (!final) return { kind: 'pending', status: 0, reason: '', ...common };
  if (own)
    return {
      kind: 'proxy-refused',
      status: own.status,
      reason: own.reason,
      proxyAnswer: own.message,
      ...common,
    };
  if (req.call) {
    return {
      kind: 'connected',
      status: final.status,
      reason: final.reason,
      destination: req.call.destination,
      ...common,
    };
  }
  return { kind: 'failed', status: final.status, reason: final.reason, ...common };
}

/** Resolves when every request has a final response for its caller (polled; no per-request timers). */
export function allFinal(requests: readonly InjectedRequest[], timeoutMs = 20_000): Promise<true> {
  return waitFor(
    `final responses to ${requests.length} requests`,
    () =>
      requests.every(
        (r) => r.finalResponse !== undefined && (r.finalResponse.status !== 200 || r.call !== undefined),
      ) || undefined,
    { timeoutMs, intervalMs: 10 },
  );
}
