import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { afterEach, describe, it, type TestContext } from 'node:test';
import { createLogger } from '@fslb/shared';
import { DrachtioDouble } from '../../../../test/drachtio-double/index.js';
import { DrachtioLink, type InboundRequest, type ProxyResult } from './drachtio-link.js';

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

  it('sends the proxy commands of requests read together in one write, in their order', async (t) => {
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

    // Five INVITEs in one frame: srf hands them over in one turn, and the link sends their
    // commands in one write. A socket's writes to the double are counted where Node.js hands
    // them to the system: one `_write` or `_writev` each.
    dx.framing = { merge: true };
    const commands: string[] = [];
    dx.on('proxy', (cmd) => commands.push(cmd.stub.get('X-Seq') ?? '?'));
    const writes = countWrites(t, dx.port);
    const handles = Array.from({ length: 5 }, () => dx.inject({ method: 'INVITE' }));
    for (const h of handles) assert.equal((await h.final()).status, 200);
    assert.equal(writes.count, 1, 'five proxy commands went to drachtio-server in one write');
    assert.deepEqual(commands, ['1', '2', '3', '4', '5']);
    assert.deepEqual(
      (await Promise.all(results)).map((r) => r.connected),
      [true, true, true, true, true, true],
    );
  });

  it('sends an answer that is the only write of its turn', async () => {
    const { dx, link } = await connected();
    link.on('request', (req: InboundRequest) => req.respond(486, 'Busy Here'));
    assert.equal((await dx.inject({ method: 'INVITE' }).response()).status, 486);
  });
});
