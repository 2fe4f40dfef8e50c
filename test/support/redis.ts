import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { freeTcpPort } from './net.js';

/**
 * A Redis server that belongs to one test file. Chosen in this order:
 *  1. `REDIS_URL` set: that server (it cannot be stopped or restarted by the test);
 *  2. a container runtime answers: a testcontainers Redis;
 *  3. otherwise: a `redis-server` child process on a free loopback port.
 * `FSLB_TEST_REDIS=spawn|container` forces 2 or 3. Never a mock.
 */
export interface TestRedis {
  readonly url: string;
  readonly kind: 'external' | 'container' | 'spawned';
  /** Whether stop/kill/restart work (not for an external server). */
  readonly controllable: boolean;
  /** Stops the server gracefully (SHUTDOWN NOSAVE / container stop). */
  stop(): Promise<void>;
  /** Kills the server at once (SIGKILL / container kill): clients see a reset, not a goodbye. */
  kill(): Promise<void>;
  /** Freezes the server (SIGSTOP): sockets stay open, nothing is answered. */
  freeze(): Promise<void>;
  /** Lets a frozen server run again (SIGCONT). */
  thaw(): Promise<void>;
  /** Starts it again on the same address after stop or kill. */
  restart(): Promise<void>;
  /** Stops it for good; idempotent. */
  close(): Promise<void>;
}

export async function startRedis(): Promise<TestRedis> {
  const forced = process.env.FSLB_TEST_REDIS;
  const external = process.env.REDIS_URL;
  if (external && !forced) return externalRedis(external);
  if (forced !== 'spawn' && (forced === 'container' || (await containerRuntimeAnswers())))
    return containerRedis();
  return SpawnedRedis.start();
}

/** A key prefix no other test uses. */
export function testPrefix(tag = 't'): string {
  return `${tag}-${randomBytes(5).toString('hex')}`;
}

/** Deletes every key under a prefix (plain or hash-tagged). */
export async function deletePrefix(client: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let n = 0;
  const match = `${prefix.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}:*`;
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', match, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) n += await client.del(...keys);
  } while (cursor !== '0');
  return n;
}

function externalRedis(url: string): TestRedis {
  const no = () => Promise.reject(new Error('REDIS_URL names an external server: a test cannot stop it'));
  return {
    url,
    kind: 'external',
    controllable: false,
    stop: no,
    kill: no,
    freeze: no,
    thaw: no,
    restart: no,
    close: () => Promise.resolve(),
  };
}

let runtimeAnswer: Promise<boolean> | undefined;
function containerRuntimeAnswers(): Promise<boolean> {
  runtimeAnswer ??= (async () => {
    try {
      const { getContainerRuntimeClient } = await import('testcontainers');
      const timeout = new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error('timeout')), 3000).unref(),
      );
      await Promise.race([getContainerRuntimeClient(), timeout]);
      return true;
    } catch {
      return false;
    }
  })();
  return runtimeAnswer;
}

async function containerRedis(): Promise<TestRedis> {
  const { RedisContainer } = await import('@testcontainers/redis');
  const port = await freeTcpPort();
  // A fixed host port, so that a restarted container is found at the same address.
  const container = await new RedisContainer('redis:7-alpine')
    .withExposedPorts({ container: 6379, host: port })
    .start();
  const url = `redis://127.0.0.1:${port}`;
  let closed = false;
  return {
    url,
    kind: 'container',
    controllable: true,
    stop: async () => {
      await container.stop({ remove: false });
    },
    kill: async () => {
      await container.exec(['sh', '-c', 'kill -9 1']).catch(() => undefined);
    },
    freeze: async () => {
      await container.exec(['sh', '-c', 'kill -STOP 1']);
    },
    thaw: async () => {
      await container.exec(['sh', '-c', 'kill -CONT 1']);
    },
    restart: async () => {
      await container.restart();
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await container.stop().catch(() => undefined);
    },
  };
}

