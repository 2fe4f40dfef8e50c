/**
 * The routing rules the pools-and-limits tests share, as a config file would hold them: fs1 and
 * fs2 in pool `pstn`, fs3 in pool `conf`; numbers starting with 8 go to `conf` and spill over to
 * `pstn`; numbers starting with 900 are rejected 403; calls with an X-Tenant header go to `pstn`
 * and count against the limit `tenant` (`maxCalls` per tenant); everything else goes to `pstn`.
 */
export function tenantRouting(maxCalls: number): Record<string, unknown> {
  return {
    pools: [
      { id: 'pstn', nodes: ['fs1', 'fs2'] },
      { id: 'conf', nodes: ['fs3'] },
    ],
    routes: [
      { id: 'conference', match: { ruriUser: '^8' }, pools: ['conf', 'pstn'] },
      { id: 'blocked', match: { ruriUser: '^900' }, reject: { status: 403, reason: 'Premium Blocked' } },
      { id: 'tenant', match: { header: { name: 'X-Tenant' } }, pools: ['pstn'], limits: ['tenant'] },
      { id: 'rest', pools: ['pstn'] },
    ],
    limits: [{ id: 'tenant', key: { header: 'X-Tenant' }, maxCalls }],
  };
}
