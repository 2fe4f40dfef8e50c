import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { useRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { tenantRouting } from '../support/routing.js';
import { allFinal, outcomeOf, ProxyFleet } from './fleet.js';

/**
 * Pools, routes and cluster-wide limits through real fslb-proxy processes, each behind its own
 * drachtio-server double, with simulated FreeSWITCH nodes watched by a real monitor. Calls are
 * held until the test hangs them up, so a limit is only as exact as the count across every
 * proxy and the monitor that turns a reservation into a live call.
 */
describe('pools, routes and limits across proxy processes', { timeout: 90_000 }, () => {
  const r = useRedis({ before, after });

  const routing = tenantRouting(10);

  it("the headline: 4 proxies, a tenant capped at 10, a burst of 40 held calls: exactly 10 connect, 30 get the limit's Reason; after hang-up every counter reads 0 and 10 more connect", async (t) => {
    const fleet = await ProxyFleet.start({
      redis: { url: r.server.url, client: r.client },
      proxies: 4,
      nodes: 3,
      sim: { maxSessions: 60 },
      config: routing,
    });
    t.after(() => fleet.close());
    const counter = fleet.keys.limit('tenant:acme');

    const burst = Array.from({ length: 40 }, () => fleet.invite({ 'X-Tenant': 'acme' }));
    await allFinal(burst, 20_000);
    const outcomes = burst.map(outcomeOf);
    const connected = outcomes.filter((o) => o.kind === 'connected');
    const refused = outcomes.filter((o) => o.kind === 'proxy-refused');
    assert.equal(connected.length, 10);
    assert.equal(refused.length, 30);
    for (const o of refused) {
      assert.equal(o.status, 503);
      assert.equal(o.proxyAnswer?.get('reason'), 'SIP;cause=503;text="limit tenant maxCalls"');
      assert.deepEqual(o.targetStatuses, [], 'refused before any node was tried');
    }
    // Every tenant call went to the tenant route's pool.
    assert.ok(connected.every((o) => ['fs1', 'fs2'].includes(fleet.nodeOf(o.destination ?? '') ?? '')));
    await waitFor('the ten calls live on the counter', async () => {
      const m = await r.client.zrange(counter, 0, -1, 'WITHSCORES');
      return m.length === 20 && m.filter((_, i) => i % 2 === 1).every((s) => s === 'inf');
    });
    const refusals = await fleet.counterBy('fslb_proxy_limit_refusals_total', 'limit');
    assert.deepEqual(refusals, { tenant: 30 });
    console.log(
      `# headline: ${connected.length} connected, ${refused.length} refused with the limit's Reason, over ${fleet.proxies.length} proxies`,
    );

    await fleet.hangupAll(burst);
    await waitFor('the counter back to 0', async () => (await r.client.zcard(counter)) === 0);
    assert.equal(await r.client.hlen(fleet.keys.live('fs1')), 0);
    assert.equal(await r.client.hlen(fleet.keys.live('fs2')), 0);

    const again = Array.from({ length: 10 }, () => fleet.invite({ 'X-Tenant': 'acme' }));
    await allFinal(again, 20_000);
    assert.deepEqual(
      again.map((x) => outcomeOf(x).kind),
      Array<string>(10).fill('connected'),
    );
    // Another tenant has a counter of its own.
    const other = fleet.invite({ 'X-Tenant': 'globex' });
    await allFinal([other], 10_000);
    assert.equal(outcomeOf(other).kind, 'connected');
    await fleet.hangupAll([...again, other]);
  });

  it('routes a prefix to its pool, spills over to the next pool when it is full, and answers a reject route', async (t) => {
    const fleet = await ProxyFleet.start({
      redis: { url: r.server.url, client: r.client },
      proxies: 2,
      nodes: 3,
      // 3 calls each.
      sim: { maxSessions: 4 },
      config: routing,
    });
    t.after(() => fleet.close());
    const conf = Array.from({ length: 5 }, () => fleet.invite(undefined, { toUser: '8001' }));
    await allFinal(conf, 20_000);
    const where = conf.map((x) => fleet.nodeOf(outcomeOf(x).destination ?? ''));
    assert.deepEqual(
      where.filter((n) => n === 'fs3').length,
      3,
      `the conference pool first, up to its room: ${where.join(',')}`,
    );
    assert.ok(
      where.filter((n) => n !== 'fs3').every((n) => n === 'fs1' || n === 'fs2'),
      `then the next pool: ${where.join(',')}`,
    );
    assert.ok(conf.every((x) => outcomeOf(x).kind === 'connected'));
    const spilled = await fleet.counterBy('fslb_proxy_pool_calls_total', 'outcome');
    assert.equal(spilled.spilled, 2);

    const blocked = fleet.invite(undefined, { toUser: '9001234' });
    await allFinal([blocked], 10_000);
    const b = outcomeOf(blocked);
    assert.deepEqual([b.kind, b.status, b.reason], ['proxy-refused', 403, 'Premium Blocked']);
    await fleet.hangupAll(conf);
  });

  it('keeps a cluster-wide maxCps over 2 proxies within 10 % of its rate', async (t) => {
    const rate = 20;
    const fleet = await ProxyFleet.start({
      redis: { url: r.server.url, client: r.client },
      proxies: 2,
      nodes: 2,
      sim: { maxSessions: 400, sessionsPerSecond: 0 },
      config: {
        routes: [{ pools: ['default'], limits: ['trunk'] }],
        limits: [{ id: 'trunk', key: 'carrier-a', maxCps: rate }],
      },
    });
    t.after(() => fleet.close());
    // Twice the rate for 3 s, spread over both proxies.
    const offered = [];
    const seconds = 3;
    const startedAt = performance.now();
    for (let i = 0; i < rate * 2 * seconds; i++) {
      const due = startedAt + (i * 1000) / (rate * 2);
      const wait = due - performance.now();
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
      offered.push(fleet.invite());
    }
    await allFinal(offered, 20_000);
    const admitted = offered.filter((x) => outcomeOf(x).kind === 'connected').length;
    const overCps = offered.filter(
      (x) => outcomeOf(x).proxyAnswer?.get('reason') === 'SIP;cause=503;text="limit trunk maxCps"',
    ).length;
    console.log(
      `# maxCps ${rate} over 2 proxies: ${admitted} admitted of ${offered.length} offered in ${seconds} s`,
    );
    assert.equal(admitted + overCps, offered.length);
    assert.ok(admitted >= rate * seconds * 0.9 && admitted <= rate * seconds * 1.1, `${admitted} admitted`);
    await fleet.hangupAll(offered);
  });

  it('applies new routing rules on SIGHUP, and keeps the last good ones when the file is bad', async (t) => {
    const fleet = await ProxyFleet.start({
      redis: { url: r.server.url, client: r.client },
      proxies: 2,
      nodes: 3,
      config: routing,
    });
    t.after(() => fleet.close());
    const premium = async () => {
      const calls = fleet.proxies.map(() => fleet.invite(undefined, { toUser: '9001234' }));
      await allFinal(calls, 10_000);
      return calls.map((c) => outcomeOf(c));
    };
    assert.deepEqual(
      (await premium()).map((o) => o.status),
      [403, 403],
    );
    const file = join(fleet.dir, 'proxy.json');
    const raw = JSON.parse(readFileSync(file, 'utf8')) as { routes: { id: string }[] };
    // The premium numbers are let through now.
    writeFileSync(file, JSON.stringify({ ...raw, routes: raw.routes.filter((x) => x.id !== 'blocked') }));
    for (const p of fleet.proxies) p.child.kill('SIGHUP');
    const after = await waitFor('both proxies route premium numbers', async () => {
      const o = await premium();
      return o.every((x) => x.kind === 'connected') ? o : undefined;
    });
    assert.ok(after.every((o) => ['fs1', 'fs2'].includes(fleet.nodeOf(o.destination ?? '') ?? '')));

    writeFileSync(file, JSON.stringify({ ...raw, routes: [{ pools: ['nowhere'] }] }));
    for (const p of fleet.proxies) p.child.kill('SIGHUP');
    await waitFor('both proxies say the file is bad', () =>
      fleet.proxies.every((p) => p.warnings.some((l) => l.includes('new configuration is invalid'))),
    );
    assert.ok(fleet.proxies.every((p) => p.warnings.some((l) => l.includes('unknown pool'))));
    assert.ok(
      (await premium()).every((o) => o.kind === 'connected'),
      'the last good rules still route',
    );
  });
});
