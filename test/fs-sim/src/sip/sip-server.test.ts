import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { afterEach, describe, it } from 'node:test';

import { headerOf, headersOf, RawSip, statusOf } from '../../test-support/raw-sip.js';
import { settlesWithin, within } from '../../../support/wait.js';
import type { FsEvent } from '../event/fs-event.js';
import { FsNode, type FsNodeOptions } from '../fs-node.js';
import { SipUac, type SipTarget } from '../uac/sip-uac.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(
  options: FsNodeOptions = {},
): Promise<{ node: FsNode; uac: SipUac; target: SipTarget; events: FsEvent[] }> {
  const node = await FsNode.start(options);
  const uac = await SipUac.start();
  const events: FsEvent[] = [];
  node.on('event', (e) => events.push(e));
  cleanups.push(
    () => node.close(),
    () => uac.close(),
  );
  return { node, uac, target: { host: node.host, port: node.sipPort }, events };
}

async function rawSip(): Promise<RawSip> {
  const s = await RawSip.open();
  cleanups.push(() => s.close());
  return s;
}

/** An INVITE as a UAC on `port` would write it; `via` replaces the default Via line. */
function invite(opts: {
  port: number;
  target: SipTarget;
  callId?: string;
  branch?: string;
  via?: string;
  extra?: string[];
}): string {
  const sdp =
    'v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n';
  return [
    `INVITE sip:2000@${opts.target.host}:${opts.target.port} SIP/2.0`,
    opts.via ??
      `Via: SIP/2.0/UDP 127.0.0.1:${opts.port};branch=${opts.branch ?? `z9hG4bK${randomUUID()}`};rport`,
    'Max-Forwards: 70',
    `From: <sip:raw@127.0.0.1:${opts.port}>;tag=rawtag`,
    `To: <sip:2000@${opts.target.host}:${opts.target.port}>`,
    `Call-ID: ${opts.callId ?? randomUUID()}`,
    'CSeq: 1 INVITE',
    `Contact: <sip:raw@127.0.0.1:${opts.port}>`,
    ...(opts.extra ?? []),
    'Content-Type: application/sdp',
    `Content-Length: ${sdp.length}`,
    '',
    sdp,
  ].join('\r\n');
}

