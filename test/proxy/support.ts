import { parseConfig, type FslbConfig, type Logger } from '@fslb/shared';
import { FslbProxy } from '@fslb/proxy';
import type { FsNode } from '@fslb/fs-sim';
import { rawConfig, testLogger, type ConfigOptions } from '../monitor/support.js';

/** Proxy settings for tests: loopback HTTP on a free port, quick resyncs. */
export const testProxy = {
  http: { host: '127.0.0.1', port: 0 },
  resyncIntervalMs: 1000,
  provisionalTimeout: '1s',
  finalTimeout: '10s',
};

export interface ProxyConfigOptions extends ConfigOptions {
  drachtioPort: number;
  proxyId?: string;
  proxy?: Record<string, unknown>;
  /** The `log` section, e.g. `{ calls: 'all' }` for a test that reads connected calls' lines. */
  log?: Record<string, unknown>;
}

/** A whole config (monitor and proxy sections) for simulated nodes fs1..fsN. */
export function proxyRawConfig(o: ProxyConfigOptions): Record<string, unknown> {
  return {
    ...rawConfig(o),
    proxy: {
      ...testProxy,
      ...(o.proxyId === undefined ? {} : { id: o.proxyId }),
      drachtio: { host: '127.0.0.1', port: o.drachtioPort, secret: 'cymru' },
      ...o.proxy,
    },
    ...(o.log ? { log: o.log } : {}),
  };
}

export function proxyConfig(o: ProxyConfigOptions): FslbConfig {
  return parseConfig(proxyRawConfig(o), {});
}

export async function startProxy(
  cfg: FslbConfig,
  random?: () => number,
  log: Logger = testLogger(),
): Promise<FslbProxy> {
  const p = new FslbProxy({ config: cfg, log, ...(random ? { random } : {}) });
  await p.start();
  return p;
}

/**
 * A proxy metric's value now (its `collect` run), for the series whose labels include `labels`;
 * 0 when no series matches yet.
 */
export async function metricValue(
  proxy: FslbProxy,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const m = proxy.metrics.registry.getSingleMetric(name);
  if (!m) throw new Error(`no metric ${name}`);
  const { values } = await m.get();
  const v = values.find((x) =>
    Object.entries(labels).every(([k, want]) => (x.labels as Record<string, unknown>)[k] === want),
  );
  return v?.value ?? 0;
}

export type { FsNode };
