import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { listening } from './net.js';
import { redisServerArgs } from './redis.js';

const run = promisify(execFile);

/** One redis-server of a test cluster. */
export interface ClusterMember {
  readonly port: number;
  /** Alive: not killed by the test. */
  readonly running: boolean;
}

/**
 * A Redis Cluster that belongs to one test file: Debian's `redis-server` in cluster mode,
 * `masters` primaries with one replica each on loopback, joined with `redis-cli --cluster
 * create`. The test starts and stops every node; `close()` kills them all and removes their
 * files. Skips are the caller's business (`clusterUnavailable()`).
 */
export class TestRedisCluster {
  readonly members: ClusterMember[] = [];
  readonly #children = new Map<number, ChildProcess>();
  readonly #dir: string;
  #closed = false;

  private constructor(dir: string) {
    this.#dir = dir;
  }

  /** Seed addresses for a cluster client. */
  get seeds(): { host: string; port: number }[] {
    return this.members.filter((m) => m.running).map((m) => ({ host: '127.0.0.1', port: m.port }));
  }

  static async start(masters = 3): Promise<TestRedisCluster> {
    const c = new TestRedisCluster(await mkdtemp(join(tmpdir(), 'fslb-cluster-')));
    try {
      const ports: number[] = [];
      while (ports.length < masters * 2) {
        // A port free a moment ago can be taken by then (its bus port by an outgoing socket).
        for (let attempt = 1; ; attempt++) {
          const [port] = await clusterPorts(1, ports);
          if (port === undefined) throw new Error('no free ports for a test cluster');
          try {
            await c.#launch(port);
            ports.push(port);
            break;
          } catch (err) {
            if (attempt >= 5) throw err;
          }
        }
      }
      await run(
        process.env.REDIS_CLI_BIN ?? 'redis-cli',
        [
          '--cluster',
          'create',
          ...ports.map((p) => `127.0.0.1:${p}`),
          '--cluster-replicas',
          '1',
          '--cluster-yes',
        ],
        { timeout: 30_000 },
      );
      await c.waitHealthy();
      return c;
    } catch (err) {
      await c.close();
      throw err;
    }
  }

  async #launch(port: number): Promise<void> {
    const child = spawn(
      process.env.REDIS_SERVER_BIN ?? 'redis-server',
      [
        ...redisServerArgs(port),
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(this.#dir, `nodes-${port}.conf`),
        '--cluster-node-timeout',
        '1000',
        // A replica takes over however long it was cut off (the test kills masters at will).
        '--cluster-replica-validity-factor',
        '0',
        '--dir',
        this.#dir,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    this.#children.set(port, child);
    const member = { port, running: true };
    const existing = this.members.findIndex((m) => m.port === port);
    if (existing >= 0) this.members[existing] = member;
    else this.members.push(member);
    const deadline = Date.now() + 10_000;
    try {
      // Its bus port too: a member that cannot bind it exits after it began to listen.
      while (!(await listening(port)) || !(await listening(port + 10000))) {
        if (child.exitCode !== null) throw new Error(`redis-server :${port} exited: ${output.slice(-300)}`);
        if (Date.now() > deadline) throw new Error(`redis-server :${port} did not listen within 10 s`);
        await new Promise((r) => setTimeout(r, 20));
      }
    } catch (err) {
      child.kill('SIGKILL');
      this.#children.delete(port);
      this.members.splice(this.members.indexOf(member), 1);
      throw err;
    }
  }

  /** The process id of one member, while it runs. */
  pidOf(port: number): number | undefined {
    return this.#children.get(port)?.pid;
  }

  /** A plain client on one member (no redirections followed). */
  node(port: number): Redis {
    const r = new Redis({ port, host: '127.0.0.1', lazyConnect: false, maxRetriesPerRequest: 1 });
    r.on('error', () => undefined);
    return r;
  }

  /** `fn` on a plain client of one member, disconnected after. */
  async ask<T>(port: number, fn: (r: Redis) => Promise<T>): Promise<T> {
    const r = this.node(port);
    try {
      return await fn(r);
    } finally {
      r.disconnect();
    }
  }

  /** Every running member sees every slot served and agrees on the layout. */
  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let ok = true;
      for (const m of this.members.filter((x) => x.running)) {
        const info = await this.ask(m.port, (r) => r.cluster('INFO')).catch(() => '');
        if (!/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info)) ok = false;
      }
      // Replicas in sync with their masters, so that a killed master has one to fail over to.
      if (ok) {
        for (const m of this.members.filter((x) => x.running)) {
          const repl = await this.ask(m.port, (r) => r.info('replication')).catch(() => '');
          if (/role:slave/.test(repl) && !/master_link_status:up/.test(repl)) ok = false;
        }
      }
      if (ok && (await this.masters()).length > 0) return;
      if (Date.now() > deadline) throw new Error('redis cluster not healthy in time');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Ports of the running masters that serve slots, as a running member sees them. */
  async masters(): Promise<number[]> {
    const nodes = await this.#nodesView();
    return nodes.filter((n) => n.master && n.slots.length > 0).map((n) => n.port);
  }

  /** The port of the master serving `slot`. */
  async masterOf(slot: number): Promise<number> {
    const nodes = await this.#nodesView();
    const n = nodes.find((x) => x.master && x.slots.some(([a, b]) => slot >= a && slot <= b));
    if (!n) throw new Error(`no master serves slot ${slot}`);
    return n.port;
  }

  async #nodesView(): Promise<{ id: string; port: number; master: boolean; slots: [number, number][] }[]> {
    const m = this.members.find((x) => x.running);
    if (!m) throw new Error('no member running');
    const text = await this.ask(m.port, (r) => r.cluster('NODES') as Promise<string>);
    return text
      .trim()
      .split('\n')
      .map((line) => {
        const f = line.split(' ');
        const port = Number((f[1] ?? '').split('@')[0]?.split(':')[1]);
        const flags = f[2] ?? '';
        const slots = f
          .slice(8)
          .filter((s) => !s.startsWith('['))
          .map((s) => {
            const [a, b] = s.split('-').map(Number);
            return [a ?? 0, b ?? a ?? 0] as [number, number];
          });
        return {
          id: f[0] ?? '',
          port,
          master: flags.includes('master') && !flags.includes('fail'),
          slots,
        };
      });
  }

