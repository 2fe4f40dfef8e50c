import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { afterEach, describe, it, type TestContext } from 'node:test';
import { createLogger } from '@fslb/shared';
import { DrachtioDouble } from '../../../../test/drachtio-double/index.js';
import { freeTcpPort } from '../../../../test/support/net.js';
import { BATCH_MAX, DrachtioLink, type InboundRequest, type ProxyResult } from './drachtio-link.js';

/** The link to drachtio-server, through the real drachtio-srf, against the drachtio-server double. */
describe('DrachtioLink (real drachtio-srf, drachtio-server double)', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()?.();
  });

  async function connected(): Promise<{ dx: DrachtioDouble; link: DrachtioLink }> {
    const dx = await DrachtioDouble.start();
    cleanups.push(() => dx.close());
    const link = new DrachtioLink(
      { host: '127.0.0.1', port: dx.port, secret: 'cymru', retryMaxDelayMs: 1000 },
      createLogger({ level: 'silent', name: 'test' }),
    );
    cleanups.push(() => link.close());
    link.start(['INVITE']);
    await dx.routed(['invite']);
    return { dx, link };
  }

  /** Writes (Node.js's `_write` and `_writev`, one system call each) by sockets to `port`. */
  function countWrites(t: TestContext, port: number): { count: number } {
    const seen = { count: 0 };
    const proto = Socket.prototype as unknown as Record<'_write' | '_writev', (...a: unknown[]) => void>;
    for (const name of ['_write', '_writev'] as const) {
      const original = proto[name];
      proto[name] = function (this: Socket, ...args: unknown[]) {
        if (this.remotePort === port) seen.count++;
        return original.apply(this, args);
      };
      t.after(() => {
        proto[name] = original;
      });
    }
    return seen;
  }

  it('sends the proxy commands of requests read together a few to a write, in their order', async (t) => {
    const { dx, link } = await connected();
    dx.onProxy(() => ({ kind: 'respond', responses: [{ status: 200 }] }));
    const results: Promise<ProxyResult>[] = [];
    link.on('request', (req: InboundRequest) => {
      results.push(
        req.proxy({
          destinations: ['sip:127.0.0.1:5090'],
          recordRoute: false,
          provisionalTimeout: '2000ms',
          finalTimeout: '30000ms',
          headers: { 'X-Seq': String(results.length) },
        }),
      );
    });
    // One INVITE alone first: srf and the link are connected and have proxied once.
    const first = dx.inject({ method: 'INVITE' });
    assert.equal((await first.final()).status, 200);

    // More INVITEs in one frame than a batch holds: srf hands them over in one turn, and the
    // link sends their commands BATCH_MAX to a write, the rest in one more. A socket's writes to
    // the double are counted where Node.js hands them to the system: one `_write` or `_writev` each.
    const n = BATCH_MAX + 1;
    dx.framing = { merge: true };
    const commands: string[] = [];
    dx.on('proxy', (cmd) => commands.push(cmd.stub.get('X-Seq') ?? '?'));
    const writes = countWrites(t, dx.port);
    const handles = Array.from({ length: n }, () => dx.inject({ method: 'INVITE' }));
    for (const h of handles) assert.equal((await h.final()).status, 200);
    assert.equal(writes.count, 2, `${n} proxy commands went to drachtio-server in two writes`);
    assert.deepEqual(
      commands,
      Array.from({ length: n }, (_, i) => String(i + 1)),
    );
    assert.deepEqual(
      (await Promise.all(results)).map((r) => r.connected),
      Array.from({ length: n + 1 }, () => true),
    );
  });

  it('sends an answer that is the only write of its turn', async () => {
    const { dx, link } = await connected();
    link.on('request', (req: InboundRequest) => req.respond(486, 'Busy Here'));
    assert.equal((await dx.inject({ method: 'INVITE' }).response()).status, 486);
  });

  it('turns Nagle off on a connection srf makes again after drachtio-server restarted', async (t) => {
    const port = await freeTcpPort();
    let dx = await DrachtioDouble.start({ port });
    // Closes whichever double is running at the end (closing one twice is harmless).
    cleanups.push(() => dx.close());
    const link = new DrachtioLink(
      { host: '127.0.0.1', port, secret: 'cymru', retryMaxDelayMs: 200 },
      createLogger({ level: 'silent', name: 'test' }),
    );
    cleanups.push(() => link.close());
    const up = (): Promise<unknown> => new Promise((resolve) => link.once('connected', resolve));
    let connected = up();
    link.start(['INVITE']);
    await connected;

    // setNoDelay(true) calls on sockets to the double's port, from here on.
    let noDelay = 0;
    const proto = Socket.prototype as unknown as { setNoDelay: (this: Socket, on?: boolean) => Socket };
    const original = proto.setNoDelay;
    proto.setNoDelay = function (this: Socket, on?: boolean) {
      if (on !== false && this.remotePort === port) noDelay++;
      return original.call(this, on);
    };
    t.after(() => {
      proto.setNoDelay = original;
    });

    const down = new Promise<void>((resolve) => link.once('disconnected', () => resolve()));
    await dx.close();
    await down;
    connected = up();
    dx = await DrachtioDouble.start({ port });
    await connected;
    assert.ok(noDelay >= 1, 'the new connection to drachtio-server has Nagle off');
    // And it still carries requests.
    link.on('request', (req: InboundRequest) => req.respond(486, 'Busy Here'));
    await dx.routed(['invite']);
    assert.equal((await dx.inject({ method: 'INVITE' }).response()).status, 486);
  });
});
