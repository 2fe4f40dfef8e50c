import assert from 'node:assert/strict';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { afterEach, describe, it } from 'node:test';

import { FsNode, type FsEvent, type FsNodeOptions } from '@fslb/fs-sim';

import { waitFor, within } from '../support/wait.js';
import {
  DrachtioDouble,
  parseVia,
  SipMessage,
  type DrachtioDoubleOptions,
  type InjectedRequest,
} from './index.js';

import { SrfApp, type ProxyOptions, type ProxyResult } from './srf-app.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function node(options: FsNodeOptions = {}): Promise<FsNode> {
  const n = await FsNode.start({ heartbeatMs: 0, ...options });
  cleanups.push(() => n.close());
  return n;
}

const target = (n: { sipPort: number } | number): string =>
  `127.0.0.1:${typeof n === 'number' ? n : n.sipPort}`;

interface Scene {
  dx: DrachtioDouble;
  /** Injects an INVITE; resolves with its handle and srf's req.proxy() outcome. */
  call: () => Promise<{ h: InjectedRequest; result: ProxyResult }>;
}

/** A double in forward mode and an srf app that proxies every INVITE with `opts`. */
async function scene(opts: ProxyOptions, options: DrachtioDoubleOptions = {}): Promise<Scene> {
  const dx = await DrachtioDouble.start(options);
  cleanups.push(() => dx.close());
  const outcomes = new Map<string, Promise<ProxyResult>>();
  const app = new SrfApp(dx)
    .invite((req) => {
      const p = req.proxy(opts);
      p.catch(() => undefined);
      outcomes.set(req.stackTxnId, p);
    })
    .connect();
  cleanups.push(() => app.close());
  await dx.routed(['invite']);
  return {
    dx,
    call: async () => {
      const h = dx.inject({ method: 'INVITE', sdp: true });
      const p = await waitFor(
        'the app to proxy',
        () => outcomes.get(h.txnId) && { p: outcomes.get(h.txnId)! },
      );
      return { h, result: await within('req.proxy() to settle', 10_000, p.p) };
    },
  };
}

const statuses = (r: ProxyResult): number[][] => r.responses.map((g) => g.msgs.map((m) => m.status));