describe('SIP UAS: calls', () => {
  it('answers INVITE with 100 Trying and 200 OK (To-tag, Contact, SDP); the call is a session until BYE', async () => {
    const { node, uac, target, events } = await setup();
    const call = uac.invite(target);
    const ok = await call.final();
    assert.equal(ok.status, 200);
    assert.deepEqual(
      call.provisional.map((r) => r.status),
      [100],
    );
    assert.match(ok.toTag ?? '', /^[0-9a-f]{16}$/);
    assert.equal(ok.header('Contact'), `<sip:1000@127.0.0.1:${node.sipPort};transport=udp>`);
    assert.equal(ok.header('Content-Type'), 'application/sdp');
    assert.match(ok.raw, /\r\nm=audio \d+ RTP\/AVP 0 101\r\n/);
    assert.equal(node.sessions, 1);
    const create = events.find((e) => e.name === 'CHANNEL_CREATE');
    assert.ok(create);
    assert.equal(create.getHeader('variable_sip_call_id'), call.callId);

    const bye = await call.bye();
    assert.equal(bye.status, 200);
    assert.equal(node.sessions, 0);
    const destroy = events.find((e) => e.name === 'CHANNEL_DESTROY');
    assert.equal(destroy?.getHeader('Unique-ID'), create.getHeader('Unique-ID'));
    assert.deepEqual(
      events.map((e) => e.name),
      ['CHANNEL_CREATE', 'CHANNEL_ANSWER', 'CHANNEL_HANGUP', 'CHANNEL_HANGUP_COMPLETE', 'CHANNEL_DESTROY'],
    );
  });

  it('answers with the first offered codec it supports, offers both when the INVITE has no SDP, 488 otherwise', async () => {
    const { node, uac, target } = await setup();
    const offer = (pts: string): string =>
      `v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP ${pts}\r\n`;
    const pcma = await uac.invite(target, { sdp: offer('18 8 0') }).final();
    assert.match(pcma.raw, /\r\nm=audio \d+ RTP\/AVP 8\r\n/);
    const late = await uac.invite(target, { sdp: false }).final();
    assert.match(late.raw, /\r\nm=audio \d+ RTP\/AVP 0 8 101\r\n/);
    const refused: string[] = [];
    node.on('inviteRefused', (reason) => refused.push(reason));
    const g729 = await uac.invite(target, { sdp: offer('18') }).final();
    assert.equal(g729.status, 488);
    assert.deepEqual(refused, ['no-common-codec']);
    assert.equal(node.sessions, 2);
  });

  it('ends a call with CANCEL: 200 to the CANCEL, 487 to the INVITE, session gone', async () => {
    const { node, uac, target } = await setup({ answerDelayMs: 10_000 });
    const ended: string[] = [];
    node.on('callEnded', (_call, cause) => ended.push(cause));
    const call = uac.invite(target);
    await call.waitForProvisional(180);
    assert.equal(node.sessions, 1);
    const cancel = await call.cancel();
    assert.equal(cancel.status, 200);
    const final = await call.final();
    assert.equal(final.status, 487);
    assert.equal(node.sessions, 0);
    assert.deepEqual(ended, ['ORIGINATOR_CANCEL']);
  });

  it('answers OPTIONS with 200 and its Allow list', async () => {
    const { uac, target } = await setup();
    const r = await uac.options(target);
    assert.equal(r.status, 200);
    assert.match(r.header('Allow') ?? '', /INVITE, ACK, BYE, CANCEL, OPTIONS/);
  });

  it('ends answered calls with its own BYE after --hold-ms', async () => {
    const { node, uac, target } = await setup({ holdMs: 100 });
    const ended: string[] = [];
    node.on('callEnded', (_call, cause) => ended.push(cause));
    const call = uac.invite(target);
    assert.equal((await call.final()).status, 200);
    await within('BYE from the node', 3000, call.ended);
    assert.equal(node.sessions, 0);
    assert.deepEqual(ended, ['NORMAL_CLEARING']);
  });

  it('answers 481 to a BYE outside any dialog, and 405 to a method it does not take', async () => {
    const { target } = await setup();
    const raw = await rawSip();
    raw.send(
      [
        `BYE sip:2000@127.0.0.1:${target.port} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${raw.port};branch=z9hG4bKnodialog;rport`,
        `From: <sip:raw@127.0.0.1>;tag=a`,
        `To: <sip:2000@127.0.0.1>;tag=unknown`,
        'Call-ID: no-such-call',
        'CSeq: 2 BYE',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
      target.port,
    );
    assert.equal(statusOf((await raw.next()).text), 481);
    raw.send(
      [
        `SUBSCRIBE sip:2000@127.0.0.1:${target.port} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${raw.port};branch=z9hG4bKsub;rport`,
        `From: <sip:raw@127.0.0.1>;tag=a`,
        `To: <sip:2000@127.0.0.1>`,
        'Call-ID: sub-1',
        'CSeq: 1 SUBSCRIBE',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
      target.port,
    );
    const sub = (await raw.next()).text;
    assert.equal(statusOf(sub), 405);
    assert.ok(headerOf(sub, 'Allow'));
  });

  it('takes calls over TCP as well', async () => {
    const node = await FsNode.start();
    const uac = await SipUac.start({ transport: 'tcp' });
    cleanups.push(
      () => node.close(),
      () => uac.close(),
    );
    const call = uac.invite({ host: node.host, port: node.sipPort });
    const ok = await call.final();
    assert.equal(ok.status, 200);
    assert.match(ok.header('Contact') ?? '', /transport=tcp/);
    assert.equal(node.sessions, 1);
    assert.equal((await call.bye()).status, 200);
    assert.equal(node.sessions, 0);
  });
});

describe('SIP UAS: refusing calls', () => {
  it('answers 503 Maximum Calls In Progress with Retry-After once max sessions is reached', async () => {
    // The new call's own session counts against the limit: Max-Sessions 3 takes 2 calls.
    const { node, uac, target } = await setup({ maxSessions: 3 });
    const a = uac.invite(target);
    const b = uac.invite(target);
    assert.equal((await a.final()).status, 200);
    assert.equal((await b.final()).status, 200);
    const c = await uac.invite(target).final();
    assert.equal(c.status, 503);
    assert.equal(c.reason, 'Maximum Calls In Progress');
    assert.equal(c.header('Retry-After'), '300');
    assert.equal(node.sessions, 2);
    await a.bye();
    assert.equal((await uac.invite(target).final()).status, 200);
  });

  it('counts sessions set directly against the cap', async () => {
    const { node, uac, target } = await setup({ maxSessions: 5 });
    node.setSessions(4);
    assert.equal((await uac.invite(target).final()).status, 503);
    node.setSessions(3);
    assert.equal((await uac.invite(target).final()).status, 200);
    assert.equal(node.sessions, 4);
  });

  it('answers 503 while paused or while the profile is down, and takes calls again after', async () => {
    const { node, uac, target } = await setup();
    node.pause();
    assert.equal((await uac.invite(target).final()).status, 503);
    node.resume();
    assert.equal((await uac.invite(target).final()).status, 200);
    node.setProfileRunning(false);
    assert.equal((await uac.invite(target).final()).status, 503);
    node.setProfileRunning(true);
    assert.equal((await uac.invite(target).final()).status, 200);
  });

  it('answers 503 to OPTIONS while busy only when told to, as sofia', async () => {
    const { node, uac, target } = await setup({ options503OnBusy: true });
    node.pause();
    assert.equal((await uac.options(target)).status, 503);
    node.resume();
    assert.equal((await uac.options(target)).status, 200);
  });
});

describe('SIP UAS: digest challenges', () => {
  it('answers an INVITE without credentials 401 with a challenge, and takes the retry naming its nonce', async () => {
    const { node, uac, target, events } = await setup({ challenge: true });
    const challenged: [string, string][] = [];
    node.on('challenged', (callId, nonce) => challenged.push([callId, nonce]));
    const call = uac.invite(target, { credentials: { username: '1001', password: 'secret' } });
    const ok = await call.final();
    assert.equal(ok.status, 200);
    const [challenge] = call.challenges;
    assert.equal(challenge?.status, 401);
    assert.equal(challenge.reason, 'Unauthorized');
    const www = challenge.header('WWW-Authenticate') ?? '';
    const nonce = /nonce="([^"]+)"/.exec(www)?.[1];
    assert.equal(www, `Digest realm="127.0.0.1", nonce="${nonce}", algorithm=MD5, qop="auth"`);
    assert.match(nonce ?? '', /^[0-9a-f-]{36}$/);
    assert.deepEqual(challenged, [[call.callId, nonce]]);
    assert.equal(node.challengesSent, 1);
    assert.equal(node.sessions, 1);
    assert.equal(
      events.filter((e) => e.name === 'CHANNEL_CREATE').length,
      1,
      'the challenge made no channel',
    );
    assert.equal((await call.bye()).status, 200);
    assert.equal(node.sessions, 0);
  });

  it('challenges again when the credentials name a nonce it did not issue; no session, no event', async () => {
    const { node, target, events } = await setup({ challenge: true });
    const raw = await rawSip();
    const forged =
      'Authorization: Digest username="raw", realm="127.0.0.1", nonce="not-from-here", uri="sip:2000@127.0.0.1", response="0"';
    raw.send(invite({ port: raw.port, target, extra: [forged] }), target.port);
    const res = (await raw.next()).text;
    assert.equal(statusOf(res), 401);
    assert.doesNotMatch(headerOf(res, 'WWW-Authenticate') ?? '', /not-from-here/);
    assert.match(
      headerOf(res, 'WWW-Authenticate') ?? '',
      /^Digest realm="127\.0\.0\.1", nonce="[0-9a-f-]{36}"/,
    );
    assert.equal(node.challengesSent, 1);
    assert.equal(node.sessions, 0);
    assert.deepEqual(events, []);
  });

  it('takes INVITEs without credentials when challenge is off (the default)', async () => {
    const { node, uac, target } = await setup();
    const call = uac.invite(target, { credentials: { username: '1001', password: 'secret' } });
    assert.equal((await call.final()).status, 200);
    assert.deepEqual(call.challenges, []);
    assert.equal(node.challengesSent, 0);
  });
});

