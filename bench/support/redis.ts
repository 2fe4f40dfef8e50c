/**
 * The benchmark's own Redis: test/support/redis.ts' server (scripts/run-bench.mjs sets
 * FSLB_TEST_REDIS=spawn, so a redis-server child on a free loopback port, never a mock), with its
 * pid adopted by the benchmark's `Children` so that it dies with the benchmark whatever happens.
 */
import type { ClusterStore } from '@fslb/shared';
import { childPids } from '../../test/support/proc-stat.js';
import { startRedis, type TestRedis } from '../../test/support/redis.js';
import type { Children } from './children.js';

export interface BenchRedis extends TestRedis {
  /** The redis-server process, when this benchmark spawned it. */
  readonly pid: number | undefined;
}

export async function startBenchRedis(children: Children): Promise<BenchRedis> {
  const server = await startRedis();
  let pid: number | undefined;
  if (server.kind === 'spawned') {
    const port = new URL(server.url).port;
    // redis-server retitles itself `redis-server 127.0.0.1:<port>`.
    pid = childPids(process.pid, (c) => c.includes('redis-server') && c.includes(`:${port}`))[0];
    if (pid !== undefined) children.adopt(pid);
  }
  return Object.assign(server, { pid });
}

/**
 * Nodes `fs0..fs<count-1>` as their owner would have written them: configured, leased to
 * `bench`, up, empty, taking `maxSessions`.
 */
export async function benchNodes(
  base: ClusterStore,
  count: number,
  maxSessions: number,
  /** The store of a node's shard (pool shards on a Redis Cluster); `base` for every node without it. */
  storeOf: (id: string) => ClusterStore = () => base,
): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => `fs${i}`);
  for (const [i, id] of ids.entries()) {
    const store = storeOf(id);
    await store.upsertNode({ id, sip: `127.0.0.1:${5080 + i}`, weight: 1 });
    await store.redis.set(store.keys.lease(id), 'tok', 'PX', 600_000);
    await store.writeNode({
      id,
      token: 'tok',
      owner: 'bench',
      livenessTtlMs: 600_000,
      loud: { state: 'up', sessions: 0, maxSessions },
    });
  }
  return ids;
}