describe('forward mode', () => {
  it('reaches the second node when the first is full (503), and hangup() ends the call there', async () => {
    const full = await node({ maxSessions: 1 });
    const fs2 = await node();
    const refused: string[] = [];
    full.on('inviteRefused', (_reason, callId) => refused.push(callId));
    const created: FsEvent[] = [];
    fs2.on('event', (e) => e.name === 'CHANNEL_CREATE' && created.push(e));
    const { call } = await scene({
      destination: [target(full), target(fs2)],
      remainInDialog: true,
      provisionalTimeout: '2s',
      headers: { 'X-Fslb-Node': 'fs2' },
    });
    const { h, result } = await call();
    assert.equal(result.connected, true);
    assert.equal(result.finalStatus, 200);
    assert.deepEqual(statuses(result), [[503, 200]], 'srf files both under one entry: same address');
    assert.equal(result.responses[0]?.port, full.sipPort, 'the entry carries the first port');
    assert.equal(result.responses[0].msgs[0]?.msg.get('Retry-After'), '300');
    assert.deepEqual(refused, [h.callId]);
    assert.equal((await h.final()).status, 200);
    assert.equal(created[0]?.getHeader('variable_sip_call_id'), h.callId, 'the Call-ID is kept end to end');

    const [, second] = h.forwarded;
    assert.deepEqual(
      h.forwarded.map((f) => f.destination),
      [`sip:${target(full)}`, `sip:${target(fs2)}`],
    );
    const invite = second!.message;
    assert.equal(invite.uri, `sip:${target(fs2)}`, 'a Request-URI naming the server is replaced');
    assert.equal(invite.get('max-forwards'), '69');
    assert.equal(invite.getAll('via').length, 2);
    assert.notEqual(
      parseVia(invite.get('via') ?? '')?.branch,
      parseVia(h.forwarded[0]!.message.get('via') ?? '')?.branch,
    );
    assert.match(invite.get('record-route') ?? '', /^<sip:127\.0\.0\.1:\d+;lr>$/);
    assert.equal(invite.get('x-fslb-node'), 'fs2');

    const call1 = await h.connected();
    assert.equal(call1.destination, `sip:${target(fs2)}`);
    assert.equal(fs2.calls().length, 1);
    const ended = once(fs2, 'callEnded');
    assert.equal(await h.hangup(), 200);
    await within('the node to end the call', 2000, ended);
    assert.equal(fs2.calls().length, 0);
    assert.equal(call1.endedBy, 'local');
  });

  it('moves on after provisionalTimeout when the first node is stopped; the silent one leaves no entry', async () => {
    const stopped = await node();
    const fs2 = await node();
    const stoppedPort = stopped.sipPort;
    await stopped.close();
    const { call } = await scene({
      destination: [target(stoppedPort), target(fs2)],
      provisionalTimeout: '300ms',
    });
    const started = Date.now();
    const { h, result } = await call();
    assert.ok(Date.now() - started >= 300, 'waited for the provisional timeout');
    assert.equal(result.connected, true);
    assert.deepEqual(statuses(result), [[200]]);
    assert.equal(result.responses[0]?.port, fs2.sipPort);
    assert.equal(fs2.calls().length, 1);
    assert.equal(await h.hangup(), 200);
  });

  it('sends done with the best failure when every node refuses', async () => {
    const a = await node({ maxSessions: 1 });
    const b = await node({ maxSessions: 1 });
    const { call } = await scene({ destination: [target(a), target(b)] });
    const { h, result } = await call();
    assert.equal(result.connected, false);
    assert.equal(result.finalStatus, 503);
    assert.deepEqual(statuses(result), [[503, 503]]);
    assert.equal((await h.final()).status, 503);
    assert.equal(h.call, undefined);
  });

  it("answers the node's BYE, which comes back through the double's Record-Route", async () => {
    const fs1 = await node();
    const { dx, call } = await scene({ destination: target(fs1), recordRoute: true });
    const byes: SipMessage[] = [];
    dx.forwarder.on('request', (req) => req.method === 'BYE' && byes.push(req));
    const { h } = await call();
    const c = await h.connected();
    const ended = once(c, 'ended');
    assert.equal(fs1.hangupAll(), 1);
    assert.deepEqual(await within('the BYE', 2000, ended), ['remote']);
    assert.equal(byes[0]?.get('route'), `<sip:127.0.0.1:${dx.forwarder.port};lr>`);
    await waitFor('the node to see its BYE answered', () => fs1.calls().length === 0);
    await assert.rejects(h.hangup(), /is ended/);
  });

  it('forks simultaneously: the first 200 wins and the ringing node gets CANCEL', async () => {
    const ringing = await node({ answerDelayMs: 5000 });
    const quick = await node();
    const { call } = await scene({ destination: [target(ringing), target(quick)], forking: 'simultaneous' });
    const cancelled = once(ringing, 'callEnded');
    const { h, result } = await call();
    assert.equal(result.connected, true);
    assert.equal(result.responses[0]?.msgs.at(-1)?.status, 200);
    assert.equal(h.forwarded.length, 2, 'both INVITEs went out at once');
    const [info, cause] = (await within('the CANCEL to end the ringing call', 2000, cancelled)) as [
      { callId: string },
      string,
    ];
    assert.equal(info.callId, h.callId);
    assert.equal(cause, 'ORIGINATOR_CANCEL');
    assert.equal(quick.calls().length, 1);
  });

  it('rejects Max-Forwards 0 with NOK and 483, and a target it cannot reach over UDP with NOK', async () => {
    const dx = await DrachtioDouble.start();
    cleanups.push(() => dx.close());
    const errors: unknown[] = [];
    const app = new SrfApp(dx)
      .invite((req) => {
        const dest = req.get('X-Dest');
        req.proxy({ destination: dest }).catch((e: unknown) => errors.push(e));
      })
      .connect();
    cleanups.push(() => app.close());
    await dx.routed(['invite']);
    const hops = dx.inject({ method: 'INVITE', maxForwards: 0, headers: { 'X-Dest': '127.0.0.1:9' } });
    assert.equal((await hops.final()).status, 483);
    dx.inject({ method: 'INVITE', headers: { 'X-Dest': 'sip:127.0.0.1:9;transport=tcp' } });
    await waitFor('two errors', () => errors.length === 2);
    assert.deepEqual(errors, [
      'Rejected with 483 Too Many Hops due to Max-Forwards value of 0',
      'error proxying request to ',
    ]);
  });
});

