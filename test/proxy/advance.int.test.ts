import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { useRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { callOf, proxyScene, viewOf, type Scene } from './scene.js';

/**
 * Advance slots (the default): a proxy holds a few reservations per node in Redis ahead of time
 * and proxies an INVITE whose first choice holds one at once, naming the slot in X-Fslb-Slot;
 * the node's monitor settles it with the call. Through the drachtio double, real srf, a real
 * monitor and simulated nodes over a real Redis.
 */
const first = () => 0;

/** Members of a node's reservation set that are advance slots (`#...`) and live now. */
async function advanceMembers(s: Scene, r: { client: Redis }, id: string): Promise<string[]> {
  const members = await r.client.zrangebyscore(s.keys.resv(id), `(${Date.now()}`, '+inf');
  return members.filter((m) => m.startsWith('#'));
}

async function reservationsBy(s: Scene, outcome: string): Promise<number> {
  const m = await s.proxy.metrics.reservations.get();
  return m.values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

describe('fslb-proxy advance slots', () => {
  const r = useRedis({ before, after });

  it('proxies on a slot held ahead of time, names it to the node, and the monitor settles it with the call', async (t) => {
    const s = await proxyScene(t, r, {
      count: 1,
      random: first,
      sim: { maxSessions: 200 },
      proxy: { advanceSlots: 16 },
    });
    // The first call has no slot held yet: it reserves in Redis, and its demand asks for some.
    const c1 = s.dx.inject({ method: 'INVITE', sdp: true });
    assert.equal((await c1.final()).status, 200);
    await waitFor('advance slots held in Redis', async () => (await advanceMembers(s, r, 'fs1')).length > 0);
    const held = await advanceMembers(s, r, 'fs1');
    assert.ok(
      held.every((m) => /^#[\w.-]+:\d+$/.test(m)),
      held.join(' '),
    );

    s.dx.onProxy(() => ({ kind: 'hold' }));
    const c2 = s.dx.inject({ method: 'INVITE', sdp: true });
    const cmd = await c2.proxied();
    const slot = cmd.header('X-Fslb-Slot');
    assert.ok(slot !== undefined && held.includes(slot), `X-Fslb-Slot ${slot} is one of ${held.join(' ')}`);
    assert.equal(await reservationsBy(s, 'advance'), 1);
    // No slot of its own: the call is counted by the advance slot until FreeSWITCH counts it.
    assert.equal(await r.client.zscore(s.keys.resv('fs1'), callOf(c2)), null);
    assert.notEqual(await r.client.zscore(s.keys.resv('fs1'), slot), null);
    cmd.answer({ kind: 'forward' });
    assert.equal((await c2.final()).status, 200);
    await waitFor('the slot settled with the call', async () => {
      const [score, sessions] = await Promise.all([
        r.client.zscore(s.keys.resv('fs1'), slot),
        r.client.hget(s.keys.node('fs1'), 'sessions'),
      ]);
      return score === null && sessions === '2';
    });
    assert.equal(await c1.hangup(), 200);
    assert.equal(await c2.hangup(), 200);
  });

  it('removes a slot spent on a call that every target refused', async (t) => {
    const s = await proxyScene(t, r, {
      count: 1,
      random: first,
      sim: { maxSessions: 200 },
      proxy: { advanceSlots: 16 },
    });
    const warm = s.dx.inject({ method: 'INVITE', sdp: true });
    assert.equal((await warm.final()).status, 200);
    await waitFor('advance slots held', async () => (await advanceMembers(s, r, 'fs1')).length > 0);
    s.dx.onProxy(() => ({ kind: 'respond', responses: [{ status: 486 }] }));
    const busy = s.dx.inject({ method: 'INVITE', sdp: true });
    const cmd = await busy.proxied();
    const slot = cmd.header('X-Fslb-Slot');
    assert.ok(slot, 'proxied on an advance slot');
    assert.equal((await busy.final()).status, 486);
    await waitFor(
      'the spent slot removed',
      async () => (await r.client.zscore(s.keys.resv('fs1'), slot)) === null,
    );
    await warm.hangup();
  });

  it('holds none on a node near capacity, so the last calls reserve one by one', async (t) => {
    // 40 sessions: no proxy holds advance slots once fewer than max(16, 40 / 4) are free.
    const s = await proxyScene(t, r, {
      count: 1,
      random: first,
      sim: { maxSessions: 40 },
      proxy: { advanceSlots: 16 },
    });
    const warm = s.dx.inject({ method: 'INVITE', sdp: true });
    assert.equal((await warm.final()).status, 200);
    await waitFor('advance slots held', async () => (await advanceMembers(s, r, 'fs1')).length > 0);
    s.sims.nodes[0]!.setSessions(30);
    await viewOf(s, 'fs1', (n) => n.sessions >= 30, '30 sessions');
    // The next calls' demand makes the proxy look again: nothing may be held this close to full.
    const calls = [];
    for (let i = 0; i < 4; i++) {
      const c = s.dx.inject({ method: 'INVITE', sdp: true });
      assert.equal((await c.final()).status, 200);
      calls.push(c);
    }
    await waitFor('advance slots handed back', async () => (await advanceMembers(s, r, 'fs1')).length === 0);
    const c = s.dx.inject({ method: 'INVITE', sdp: true });
    const cmd = await c.proxied();
    assert.equal(cmd.header('X-Fslb-Slot'), undefined);
    assert.equal((await c.final()).status, 200);
    for (const call of [warm, ...calls, c]) await call.hangup();
  });

  it("refuses an INVITE from outside that carries fslb's own slot header", async (t) => {
    const s = await proxyScene(t, r, { count: 1, random: first, proxy: { advanceSlots: 16 } });
    const forged = s.dx.inject({ method: 'INVITE', sdp: true, headers: { 'X-Fslb-Slot': '#other.1234:1' } });
    const res = await forged.final();
    assert.equal(res.status, 403);
    assert.equal(s.sims.nodes[0]!.calls().length, 0);
  });
});
