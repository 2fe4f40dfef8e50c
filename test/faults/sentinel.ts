import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freeTcpPort } from '../support/net.js';
import { ping, redisServerArgs } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { Proc } from './rig.js';

/**
 * A real Redis Sentinel deployment on loopback, owned by one test: a master, a replica, and
 * three sentinels watching them (`redis-server --sentinel`), quorum 2, a master declared down
 * after 1 s. `close()` kills every process it started.
 */
export class SentinelSet {
  static readonly masterName = 'fslbmaster';

  private constructor(
    readonly dir: string,
    readonly servers: { port: number; proc: Proc }[],
    readonly sentinels: { port: number; proc: Proc }[],
  ) {}

  static async start(): Promise<SentinelSet> {
    const dir = mkdtempSync(join(tmpdir(), 'fslb-sentinel-'));
    const servers: { port: number; proc: Proc }[] = [];
    const sentinels: { port: number; proc: Proc }[] = [];
    const set = new SentinelSet(dir, servers, sentinels);
    try {
      const masterPort = await freeTcpPort();
      for (const [i, port] of [masterPort, await freeTcpPort()].entries()) {
        // Replication writes an RDB for the replica's sync: into the set's own directory.
        const args = [...redisServerArgs(port), '--dir', dir];
        if (i > 0) args.push('--replicaof', '127.0.0.1', String(masterPort));
        servers.push({
          port,
          proc: new Proc(`redis-${port}`, spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] })),
        });
      }
      for (const s of servers)
        await waitFor(`redis ${s.port} answers`, () => ping(`redis://127.0.0.1:${s.port}`), {
          timeoutMs: 10_000,
        });
      for (let i = 0; i < 3; i++) {
        const port = await freeTcpPort();
        const conf = join(dir, `sentinel-${i}.conf`);
        writeFileSync(
          conf,
          [
            `port ${port}`,
            'bind 127.0.0.1',
            `dir ${dir}`,
            `sentinel monitor ${SentinelSet.masterName} 127.0.0.1 ${masterPort} 2`,
            `sentinel down-after-milliseconds ${SentinelSet.masterName} 1000`,
            `sentinel failover-timeout ${SentinelSet.masterName} 5000`,
            `sentinel parallel-syncs ${SentinelSet.masterName} 1`,
            '',
          ].join('\n'),
        );
        sentinels.push({
          port,
          proc: new Proc(
            `sentinel-${port}`,
            spawn('redis-server', [conf, '--sentinel'], { stdio: ['ignore', 'pipe', 'pipe'] }),
          ),
        });
      }
      for (const s of sentinels)
        await waitFor(`sentinel ${s.port} answers`, () => ping(`redis://127.0.0.1:${s.port}`), {
          timeoutMs: 10_000,
        });
      // Every sentinel knows the replica before the test may kill the master.
      await waitFor(
        'the sentinels see the replica',
        async () => {
          for (const s of sentinels) {
            const c = new Redis({ port: s.port, lazyConnect: true, retryStrategy: () => null });
            c.on('error', () => undefined);
            try {
              await c.connect();
              const replicas = (await c.call('SENTINEL', 'REPLICAS', SentinelSet.masterName)) as unknown[];
              if (replicas.length < 1) return false;
            } finally {
              c.disconnect();
            }
          }
          return true;
        },
        { timeoutMs: 20_000, intervalMs: 200 },
      );
      return set;
    } catch (err) {
      await set.close();
      throw err;
    }
  }

  /** The fslb `redis` section that reaches the set through its sentinels. */
  get section(): Record<string, unknown> {
    return {
      sentinels: this.sentinels.map((s) => ({ host: '127.0.0.1', port: s.port })),
      name: SentinelSet.masterName,
      maxRetryDelayMs: 200,
    };
  }

  /** A client for the test's own reads, through the sentinels. */
  client(): Redis {
    const c = new Redis({
      sentinels: this.sentinels.map((s) => ({ host: '127.0.0.1', port: s.port })),
      name: SentinelSet.masterName,
      retryStrategy: () => 100,
      sentinelRetryStrategy: () => 100,
      maxRetriesPerRequest: 1,
    });
    c.on('error', () => undefined);
    return c;
  }

  /** The port of the server the sentinels call master now. */
  async masterPort(): Promise<number> {
    const c = new Redis({ port: this.sentinels[0]?.port ?? 0, lazyConnect: true, retryStrategy: () => null });
    c.on('error', () => undefined);
    try {
      await c.connect();
      const addr = (await c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SentinelSet.masterName)) as string[];
      return Number(addr[1]);
    } finally {
      c.disconnect();
    }
  }

  server(port: number): Proc {
    const s = this.servers.find((x) => x.port === port);
    if (!s) throw new Error(`no server on ${port}`);
    return s.proc;
  }

  async close(): Promise<void> {
    await Promise.all([...this.sentinels, ...this.servers].map((s) => s.proc.stop('SIGKILL')));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