/** A UDP peer the test scripts by hand. */
class UdpPeer {
  readonly received: { msg: SipMessage; raw: Buffer; from: RemoteInfo }[] = [];

  private constructor(readonly socket: Socket) {
    socket.on('message', (raw, from) => this.received.push({ msg: SipMessage.parse(raw), raw, from }));
  }

  static async start(): Promise<UdpPeer> {
    const socket = createSocket('udp4');
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    cleanups.push(() => new Promise<void>((r) => socket.close(() => r())));
    return new UdpPeer(socket);
  }

  get port(): number {
    return this.socket.address().port;
  }

  of(method: string): { msg: SipMessage; raw: Buffer; from: RemoteInfo }[] {
    return this.received.filter((r) => r.msg.method === method);
  }

  reply(to: { msg: SipMessage; from: RemoteInfo }, status: number, reason: string, branch?: string): void {
    const res = SipMessage.response(status, reason);
    const vias = to.msg.getAll('via');
    res.add(
      'Via',
      branch === undefined ? (vias[0] ?? '') : (vias[0] ?? '').replace(/branch=[^;]+/, `branch=${branch}`),
    );
    for (const v of vias.slice(1)) res.add('Via', v);
    res.add('From', to.msg.get('from') ?? '');
    res.add('To', `${to.msg.get('to') ?? ''}${status > 100 ? ';tag=peer1' : ''}`);
    res.add('Call-ID', to.msg.callId);
    res.add('CSeq', to.msg.get('cseq') ?? '');
    this.socket.send(res.toString(), to.from.port, to.from.address);
  }
}

describe('forward mode transactions', () => {
  it('resends the INVITE on Timer A until a response, and matches responses by Via branch', async () => {
    const peer = await UdpPeer.start();
    const { call } = await scene({ destination: target(peer.port) }, { forward: { timers: { t1Ms: 40 } } });
    const outcome = call();
    await waitFor('three copies of the INVITE', () => peer.of('INVITE').length >= 3);
    const copies = peer.of('INVITE');
    assert.ok(
      copies.every((c) => c.raw.equals(copies[0]!.raw)),
      'retransmissions are identical',
    );
    const first = copies[0]!;
    peer.reply(first, 200, 'OK', 'z9hG4bKsomeoneelse');
    peer.reply(first, 100, 'Trying');
    const count = peer.of('INVITE').length;
    peer.reply(first, 486, 'Busy Here');
    const { h, result } = await outcome;
    assert.equal(result.finalStatus, 486, 'the 200 with a foreign branch was ignored');
    assert.equal(h.call, undefined);
    const ack = await waitFor('the ACK', () => peer.of('ACK')[0]);
    assert.equal(parseVia(ack.msg.get('via') ?? '')?.branch, parseVia(first.msg.get('via') ?? '')?.branch);
    assert.equal(ack.msg.get('cseq'), '1 ACK');
    assert.match(ack.msg.get('to') ?? '', /tag=peer1/);
    assert.ok(peer.of('INVITE').length <= count + 1, 'no more resends after the 100');
  });

  it('ends at Timer B without trying the next target when no provisionalTimeout is set (as drachtio does)', async () => {
    const silent = await UdpPeer.start();
    const fs2 = await node();
    const requests: string[] = [];
    fs2.on('sipRequest', (method) => requests.push(method));
    const { call } = await scene(
      { destination: [target(silent.port), target(fs2)] },
      { forward: { timers: { t1Ms: 10 } } },
    );
    const { h, result } = await call();
    assert.deepEqual(result, { connected: false, responses: [] });
    assert.equal((await h.final()).status, 408);
    assert.deepEqual(requests, []);
    assert.ok(silent.of('INVITE').length >= 5);
  });
});