describe('SIP UAS: channel events', () => {
  it("carry the INVITE's Call-ID and From tag (variable_sip_call_id, variable_sip_from_tag) from CREATE to DESTROY", async () => {
    const { uac, target, events } = await setup();
    const call = uac.invite(target);
    assert.equal((await call.final()).status, 200);
    assert.equal((await call.bye()).status, 200);
    const named = (name: string): FsEvent | undefined => events.find((e) => e.name === name);
    for (const name of ['CHANNEL_CREATE', 'CHANNEL_DESTROY']) {
      assert.equal(named(name)?.getHeader('variable_sip_call_id'), call.callId, name);
      assert.equal(named(name)?.getHeader('variable_sip_from_tag'), call.fromTag, name);
    }
  });
});

describe('SIP UAS: the wire', () => {
  it('sends responses back to the source port when the Via has rport, adding received and rport', async () => {
    const { target } = await setup();
    const raw = await rawSip();
    raw.send(invite({ port: raw.port, target }), target.port);
    const trying = (await raw.next()).text;
    assert.equal(statusOf(trying), 100);
    assert.match(headerOf(trying, 'Via') ?? '', new RegExp(`;rport=${raw.port};received=127\\.0\\.0\\.1$`));
  });

  it('sends responses to the Via port (at the source address) when there is no rport (RFC 3261 §18.2.2)', async () => {
    const { target } = await setup();
    const sender = await rawSip();
    const listener = await rawSip();
    const via = `Via: SIP/2.0/UDP uac.invalid:${listener.port};branch=z9hG4bK${randomUUID()}`;
    sender.send(invite({ port: listener.port, target, via }), target.port);
    const trying = (await listener.next()).text;
    assert.equal(statusOf(trying), 100);
    assert.match(headerOf(trying, 'Via') ?? '', /;received=127\.0\.0\.1$/);
    assert.equal(sender.waiting, 0);
  });

  it('parses compact header names and folded header lines', async () => {
    const { node, target } = await setup();
    const raw = await rawSip();
    const callId = `compact-${randomUUID()}`;
    const sdp =
      'v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n';
    raw.send(
      [
        `INVITE sip:2000@127.0.0.1:${target.port} SIP/2.0`,
        `v: SIP/2.0/UDP 127.0.0.1:${raw.port}`,
        `  ;branch=z9hG4bK${randomUUID()};rport`,
        'Max-Forwards: 70',
        `f: "Folded`,
        `\tName" <sip:raw@127.0.0.1:${raw.port}>;tag=f1`,
        `t: <sip:2000@127.0.0.1:${target.port}>`,
        `i: ${callId}`,
        'CSeq: 1',
        ' INVITE',
        `m: <sip:raw@127.0.0.1:${raw.port}>`,
        'c: application/sdp',
        `l: ${sdp.length}`,
        '',
        sdp,
      ].join('\r\n'),
      target.port,
    );
    const ok = await raw.next(3000, (d) => statusOf(d.text) === 200);
    assert.equal(headerOf(ok.text, 'Call-ID'), callId);
    assert.match(headerOf(ok.text, 'CSeq') ?? '', /^1 INVITE$/);
    assert.equal(node.sessions, 1);
  });

  it('resends the same response to a retransmitted INVITE and makes one session of it', async () => {
    const { node, target, events } = await setup();
    const raw = await rawSip();
    const text = invite({ port: raw.port, target });
    raw.send(text, target.port);
    const first = await raw.next(3000, (d) => statusOf(d.text) === 200);
    raw.send(text, target.port);
    const again = await raw.next(3000, (d) => statusOf(d.text) === 200);
    assert.equal(again.text, first.text);
    assert.equal(node.sessions, 1);
    assert.equal(events.filter((e) => e.name === 'CHANNEL_CREATE').length, 1);
  });

  it('resends the 200 OK over UDP until the ACK comes', async () => {
    const { target } = await setup();
    const raw = await rawSip();
    raw.send(invite({ port: raw.port, target }), target.port);
    const first = await raw.next(3000, (d) => statusOf(d.text) === 200);
    const resent = await raw.next(2000, (d) => statusOf(d.text) === 200);
    assert.equal(resent.text, first.text);
  });

  it('copies Record-Route into the 200 and sends its own BYE through the route set', async () => {
    const { node, target } = await setup();
    const caller = await rawSip();
    const proxy = await rawSip();
    const route = `<sip:127.0.0.1:${proxy.port};lr>`;
    caller.send(invite({ port: caller.port, target, extra: [`Record-Route: ${route}`] }), target.port);
    const ok = (await caller.next(3000, (d) => statusOf(d.text) === 200)).text;
    assert.deepEqual(headersOf(ok, 'Record-Route'), [route]);
    node.hangupAll();
    const bye = (await proxy.next()).text;
    assert.match(bye, new RegExp(`^BYE sip:raw@127\\.0\\.0\\.1:${caller.port} SIP/2\\.0\\r\\n`));
    assert.equal(headerOf(bye, 'Route'), route);
    assert.match(headerOf(bye, 'To') ?? '', /;tag=rawtag$/);
  });
});

