import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { FsNode } from '@fslb/fs-sim';
import { captureLogger } from '../support/log-capture.js';
import { useRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { DrachtioDouble } from '../drachtio-double/index.js';
import { proxyConfig, startProxy } from './support.js';
import { callOf, proxyScene, viewOf, type Scene } from './scene.js';

/**
 * fslb-proxy in this process, between a drachtio-server double and simulated FreeSWITCH nodes
 * that a real monitor writes into a real Redis: routing, exact reservations and their three
 * endings, the answers the proxy gives itself, and its guards.
 */
const first = () => 0;
const uriOf = (s: Scene, i: number) => `sip:127.0.0.1:${s.sims.nodes[i]!.sipPort}`;

describe('fslb-proxy routing and accounting', () => {
  const r = useRedis({ before, after });

  it('sends the INVITE to the least-loaded node, the next best behind it; the monitor settles the slot', async (t) => {
    const s = await proxyScene(t, r, { count: 3, random: first });
    s.sims.nodes[0]!.setSessions(20);
    s.sims.nodes[2]!.setSessions(10);
    await viewOf(s, 'fs1', (n) => n.sessions === 20, '20 sessions');
    await viewOf(s, 'fs3', (n) => n.sessions === 10, '10 sessions');
    s.dx.onProxy(() => ({ kind: 'hold' }));
    const call = s.dx.inject({ method: 'INVITE', sdp: true });
    const cmd = await call.proxied();
    assert.deepEqual(cmd.destinations, [uriOf(s, 1), uriOf(s, 2), uriOf(s, 0)]);
    assert.equal(cmd.forking, 'serial');
    // The slot is held on the chosen node while the call is in setup...
    assert.deepEqual(await r.client.zrange(s.keys.resv('fs2'), 0, -1), [callOf(call)]);
    assert.equal(await r.client.get(s.keys.call(callOf(call))), 'fs2');
    // ...and ends in the monitor's write that counts the call when CHANNEL_CREATE arrives.
    cmd.answer({ kind: 'forward' });
    assert.equal((await call.final()).status, 200);
    await waitFor('slot settled, session counted', async () => {
      const [slots, key, sessions] = await Promise.all([
        r.client.zcard(s.keys.resv('fs2')),
        r.client.exists(s.keys.call(callOf(call))),
        r.client.hget(s.keys.node('fs2'), 'sessions'),
      ]);
      return slots === 0 && key === 0 && sessions === '1';
    });
    assert.equal(await call.hangup(), 200);
    await viewOf(s, 'fs2', (n) => n.sessions === 0 && n.reservations === 0, 'empty again');
  });

  it('fails over past a node that answers 503 and ends its slot', async (t) => {
    // fs1's SIP address is a node that refuses every call, while its ESL side looks healthy.
    const refuser = await FsNode.start({ maxSessions: 1 });
    t.after(() => refuser.close());
    const s = await proxyScene(t, r, {
      count: 2,
      random: first,
      nodeExtra: (i) => (i === 0 ? { sip: `127.0.0.1:${refuser.sipPort}` } : {}),
    });
    s.sims.nodes[1]!.setSessions(5);
    await viewOf(s, 'fs2', (n) => n.sessions === 5, '5 sessions');
    const call = s.dx.inject({ method: 'INVITE', sdp: true });
    const cmd = await call.proxied();
    assert.equal(cmd.destinations[0], `sip:127.0.0.1:${refuser.sipPort}`);
    assert.equal((await call.final()).status, 200);
    assert.deepEqual(
      cmd.reply.continues.map((m) => m.status),
      [503, 200],
    );
    assert.equal(s.sims.nodes[1]!.calls().length, 1);
    await waitFor(
      'fs1 slot ended when fs2 counted the call',
      async () => (await r.client.zcard(s.keys.resv('fs1'))) === 0,
    );
    assert.equal(await r.client.zcard(s.keys.resv('fs2')), 0);
    await call.hangup();
  });

  it('releases the slot at once when every target fails', async (t) => {
    const { log, text } = captureLogger('info');
    const s = await proxyScene(t, r, { count: 2, random: first, log });
    s.dx.onProxy(() => ({ kind: 'respond', responses: [{ status: 486 }, { status: 486 }] }));
    const call = s.dx.inject(
      { method: 'INVITE', sdp: true },
      { source: { address: '192.0.2.44', port: 5062 } },
    );
    assert.equal((await call.final()).status, 486);
    await waitFor('slot released', async () => (await r.client.zcard(s.keys.resv('fs1'))) === 0);
    assert.equal(await r.client.exists(s.keys.call(callOf(call))), 0);
    // One outcome line per call: who, from where, where to, how it ended, how long.
    const line = await waitFor('outcome line', () =>
      text()
        .split('\n')
        .filter((l) => l.includes('"request routed"'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l.callId === call.callId),
    );
    assert.equal(line.source, '192.0.2.44:5062');
    assert.equal(line.node, 'fs1');
    assert.deepEqual(line.tried, ['fs1', 'fs2']);
    assert.equal(line.outcome, 'failed');
    assert.equal(line.status, 486);
    assert.equal(typeof line.ms, 'number');
    assert.equal(line.accounting, 'redis');
  });

  /**
   * Proxy A (the scene's) and a proxy B on a double of its own over the same Redis and nodes,
   * periodic resyncs far away (what B learns, it learns from the events channel); both hold what
   * they proxy. A's first INVITE goes to fs1; returns B and where its next INVITE went.
   */
  async function twoProxies(t: TestContext, proxyA: Record<string, unknown>) {
    const s = await proxyScene(t, r, {
      count: 2,
      random: first,
      proxy: { resyncIntervalMs: 600_000, ...proxyA },
    });
    const dxB = await DrachtioDouble.start();
    t.after(() => dxB.close());
    const b = await startProxy(
      proxyConfig({
        redisUrl: r.server.url,
        prefix: s.prefix,
        nodes: s.sims.nodes,
        drachtioPort: dxB.port,
        proxyId: 'proxy-b',
        proxy: { resyncIntervalMs: 600_000 },
      }),
      first,
    );
    t.after(() => b.close());
    await dxB.routed(['invite']);
    s.dx.onProxy(() => ({ kind: 'hold' }));
    dxB.onProxy(() => ({ kind: 'hold' }));
    const fromA = await s.dx.inject({ method: 'INVITE', sdp: true }).proxied();
    assert.equal(fromA.destinations[0], uriOf(s, 0));
    return { s, b, inviteFromB: () => dxB.inject({ method: 'INVITE', sdp: true }).proxied() };
  }

  it("counts one proxy's reservation in another's next choice, in Redis, with no load messages", async (t) => {
    const { s, b, inviteFromB } = await twoProxies(t, {});
    // B's view still has both nodes empty and puts fs1 first; Redis counts A's slot there.
    assert.equal(b.view.get('fs1')?.reservations, 0);
    assert.equal((await inviteFromB()).destinations[0], uriOf(s, 1));
  });

  it('with proxy.loadPublishMs, lets another proxy learn a reservation from its load message', async (t) => {
    const { s, b, inviteFromB } = await twoProxies(t, { loadPublishMs: 20 });
    await waitFor('proxy B sees the slot A took', () => b.view.get('fs1')?.reservations === 1);
    assert.equal((await inviteFromB()).destinations[0], uriOf(s, 1));
  });

  it('answers 503 with Retry-After when no node has room, and OPTIONS follows', async (t) => {
    const s = await proxyScene(t, r, { count: 2, sim: { maxSessions: 4 } });
    const options = s.dx.inject({ method: 'OPTIONS' });
    assert.equal((await options.response()).status, 200);
    for (const n of s.sims.nodes) n.setSessions(3);
    await waitFor('both full in the view', () =>
      s.proxy.view.nodes.every((n) => n.sessions >= n.maxSessions),
    );
    const call = s.dx.inject({ method: 'INVITE', sdp: true });
    const res = await call.response();
    assert.equal(res.status, 503);
    assert.equal(res.reason, 'No Capacity');
    assert.equal(res.message.get('Retry-After'), '5');
    assert.equal(call.proxyCommands.length, 0);
    const busy = await s.dx.inject({ method: 'OPTIONS' }).response();
    assert.equal(busy.status, 503);
    assert.equal(busy.message.get('Retry-After'), '5');
    // Nodes down count the same as full.
    for (const n of s.sims.nodes) n.setSessions(0);
    await waitFor('room again', () => s.proxy.view.nodes.some((n) => n.sessions === 0));
    assert.equal((await s.dx.inject({ method: 'OPTIONS' }).response()).status, 200);
    await Promise.all(s.sims.nodes.map((n) => n.crash()));
    await waitFor('all down in the view', () => s.proxy.view.nodes.every((n) => !n.eligible));
    assert.equal((await s.dx.inject({ method: 'INVITE', sdp: true }).response()).status, 503);
    assert.equal((await s.dx.inject({ method: 'OPTIONS' }).response()).status, 503);
  });

  it('refuses sources outside the ACL with 403 and proxies the rest', async (t) => {
    const s = await proxyScene(t, r, { count: 1, proxy: { acl: ['10.0.0.0/8', '2001:db8::/32'] } });
    s.dx.onProxy(() => ({ kind: 'respond', responses: [{ status: 486 }] }));
    const outside = s.dx.inject(
      { method: 'INVITE', sdp: true },
      { source: { address: '203.0.113.9', port: 5060 } },
    );
    assert.equal((await outside.response()).status, 403);
    assert.equal(outside.proxyCommands.length, 0);
    const inside = s.dx.inject(
      { method: 'INVITE', sdp: true },
      { source: { address: '10.1.2.3', port: 5060 } },
    );
    await inside.proxied();
    assert.equal((await inside.final()).status, 486);
  });

  it('limits each source with a token bucket, logged once per window', async (t) => {
    const { log, text } = captureLogger('info');
    const s = await proxyScene(t, r, {
      count: 1,
      log,
      proxy: { rateLimit: { perSourcePerSec: 0.5, burst: 2 }, maxCps: 1000 },
    });
    s.dx.onProxy(() => ({ kind: 'respond', responses: [{ status: 486 }] }));
    const from = (address: string) =>
      s.dx.inject({ method: 'INVITE', sdp: true }, { source: { address, port: 5060 } });
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push((await from('198.51.100.7').final()).status);
    assert.deepEqual(answers, [486, 486, 503, 503]);
    const limited = await from('198.51.100.7').response();
    assert.equal(limited.reason, 'Rate Limit Exceeded');
    assert.equal(limited.message.get('Retry-After'), '5');
    assert.equal((await from('198.51.100.8').final()).status, 486);
    const lines = text()
      .split('\n')
      .filter((l) => l.includes('over its rate limit'));
    assert.equal(lines.length, 1, 'logged once per window');
  });

  it('sheds INVITEs past maxCps with 503 at once', async (t) => {
    const s = await proxyScene(t, r, { count: 1, proxy: { maxCps: 1 } });
    s.dx.onProxy(() => ({ kind: 'respond', responses: [{ status: 486 }] }));
    const a = s.dx.inject({ method: 'INVITE', sdp: true });
    const b = s.dx.inject({ method: 'INVITE', sdp: true });
    assert.equal((await a.final()).status, 486);
    const shed = await b.response();
    assert.equal(shed.status, 503);
    assert.equal(shed.reason, 'Overloaded');
    assert.equal(b.proxyCommands.length, 0);
  });

  it('keeps a conference on one node with the affinity header from a trusted source', async (t) => {
    const s = await proxyScene(t, r, { count: 4, proxy: { rateLimit: { trusted: ['127.0.0.1/32'] } } });
    s.dx.onProxy(() => ({ kind: 'respond', responses: [{ status: 486 }] }));
    const firstTargets = new Set<string>();
    for (let i = 0; i < 6; i++) {
      s.sims.nodes[i % 4]!.setSessions(i * 3);
      const c = s.dx.inject({ method: 'INVITE', sdp: true, headers: { 'X-Fslb-Affinity': 'conf-1234' } });
      firstTargets.add((await c.proxied()).destinations[0]!);
      await c.final();
    }
    assert.equal(firstTargets.size, 1);
  });

  it('routes REGISTER by its address of record, without reservations', async (t) => {
    const s = await proxyScene(t, r, { count: 4, proxy: { methods: ['INVITE', 'REGISTER'] } });
    await s.dx.routed(['register']);
    s.dx.onProxy(() => ({ kind: 'respond', responses: [{ status: 200 }] }));
    const targetOf = async (user: string) => {
      const reg = s.dx.inject({ method: 'REGISTER', uri: 'sip:example.com', to: `sip:${user}@example.com` });
      const cmd = await reg.proxied();
      await reg.final();
      return cmd.destinations;
    };
    const alice = await targetOf('alice');
    s.sims.nodes[0]!.setSessions(50);
    assert.deepEqual(await targetOf('alice'), alice);
    const users = await Promise.all(['bob', 'carol', 'dave', 'erin', 'frank', 'grace'].map(targetOf));
    assert.ok(new Set(users.map((d) => d[0])).size > 1, 'users spread over nodes');
    for (const id of ['fs1', 'fs2', 'fs3', 'fs4']) assert.equal(await r.client.zcard(s.keys.resv(id)), 0);
  });
});

describe('fslb-proxy when drachtio-server fails', () => {
  const r = useRedis({ before, after });

  it('gives up on a proxy whose drachtio socket dropped, ends its slot, reconnects and routes again', async (t) => {
    const s = await proxyScene(t, r, { count: 1 });
    s.dx.onProxy(() => ({ kind: 'drop' }));
    const lost = s.dx.inject({ method: 'INVITE', sdp: true });
    await lost.proxied();
    await waitFor('nothing in flight', () => s.proxy.inFlight === 0);
    await waitFor('slot released', async () => (await r.client.zcard(s.keys.resv('fs1'))) === 0);
    await waitFor('reconnected', () => s.proxy.drachtioConnected, { timeoutMs: 5000 });
    await s.dx.authenticatedConnections(1);
    s.dx.onProxy(() => ({ kind: 'respond', responses: [{ status: 486 }] }));
    await s.dx.routed(['invite']);
    assert.equal((await s.dx.inject({ method: 'INVITE', sdp: true }).final()).status, 486);
  });

  it('times out a proxy drachtio-server never answers', async (t) => {
    const s = await proxyScene(t, r, {
      count: 1,
      proxy: { maxTargets: 1, provisionalTimeout: '200ms', finalTimeout: '300ms' },
    });
    s.dx.onProxy(() => ({ kind: 'hold' }));
    s.dx.inject({ method: 'INVITE', sdp: true });
    await waitFor('one in flight', () => s.proxy.inFlight === 1);
    await waitFor('given up', () => s.proxy.inFlight === 0, { timeoutMs: 5000 });
    await waitFor('slot released', async () => (await r.client.zcard(s.keys.resv('fs1'))) === 0);
    const metrics = await s.proxy.metrics.registry.getSingleMetricAsString('fslb_proxy_requests_total');
    assert.match(metrics, /method="INVITE",outcome="timeout"} 1/);
  });
});
