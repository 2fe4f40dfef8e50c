import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { afterEach, describe, it } from 'node:test';

import { parsePlainEvent, RawEsl, type RawFrame } from '../test-support/raw-esl.js';
import { settlesWithin, waitFor, within } from '../../support/wait.js';
import { FsCluster } from './fs-cluster.js';
import { FsNode, NodeState, type FsNodeOptions } from './fs-node.js';
import { SipUac } from './uac/sip-uac.js';
import { listening } from '../../support/net.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(options: FsNodeOptions = {}): Promise<FsNode> {
  const node = await FsNode.start(options);
  cleanups.push(() => node.close());
  return node;
}

async function uacFor(): Promise<SipUac> {
  const uac = await SipUac.start({ timeoutMs: 3000 });
  cleanups.push(() => uac.close());
  return uac;
}

/** An authenticated raw client subscribed to `events` in plain format. */
async function subscribed(node: FsNode, events: string): Promise<RawEsl> {
  const c = await RawEsl.authed(node.eslPort);
  cleanups.push(() => c.close());
  c.send(`event plain ${events}`);
  await c.next();
  return c;
}

const eventName = (f: RawFrame): string | undefined =>
  f.headers.get('Content-Type') === 'text/event-plain'
    ? parsePlainEvent(f.body).get('Event-Name')
    : undefined;

describe('stall', () => {
  it('keeps sockets open but greets no one, answers nothing and sends no HEARTBEAT until unstalled', async () => {
    const node = await start({ heartbeatMs: 30 });
    const c = await subscribed(node, 'HEARTBEAT');
    await c.nextOfType('text/event-plain');
    node.stall();
    const late = await RawEsl.connect(node.eslPort);
    cleanups.push(() => late.close());
    c.send('api status');
    assert.equal(await settlesWithin(late.next(250), 200), false, 'no greeting while stalled');
    await assert.rejects(c.next(150), /no frame/, 'no HEARTBEAT and no reply while stalled');
    assert.equal(c.isClosed, false);
    assert.equal(node.eslClientCount, 2);
    node.unstall();
    assert.equal((await late.next()).headers.get('Content-Type'), 'auth/request');
    assert.equal((await c.nextOfType('api/response')).body.startsWith('UP '), true);
    assert.equal(eventName(await c.nextOfType('text/event-plain')), 'HEARTBEAT');
  });
});

describe('dropEsl', () => {
  it('destroys every client socket and keeps listening', async () => {
    const node = await start();
    const a = await RawEsl.authed(node.eslPort);
    const b = await RawEsl.authed(node.eslPort);
    await waitFor('two clients', () => node.eslClientCount === 2);
    node.dropEsl();
    await within('both closed', 2000, Promise.all([a.closed, b.closed]));
    await waitFor('no clients', () => node.eslClientCount === 0);
    const again = await RawEsl.authed(node.eslPort);
    again.close();
  });
});

describe('crash and restart', () => {
  it('closes everything at once without a goodbye, and comes back on the same ports as a new process', async () => {
    const node = await start({ heartbeatMs: 30 });
    const uac = await uacFor();
    const call = uac.invite({ host: node.host, port: node.sipPort });
    assert.equal((await call.final()).status, 200);
    const c = await subscribed(node, 'ALL');
    const crashed = new Promise<void>((resolve) => node.once('crashed', () => resolve()));
    const { eslPort, sipPort, coreUuid } = node;
    await node.crash();
    await crashed;
    await within('client gone', 2000, c.closed);
    assert.ok(c.wasReset, 'the client saw a reset, not a goodbye');
    assert.equal(node.state, NodeState.Stopped);
    assert.equal(await listening(eslPort), false);
    assert.equal(node.sessions, 0);

    await node.restart();
    assert.equal(node.state, NodeState.Running);
    assert.equal(node.eslPort, eslPort);
    assert.equal(node.sipPort, sipPort);
    assert.notEqual(node.coreUuid, coreUuid);
    const fresh = await subscribed(node, 'HEARTBEAT');
    const hb = parsePlainEvent((await fresh.nextOfType('text/event-plain')).body);
    assert.equal(hb.get('Core-UUID'), node.coreUuid);
    assert.equal(hb.get('Session-Count'), '0');
    assert.equal((await uac.invite({ host: node.host, port: sipPort }).final()).status, 200);
  });

  it('refuses to restart a running node', async () => {
    const node = await start();
    await assert.rejects(node.restart(), /cannot restart a node that is running/);
  });
});

