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
  tagOf,
  type DrachtioDoubleOptions,
  type InjectedRequest,
  type SipRequestSpec,
} from './index.js';

import { SrfApp, type AppRequest, type ProxyOptions, type ProxyResult } from './srf-app.js';

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

type InviteSpec = Omit<SipRequestSpec, 'method'>;

interface Scene {
  dx: DrachtioDouble;
  /** The Call-IDs of the INVITEs srf emitted `cancel` for. */
  cancels: string[];
  /** Injects an INVITE (a G.711 offer, then `spec`); `result` settles with srf's req.proxy() outcome. */
  start: (spec?: InviteSpec) => { h: InjectedRequest; result: Promise<ProxyResult> };
  /** As `start`, and waits for the outcome. */
  call: (spec?: InviteSpec) => Promise<{ h: InjectedRequest; result: ProxyResult }>;
}

/** A double in forward mode and an srf app that proxies every INVITE with `opts` (or `opts(req)`). */
async function scene(
  opts: ProxyOptions | ((req: AppRequest) => ProxyOptions),
  options: DrachtioDoubleOptions = {},
): Promise<Scene> {
  const dx = await DrachtioDouble.start(options);
  cleanups.push(() => dx.close());
  const outcomes = new Map<string, Promise<ProxyResult>>();
  const cancels: string[] = [];
  const app = new SrfApp(dx)
    .invite((req) => {
      req.on('cancel', () => cancels.push(req.get('Call-ID')));
      const p = req.proxy(typeof opts === 'function' ? opts(req) : opts);
      p.catch(() => undefined);
      outcomes.set(req.stackTxnId, p);
    })
    .connect();
  cleanups.push(() => app.close());
  await dx.routed(['invite']);
  const start = (spec: InviteSpec = {}): { h: InjectedRequest; result: Promise<ProxyResult> } => {
    const h = dx.inject({ method: 'INVITE', sdp: true, ...spec });
    const result = waitFor(
      'the app to proxy',
      () => outcomes.get(h.txnId) && { p: outcomes.get(h.txnId)! },
    ).then(({ p }) => within('req.proxy() to settle', 10_000, p));
    result.catch(() => undefined);
    return { h, result };
  };
  return {
    dx,
    cancels,
    start,
    call: async (spec) => {
      const { h, result } = start(spec);
      return { h, result: await result };
    },
  };
}

/** Proxy options naming the destinations of the INVITE's X-Dest header (comma-separated). */
const steered = (req: AppRequest): ProxyOptions => ({
  destination: req.get('X-Dest').split(','),
  provisionalTimeout: '2s',
});

/** The same caller sending its INVITE again (same Call-ID and From tag) with CSeq `cseq`. */
function again(h: InjectedRequest, cseq: number, headers: Record<string, string>): InviteSpec {
  return { callId: h.callId, fromTag: tagOf(h.message.get('from')) ?? '', cseq, headers };
}

