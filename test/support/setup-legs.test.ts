import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setupLegs } from '../../bench/support/setup-legs.js';

/** A pcap file (Ethernet, microseconds) of IPv4 packets on 127.0.0.1. */
function pcap(
  packets: { t: number; proto: 'udp' | 'tcp'; sport: number; dport: number; text: string }[],
): Buffer {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(65535, 16);
  head.writeUInt32LE(1, 20);
  const records = packets.map((p) => {
    const payload = Buffer.from(p.text, 'utf8');
    const l4 = Buffer.alloc(p.proto === 'udp' ? 8 : 20);
    l4.writeUInt16BE(p.sport, 0);
    l4.writeUInt16BE(p.dport, 2);
    if (p.proto === 'udp') l4.writeUInt16BE(8 + payload.length, 4);
    else l4[12] = 5 << 4;
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + l4.length + payload.length, 2);
    ip[9] = p.proto === 'udp' ? 17 : 6;
    Buffer.from([127, 0, 0, 1]).copy(ip, 12);
    Buffer.from([127, 0, 0, 1]).copy(ip, 16);
    const eth = Buffer.alloc(14);
    eth.writeUInt16BE(0x0800, 12);
    const frame = Buffer.concat([eth, ip, l4, payload]);
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(Math.floor(p.t), 0);
    rec.writeUInt32LE(Math.round((p.t % 1) * 1e6), 4);
    rec.writeUInt32LE(frame.length, 8);
    rec.writeUInt32LE(frame.length, 12);
    return Buffer.concat([rec, frame]);
  });
  return Buffer.concat([head, ...records]);
}

const frame = (msg: string): string => `${Buffer.byteLength(msg)}#${msg}`;
const sip = (first: string, callId: string): string =>
  `${first}\r\nVia: SIP/2.0/UDP 127.0.0.1\r\nCall-ID: ${callId}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n`;

describe('setupLegs (bench/support/setup-legs.ts)', () => {
  it("splits each call's INVITE -> 200 into its legs from the packets' timestamps", () => {
    const CALLER = 5061;
    const SERVER = 5060;
    const CALLEE = 5090;
    const APP = 40000;
    const ADMIN = 9022;
    const packets: Parameters<typeof pcap>[0] = [];
    // Two calls; the second one's proxy command carries fslb's header.
    // The app's commands for both go in one TCP segment, drachtio-server's messages in another
    // split mid-message.
    const toApp = [1, 2]
      .map((n) =>
        frame(
          `m${n}|sip|network|200|udp|127.0.0.1|${CALLER}|10:00:00.000000|txn-${n}|||\r\n${sip('INVITE sip:x@127.0.0.1 SIP/2.0', `call-${n}`)}`,
        ),
      )
      .join('');
    packets.push(
      {
        t: 100.0,
        proto: 'udp',
        sport: CALLER,
        dport: SERVER,
        text: sip('INVITE sip:x@127.0.0.1 SIP/2.0', 'call-1'),
      },
      {
        t: 100.001,
        proto: 'udp',
        sport: CALLER,
        dport: SERVER,
        text: sip('INVITE sip:x@127.0.0.1 SIP/2.0', 'call-2'),
      },
      { t: 100.002, proto: 'tcp', sport: ADMIN, dport: APP, text: toApp.slice(0, 40) },
      { t: 100.003, proto: 'tcp', sport: ADMIN, dport: APP, text: toApp.slice(40) },
      {
        t: 100.013,
        proto: 'tcp',
        sport: APP,
        dport: ADMIN,
        text:
          frame('c1|proxy|txn-1|||||2s|30s|sip:127.0.0.1:5090\r\n') +
          frame('c2|proxy|txn-2|||||2s|30s|sip:127.0.0.1:5090\r\nX-Fslb-Slot: s1\r\n'),
      },
      {
        t: 100.015,
        proto: 'udp',
        sport: SERVER,
        dport: CALLEE,
        text: sip('INVITE sip:x@127.0.0.1 SIP/2.0', 'call-1'),
      },
      // A retransmission of the caller's INVITE changes nothing.
      {
        t: 100.016,
        proto: 'udp',
        sport: CALLER,
        dport: SERVER,
        text: sip('INVITE sip:x@127.0.0.1 SIP/2.0', 'call-1'),
      },
      {
        t: 100.017,
        proto: 'udp',
        sport: SERVER,
        dport: CALLEE,
        text: sip('INVITE sip:x@127.0.0.1 SIP/2.0', 'call-2'),
      },
      { t: 100.02, proto: 'udp', sport: CALLEE, dport: SERVER, text: sip('SIP/2.0 200 OK', 'call-1') },
      { t: 100.021, proto: 'udp', sport: CALLEE, dport: SERVER, text: sip('SIP/2.0 200 OK', 'call-2') },
      { t: 100.024, proto: 'udp', sport: SERVER, dport: CALLER, text: sip('SIP/2.0 200 OK', 'call-1') },
      { t: 100.03, proto: 'udp', sport: SERVER, dport: CALLER, text: sip('SIP/2.0 200 OK', 'call-2') },
    );

    const runs = setupLegs(pcap(packets));
    assert.equal(runs.length, 1);
    const [run] = runs;
    assert.ok(run);
    assert.equal(run.app, 'fslb');
    assert.equal(run.appPort, APP);
    assert.equal(run.calls, 2);
    // The bench's quantiles (the value at index floor(q x n)): of two values both are the higher.
    const ms = (a: number, b: number): { p50: number; p99: number } => ({
      p50: Math.max(a, b),
      p99: Math.max(a, b),
    });
    // call 1: INVITE 100.000, at the app 100.003 (its message ends in the second segment),
    // command 100.013, to the callee 100.015, 200 from it 100.020, to the caller 100.024.
    // call 2: 100.001, 100.003, 100.013, 100.017, 100.021, 100.030.
    const near = (
      got: { p50: number; p99: number },
      want: { p50: number; p99: number },
      leg: string,
    ): void => {
      assert.ok(
        Math.abs(got.p50 - want.p50) < 0.01 && Math.abs(got.p99 - want.p99) < 0.01,
        `${leg}: ${JSON.stringify(got)}`,
      );
    };
    near(run.legs.inbound, ms(3, 2), 'inbound');
    near(run.legs.app, ms(10, 10), 'app');
    near(run.legs.outbound, ms(2, 4), 'outbound');
    near(run.legs.callee, ms(5, 4), 'callee');
    near(run.legs.back, ms(4, 9), 'back');
    near(run.legs.total, ms(24, 29), 'total');
  });

  it('refuses a file that is not a pcap capture', () => {
    assert.throws(
      () => setupLegs(Buffer.from('0A0D0D0A00000000000000000000000000', 'hex')),
      /not a pcap file/,
    );
  });
});