describe('elegant shutdown', () => {
  it('fires SHUTDOWN_REQUESTED, refuses new calls, waits for calls, fires SHUTDOWN, says goodbye and closes', async () => {
    const node = await start();
    const uac = await uacFor();
    const target = { host: node.host, port: node.sipPort };
    const call = uac.invite(target);
    assert.equal((await call.final()).status, 200);
    const watcher = await subscribed(node, 'SHUTDOWN_REQUESTED SHUTDOWN CHANNEL_DESTROY');
    const asker = await RawEsl.authed(node.eslPort);
    cleanups.push(() => asker.close());

    const done = node.shutdownElegant({ graceMs: 5000 });
    const requested = parsePlainEvent((await watcher.nextOfType('text/event-plain')).body);
    assert.equal(requested.get('Event-Name'), 'SHUTDOWN_REQUESTED');
    assert.equal(requested.get('Event-Info'), 'ASAP');
    assert.equal(node.state, NodeState.ShuttingDown);
    asker.send('api fsctl shutdown_check');
    assert.equal((await asker.next()).body, 'true');
    const refused = await uac.invite(target).final();
    assert.equal(refused.status, 503);
    assert.equal(refused.reason, 'Maximum Calls In Progress');

    assert.equal((await call.bye()).status, 200);
    const names: string[] = [];
    for (;;) {
      const frame = await watcher.next();
      const name = eventName(frame);
      if (name) {
        names.push(name);
        continue;
      }
      assert.equal(frame.headers.get('Content-Type'), 'text/disconnect-notice');
      assert.equal(frame.body, 'The system is being shut down.\n');
      break;
    }
    assert.deepEqual(names, ['CHANNEL_DESTROY', 'SHUTDOWN']);
    await within('client closed', 2000, watcher.closed);
    await done;
    assert.equal(node.state, NodeState.Stopped);
    assert.equal(await listening(node.eslPort), false);
  });

  it('hangs up the calls left when the grace time is over', async () => {
    const node = await start();
    const uac = await uacFor();
    const call = uac.invite({ host: node.host, port: node.sipPort });
    assert.equal((await call.final()).status, 200);
    await node.shutdownElegant({ graceMs: 50 });
    await within('BYE from the node', 2000, call.ended);
    assert.equal(node.state, NodeState.Stopped);
  });

  it("in 'elegant' mode keeps taking calls until the count reaches zero, as FreeSWITCH does", async () => {
    const node = await start();
    const uac = await uacFor();
    const target = { host: node.host, port: node.sipPort };
    const first = uac.invite(target);
    assert.equal((await first.final()).status, 200);
    const done = node.shutdownElegant({ mode: 'elegant', graceMs: 5000 });
    const second = uac.invite(target);
    assert.equal((await second.final()).status, 200);
    await first.bye();
    await second.bye();
    await done;
    assert.equal(node.state, NodeState.Stopped);
  });

  it('runs from fsctl: the api answers when calls are gone; fsctl shutdown cancel stops it', async () => {
    const node = await start();
    node.setSessions(1);
    const c = await RawEsl.authed(node.eslPort);
    cleanups.push(() => c.close());
    const d = await RawEsl.authed(node.eslPort);
    cleanups.push(() => d.close());
    c.send('api fsctl shutdown elegant');
    await waitFor('shutdown requested', () => node.state === NodeState.ShuttingDown);
    d.send('api fsctl shutdown cancel');
    assert.equal((await d.next()).body, '+OK\n');
    assert.equal((await c.next()).body, '+OK\n');
    assert.equal(node.state, NodeState.Running);
    d.send('api fsctl shutdown_check');
    assert.equal((await d.next()).body, 'false');

    c.send('api fsctl shutdown asap');
    await waitFor('shutdown requested', () => node.state === NodeState.ShuttingDown);
    node.setSessions(0);
    assert.equal((await c.next()).body, '+OK\n');
    assert.equal((await c.next()).body, 'The system is being shut down.\n');
    await within('stopped', 2000, new Promise<void>((resolve) => node.once('shutdown', () => resolve())));
  });
});

