import assert from 'node:assert/strict';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { describe, it, type TestContext } from 'node:test';
import { captureLogger } from '../../../../test/support/log-capture.js';
import { waitFor } from '../../../../test/support/wait.js';
import { PROBE_GAP_MS, PROBE_LOST_MS, probeTarget, QueueProbe } from './queue-probe.js';

/**
 * The queue probe over real UDP on loopback, against a socket that answers an OPTIONS the way
 * drachtio-server does (a 200 to the Via's address, the same Call-ID), after a delay of its own:
 * the time the probe waited in the queue.
 */

interface Peer {
  port: number;
  received: string[];
  /** Answers each OPTIONS after this long; undefined: never. */
  answerAfterMs: number | undefined;
}

async function peer(t: TestContext): Promise<Peer> {
  const socket: Socket = createSocket('udp4');
  const p: Peer = { port: 0, received: [], answerAfterMs: undefined };
  socket.on('message', (msg: Buffer, from: RemoteInfo) => {
    const text = msg.toString();
    p.received.push(text);
    if (p.answerAfterMs === undefined) return;
    const header = (name: string) => new RegExp(`^${name}: (.*)$`, 'm').exec(text)?.[1]?.trim() ?? '';
    const answer =
      'SIP/2.0 200 OK\r\n' +
      `Via: ${header('Via')};received=${from.address}\r\n` +
      `From: ${header('From')}\r\n` +
      `To: ${header('To')};tag=peer\r\n` +
      `Call-ID: ${header('Call-ID')}\r\n` +
      `CSeq: ${header('CSeq')}\r\n` +
      'Content-Length: 0\r\n\r\n';
    setTimeout(() => socket.send(answer, from.port, from.address), p.answerAfterMs);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  p.port = socket.address().port;
  t.after(() => socket.close());
  return p;
}

describe('QueueProbe', () => {
  it("sends drachtio-server's UDP address a well-formed OPTIONS and learns the rate its queue drains at from the answer", async (t) => {
    const p = await peer(t);
    p.answerAfterMs = 40;
    const { log, text } = captureLogger('info');
    const probe = new QueueProbe({ target: { address: '127.0.0.1', port: p.port, family: 4 }, log });
    t.after(() => probe.close());
    await probe.open();
    assert.equal(probe.drainBytesPerMs, undefined);
    probe.send(400_000);
    await waitFor('the probe answered', () => probe.answered === 1);
    const sent = p.received[0] ?? '';
    assert.match(sent, new RegExp(`^OPTIONS sip:127\\.0\\.0\\.1:${p.port} SIP/2\\.0\\r\\n`));
    assert.match(sent, /^Via: SIP\/2\.0\/UDP 127\.0\.0\.1:\d+;branch=z9hG4bK[^;\r]+;rport\r$/m);
    assert.match(sent, /^Max-Forwards: 70\r$/m);
    assert.match(sent, /^CSeq: 1 OPTIONS\r$/m);
    assert.match(sent, /\r\n\r\n$/);
    const callId = /^Call-ID: (.*)\r$/m.exec(sent)?.[1] ?? '';
    assert.ok(probe.isProbe(callId), `the probe knows its own Call-ID: ${callId}`);
    assert.ok(!probe.isProbe('fslb-probe-0000000000000000-1'), 'and no other');
    // 400 kB ahead, answered after 40 ms or more: 10,000 bytes/ms at most.
    const rate = (probe as { drainBytesPerMs: number | undefined }).drainBytesPerMs ?? 0;
    assert.ok(rate > 0 && rate <= 10_000, `drain rate ${rate} bytes/ms`);
    assert.match(text(), /learnt how fast drachtio-server works through its SIP socket/);
  });

  it('keeps the highest recent rate: a probe answered late does not make the queue look slower', async (t) => {
    const p = await peer(t);
    const { log } = captureLogger('info');
    // The probe's clock runs with real time, a gap ahead (probes go at most every PROBE_GAP_MS).
    let skew = 0;
    const probe = new QueueProbe({
      target: { address: '127.0.0.1', port: p.port, family: 4 },
      log,
      now: () => performance.now() + skew,
    });
    t.after(() => probe.close());
    await probe.open();
    p.answerAfterMs = 10;
    probe.send(500_000);
    await waitFor('the first probe answered', () => probe.answered === 1);
    const fast = probe.drainBytesPerMs ?? 0;
    // The same bytes ahead, answered ten times later (this process busy, say).
    p.answerAfterMs = 100;
    skew += PROBE_GAP_MS;
    probe.send(500_000);
    await waitFor('the second probe answered', () => probe.answered === 2);
    const after = (probe as { drainBytesPerMs: number | undefined }).drainBytesPerMs ?? 0;
    assert.ok(after > 0.9 * fast, `rate ${after} bytes/ms after a slow answer, ${fast} before`);
  });

  it('keeps one probe on its way at a time, at most one every PROBE_GAP_MS, and sends another only once that one is taken as lost', async (t) => {
    const p = await peer(t);
    let now = 0;
    const probe = new QueueProbe({
      target: { address: '127.0.0.1', port: p.port, family: 4 },
      log: captureLogger('info').log,
      now: () => now,
    });
    t.after(() => probe.close());
    await probe.open();
    p.answerAfterMs = 20;
    probe.send(100_000);
    probe.send(100_000);
    await waitFor('the probe answered', () => probe.answered === 1);
    // A second datagram from the same socket would have reached the peer before its answer left.
    assert.equal(p.received.length, 1, 'one probe on its way at a time');
    p.answerAfterMs = undefined;
    p.received.length = 0;
    now = PROBE_GAP_MS - 1;
    probe.send(100_000);
    assert.equal(probe.sent, 1, 'none within PROBE_GAP_MS of the one before, answered or not');
    now = PROBE_GAP_MS;
    probe.send(100_000);
    await waitFor('the next probe arrived', () => p.received.length === 1);
    now = PROBE_GAP_MS + PROBE_LOST_MS - 1;
    probe.send(100_000);
    now = PROBE_GAP_MS + PROBE_LOST_MS;
    probe.send(100_000);
    await waitFor('a second probe arrived', () => p.received.length === 2);
    assert.equal(probe.sent, 3);
    assert.equal(probe.answered, 1);
    assert.notEqual(
      /^Call-ID: (.*)\r$/m.exec(p.received[0] ?? '')?.[1],
      /^Call-ID: (.*)\r$/m.exec(p.received[1] ?? '')?.[1],
      'each probe has a Call-ID of its own',
    );
  });

  it('takes its target from the hostports drachtio-server sends', () => {
    assert.deepEqual(probeTarget('tcp/10.0.0.1:5060,udp/10.0.0.1:5060'), {
      address: '10.0.0.1',
      port: 5060,
      family: 4,
    });
    assert.deepEqual(probeTarget('udp/[::1]:5070'), { address: '::1', port: 5070, family: 6 });
    assert.deepEqual(probeTarget('udp/0.0.0.0:5060'), { address: '127.0.0.1', port: 5060, family: 4 });
    assert.equal(probeTarget('tcp/10.0.0.1:5060'), undefined);
    assert.equal(probeTarget('udp/10.0.0.1:x'), undefined);
  });
});
