import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { useRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { waitForNode } from '../monitor/support.js';
import { callOf, proxyScene } from './scene.js';

async function getJson(
  port: number | undefined,
  path: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('fslb-proxy through a Redis outage', () => {
  const r = useRedis({ before, after });

  it('keeps routing on the last view with local accounting, says degraded, and resyncs when Redis returns', async (t) => {
    const s = await proxyScene(t, r, { count: 2 });
    s.dx.onProxy(() => ({ kind: 'respond', responses: [{ status: 486 }] }));
    const ready = await getJson(s.proxy.httpPort, '/readyz');
    assert.equal(ready.status, 200);
    assert.equal(ready.body.state, 'ok');
    assert.deepEqual((ready.body.view as Record<string, unknown>).source, 'live');

    await r.server.kill();
    await waitFor('proxy notices', () => s.proxy.source === 'last-known');
    const during = s.dx.inject({ method: 'INVITE', sdp: true });
    assert.equal((await during.proxied()).destinations.length, 2);
    assert.equal((await during.final()).status, 486);
    const degraded = await getJson(s.proxy.httpPort, '/readyz');
    assert.equal(degraded.status, 200);
    assert.equal(degraded.body.state, 'degraded');
    assert.equal((degraded.body.view as Record<string, unknown>).source, 'last-known');
    const metrics = await s.proxy.metrics.registry.getSingleMetricAsString('fslb_proxy_reservations_total');
    assert.match(metrics, /outcome="local-offline"} 1/);

    // Restarted empty: the monitor writes its nodes again, the proxy reloads and reserves in Redis.
    await r.server.restart();
    for (const id of ['fs1', 'fs2']) {
      await waitForNode(r.client, s.keys, id, (h) => h.state === 'up', 'up again', 10_000);
    }
    await waitFor('view live again', () => s.proxy.source === 'live', { timeoutMs: 10_000 });
    await s.proxy.resync();
    assert.equal(s.proxy.view.nodes.filter((n) => n.eligible).length, 2);
    s.dx.onProxy(() => ({ kind: 'hold' }));
    const after = s.dx.inject({ method: 'INVITE', sdp: true });
    const cmd = await after.proxied();
    const chosen = cmd.destinations[0];
    const id = s.sims.nodes[0]!.sipPort === Number(chosen?.split(':')[2]) ? 'fs1' : 'fs2';
    assert.deepEqual(await r.client.zrange(s.keys.resv(id), 0, -1), [callOf(after)]);
    cmd.answer({ kind: 'respond', responses: [{ status: 486 }] });
    await after.final();
  });

  it('serves /healthz, /readyz and /metrics, and keeps a presence key', async (t) => {
    const s = await proxyScene(t, r, { count: 1 });
    const health = await getJson(s.proxy.httpPort, '/healthz');
    assert.equal(health.status, 200);
    assert.equal(health.body.id, s.proxy.id);
    const ready = await getJson(s.proxy.httpPort, '/readyz');
    assert.equal(ready.body.drachtio, 'connected');
    assert.equal((ready.body.view as Record<string, unknown>).eligible, 1);
    assert.equal(typeof (ready.body.view as Record<string, unknown>).ageMs, 'number');
    const text = await (await fetch(`http://127.0.0.1:${s.proxy.httpPort}/metrics`)).text();
    for (const name of [
      'fslb_proxy_requests_total',
      'fslb_proxy_decision_duration_seconds',
      'fslb_proxy_reservation_duration_seconds',
      'fslb_proxy_eligible_nodes 1',
      'fslb_proxy_view_age_seconds',
      'fslb_proxy_view_source{source="live"} 1',
      'fslb_proxy_redis_up 1',
      'fslb_proxy_drachtio_up 1',
    ]) {
      assert.ok(text.includes(name), name);
    }
    const presence = await waitFor(
      'presence key',
      async () => (await r.client.get(s.keys.proxy(s.proxy.id))) ?? undefined,
    );
    const p = JSON.parse(presence) as Record<string, unknown>;
    assert.equal(p.id, s.proxy.id);
    assert.equal(p.version, '0.1.0');
    assert.equal(typeof p.startedAt, 'number');
    assert.equal(typeof p.viewAgeMs, 'number');
    assert.ok((await r.client.zscore(s.keys.proxies, s.proxy.id)) !== null);
    await s.proxy.close();
    assert.equal(await r.client.exists(s.keys.proxy(s.proxy.id)), 0, 'a closing proxy says it left');
  });
});