describe('fsctl shutdown restart and now', () => {
  it('restart: shuts down with a goodbye and comes back on the same ports with a new Core-UUID', async () => {
    const node = await start();
    const { coreUuid, eslPort } = node;
    const c = await RawEsl.authed(eslPort);
    c.send('api fsctl shutdown restart');
    assert.equal((await c.next()).body, '+OK\n');
    assert.equal((await c.next()).body, 'The system is being shut down.\n');
    await waitFor('running again', () => node.state === NodeState.Running && node.coreUuid !== coreUuid);
    const again = await RawEsl.authed(eslPort);
    again.send('api fsctl ready_check');
    assert.equal((await again.next()).body, 'true');
    again.close();
  });

  it('now: the node goes away at once, without an answer or a goodbye', async () => {
    const node = await start();
    const c = await RawEsl.authed(node.eslPort);
    c.send('api fsctl shutdown now');
    await within('connection gone', 2000, c.closed);
    assert.equal(node.state, NodeState.Stopped);
    assert.equal(await listening(node.eslPort), false);
  });
});

describe('close', () => {
  it('is idempotent and frees the ports', async () => {
    const node = await FsNode.start();
    const first = node.close();
    assert.equal(node.close(), first);
    await first;
    assert.equal(node.state, NodeState.Closed);
    assert.equal(await listening(node.eslPort), false);
  });

  it('reports ESL commands with the password masked', async () => {
    const node = await start();
    const seen: string[] = [];
    node.on('eslCommand', (line) => seen.push(line));
    const c = await RawEsl.authed(node.eslPort);
    c.send('api hostname');
    await c.next();
    c.close();
    assert.deepEqual(seen, ['auth ********', 'api hostname']);
  });
});

/** A base port from which `n` consecutive TCP ports are free right now. */
async function freeRange(n: number): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const probe = createServer();
    const base = await new Promise<number>((resolve) => {
      probe.listen({ port: 0, host: '127.0.0.1' }, () => {
        const a = probe.address();
        resolve(typeof a === 'object' && a ? a.port : 0);
      });
    });
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    if (base + 2 * n > 65535) continue;
    const taken = await Promise.all(Array.from({ length: 2 * n }, (_, i) => listening(base + i)));
    if (!taken.some(Boolean)) return base;
  }
  throw new Error('no free port range');
}

describe('FsCluster', () => {
  it('starts count nodes with ports counting up from the given ones', async () => {
    // Fixed ports can be taken between the probe and the bind by another process: retry a few times.
    let base = 0;
    let cluster: FsCluster | undefined;
    for (let attempt = 0; attempt < 5 && !cluster; attempt++) {
      base = await freeRange(6);
      try {
        cluster = await FsCluster.start({ count: 3, eslPort: base, sipPort: base + 3, heartbeatMs: 1000 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      }
    }
    assert.ok(cluster, 'no free port range after 5 attempts');
    const started = cluster;
    cleanups.push(() => started.close());
    assert.deepEqual(
      cluster.nodes.map((n) => [n.eslPort, n.sipPort]),
      [
        [base, base + 3],
        [base + 1, base + 4],
        [base + 2, base + 5],
      ],
    );
    assert.equal(new Set(cluster.nodes.map((n) => n.coreUuid)).size, 3);
    assert.equal(new Set(cluster.nodes.map((n) => n.hostname)).size, 3);
  });

  it('gives each node its own free ports with port 0, and closes them all', async () => {
    const cluster = await FsCluster.start({ count: 4, hostnamePrefix: 'fs' });
    assert.deepEqual(
      cluster.nodes.map((n) => n.hostname),
      ['fs1', 'fs2', 'fs3', 'fs4'],
    );
    assert.equal(new Set(cluster.nodes.map((n) => n.eslPort)).size, 4);
    await cluster.close();
    assert.ok(cluster.nodes.every((n) => n.state === NodeState.Closed));
  });

  it('fails whole, closing what it started, when a port is taken', async () => {
    const node = await start();
    await assert.rejects(FsCluster.start({ count: 2, eslPort: node.eslPort - 1, sipPort: 0 }), /EADDRINUSE/);
  });
});
