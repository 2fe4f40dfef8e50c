/**
 * The fault suite's cluster, every part a process of its own so that a fault can be dealt to
 * it alone: simulated FreeSWITCH nodes (one fs-sim process each, so that SIGSTOP freezes one
 * node and SIGKILL crashes it), monitor processes, and proxy processes (test/proxy/fleet.ts'
 * ProxyProcess) each beside a drachtio-server double in forward mode, over the test's own Redis.
 * `load()` sends a steady stream of INVITEs through the doubles; the nodes end each call with a
 * BYE after `holdMs`. Everything is on loopback, and every process started here is killed here.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { Redis, type Cluster } from 'ioredis';
import { ClusterKeys } from '@fslb/shared';
import { DrachtioDouble, type InjectedRequest } from '../drachtio-double/index.js';
import { fastMonitor } from '../monitor/support.js';
import { fleetProxyDefaults, outcomeOf, ProxyProcess } from '../proxy/fleet.js';
import { testProxy } from '../proxy/support.js';
import { freeTcpPort } from '../support/net.js';
import { testPrefix } from '../support/redis.js';
import { fromSource } from '../support/source-process.js';
import { waitFor } from '../support/wait.js';

const root = new URL('../..', import.meta.url).pathname;

/**
 * The monitors' timings in the fault suite: quick, but with the default probe timeout (1.5 s),
 * which a busy 2-core machine running a dozen processes does not trip by itself, so that every
 * down the suite sees is one it caused. Detection windows: a crash at once (the socket closes), a
 * stall within probe interval + timeout (1.75 s), a takeover within the lease (2 s) + a claim round.
 */
export const faultMonitor = {
  ...fastMonitor,
  probeIntervalMs: 250,
  probeTimeoutMs: 1500,
  leaseTtlMs: 2000,
  claimIntervalMs: 300,
};

/** A child process whose output (the last 2,000 lines) the test can search. */
export class Proc {
  readonly lines: string[] = [];
  #exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly #exited: Promise<void>;
  readonly #killOnExit = (): void => void this.child.kill('SIGKILL');

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    process.on('exit', this.#killOnExit);
    this.#exited = once(child, 'exit').then(([code, signal]) => {
      this.#exit = { code: code as number | null, signal: signal as NodeJS.Signals | null };
      process.off('exit', this.#killOnExit);
    });
    const keep = (stream: NodeJS.ReadableStream | null): void => {
      let partial = '';
      stream?.on('data', (d: Buffer) => {
        const parts = (partial + d.toString()).split('\n');
        partial = parts.pop() ?? '';
        this.lines.push(...parts);
        if (this.lines.length > 2000) this.lines.splice(0, this.lines.length - 2000);
      });
    };
    keep(child.stdout);
    keep(child.stderr);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get exit(): { code: number | null; signal: NodeJS.Signals | null } | undefined {
    return this.#exit;
  }

