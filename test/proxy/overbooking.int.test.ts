import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import type { Redis } from 'ioredis';
import type { InjectedRequest } from '../drachtio-double/index.js';
import { useRedis, type TestRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { allFinal, outcomeOf, ProxyFleet, type InviteOutcome } from './fleet.js';

/**
 * The headline of cluster-wide reservations: four fslb-proxy processes, each behind its own
 * drachtio-server double, share three small FreeSWITCH simulators (Max-Sessions 11: ten calls
 * each, thirty in all). A burst of 1.5x that capacity arrives at once, spread round robin over
 * the four proxies, and every call is held. Every proxy holds the same view (all nodes empty)
 * when the burst lands; only the atomic reservation in Redis keeps them from handing a node more
 * calls than it takes. The same burst without reservations is the control: it overbooks.
 */
describe('four proxy processes under a burst of 1.5x the cluster capacity', { timeout: 60_000 }, () => {
  const r = useRedis({ before, after });

  it('fill every node exactly, never send a node a call it must refuse, and answer the surplus 503 No Capacity with Retry-After', async (t) => {
    const b = await burst(t, r, { reservations: true });
    const { capacity, outcomes, published, fleet } = b;
    const connected = outcomes.filter((o) => o.kind === 'connected');
    const refused = outcomes.filter((o) => o.kind === 'proxy-refused');

    // No node ever held more calls than it publishes, and none refused a call for capacity: the
    // reservations kept every proxy from sending a call that the node could not take.
    fleet.ids.forEach((id, i) => {
      assert.ok((b.peak[i] ?? 0) <= (published[id]?.maxSessions ?? 0), `${id} peaked at ${b.peak[i]} calls`);
    });
    assert.deepEqual(b.refusedByNodes, [], 'no simulator refused an INVITE');
    assert.equal(b.targetRefusals, 0, 'no proxied target answered 503');
    // Exact, no slack: a slot is taken atomically before proxying and is held until the monitor
    // settles it in the same write that raises `sessions`, so sessions + reservations never
    // undercounts a node, and no call ends (no slot is released) during the burst, so it never
    // overcounts one either.
    assert.equal(connected.length, capacity, 'the burst fills the cluster exactly');
    assert.deepEqual(b.perNode, [10, 10, 10]);
    assert.deepEqual(
      outcomes.filter((o) => o.kind !== 'connected' && o.kind !== 'proxy-refused'),
      [],
      'every INVITE was connected or refused by the proxy',
    );
    assert.equal(refused.length, b.requests.length - capacity);
    for (const o of refused) {
      assert.equal(o.status, 503);
      assert.equal(o.reason, 'No Capacity');
      assert.match(o.proxyAnswer?.get('retry-after') ?? '', /^\d+$/, 'a Retry-After header');
      assert.deepEqual(o.targetStatuses, [], 'refused before any target was tried');
    }

    // Everything hung up: the simulators, the records and the reservation sets go back to empty.
    const hangupAt = performance.now();
    await fleet.hangupAll(b.requests);
    const resv = await fleet.reservations();
    assert.deepEqual(Object.values(resv), [0, 0, 0]);
    const records = await fleet.records();
    assert.deepEqual(
      fleet.ids.map((id) => records[id]?.sessions),
      [0, 0, 0],
    );
    assert.deepEqual(
      (await fleet.stats()).map((n) => n.sessions),
      [0, 0, 0],
    );
    await waitFor('every proxy idle', async () => {
      const ready = await Promise.all(fleet.proxies.map((p) => p.readyz()));
      return ready.every((x) => x.body.inFlight === 0 && x.body.localSlots === 0);
    });
    console.log(
      `# after hang-up (${Math.round(performance.now() - hangupAt)} ms): sessions ${(await fleet.stats()).map((n) => n.sessions).join(' / ')}, reservations ${JSON.stringify(resv)}`,
    );
  });

  it('without reservations (the control), the same burst overbooks: nodes refuse calls the proxies sent them', async (t) => {
    const b = await burst(t, r, { reservations: false });
    // Every proxy chose on its view alone; calls beyond a node's room reached it and were refused
    // there (sofia's 503 Maximum Calls In Progress), some failed over, the rest failed.
    assert.ok(b.targetRefusals > 0, 'nodes refused calls the proxies sent them');
    assert.ok(b.refusedByNodes.length > 0);
    assert.equal(
      b.outcomes.filter((o) => o.kind === 'connected').length,
      b.capacity,
      'the nodes still took no more than their capacity',
    );
    await b.fleet.hangupAll(b.requests);
  });
});

interface Burst {
  fleet: ProxyFleet;
  capacity: number;
  published: Record<string, { sessions: number; maxSessions: number }>;
  requests: InjectedRequest[];
  outcomes: InviteOutcome[];
  perNode: number[];
  peak: number[];
  refusedByNodes: string[];
  targetRefusals: number;
}

/** Starts the fleet, lands 1.5x capacity INVITEs at once, waits for every final answer, prints what it counted. */
async function burst(
  t: TestContext,
  r: { server: TestRedis; client: Redis },
  o: { reservations: boolean },
): Promise<Burst> {
  const startedAt = performance.now();
  const fleet = await ProxyFleet.start({
    redis: { url: r.server.url, client: r.client },
    proxies: 4,
    nodes: 3,
    sim: { maxSessions: 11 },
    proxy: { reservations: o.reservations },
  });
  t.after(() => fleet.close());
  const readyMs = performance.now() - startedAt;

  const published = await fleet.records();
  for (const id of fleet.ids)
    assert.equal(published[id]?.maxSessions, 10, `${id} publishes Max-Sessions less one`);
  const capacity = fleet.ids.reduce((sum, id) => sum + (published[id]?.maxSessions ?? 0), 0);
  assert.equal(capacity, 30);

  const count = capacity * 1.5;
  const burstAt = performance.now();
  const requests = Array.from({ length: count }, () => fleet.invite());
  await allFinal(requests, 20_000);
  const burstMs = performance.now() - burstAt;
  const outcomes = requests.map(outcomeOf);

  // What each simulator lived through: its calls, its peak Session-Count and every refused INVITE.
  const stats = await fleet.stats();
  const perNode = stats.map((n) => n.calls);
  const peak = stats.map((n) => n.peakSessions);
  const refusedByNodes = stats.flatMap((n, i) =>
    Object.entries(n.refused).map(([reason, times]) => `${fleet.ids[i] ?? '?'}: ${reason} x${times}`),
  );
  const nodeRefusals = stats.reduce((sum, n) => sum + Object.values(n.refused).reduce((a, b) => a + b, 0), 0);
  const targetRefusals = outcomes.reduce((sum, x) => sum + x.refusedByNode, 0);
  const kinds = new Map<string, number>();
  for (const x of outcomes) {
    const k = x.kind === 'connected' ? 'connected' : `${x.kind} ${x.status} ${x.reason}`;
    kinds.set(k, (kinds.get(k) ?? 0) + 1);
  }
  const perProxy = await Promise.all(
    fleet.proxies.map(async (p) => {
      let n = 0;
      for (const [k, v] of await p.metrics())
        if (k.startsWith('fslb_proxy_requests_total{method="INVITE"')) n += v;
      return n;
    }),
  );
  const tag = o.reservations ? 'reservations on' : 'reservations off';
  console.log(
    `# [${tag}] fleet ready in ${Math.round(readyMs)} ms; ${count} INVITEs over ${fleet.proxies.length} proxy processes (${perProxy.join('/')}) all answered in ${Math.round(burstMs)} ms`,
  );
  console.log(
    `# [${tag}] capacity ${capacity}; calls per node ${perNode.join(' / ')} (peak ${peak.join(' / ')}); ` +
      `outcomes ${JSON.stringify(Object.fromEntries(kinds))}; INVITEs refused by nodes ${nodeRefusals}; ` +
      `503s from targets ${targetRefusals}; calls that failed over ${outcomes.filter((x) => x.targetStatuses.length > 1).length}`,
  );
  console.log(
    `# [${tag}] reservations by outcome ${JSON.stringify(await fleet.counterBy('fslb_proxy_reservations_total', 'outcome'))}`,
  );
  const warnings = fleet.warnings();
  if (warnings.length > 0) console.log(`# [${tag}] proxy warnings:\n#   ${warnings.join('\n#   ')}`);
  return { fleet, capacity, published, requests, outcomes, perNode, peak, refusedByNodes, targetRefusals };
}
