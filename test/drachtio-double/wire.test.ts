import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { SipMessage } from './sip-message.js';
import { buildSipRequest } from './sip-request.js';
import {
  frame,
  FrameDecoder,
  parseAppMessage,
  parseProxyFields,
  parseTimeout,
  stackTime,
  WireError,
} from './wire.js';

const bodies = [
  'a1|authenticate|cymru|',
  'r1|route|invite',
  `s1|sip|t1|\r\nSIP/2.0 200 OK\r\nSubject: caf\u00e9 \u{1F600}\r\nContent-Length: 0\r\n\r\n`,
  'p1|ping',
];

describe('frame', () => {
  it('prefixes the UTF-8 byte count, not the character count', () => {
    assert.equal(frame('x|\u{1F600}').toString('utf8'), '6#x|\u{1F600}');
  });
});

describe('FrameDecoder', () => {
  it('reads messages fed one byte at a time, even inside a multi-byte character', () => {
    const wire = Buffer.concat(bodies.map(frame));
    const d = new FrameDecoder();
    const out = [...wire].flatMap((b) => d.push(Buffer.from([b])));
    assert.deepEqual(out, bodies);
    assert.equal(d.pending, 0);
  });

  it('reads several messages merged in one chunk, and random splits of a long stream', () => {
    const wire = Buffer.concat(Array.from({ length: 50 }, () => bodies.map(frame)).flat());
    assert.deepEqual(new FrameDecoder().push(wire), Array.from({ length: 50 }, () => bodies).flat());
    const d = new FrameDecoder();
    const out: string[] = [];
    for (let at = 0; at < wire.length;) {
      const n = 1 + Math.floor(Math.random() * 40);
      out.push(...d.push(wire.subarray(at, at + n)));
      at += n;
    }
    assert.equal(out.length, 200);
    assert.deepEqual(out.slice(0, 4), bodies);
  });

  it('refuses what drachtio-server refuses: no digits, 6 digits (100,000 bytes or more), zero', () => {
    assert.throws(() => new FrameDecoder().push(Buffer.from('x#abc')), WireError);
    assert.throws(() => new FrameDecoder().push(Buffer.from('100000#')), WireError);
    assert.throws(() => new FrameDecoder().push(Buffer.from('123456')), WireError, 'even before the #');
    assert.throws(() => new FrameDecoder().push(Buffer.from('0#')), WireError);
    assert.deepEqual(new FrameDecoder().push(Buffer.from('99999')), [], '5 digits wait for more');
  });
});

describe('message fields', () => {
  it('parses a proxy leader as drachtio-server reads it', () => {
    const msg = parseAppMessage(
      'id1|proxy|txn|remainInDialog||followRedirects|serial|2s||sip:10.0.0.1|sip:10.0.0.2:5080\r\nINVITE sip:10.0.0.1 SIP/2.0\r\n\r\n',
    );
    assert.equal(msg.id, 'id1');
    assert.equal(msg.type, 'proxy');
    assert.deepEqual(parseProxyFields(msg.tokens), {
      txnId: 'txn',
      remainInDialog: true,
      fullResponse: false,
      followRedirects: true,
      forking: 'serial',
      provisionalTimeout: '2s',
      finalTimeout: '',
      destinations: ['sip:10.0.0.1', 'sip:10.0.0.2:5080'],
    });
    assert.equal(msg.sip, 'INVITE sip:10.0.0.1 SIP/2.0\r\n\r\n');
  });

  it('reads timeouts with drachtio-server regex ^(\\d+)(ms|s)$ only', () => {
    assert.equal(parseTimeout('2s'), 2000);
    assert.equal(parseTimeout('1500ms'), 1500);
    assert.equal(parseTimeout('1.5s'), undefined);
    assert.equal(parseTimeout(''), undefined);
  });

  it('stamps times as HH:MM:SS.uuuuuu (UTC)', () => {
    assert.equal(stackTime(Date.UTC(2024, 0, 1, 13, 4, 5, 67)), '13:04:05.067000');
  });
});

describe('SipMessage', () => {
  it('expands compact names, unfolds lines, splits list headers and recounts Content-Length', () => {
    const m = SipMessage.parse(
      'SIP/2.0 180 Ringing\r\nv: SIP/2.0/UDP a:1;branch=z9hG4bK1, SIP/2.0/UDP b:2;branch=z9hG4bK2\r\n' +
        'i: c1\r\nSubject: one\r\n two\r\nl: 99\r\n\r\nbody',
    );
    assert.equal(m.status, 180);
    assert.deepEqual(m.getAll('Via').length, 2);
    assert.equal(m.callId, 'c1');
    assert.equal(m.get('subject'), 'one two');
    m.removeFirst('via');
    assert.equal(m.get('via'), 'SIP/2.0/UDP b:2;branch=z9hG4bK2');
    assert.match(m.toString(), /Content-Length: 4\r\n\r\nbody$/);
  });

  it('builds requests with RFC 3261 mandatory headers and a G.711 offer', () => {
    const text = buildSipRequest(
      { method: 'INVITE', sdp: true, headers: [['X-A', '1']] },
      { address: '192.0.2.5', port: 5062 },
      { host: '127.0.0.1', port: 5060 },
    );
    const m = SipMessage.parse(text);
    assert.equal(m.uri, 'sip:service@127.0.0.1:5060');
    assert.match(m.get('via') ?? '', /^SIP\/2\.0\/UDP 192\.0\.2\.5:5062;branch=z9hG4bK\w+;rport$/);
    assert.match(m.get('from') ?? '', /;tag=\w+/);
    assert.equal(m.get('max-forwards'), '70');
    assert.equal(m.get('cseq'), '1 INVITE');
    assert.equal(m.get('contact'), '<sip:caller@192.0.2.5:5062>');
    assert.equal(m.get('x-a'), '1');
    assert.equal(Number(m.get('content-length')), Buffer.byteLength(m.body));
    assert.match(m.body, /m=audio 4000 RTP\/AVP 0 8 101/);
  });
});