  signal(sig: NodeJS.Signals): void {
    if (!this.#exit) this.child.kill(sig);
  }

  /** Sends `sig`, waits for the exit, SIGKILL after `graceMs`. Idempotent. */
  async stop(sig: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
    if (this.#exit) return;
    this.child.kill(sig);
    const t = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.#exited;
    clearTimeout(t);
  }

  exited(): Promise<void> {
    return this.#exited;
  }

  /** Writes one command line to the process' stdin (fs-sim's --control-stdin). */
  command(line: string): void {
    this.child.stdin?.write(`${line}\n`);
  }

  /** Lines matching `re`. */
  grep(re: RegExp): string[] {
    return this.lines.filter((l) => re.test(l));
  }
}

/** One simulated FreeSWITCH node in a process of its own. */
export interface SimProc {
  id: string;
  eslPort: number;
  sipPort: number;
  proc: Proc;
}

export interface RigOptions {
  /** Where every component connects: a URL, or a redis section (Sentinel, Cluster) for the config file. */
  redis: { url: string } | { section: Record<string, unknown> };
  nodes: number;
  monitors: number;
  proxies: number;
  /** Calls end with a BYE from the node after this long (300 ms by default). */
  holdMs?: number;
  maxSessions?: number;
  monitor?: Record<string, unknown>;
  proxy?: Record<string, unknown>;
  /** Top-level sections every component reads (pools, routes, limits). */
  config?: Record<string, unknown>;
  /** Children's log level (info by default: the suite reads their repair lines). */
  logLevel?: string;
}

/** One INVITE of the load, with when it was sent. */
export interface LoadCall {
  at: number;
  req: InjectedRequest;
}

export class FaultRig {
  /** What the test's end undoes, in reverse: the very list `start` registered with the test. */
  #cleanup: (() => Promise<void> | void)[] = [];
  #turn = 0;

  private constructor(
    readonly prefix: string,
    readonly keys: ClusterKeys,
    readonly client: Redis | Cluster,
    readonly nodes: SimProc[],
    readonly monitors: Proc[],
    readonly proxies: ProxyProcess[],
    readonly configFile: string,
  ) {}

  /** Starts the cluster and waits until every proxy routes to every node; stopped when the test ends. */
  static async start(t: TestContext, o: RigOptions, client: Redis | Cluster): Promise<FaultRig> {
    const prefix = testPrefix('fault');
    const keys = new ClusterKeys(prefix, { sharded: 'section' in o.redis && 'cluster' in o.redis.section });
    const dir = mkdtempSync(join(tmpdir(), 'fslb-faults-'));
    const cleanup: (() => Promise<void> | void)[] = [() => rmSync(dir, { recursive: true, force: true })];
    t.after(async () => {
      for (const f of cleanup.reverse()) await Promise.resolve(f()).catch(() => undefined);
    });

    const nodes: SimProc[] = [];
    for (let i = 0; i < o.nodes; i++) {
      const sim = await startSim(`fs${i + 1}`, o.holdMs ?? 300, o.maxSessions ?? 100);
      cleanup.push(() => sim.proc.stop('SIGKILL'));
      nodes.push(sim);
    }
    const configFile = join(dir, 'fslb.json');
    const redisSection = 'url' in o.redis ? { url: o.redis.url, maxRetryDelayMs: 200 } : o.redis.section;
    const doubles = await Promise.all(Array.from({ length: o.proxies }, () => DrachtioDouble.start()));
    for (const dx of doubles) cleanup.push(() => dx.close());
    writeFileSync(
      configFile,
      JSON.stringify({
        redis: redisSection,
        prefix,
        nodes: nodes.map((n) => ({
          id: n.id,
          sip: `127.0.0.1:${n.sipPort}`,
          esl: { host: '127.0.0.1', port: n.eslPort, password: 'ClueCon' },
        })),
        monitor: { ...faultMonitor, ...o.monitor },
        proxy: {
          ...testProxy,
          drachtio: { host: '127.0.0.1', port: doubles[0]?.port ?? 1, secret: 'cymru' },
          ...fleetProxyDefaults,
          ...o.proxy,
        },
        log: { level: o.logLevel ?? 'info' },
        ...o.config,
      }),
    );

    const monitors: Proc[] = [];
    for (let i = 0; i < o.monitors; i++) {
      const m = startMonitorProc(`mon-${i + 1}`, configFile, await freeTcpPort());
      cleanup.push(() => m.stop('SIGKILL'));
      monitors.push(m);
    }
    const proxies: ProxyProcess[] = [];
    for (const [i, dx] of doubles.entries()) {
      const p = await startProxyProc(`px-${i + 1}`, configFile, dx);
      cleanup.push(() => p.stop('SIGKILL'));
      proxies.push(p);
    }
    const rig = new FaultRig(prefix, keys, client, nodes, monitors, proxies, configFile);
    // Whatever the rig starts later (a monitor again, a load) is undone with the rest.
    rig.#cleanup = cleanup;
    for (const p of proxies) await rig.proxyReady(p);
    return rig;
  }

  /** Waits until a proxy is connected, live, and sees every node eligible. */
  async proxyReady(p: ProxyProcess, timeoutMs = 20_000): Promise<void> {
    await waitFor(
      `${p.id} ready with every node eligible`,
      async () => {
        if (p.exit) throw new Error(`${p.id} exited: ${p.stderr}`);
        const r = await p.readyz().catch(() => undefined);
        return (
          r?.status === 200 && r.body.view?.eligible === this.nodes.length && r.body.view.source === 'live'
        );
      },
      { timeoutMs, intervalMs: 50 },
    );
  }

  /** A monitor process again (after a kill), with the same id. */
  async restartMonitor(i: number): Promise<Proc> {
    const m = startMonitorProc(`mon-${i + 1}`, this.configFile, await freeTcpPort());
    this.#cleanup.push(() => m.stop('SIGKILL'));
    this.monitors[i] = m;
    return m;
  }

  node(id: string): SimProc {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** The node whose SIP port a destination names. */
  nodeOf(destination: string | undefined): string | undefined {
    const port = Number(/:(\d+)(?:[;>]|$)/.exec(destination ?? '')?.[1]);
    return this.nodes.find((n) => n.sipPort === port)?.id;
  }

  /**
   * The monitors' output lines, for repair lines and crash checks (a proxy's are in its
   * `warnings` and `stderr`).
   */
  logLines(): string[] {
    return this.monitors.flatMap((m) => m.lines);
  }

  /** Starts a steady load: one INVITE every `intervalMs`, round robin over the live proxies. */
  load(intervalMs = 20): Load {
    const load = new Load(this, intervalMs);
    // A test that fails before stopping its load must not keep its process alive.
    this.#cleanup.push(() => load.halt());
    return load;
  }

  /** Injects one INVITE on the next proxy that is still running. */
  invite(headers?: Record<string, string>): InjectedRequest | undefined {
    for (let k = 0; k < this.proxies.length; k++) {
      const p = this.proxies[this.#turn++ % this.proxies.length];
      if (p && !p.exit && p.double.connections.length > 0)
        return p.double.inject({ method: 'INVITE', sdp: true, ...(headers ? { headers } : {}) });
    }
    return undefined;
  }
}

/** Counts what a steady load met: final statuses, the node each call was sent to first, and when. */
export class Load {
  readonly calls: LoadCall[] = [];
  readonly #timer: NodeJS.Timeout;

  constructor(
    readonly rig: FaultRig,
    intervalMs: number,
  ) {
    this.#timer = setInterval(() => {
      const req = rig.invite();
      if (req) this.calls.push({ at: Date.now(), req });
    }, intervalMs);
  }

  /** Stops sending, at once. */
  halt(): void {
    clearInterval(this.#timer);
  }

  /** Stops sending and waits (bounded) for every call sent to have its final answer. */
  async stop(timeoutMs = 20_000): Promise<void> {
    this.halt();
    await waitFor(
      `final answers to ${this.calls.length} calls`,
      () => this.calls.every((c) => c.req.finalResponse !== undefined) || undefined,
      { timeoutMs, intervalMs: 20 },
    ).catch(() => undefined);
  }

  /** Calls whose first target was `node`, sent at or after `since` (epoch ms). */
  sentTo(node: string, since: number): LoadCall[] {
    return this.calls.filter(
      (c) => c.at >= since && this.rig.nodeOf(c.req.proxyCommands[0]?.destinations[0]) === node,
    );
  }

  /** Counts by outcome (`200`, `503 No Capacity`, `pending`...), for the test's report. */
  summary(since = 0): Record<string, number> {
    const out: Record<string, number> = {};
    for (const c of this.calls) {
      if (c.at < since) continue;
      const o = outcomeOf(c.req);
      const key =
        o.kind === 'pending' ? 'pending' : `${o.status}${o.kind === 'proxy-refused' ? ` ${o.reason}` : ''}`;
      out[key] = (out[key] ?? 0) + 1;
    }
    return out;
  }

  /** Calls answered 200 among those sent in [from, to). */
  connected(from = 0, to = Infinity): number {
    return this.calls.filter((c) => c.at >= from && c.at < to && c.req.finalResponse?.status === 200).length;
  }

  sent(from = 0, to = Infinity): number {
    return this.calls.filter((c) => c.at >= from && c.at < to).length;
  }
}

async function startSim(id: string, holdMs: number, maxSessions: number): Promise<SimProc> {
  const child = spawn(
    process.execPath,
    fromSource(
      'test/fs-sim/src/main.ts',
      '--esl-port',
      '0',
      '--sip-port',
      '0',
      '--heartbeat-ms',
      '500',
      '--hold-ms',
      String(holdMs),
      '--max-sessions',
      String(maxSessions),
      '--control-stdin',
    ),
    { cwd: root, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, FSLB_CONFIG: '' } },
  );
  const proc = new Proc(id, child);
  const line = await waitFor(
    `${id} (fs-sim) listening`,
    () => {
      if (proc.exit) throw new Error(`${id} exited: ${proc.lines.join('\n')}`);
      return proc.lines.find((l) => l.includes('listening: esl'));
    },
    { timeoutMs: 20_000, intervalMs: 20 },
  );
  const m = /esl [\d.]+:(\d+) sip udp\+tcp [\d.]+:(\d+)/.exec(line);
  if (!m) throw new Error(`${id}: unexpected fs-sim line: ${line}`);
  return { id, eslPort: Number(m[1]), sipPort: Number(m[2]), proc };
}

function startMonitorProc(id: string, configFile: string, httpPort: number): Proc {
  const child = spawn(process.execPath, fromSource('packages/monitor/src/main.ts', '--config', configFile), {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      FSLB_CONFIG: '',
      FSLB_MONITOR_ID: id,
      FSLB_MONITOR_HTTP_PORT: String(httpPort),
    },
  });
  return new Proc(id, child);
}

async function startProxyProc(id: string, configFile: string, dx: DrachtioDouble): Promise<ProxyProcess> {
  const httpPort = await freeTcpPort();
  const child = spawn(process.execPath, fromSource('packages/proxy/src/main.ts', '--config', configFile), {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      FSLB_CONFIG: '',
      FSLB_PROXY_ID: id,
      FSLB_DRACHTIO_PORT: String(dx.port),
      FSLB_PROXY_HTTP_PORT: String(httpPort),
    },
  });
  return new ProxyProcess(id, child, dx, httpPort);
}

/** A client of the test's own for the rig's reads: retries quickly through faults. */
export function rigClient(url: string): Redis {
  const c = new Redis(url, { retryStrategy: () => 50, maxRetriesPerRequest: 1 });
  c.on('error', () => undefined);
  return c;
}