/** The nonce of a challenge (quotes removed). */
const nonceOf = (res: SipMessage): string =>
  /nonce="([^"]*)"/.exec(res.get('www-authenticate') ?? res.get('proxy-authenticate') ?? '')?.[1] ?? '';

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

  reply(
    to: { msg: SipMessage; from: RemoteInfo },
    status: number,
    reason: string,
    opts: { branch?: string; headers?: Record<string, string> } = {},
  ): void {
    const { branch } = opts;
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
    for (const [name, value] of Object.entries(opts.headers ?? {})) res.add(name, value);
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
    peer.reply(first, 200, 'OK', { branch: 'z9hG4bKsomeoneelse' });
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

const branchOf = (m: SipMessage): string | undefined => parseVia(m.get('via') ?? '')?.branch;

describe('forward mode: digest challenges', () => {
  it("stops at a node's 401 and sends the retry with credentials to that node, whatever destinations the app gives", async () => {
    const fsA = await node({ challenge: true });
    const fsB = await node({ challenge: true });
    const atB: string[] = [];
    fsB.on('sipRequest', (method) => atB.push(method));
    const { dx, call } = await scene(steered);

    const first = await call({ headers: { 'X-Dest': `${target(fsA)},${target(fsB)}` } });
    assert.equal(first.result.connected, false);
    assert.equal(first.result.finalStatus, 401);
    assert.deepEqual(statuses(first.result), [[401]]);
    const challenge = await first.h.final();
    assert.equal(challenge.status, 401, "the challenge is the caller's final");
    const nonce = nonceOf(challenge);
    assert.deepEqual(
      first.h.forwarded.map((f) => f.destination),
      [`sip:${target(fsA)}`],
      'no further destination was tried',
    );
    assert.deepEqual(atB, []);
    assert.equal(fsA.challengesSent, 1);
    assert.deepEqual(
      [...dx.challenges],
      [[`"${nonce}"`, { realm: '"127.0.0.1"', target: `sip:${target(fsA)}` }]],
    );

    const authorization = `Digest username="caller", realm="127.0.0.1", nonce="${nonce}", uri="sip:service@127.0.0.1:5060", response="0"`;
    const retry = await call(again(first.h, 2, { 'X-Dest': target(fsB), Authorization: authorization }));
    const cmd = retry.h.proxyCommands[0];
    assert.deepEqual(cmd?.destinations, [`sip:${target(fsB)}`], 'the app chose the other node');
    assert.equal(cmd.challengeTarget, `sip:${target(fsA)}`);
    assert.deepEqual(cmd.targets, [`sip:${target(fsA)}`]);
    assert.equal(retry.result.connected, true);
    assert.equal(retry.result.responses[0]?.port, fsA.sipPort);
    assert.equal(fsA.calls()[0]?.callId, first.h.callId);
    assert.deepEqual(atB, [], 'the node the app chose never saw the call');
    assert.equal(dx.challenges.size, 0, 'a remembered challenge is used once');
    assert.equal(await retry.h.hangup(), 200);
  });

  it('remembers a 407 with Proxy-Authenticate; credentials for another realm are no retry, the right realm is', async () => {
    const peer = await UdpPeer.start();
    const fsB = await node();
    const { dx, start, call } = await scene(steered);
    const first = start({ headers: { 'X-Dest': `${target(peer.port)},${target(fsB)}` } });
    const invite = await waitFor('the INVITE at the peer', () => peer.of('INVITE')[0]);
    peer.reply(invite, 407, 'Proxy Authentication Required', {
      headers: { 'Proxy-Authenticate': 'Digest realm="peer.test", nonce="n-1", algorithm=MD5' },
    });
    assert.deepEqual(statuses(await first.result), [[407]]);
    assert.equal((await first.h.final()).status, 407);
    await waitFor('the ACK of the 407', () => peer.of('ACK')[0]);
    assert.equal(first.h.forwarded.length, 1, 'the second destination was not tried');

    const credentials = (realm: string): string =>
      `Digest username="c", realm="${realm}", nonce="n-1", uri="sip:service@127.0.0.1", response="0"`;
    const elsewhere = await call(
      again(first.h, 2, { 'X-Dest': target(fsB), 'Proxy-Authorization': credentials('elsewhere') }),
    );
    assert.equal(elsewhere.h.proxyCommands[0]?.challengeTarget, undefined);
    assert.equal(elsewhere.result.connected, true, "the app's destination was used");
    assert.equal(dx.challenges.get('"n-1"')?.target, `sip:${target(peer.port)}`, 'still remembered');
    assert.equal(await elsewhere.h.hangup(), 200);

    const right = start(
      again(first.h, 3, { 'X-Dest': target(fsB), 'Proxy-Authorization': credentials('peer.test') }),
    );
    const retried = await waitFor('the retry at the peer', () =>
      peer.of('INVITE').find((r) => r.msg.cseq.seq === 3),
    );
    assert.equal(retried.msg.get('proxy-authorization'), credentials('peer.test'));
    peer.reply(retried, 486, 'Busy Here');
    assert.deepEqual(statuses(await right.result), [[486]]);
    assert.equal(right.h.proxyCommands[0]?.challengeTarget, `sip:${target(peer.port)}`);
    assert.equal(dx.challenges.size, 0);
  });

  it('forgets a challenge after challengeTtlMs: a late retry goes where the app says, and is challenged there', async () => {
    const fsA = await node({ challenge: true });
    const fsB = await node({ challenge: true });
    const { dx, call } = await scene(steered, { challengeTtlMs: 100 });
    const first = await call({ headers: { 'X-Dest': target(fsA) } });
    const nonce = nonceOf(await first.h.final());
    await waitFor('the challenge to lapse', () => dx.challenges.size === 0);
    const authorization = `Digest username="caller", realm="127.0.0.1", nonce="${nonce}", uri="sip:service@127.0.0.1", response="0"`;
    const late = await call(again(first.h, 2, { 'X-Dest': target(fsB), Authorization: authorization }));
    assert.equal(late.h.proxyCommands[0]?.challengeTarget, undefined);
    assert.equal(late.result.finalStatus, 401, "the other node does not know the first node's nonce");
    assert.equal(fsB.challengesSent, 1);
    assert.notEqual(nonceOf(await late.h.final()), nonce);
  });
});

describe('forward mode: CANCEL from the caller', () => {
  it('while the node rings: 200 to the CANCEL, 487 to the caller, CANCEL to the node; srf sees the 487, no cancel event', async () => {
    const ringing = await node({ answerDelayMs: 10_000 });
    const atNode: string[] = [];
    ringing.on('sipRequest', (method) => atNode.push(method));
    const ended = once(ringing, 'callEnded');
    const { start, cancels } = await scene({ destination: target(ringing) });
    const { h, result } = start();
    await waitFor('the 180 at the caller', () => h.callerResponses.some((r) => r.status === 180));
    assert.equal(h.cancel(), 200);
    assert.equal(h.cancelResponses[0]?.status, 200);
    const outcome = await result;
    assert.equal(outcome.connected, false);
    assert.equal(outcome.finalStatus, 487);
    assert.deepEqual(statuses(outcome), [[487]], "the node's 487 is reported to the app, then done");
    assert.deepEqual(
      h.callerResponses.map((r) => r.status),
      [100, 180, 487],
    );
    const [info, cause] = (await within('the node to end the call', 2000, ended)) as [
      { callId: string },
      string,
    ];
    assert.equal(info.callId, h.callId);
    assert.equal(cause, 'ORIGINATOR_CANCEL');
    assert.deepEqual(atNode, ['INVITE', 'CANCEL', 'ACK']);
    assert.deepEqual(cancels, [], 'drachtio does not pass a CANCEL of a proxied INVITE to the app');
    assert.equal(ringing.calls().length, 0);
  });

  it('sends no CANCEL to a target that has not answered yet, and one as soon as it does', async () => {
    const peer = await UdpPeer.start();
    const { start } = await scene({ destination: target(peer.port) });
    const { h, result } = start();
    const invite = await waitFor('the INVITE at the peer', () => peer.of('INVITE')[0]);
    assert.equal(h.cancel(), 200);
    assert.equal((await h.final()).status, 487);
    const before = peer.received.length;
    peer.reply(invite, 180, 'Ringing');
    const cancel = await waitFor('the CANCEL', () => peer.of('CANCEL')[0]);
    assert.ok(peer.received.indexOf(cancel) >= before, 'the CANCEL came after the 180');
    assert.equal(branchOf(cancel.msg), branchOf(invite.msg), 'same branch as the INVITE (RFC 3261 §9.1)');
    assert.equal(cancel.msg.get('cseq'), '1 CANCEL');
    assert.equal(cancel.msg.uri, invite.msg.uri);
    peer.reply(cancel, 200, 'OK');
    peer.reply(invite, 487, 'Request Terminated');
    assert.deepEqual(statuses(await result), [[487]]);
    await waitFor('the ACK of the 487', () => peer.of('ACK')[0]);
    assert.deepEqual(
      h.callerResponses.map((r) => r.status),
      [100, 487],
      'the late 180 is not relayed',
    );
  });

  it('answers 481 once the call is answered, and the call stays up', async () => {
    const fs1 = await node();
    const { call } = await scene({ destination: target(fs1) });
    const { h } = await call();
    await h.connected();
    assert.equal(h.cancel(), 481);
    assert.equal(h.cancelResponses[0]?.status, 481);
    assert.equal(fs1.calls().length, 1);
    assert.equal(await h.hangup(), 200);
  });

  it('lets the app proxy after the CANCEL it was given, as drachtio v0.9.4 does: the node gets the call the caller gave up', async () => {
    const fs1 = await node();
    const dx = await DrachtioDouble.start();
    cleanups.push(() => dx.close());
    const outcomes: Promise<ProxyResult>[] = [];
    const received: string[] = [];
    const app = new SrfApp(dx)
      .invite((req) => {
        received.push(req.get('Call-ID'));
        req.on('cancel', () => {
          const p = req.proxy({ destination: target(fs1) });
          p.catch(() => undefined);
          outcomes.push(p);
        });
      })
      .connect();
    cleanups.push(() => app.close());
    await dx.routed(['invite']);
    const h = dx.inject({ method: 'INVITE', sdp: true });
    await waitFor('the app to get the INVITE', () => received.includes(h.callId));
    assert.equal(h.cancel(), 200);
    const outcome = await within(
      'the proxy after the CANCEL',
      5000,
      waitFor('a proxy', () => outcomes[0] && { p: outcomes[0] }).then(({ p }) => p),
    );
    assert.equal(outcome.connected, true);
    assert.equal(h.finalResponse?.status, 487, "the caller's final stays the 487");
    assert.equal(h.canceled, true);
    const stray = await h.connected();
    assert.equal(fs1.calls().length, 1, 'a call the caller had cancelled');
    assert.equal(await stray.hangup(), 200);
  });
});
