import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeClusterEvent } from '@fslb/shared';
import type { InjectedRequest } from '../drachtio-double/index.js';
import { captureLogger } from '../support/log-capture.js';
import { useRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { callOf, proxyScene, viewOf } from './scene.js';

/**
 * Carrier traffic at the edges, through the drachtio-server double with the real drachtio-srf,
 * simulated FreeSWITCH nodes, a real monitor and a real Redis: a flood from one source beside
 * ordinary callers, INVITEs inside a dialog and from the cluster's own nodes, INVITEs that share
 * a Call-ID, and forged load figures on the events channel.
 */
describe('fslb-proxy at the edges of carrier traffic', () => {
  const r = useRedis({ before, after });

  it('keeps ordinary callers connecting while one source floods, and keeps the log short', async (t) => {
    const { log, text } = captureLogger('info');
    const s = await proxyScene(t, r, {
      count: 2,
      log,
      sim: { maxSessions: 1000 },
      proxy: { maxCps: 100, rateLimit: { perSourcePerSec: 20, burst: 20 } },
    });
    const flood: InjectedRequest[] = [];
    const calls: InjectedRequest[] = [];
    const invite = (address: string) =>
      s.dx.inject({ method: 'INVITE', sdp: true }, { source: { address, port: 5060 } });
    // 127.0.0.2 sends 300 INVITEs a second while 127.0.0.3 places 50 calls at 10 a second.
    const started = performance.now();
    const floodTimer = setInterval(() => {
      const due = Math.floor(((performance.now() - started) * 300) / 1000) - flood.length;
      for (let i = 0; i < due; i++) flood.push(invite('127.0.0.2'));
    }, 5);
    t.after(() => clearInterval(floodTimer));
    for (let i = 0; i < 50; i++) {
      calls.push(invite('127.0.0.3'));
      await sleep(100);
    }
    clearInterval(floodTimer);
    const finals = await Promise.all(calls.map((c) => c.final()));
    const connected = finals.filter((f) => f.status === 200).length;
    assert.ok(connected >= 48, `ordinary calls connected: ${connected} of 50`);
    const floodFinals = await Promise.all(flood.map((c) => c.final()));
    const through = floodFinals.filter((f) => f.status === 200).length;
    const seconds = (performance.now() - started) / 1000;
    // The flood gets its own rate (20/s and a burst of 20), no more.
    assert.ok(through <= 20 + Math.ceil(20 * seconds), `flood calls through: ${through} in ${seconds} s`);
    assert.ok(through >= 20, `flood calls through: ${through}`);
    // The rest: over its own rate, or (its burst of 20 against the replica's bucket of 10) over
    // the replica's; never anything else.
    const refused = floodFinals.filter((f) => f.status === 503 && f.reason === 'Rate Limit Exceeded').length;
    const shed = floodFinals.filter((f) => f.status === 503 && f.reason === 'Overloaded').length;
    assert.equal(refused + shed + through, flood.length);
    assert.ok(shed <= 20, `shed by the replica budget: ${shed}`);
    t.diagnostic(
      `flood: ${flood.length} INVITEs, ${through} connected, ${refused} over its rate, ${shed} over the ` +
        `replica's; ordinary: ${connected}/50`,
    );
    // The flood's refusals: one line for the source in the window, then one summary at most.
    const lines = text()
      .split('\n')
      .filter((l) => l.includes('127.0.0.2') && !l.includes('request routed'));
    assert.ok(lines.length <= 2, `lines about the flood: ${lines.length}\n${lines.join('\n')}`);
    assert.ok(
      lines.some((l) => l.includes('"source":"127.0.0.2"')),
      'the flood is named once',
    );
  });

  it('answers an INVITE inside a dialog it does not hold with 481 and takes no slot', async (t) => {
    const s = await proxyScene(t, r, { count: 1 });
    const req = s.dx.inject({ method: 'INVITE', sdp: true, toTag: 'b7e1' });
    const answer = await req.response();
    assert.equal(answer.status, 481);
    assert.equal(req.proxyCommands.length, 0);
    assert.equal(await r.client.exists(s.keys.call(callOf(req))), 0);
    assert.equal(await r.client.zcard(s.keys.resv('fs1')), 0);
  });

  it("answers 482 to an INVITE from a node's SIP address, and routes it when fromNodes is route", async (t) => {
    const s = await proxyScene(t, r, { count: 2 });
    const node = s.sims.nodes[1]!;
    const looped = s.dx.inject(
      { method: 'INVITE', sdp: true },
      { source: { address: '127.0.0.1', port: node.sipPort } },
    );
    assert.equal((await looped.response()).status, 482);
    assert.equal(looped.proxyCommands.length, 0);
    const caller = s.dx.inject(
      { method: 'INVITE', sdp: true },
      { source: { address: '127.0.0.1', port: 45000 } },
    );
    assert.equal((await caller.final()).status, 200);

    const allowed = await proxyScene(t, r, { count: 2, proxy: { fromNodes: 'route' } });
    const routed = allowed.dx.inject(
      { method: 'INVITE', sdp: true },
      { source: { address: '127.0.0.1', port: allowed.sims.nodes[1]!.sipPort } },
    );
    assert.equal((await routed.final()).status, 200);
  });

  it('gives INVITEs that share a Call-ID a slot each, and ends only its own', async (t) => {
    const s = await proxyScene(t, r, { count: 1 });
    s.dx.onProxy(() => ({ kind: 'hold' }));
    const callId = 'forked-1@upstream.example';
    const a = s.dx.inject({ method: 'INVITE', sdp: true, callId, fromTag: 'leg-a' });
    const b = s.dx.inject({ method: 'INVITE', sdp: true, callId, fromTag: 'leg-b' });
    const [cmdA, cmdB] = await Promise.all([a.proxied(), b.proxied()]);
    assert.deepEqual(
      (await r.client.zrange(s.keys.resv('fs1'), 0, -1)).sort(),
      [callOf(a), callOf(b)].sort(),
    );
    // Leg a fails everywhere: its slot ends, leg b's stays.
    cmdA.answer({ kind: 'respond', responses: [{ status: 486 }] });
    assert.equal((await a.final()).status, 486);
    await waitFor('leg a released', async () => (await r.client.zcard(s.keys.resv('fs1'))) === 1);
    assert.deepEqual(await r.client.zrange(s.keys.resv('fs1'), 0, -1), [callOf(b)]);
    // Leg b connects: the monitor settles it by its Call-ID and From tag.
    cmdB.answer({ kind: 'forward' });
    assert.equal((await b.final()).status, 200);
    await waitFor('leg b settled', async () => (await r.client.zcard(s.keys.resv('fs1'))) === 0);
    await viewOf(s, 'fs1', (n) => n.sessions === 1 && n.reservations === 0, 'one call, counted once');
  });

  it('skips load figures stamped ahead of Redis time, and keeps following the true ones', async (t) => {
    const { log, text } = captureLogger('info');
    const s = await proxyScene(t, r, { count: 1, log });
    const node = s.proxy.view.get('fs1')!;
    const forged = encodeClusterEvent({
      type: 'load',
      from: 'intruder',
      nodes: [{ id: 'fs1', sessions: node.maxSessions, reservations: 0, at: (Date.now() + 50_000) * 1000 }],
    });
    await r.client.publish(s.keys.events, forged);
    await waitFor('the forged message was read', () => text().includes('stamped ahead of redis time'));
    s.sims.nodes[0]!.setSessions(3);
    await viewOf(s, 'fs1', (n) => n.sessions === 3, 'the monitor figure, not the forged one');
    assert.ok(s.proxy.view.get('fs1')!.eligible);
  });

  it('reserves the retry after a digest challenge on the node that challenged, in place of the kept slot', async (t) => {
    const { log, text } = captureLogger('info');
    const s = await proxyScene(t, r, { count: 2, log, sim: { challenge: true }, random: () => 0 });
    const callId = 'challenged-1@caller.example';
    const first = s.dx.inject({ method: 'INVITE', sdp: true, callId, fromTag: 'ft-1' });
    const challenge = await first.final();
    assert.equal(challenge.status, 401);
    const challenger = first.proxyCommands[0]!.destinations[0]!;
    const index = s.sims.nodes.findIndex((n) => challenger.endsWith(`:${n.sipPort}`));
    const [id, other] = index === 0 ? ['fs1', 'fs2'] : ['fs2', 'fs1'];
    // The slot stays on the challenger through the challenge.
    assert.deepEqual(await r.client.zrange(s.keys.resv(id), 0, -1), [callOf(first)]);
    // The challenger is now the busier node: a new call would go to the other one.
    s.sims.nodes[index]!.setSessions(20);
    await viewOf(s, id, (n) => n.sessions === 20, '20 sessions');
    const www = challenge.get('WWW-Authenticate') ?? '';
    const realm = /realm="([^"]*)"/.exec(www)?.[1];
    const nonce = /nonce="([^"]*)"/.exec(www)?.[1];
    assert.ok(realm && nonce, www);
    s.dx.onProxy(() => ({ kind: 'hold' }));
    const retry = s.dx.inject({
      method: 'INVITE',
      sdp: true,
      callId,
      fromTag: 'ft-1',
      cseq: 2,
      headers: {
        Authorization: `Digest username="alice", realm="${realm}", nonce="${nonce}", uri="sip:fslb@127.0.0.1", response="00000000000000000000000000000000"`,
      },
    });
    const cmd = await retry.proxied();
    assert.equal(cmd.challengeTarget, challenger, 'drachtio-server sends it to the challenger');
    assert.deepEqual(cmd.destinations, [challenger], 'and fslb names the challenger alone');
    assert.deepEqual(await r.client.zrange(s.keys.resv(id), 0, -1), [callOf(retry)], 'one slot, on it');
    assert.equal(await r.client.zcard(s.keys.resv(other)), 0);
    cmd.answer({ kind: 'forward' });
    assert.equal((await retry.final()).status, 200);
    await waitFor('settled', async () => (await r.client.zcard(s.keys.resv(id))) === 0);
    const lines = await waitFor('both outcome lines', () => {
      const found = text()
        .split('\n')
        .filter((l) => l.includes(callId) && l.includes('request routed'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      return found.length === 2 ? found : undefined;
    });
    assert.deepEqual(
      lines.map((l) => [l.outcome, l.node, l.retryOf, l.answeredBy]),
      [
        ['challenged', id, undefined, undefined],
        ['connected', id, id, id],
      ],
    );
  });

  it('ends the slot and proxies nothing when the caller cancels during the reservation', async (t) => {
    const { log, text } = captureLogger('info');
    const s = await proxyScene(t, r, { count: 1, log });
    const req = s.dx.inject({ method: 'INVITE', sdp: true });
    // The CANCEL follows the INVITE at once: srf has both before Redis answers the reservation.
    assert.equal(req.cancel(), 200);
    await waitFor('the outcome', () => text().includes(`"callId":"${req.callId}"`));
    const line = JSON.parse(
      text()
        .split('\n')
        .find((l) => l.includes(req.callId)) ?? '{}',
    ) as Record<string, unknown>;
    assert.equal(line.outcome, 'cancelled');
    assert.equal(req.proxyCommands.length, 0, 'not proxied: no node gets a call nobody waits for');
    await waitFor('the slot ended', async () => (await r.client.zcard(s.keys.resv('fs1'))) === 0);
    assert.equal(await r.client.exists(s.keys.call(callOf(req))), 0);
    assert.equal(s.sims.nodes[0]!.calls().length, 0);
  });
});