class SpawnedRedis implements TestRedis {
  readonly kind = 'spawned';
  readonly controllable = true;
  readonly url: string;
  readonly #port: number;
  #child: ChildProcess | undefined;
  #closed = false;

  private constructor(port: number) {
    this.#port = port;
    this.url = `redis://127.0.0.1:${port}`;
  }

  static async start(): Promise<SpawnedRedis> {
    for (let attempt = 0; ; attempt++) {
      const r = new SpawnedRedis(await freeTcpPort());
      try {
        await r.#launch();
        return r;
      } catch (err) {
        if (attempt >= 4) throw err;
      }
    }
  }

  async #launch(): Promise<void> {
    const bin = process.env.REDIS_SERVER_BIN ?? 'redis-server';
    const child = spawn(bin, redisServerArgs(this.#port), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    // Ready when it answers PING; the child dying first (port taken) is a failure.
    const died = once(child, 'exit').then(([code]) => {
      throw new Error(`redis-server exited with ${String(code)}: ${output.trim().slice(-300)}`);
    });
    died.catch(() => undefined);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const ok = await Promise.race([ping(this.url), died]);
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`redis-server on ${this.url} did not answer within 10 s`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async #signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    await exited;
  }

  stop(): Promise<void> {
    return this.#signal('SIGTERM');
  }

  freeze(): Promise<void> {
    this.#child?.kill('SIGSTOP');
    return Promise.resolve();
  }

  thaw(): Promise<void> {
    this.#child?.kill('SIGCONT');
    return Promise.resolve();
  }

  kill(): Promise<void> {
    return this.#signal('SIGKILL');
  }

  async restart(): Promise<void> {
    if (this.#closed) throw new Error('closed');
    await this.#signal('SIGKILL');
    await this.#launch();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#signal('SIGKILL');
  }
}

/** A test's redis-server on a loopback port: nothing kept on disk, warnings only. */
/**
 * Live members of a node's reservation set (`<prefix>:resv:<id>`, not lapsed at `nowMs`), told
 * apart: calls' own slots (`<Call-ID>;<From tag>`) and proxies' advance slots (`#...`), which a
 * proxy holds ahead of time and hands back when nobody chooses the node for a while.
 */
export async function liveSlots(
  client: Pick<Redis, 'zrangebyscore'>,
  key: string,
  nowMs = Date.now(),
): Promise<{ calls: number; advance: number }> {
  const members = await client.zrangebyscore(key, `(${nowMs}`, '+inf');
  const advance = members.filter((m) => m.startsWith('#')).length;
  return { calls: members.length - advance, advance };
}

export function redisServerArgs(port: number): string[] {
  return [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--protected-mode',
    'no',
    '--loglevel',
    'warning',
  ];
}

/** Whether a Redis answers PING at `url` now (one attempt, 500 ms to connect). */
export async function ping(url: string): Promise<boolean> {
  const c = new Redis(url, {
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    connectTimeout: 500,
  });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.ping();
    return true;
  } catch {
    return false;
  } finally {
    c.disconnect();
  }
}

/**
 * For a `describe` block: starts its own Redis server and a client before the tests and
 * closes both after. Read `.server` and `.client` inside tests.
 */
export function useRedis(hooks: {
  before: (fn: () => Promise<void>) => void;
  after: (fn: () => Promise<void>) => void;
}): { readonly server: TestRedis; readonly client: Redis } {
  let server: TestRedis | undefined;
  let client: Redis | undefined;
  hooks.before(async () => {
    server = await startRedis();
    client = new Redis(server.url, { retryStrategy: () => 50 });
    client.on('error', () => undefined);
  });
  hooks.after(async () => {
    client?.disconnect();
    await server?.close();
  });
  const need = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error('useRedis: read .server/.client inside a test, after `before` ran');
    return v;
  };
  return {
    get server() {
      return need(server);
    },
    get client() {
      return need(client);
    },
  };
}
