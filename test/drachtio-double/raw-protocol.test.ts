import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';

import { waitFor } from '../support/wait.js';
import { DrachtioDouble } from './drachtio-double.js';
import { SipMessage } from './sip-message.js';
import { frame, FrameDecoder, parseAppMessage, type AppMessage } from './wire.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** An app that speaks the wire protocol byte by byte, to check exact formats. */
class RawApp {
  private readonly decoder = new FrameDecoder();
  private readonly inbox: AppMessage[] = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk) => this.inbox.push(...this.decoder.push(chunk).map(parseAppMessage)));
    socket.on('close', () => (this.closed = true));
  }

  static async connect(dx: DrachtioDouble): Promise<RawApp> {
    const socket = connect({ host: dx.host, port: dx.port });
    await once(socket, 'connect');
    const raw = new RawApp(socket);
    cleanups.push(() => void socket.destroy());
    return raw;
  }

  send(body: string): void {
    this.socket.write(frame(body));
  }

  next(): Promise<AppMessage> {
    return waitFor('a message from the double', () => this.inbox.shift(), { timeoutMs: 2000 });
  }

  async authenticated(dx: DrachtioDouble, verb = 'invite'): Promise<void> {
    this.send(`a1|authenticate|${dx.secret}|`);
    await this.next();
    this.send(`r1|route|${verb}`);
    await this.next();
  }
}

async function double(): Promise<DrachtioDouble> {
  const dx = await DrachtioDouble.start();
  cleanups.push(() => dx.close());
  return dx;
}

