import type { FslbConfig } from '@fslb/shared';

/** What `fslb-proxy` will run with this configuration (routing arrives with the proxy issue). */
export function describePlan(config: FslbConfig): string {
  const p = config.proxy;
  return (
    `fslb-proxy ${p.id}: would connect to drachtio-server at ${p.drachtio.host}:${p.drachtio.port}, ` +
    `route INVITEs over ${config.nodes.length} node(s) under prefix "${config.prefix}" ` +
    `(maxTargets ${p.maxTargets}), and serve HTTP on ${p.http.host}:${p.http.port}. ` +
    `Routing is not built yet.`
  );
}
