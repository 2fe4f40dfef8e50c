import { Redis } from 'ioredis';
import type { TestContext } from 'node:test';
import {
  ClusterKeys,
  createLogger,
  decodeClusterEvent,
  parseConfig,
  type ClusterEvent,
  type FslbConfig,
  type Logger,
  type NodeRecord,
} from '@fslb/shared';
import { Monitor } from '@fslb/monitor';
import type { FsNode } from '@fslb/fs-sim';
import { waitFor } from '../support/wait.js';

/** Fast timings so that the scenarios run in seconds; the ratios match the defaults. */
export const fastMonitor = {
  probeIntervalMs: 200,
  probeTimeoutMs: 300,
  leaseTtlMs: 1500,
  claimIntervalMs: 250,
  maxBackoffMs: 500,
  http: { host: '127.0.0.1', port: 0 },
};

export interface ConfigOptions {
  redisUrl: string;
  prefix: string;
  nodes: readonly FsNode[];
  monitorId?: string;
  monitor?: Record<string, unknown>;
  nodeExtra?: (node: FsNode, index: number) => Record<string, unknown>;
}

/** The raw config object (as a file would hold it) for simulated nodes fs1..fsN. */
export function rawConfig(o: ConfigOptions): Record<string, unknown> {
  return {
    redis: { url: o.redisUrl, maxRetryDelayMs: 200 },
    prefix: o.prefix,
    nodes: o.nodes.map((n, i) => ({
      id: `fs${i + 1}`,
      sip: `127.0.0.1:${n.sipPort}`,
      esl: { host: '127.0.0.1', port: n.eslPort, password: 'ClueCon' },
      ...o.nodeExtra?.(n, i),
    })),
    monitor: { ...fastMonitor, ...(o.monitorId === undefined ? {} : { id: o.monitorId }), ...o.monitor },
    log: { level: process.env.FSLB_TEST_LOG ?? 'silent' },
  };
}

export function config(o: ConfigOptions): FslbConfig {
  return parseConfig(rawConfig(o), {});
}

export function testLogger(): Logger {
  return createLogger({ level: process.env.FSLB_TEST_LOG ?? 'silent', name: 'test' });
}

export async function startMonitor(
  cfg: FslbConfig,
  extra: { configPath?: string; configPollMs?: number } = {},
): Promise<Monitor> {
  const m = new Monitor({ config: cfg, log: testLogger(), http: false, ...extra });
  await m.start();
  return m;
}

export async function nodeHash(redis: Redis, keys: ClusterKeys, id: string): Promise<Record<string, string>> {
  return redis.hgetall(keys.node(id));
}

/** Waits until the node's record in Redis satisfies `pred`, and returns it. */
export function waitForNode(
  redis: Redis,
  keys: ClusterKeys,
  id: string,
  pred: (h: Record<string, string>) => boolean,
  what: string,
  timeoutMs = 8000,
): Promise<Record<string, string>> {
  return waitFor(
    `${id}: ${what}`,
    async () => {
      const h = await nodeHash(redis, keys, id);
      return pred(h) ? h : undefined;
    },
    { timeoutMs, intervalMs: 5 },
  );
}

/** Subscribes to the cluster's change events for the rest of the test; returns the list they fill. */
export async function recordEvents(
  t: TestContext,
  client: Redis,
  keys: ClusterKeys,
): Promise<ClusterEvent[]> {
  const sub = client.duplicate();
  t.after(() => sub.disconnect());
  const events: ClusterEvent[] = [];
  sub.on('message', (channel: string, message: string) => {
    if (channel !== keys.events) return;
    const e = decodeClusterEvent(message);
    if (e.ok) events.push(e.value);
  });
  await sub.subscribe(keys.events);
  return events;
}

/** The node records among recorded events, in order. */
export function records(events: readonly ClusterEvent[]): NodeRecord[] {
  return events.flatMap((e) => (e.type === 'node' ? [e.record] : []));
}