describe('SIP UAS: garbage in', () => {
  it('drops what it cannot parse or answer and keeps taking calls', async () => {
    const { node, uac, target } = await setup();
    const raw = await rawSip();
    const junk = [
      '\u0000\u0001 not sip at all',
      'INVITE sip:x@127.0.0.1 SIP/2.0\r\n\r\n',
      `INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${raw.port};branch=z9hG4bKj1\r\nTo: <<<\r\nFrom: x\r\nCall-ID: j\r\nCSeq: 1 INVITE\r\n\r\n`,
      `OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${raw.port};branch=z9hG4bKj2\r\nCall-ID: j2\r\n\r\n`,
      `BYE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${raw.port};branch=z9hG4bKj3\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: j3\r\nCSeq: 9 BYE\r\nContent-Length: 999\r\n\r\nshort`,
      'SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKnobody\r\nCSeq: 1 BYE\r\n\r\n',
    ];
    for (const text of junk) raw.send(text, target.port);
    assert.equal((await uac.invite(target).final()).status, 200);
    assert.equal(node.sessions, 1);
  });
});

describe('SIP UAS: stalled', () => {
  it('answers nothing while stalled, then handles what arrived once the stall ends', async () => {
    const { node, uac, target } = await setup();
    node.stall();
    const call = uac.invite(target);
    assert.equal(await settlesWithin(call.final(), 300), false);
    assert.equal(node.sessions, 0);
    node.unstall();
    assert.equal((await call.final()).status, 200);
  });
});