describe('the double on the wire', () => {
  it('answers authenticate, route and ping as drachtio-server does', async () => {
    const dx = await double();
    const app = await RawApp.connect(dx);
    app.send('a1|authenticate|cymru|t1,t2');
    const auth = await app.next();
    assert.equal(auth.type, 'response');
    assert.deepEqual(auth.tokens.slice(2), [
      'a1',
      'OK',
      'udp/127.0.0.1:5060,tcp/127.0.0.1:5060',
      'v0.9.4',
      'udp/127.0.0.1:5060,tcp/127.0.0.1:5060',
    ]);
    app.send('r1|route|invite');
    assert.deepEqual((await app.next()).tokens.slice(1), ['response', 'r1', 'OK']);
    app.send('p1|ping');
    assert.deepEqual((await app.next()).tokens.slice(1), ['response', 'p1', 'OK', 'pong']);
  });

  it('reads app messages split byte by byte and merged in one write', async () => {
    const dx = await double();
    const app = await RawApp.connect(dx);
    for (const b of frame('a1|authenticate|cymru|')) {
      app.socket.write(Buffer.from([b]));
      await new Promise((r) => setImmediate(r));
    }
    assert.equal((await app.next()).tokens[3], 'OK');
    app.socket.write(Buffer.concat([frame('r1|route|invite'), frame('r2|route|options'), frame('p1|ping')]));
    assert.deepEqual(
      [await app.next(), await app.next(), await app.next()].map((m) => m.tokens[2]),
      ['r1', 'r2', 'p1'],
    );
    await dx.routed(['invite', 'options']);
  });

  it('closes on an unknown message type (NO first) and on a 6-digit length', async () => {
    const dx = await double();
    const app = await RawApp.connect(dx);
    app.send('x1|frobnicate');
    assert.deepEqual((await app.next()).tokens.slice(1), ['response', 'x1', 'NO', 'Unknown message type']);
    await waitFor('the close', () => app.closed);
    const big = await RawApp.connect(dx);
    big.socket.write(`100000#${'x'.repeat(10)}`);
    await waitFor('the close of a 100,000-byte message', () => big.closed);
  });

  it('sends a request with the leader srf reads (source, time, txnId, receivedOn)', async () => {
    const dx = await double();
    const app = await RawApp.connect(dx);
    await app.authenticated(dx);
    const h = dx.inject({ method: 'INVITE' }, { source: { address: '198.51.100.4', port: 5999 } });
    const msg = await app.next();
    const sip = msg.sip ?? '';
    assert.deepEqual(msg.tokens.slice(1, 7), [
      'sip',
      'network',
      String(Buffer.byteLength(sip)),
      'udp',
      '198.51.100.4',
      '5999',
    ]);
    assert.match(msg.tokens[7] ?? '', /^\d{2}:\d{2}:\d{2}\.\d{6}$/);
    assert.deepEqual(msg.tokens.slice(8), [h.txnId, '', '127.0.0.1', '5060', '']);
    assert.equal(SipMessage.parse(sip).callId, h.callId);
  });

  it("sends a caller's CANCEL with the INVITE's transaction id and no receivedOn, as drachtio does", async () => {
    const dx = await double();
    const app = await RawApp.connect(dx);
    await app.authenticated(dx);
    const h = dx.inject({ method: 'INVITE' }, { source: { address: '198.51.100.4', port: 5999 } });
    const invite = SipMessage.parse((await app.next()).sip ?? '');
    assert.equal(h.cancel(), 200);
    const msg = await app.next();
    const sip = msg.sip ?? '';
    assert.deepEqual(msg.tokens.slice(1, 7), [
      'sip',
      'network',
      String(Buffer.byteLength(sip)),
      'udp',
      '198.51.100.4',
      '5999',
    ]);
    assert.deepEqual(msg.tokens.slice(8), [h.txnId, '', '']);
    const cancel = SipMessage.parse(sip);
    assert.equal(cancel.method, 'CANCEL');
    assert.equal(cancel.uri, invite.uri);
    assert.deepEqual(cancel.getAll('via'), [invite.get('via')]);
    assert.equal(cancel.get('cseq'), '1 CANCEL');
    assert.equal(cancel.callId, invite.callId);
    assert.equal(cancel.body, '');
  });

  it('echoes a sent response as "Msg sent", and NOKs a second final and a proxy of an unknown txn', async () => {
    const dx = await double();
    const app = await RawApp.connect(dx);
    await app.authenticated(dx);
    const h = dx.inject({ method: 'INVITE' });
    const req = SipMessage.parse((await app.next()).sip ?? '');
    const res = `SIP/2.0 486 Busy Here\r\nCall-ID: ${req.callId}\r\nCSeq: 1 INVITE\r\nFrom: ${req.get('from')}\r\nTo: ${req.get('to')}\r\n\r\n`;
    app.send(`m1|sip|${h.txnId}|\r\n${res}`);
    const echo = await app.next();
    assert.deepEqual(echo.tokens.slice(1, 5), ['response', 'm1', 'OK', 'application']);
    assert.deepEqual(echo.tokens.slice(10), [h.txnId, '', '', 'Msg sent:', '']);
    const sent = SipMessage.parse(echo.sip ?? '');
    assert.equal(sent.status, 486);
    assert.equal(sent.get('via'), req.get('via'), 'the response as sent carries the request Via');
    assert.equal((await h.response()).status, 486);
    app.send(`m2|sip|${h.txnId}|\r\n${res}`);
    assert.deepEqual((await app.next()).tokens.slice(1), [
      'response',
      'm2',
      'NOK',
      'Response not sent due to unknown transaction',
    ]);
    app.send('m3|proxy|nope|||||||sip:10.0.0.1\r\nINVITE sip:10.0.0.1 SIP/2.0\r\n\r\n');
    assert.deepEqual((await app.next()).tokens.slice(1), [
      'response',
      'm3',
      'NOK',
      'Unknown transaction id: nope',
    ]);
  });

  it('answers a scripted proxy with one "continue" per target, then "done"', async () => {
    const dx = await double();
    dx.onProxy(() => ({ kind: 'respond', responses: [{ status: 503 }, { status: 200 }] }));
    const app = await RawApp.connect(dx);
    await app.authenticated(dx);
    const h = dx.inject({ method: 'INVITE' });
    await app.next();
    app.send(
      `p1|proxy|${h.txnId}||fullResponse||serial|||sip:10.0.0.20|sip:10.0.0.21:5080\r\nINVITE sip:10.0.0.20 SIP/2.0\r\nContent-Length: 0\r\n\r\n`,
    );
    const first = await app.next();
    assert.deepEqual(first.tokens.slice(1, 5), ['response', 'p1', 'OK', 'network']);
    assert.deepEqual(first.tokens.slice(6, 9), ['udp', '10.0.0.20', '5060']);
    assert.deepEqual(first.tokens.slice(10), ['', '', 'continue']);
    assert.equal(SipMessage.parse(first.sip ?? '').status, 503);
    const second = await app.next();
    assert.deepEqual(second.tokens.slice(7, 9), ['10.0.0.21', '5080']);
    assert.equal(SipMessage.parse(second.sip ?? '').status, 200);
    assert.deepEqual((await app.next()).tokens.slice(1), ['response', 'p1', 'OK', 'done']);
  });
});