  async #nodeId(port: number): Promise<string> {
    return this.ask(port, (r) => r.cluster('MYID'));
  }

  /** SIGKILLs one member; resolves when it has exited. */
  async kill(port: number): Promise<void> {
    const child = this.#children.get(port);
    const m = this.members.find((x) => x.port === port);
    if (m) (m as { running: boolean }).running = false;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }

  /**
   * Moves one slot from its master to another master the way `redis-cli --cluster reshard`
   * does (IMPORTING/MIGRATING, MIGRATE the keys in batches, then SETSLOT NODE everywhere).
   * `midway` runs while the slot is half moved, so clients see ASK redirections.
   */
  async migrateSlot(slot: number, to: number, midway?: () => Promise<void>): Promise<void> {
    const move = await this.startMigration(slot, to);
    if (midway) {
      await move.keys(...(await this.ask(move.from, (r) => r.cluster('GETKEYSINSLOT', slot, 10))));
      await midway();
    }
    await move.finish();
  }

  /**
   * Starts moving one slot to another master (IMPORTING/MIGRATING) and leaves it half moved:
   * `keys` moves the keys named, `finish` moves the rest and gives the slot to its new master.
   */
  async startMigration(
    slot: number,
    to: number,
  ): Promise<{ from: number; keys: (...keys: string[]) => Promise<void>; finish: () => Promise<void> }> {
    const from = await this.masterOf(slot);
    if (from === to) throw new Error(`slot ${slot} is already on :${to}`);
    const [fromId, toId] = [await this.#nodeId(from), await this.#nodeId(to)];
    await this.ask(to, (r) => r.cluster('SETSLOT', slot, 'IMPORTING', fromId));
    await this.ask(from, (r) => r.cluster('SETSLOT', slot, 'MIGRATING', toId));
    const keys = async (...names: string[]): Promise<void> => {
      if (names.length === 0) return;
      await this.ask(from, (r) => r.migrate('127.0.0.1', to, '', 0, 5000, 'REPLACE', 'KEYS', ...names));
    };
    const finish = async (): Promise<void> => {
      for (;;) {
        const left = await this.ask(from, (r) => r.cluster('GETKEYSINSLOT', slot, 10));
        if (left.length === 0) break;
        await keys(...left);
      }
      for (const port of await this.masters()) {
        await this.ask(port, (r) => r.cluster('SETSLOT', slot, 'NODE', toId)).catch(() => undefined);
      }
      await this.ask(to, (r) => r.cluster('SETSLOT', slot, 'NODE', toId));
      await this.ask(from, (r) => r.cluster('SETSLOT', slot, 'NODE', toId));
    };
    return { from, keys, finish };
  }

  /** Kills every member and removes their files; idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const port of this.#children.keys()) await this.kill(port);
    await rm(this.#dir, { recursive: true, force: true });
  }
}

/** Why no test cluster can be made here, or undefined when one can. */
export async function clusterUnavailable(): Promise<string | undefined> {
  for (const bin of [
    process.env.REDIS_SERVER_BIN ?? 'redis-server',
    process.env.REDIS_CLI_BIN ?? 'redis-cli',
  ]) {
    try {
      await run(bin, ['--version'], { timeout: 5000 });
    } catch {
      return `${bin} not found on PATH: the Redis Cluster tests need redis-server and redis-cli`;
    }
  }
  return undefined;
}

/** `n` loopback ports each free with its cluster bus port (+10000) free too, clear of `taken`'s. */
async function clusterPorts(n: number, taken: readonly number[] = []): Promise<number[]> {
  const ports: number[] = [];
  const used = (p: number): boolean =>
    [...taken, ...ports].some((q) => q === p || q === p + 10000 || q === p - 10000);
  for (let tries = 0; ports.length < n && tries < 500; tries++) {
    // Both the port and its bus port below Linux's ephemeral range (32768 up): an outgoing
    // connection (the members' own bus links among them) cannot hold either when it starts.
    const p = 10000 + Math.floor(Math.random() * 12700);
    if (used(p)) continue;
    if ((await listening(p)) || (await listening(p + 10000))) continue;
    ports.push(p);
  }
  if (ports.length < n) throw new Error('no free ports for a test cluster');
  return ports;
}
