import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { after, before, describe, it, type TestContext } from 'node:test';
import { readUdpBacklog } from '@fslb/proxy';
import { captureLogger } from '../support/log-capture.js';
import { holdUdpSocket, type HeldUdpSocket } from '../support/held-udp-socket.js';
import { freeUdpPort } from '../support/net.js';
import { useRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { proxyScene } from './scene.js';
import { metricValue } from './support.js';

/**
 * Overload shedding on drachtio-server's own backlog, with the kernel's real accounting: a UDP
 * socket that nothing reads stands in for drachtio-server's SIP socket while its SIP thread is
 * behind (the double announces it as its UDP hostport), and the proxy reads /proc/net/udp.
 */

/** Sends `count` datagrams of `size` bytes to a loopback port. */
async function send(port: number, count: number, size = 1000): Promise<void> {
  const s = createSocket('udp4');
  const payload = Buffer.alloc(size, 0x41);
  for (let i = 0; i < count; i++) {
    await new Promise<void>((resolve, reject) =>
      s.send(payload, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())),
    );
  }
  s.close();
}

async function held(t: TestContext, opts: { recvBufferSize?: number } = {}): Promise<HeldUdpSocket> {
  const h = await holdUdpSocket(opts);
  t.after(() => h.close());
  return h;
}

const announce = (port: number) => ({ hostports: [`udp/127.0.0.1:${port}`, `tcp/127.0.0.1:${port}`] });

describe('fslb-proxy overload shedding (drachtio-server backlog)', () => {
  const r = useRedis({ before, after });

  it('reads a socket nobody reads: bytes queued, then datagrams dropped past its buffer', async (t) => {
    const socket = await held(t);
    const ports = new Set([socket.port]);
    assert.deepEqual(readUdpBacklog(ports), { sockets: 1, queuedBytes: 0, drops: 0 });
    await send(socket.port, 20);
    const queued = readUdpBacklog(ports);
    assert.equal(queued.drops, 0);
    assert.ok(
      queued.queuedBytes >= 20 * 1000,
      `20 datagrams of 1000 bytes queued: ${queued.queuedBytes} bytes`,
    );
    socket.release();
    await waitFor('released, the socket reads what waited', async () => (await socket.received()) === 20);
    assert.equal(readUdpBacklog(ports).queuedBytes, 0);

    const small = await held(t, { recvBufferSize: 4096 });
    await send(small.port, 30);
    const full = readUdpBacklog(new Set([small.port]));
    assert.ok(full.drops > 0, `a 4 KiB buffer drops some of 30 datagrams: ${JSON.stringify(full)}`);
    small.release();
    await waitFor('the rest read', async () => (await small.received()) === 30 - full.drops);
  });

  it('answers new INVITEs 503 while drachtio-server falls behind, and admits them again once it catches up', async (t) => {
    const socket = await held(t);
    const { log, text } = captureLogger('info');
    const s = await proxyScene(t, r, {
      count: 1,
      log,
      drachtio: announce(socket.port),
      proxy: { overload: { sampleMs: 10, highBytes: 16_384, lowBytes: 4096 } },
    });
    s.dx.onProxy(() => ({ kind: 'respond', responses: [{ status: 486 }] }));
    await waitFor('watching the socket', () =>
      text().includes("watching drachtio-server's SIP socket backlog"),
    );
    assert.equal((await s.dx.inject({ method: 'INVITE', sdp: true }).final()).status, 486);

    await send(socket.port, 40);
    await waitFor(
      'no new INVITE admitted',
      async () => (await metricValue(s.proxy, 'fslb_proxy_admit_ratio')) === 0,
    );
    assert.ok((await metricValue(s.proxy, 'fslb_proxy_drachtio_udp_queued_bytes')) >= 40_000);
    for (let i = 0; i < 3; i++) {
      const call = s.dx.inject({ method: 'INVITE', sdp: true });
      const shed = await call.response();
      assert.equal(call.proxyCommands.length, 0, 'a shed INVITE is never proxied');
      assert.equal(shed.status, 503);
      assert.equal(shed.reason, 'Overloaded');
      assert.equal(shed.message.get('Retry-After'), '5');
    }
    assert.equal(await metricValue(s.proxy, 'fslb_proxy_refusals_total', { reason: 'backlog' }), 3);
    assert.equal(
      await metricValue(s.proxy, 'fslb_proxy_requests_total', { method: 'INVITE', outcome: 'backlog' }),
      3,
    );

    socket.release();
    await waitFor(
      'every INVITE admitted again',
      async () => (await metricValue(s.proxy, 'fslb_proxy_admit_ratio')) === 1,
    );
    assert.equal((await s.dx.inject({ method: 'INVITE', sdp: true }).final()).status, 486);
    const lines = text()
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { msg: string; shed?: number; peakBytes?: number });
    const started = lines.filter((l) => l.msg.startsWith('drachtio-server is falling behind'));
    const stopped = lines.filter((l) => l.msg.startsWith('drachtio-server caught up'));
    assert.equal(started.length, 1);
    assert.deepEqual(
      stopped.map((l) => [l.shed, (l.peakBytes ?? 0) >= 40_000]),
      [[3, true]],
    );
  });

  it('sheds when the kernel drops at the socket, even under the marks, and counts the drops', async (t) => {
    const socket = await held(t, { recvBufferSize: 4096 });
    const { log, text } = captureLogger('info');
    const s = await proxyScene(t, r, {
      count: 1,
      log,
      drachtio: announce(socket.port),
      proxy: { overload: { sampleMs: 10, highBytes: 1 << 20, lowBytes: 1 << 19 } },
    });
    await waitFor('watching the socket', () =>
      text().includes("watching drachtio-server's SIP socket backlog"),
    );
    await send(socket.port, 30);
    const dropped = readUdpBacklog(new Set([socket.port])).drops;
    assert.ok(dropped > 0);
    await waitFor(
      'the drops counted',
      async () => (await metricValue(s.proxy, 'fslb_proxy_drachtio_udp_drops_total')) === dropped,
    );
    const line = text()
      .split('\n')
      .find((l) => l.includes('drachtio-server is falling behind'));
    assert.ok(line, 'a drop starts shedding');
    assert.ok((JSON.parse(line) as { drops: number }).drops > 0);
  });

  it("routes as before, saying so once, when drachtio-server's socket is not visible here", async (t) => {
    const nobody = await freeUdpPort();
    const { log, text } = captureLogger('info');
    const s = await proxyScene(t, r, { count: 1, log, drachtio: announce(nobody) });
    s.dx.onProxy(() => ({ kind: 'respond', responses: [{ status: 486 }] }));
    await waitFor('the reason logged', () => text().includes('overload shedding off'));
    assert.match(text(), /not visible from this proxy/);
    assert.equal((await s.dx.inject({ method: 'INVITE', sdp: true }).final()).status, 486);
    assert.equal(await metricValue(s.proxy, 'fslb_proxy_admit_ratio'), 1);
  });
});
