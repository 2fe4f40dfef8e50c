import assert from 'node:assert/strict';
import { once } from 'node:events';
import { afterEach, describe, it } from 'node:test';

import type Srf from 'drachtio-srf';

import { settlesWithin, within } from '../support/wait.js';
import { DrachtioDouble, type DrachtioDoubleOptions, type ProxyCommand } from './index.js';
import { SrfApp, type AppRequest, type ProxyResult, type SrfAppOptions } from './srf-app.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function double(options: DrachtioDoubleOptions = {}): Promise<DrachtioDouble> {
  const dx = await DrachtioDouble.start(options);
  cleanups.push(() => dx.close());
  return dx;
}

/** An srf app on the double; closed before the double (cleanups run in reverse). */
function app(dx: DrachtioDouble, options: SrfAppOptions = {}): SrfApp {
  const a = new SrfApp(dx, options);
  cleanups.push(() => a.close());
  return a;
}

/** An app that routes INVITE and hands each one to `onInvite`. */
async function inviteApp(
  dx: DrachtioDouble,
  onInvite: (req: AppRequest, res: Srf.SrfResponse) => void,
): Promise<SrfApp> {
  const a = app(dx).invite(onInvite).connect();
  await dx.routed(['invite']);
  return a;
}

/** An app whose INVITE handler proxies with `opts` and reports the outcome. */
async function proxyApp(dx: DrachtioDouble, opts: Parameters<AppRequest['proxy']>[0]) {
  const outcomes: Promise<ProxyResult>[] = [];
  await inviteApp(dx, (req) => {
    const p = req.proxy({ ...opts, destination: [...[opts.destination].flat()] });
    p.catch(() => undefined);
    outcomes.push(p);
  });
  return {
    outcome: async (): Promise<ProxyResult> => {
      const p = await within(
        'the app proxying',
        5000,
        next(() => outcomes[0]),
      );
      return p;
    },
  };
}

/** Resolves with `get()` once it is defined (polled each turn; for values set inside srf callbacks). */
async function next<T>(get: () => T | undefined): Promise<T> {
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    await new Promise((r) => setImmediate(r));
  }
}

describe('a test stand-in, loopback only', () => {
  it('refuses to bind its app listener or its SIP socket anywhere but loopback, saying why', async () => {
    for (const options of [{ host: '0.0.0.0' }, { forward: { host: '0.0.0.0' } }, { host: '::' }]) {
      await assert.rejects(
        DrachtioDouble.start(options),
        /test stand-in for drachtio-server and binds loopback only/,
      );
    }
    const dx = await double({ host: '127.0.0.2', forward: { host: '127.0.0.1' } });
    assert.equal(dx.host, '127.0.0.2');
  });
});

describe('authentication', () => {
  it('accepts the right secret: srf gets the hostports and version, the double sees the tags', async () => {
    const dx = await double({ secret: 's3cret', sipAddress: { host: '127.0.0.1', port: 5070 } });
    const authenticated = once(dx, 'authenticated');
    const a = app(dx, { secret: 's3cret', tags: ['fslb-proxy'] }).connect();
    const [conn, ok] = (await authenticated) as [DrachtioDouble['connections'][number], boolean];
    assert.equal(ok, true);
    assert.deepEqual(conn.tags, ['fslb-proxy']);
    const [err, hostport, version] = (await once(a.srf, 'connect')) as [Error | null, string, string];
    assert.equal(err, null);
    assert.equal(hostport, 'udp/127.0.0.1:5070,tcp/127.0.0.1:5070');
    assert.equal(version, 'v0.9.4');
  });

  it('answers a wrong secret with NO and closes: srf reports "failed to authenticate to server"', async () => {
    const dx = await double();
    const a = app(dx, { secret: 'wrong', reconnect: { maxAttempts: 1 } });
    const verdict = once(dx, 'authenticated');
    const closed = once(dx, 'disconnect');
    a.connect();
    const [, ok] = (await verdict) as [unknown, boolean];
    assert.equal(ok, false);
    const [err] = (await once(a.srf, 'connect')) as [Error];
    assert.match(err.message, /failed to authenticate to server/);
    await within('the double to close the connection', 2000, closed);
    assert.equal(dx.connections.length, 0);
  });
});

describe('routes', () => {
  it('records each verb an app routes and resolves routed() once all are there', async () => {
    const dx = await double();
    const routes: string[] = [];
    dx.on('routed', (_c, verb) => routes.push(verb));
    app(dx)
      .invite(() => undefined)
      .route('options', () => undefined)
      .route('register', () => undefined)
      .connect();
    await dx.routed(['invite', 'options', 'register']);
    assert.deepEqual([...(dx.connections[0]?.verbs ?? [])].sort(), ['invite', 'options', 'register']);
    assert.deepEqual([...new Set(routes)].sort(), ['invite', 'options', 'register']);
  });

  it('answers a request nobody routed with 503 itself, and hands nothing to the app', async () => {
    const dx = await double();
    let reached = false;
    await inviteApp(dx, () => (reached = true));
    const h = dx.inject({ method: 'OPTIONS' });
    assert.equal(h.connection, undefined);
    assert.equal((await h.final()).status, 503);
    assert.equal(reached, false);
  });
});

describe('injected requests', () => {
  it('reach the app with the chosen source, transport and headers; a 503 with Retry-After is captured', async () => {
    const dx = await double();
    const seen: AppRequest[] = [];
    const echoes: unknown[] = [];
    await inviteApp(dx, (req, res) => {
      seen.push(req);
      res.send(
        503,
        'Service Unavailable',
        { headers: { 'Retry-After': '30' } },
        (err: unknown, msg: unknown) => echoes.push(err ?? msg),
      );
    });
    const h = dx.inject(
      { method: 'INVITE', callId: 'call-1@test', sdp: true, headers: { 'X-Test': 'yes' } },
      { source: { address: '203.0.113.7', port: 5062, transport: 'tcp' } },
    );
    const res = await h.response(200);
    const req = seen[0]!;
    assert.equal(req.source_address, '203.0.113.7');
    assert.equal(req.source_port, 5062);
    assert.equal(req.protocol, 'tcp');
    assert.equal(req.get('Call-ID'), 'call-1@test');
    assert.equal(req.get('X-Test'), 'yes');
    assert.equal(req.stackTxnId, h.txnId);
    assert.equal(req.receivedOn, '127.0.0.1:5060');
    assert.match(req.body, /m=audio \d+ RTP\/AVP 0 8 101/);
    assert.equal(res.status, 503);
    assert.equal(res.reason, 'Service Unavailable');
    assert.equal(res.message.get('Retry-After'), '30');
    const final = await h.final();
    assert.equal(final.status, 503);
    assert.match(final.get('to') ?? '', /;tag=/, 'drachtio adds a To tag');
    assert.deepEqual(
      h.callerResponses.map((r) => r.status),
      [100, 503],
      'drachtio sends 100 Trying for an INVITE itself',
    );
    const echo = await within(
      'srf to read the echo of its response',
      2000,
      next(() => echoes[0]),
    );
    assert.equal((echo as { status: number }).status, 503, 'srf parsed the "Msg sent" echo');
  });

  it('OPTIONS answered 200 and REGISTER answered 403 are both captured', async () => {
    const dx = await double();
    app(dx)
      .route('options', (_req, res) => res.send(200))
      .route('register', (_req, res) => res.send(403))
      .connect();
    await dx.routed(['options', 'register']);
    const options = dx.inject({ method: 'OPTIONS' });
    const register = dx.inject({ method: 'REGISTER', fromUser: '1001' });
    assert.equal((await options.response()).status, 200);
    assert.equal((await register.response()).status, 403);
    assert.equal(register.message.get('expires'), '3600');
  });

  it('takes a raw SIP request as is', async () => {
    const dx = await double();
    const methods: string[] = [];
    app(dx)
      .route('subscribe', (req, res) => {
        methods.push(`${req.method} ${req.get('Event')}`);
        res.send(489);
      })
      .connect();
    await dx.routed(['subscribe']);
    const raw = [
      'SUBSCRIBE sip:presence@127.0.0.1:5060 SIP/2.0',
      'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKraw1',
      'Max-Forwards: 70',
      'From: <sip:a@192.0.2.1>;tag=abc',
      'To: <sip:presence@127.0.0.1>',
      'Call-ID: raw-1',
      'CSeq: 7 SUBSCRIBE',
      'Event: dialog',
      'Contact: <sip:a@192.0.2.1:5060>',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    const h = dx.inject(raw, { source: { address: '192.0.2.1', port: 5060 } });
    assert.equal((await h.response()).status, 489);
    assert.deepEqual(methods, ['SUBSCRIBE dialog']);
  });
});

describe('req.proxy', () => {
  it('is captured with its destinations, options and extra headers', async () => {
    const dx = await double();
    dx.onProxy(() => ({ kind: 'hold' }));
    await proxyApp(dx, {
      destination: ['10.0.0.20', 'sip:10.0.0.21:5080'],
      remainInDialog: true,
      followRedirects: true,
      forking: 'simultaneous',
      provisionalTimeout: '2s',
      finalTimeout: '1500ms',
      headers: { 'X-Fslb-Node': 'fs1', 'X-Other': 'b' },
    });
    const h = dx.inject({ method: 'INVITE' });
    const cmd = await h.proxied();
    assert.deepEqual(cmd.destinations, ['sip:10.0.0.20', 'sip:10.0.0.21:5080'], 'srf prefixes sip:');
    assert.equal(cmd.txnId, h.txnId);
    assert.equal(cmd.remainInDialog, true);
    assert.equal(cmd.fullResponse, true, 'srf always asks for full responses');
    assert.equal(cmd.followRedirects, true);
    assert.equal(cmd.forking, 'simultaneous');
    assert.equal(cmd.provisionalTimeout, '2s');
    assert.equal(cmd.provisionalTimeoutMs, 2000);
    assert.equal(cmd.finalTimeoutMs, 1500);
    assert.equal(cmd.header('x-fslb-node'), 'fs1');
    assert.equal(cmd.header('X-Other'), 'b');
    assert.equal(cmd.stub.method, 'INVITE');
    assert.equal(cmd.stub.uri, 'sip:10.0.0.20');
    assert.equal(
      cmd.raw.split('\r\n')[0],
      `${cmd.msgId}|proxy|${h.txnId}|remainInDialog|fullResponse|followRedirects|simultaneous|2s|1500ms|sip:10.0.0.20|sip:10.0.0.21:5080`,
    );
  });

  it('reads recordRoute as remainInDialog and defaults to serial forking with no timeouts', async () => {
    const dx = await double();
    dx.onProxy(() => ({ kind: 'hold' }));
    await proxyApp(dx, { destination: '10.0.0.20:5080', recordRoute: true });
    const cmd = await dx.inject({ method: 'INVITE' }).proxied();
    assert.deepEqual(cmd.destinations, ['sip:10.0.0.20:5080']);
    assert.equal(cmd.remainInDialog, true);
    assert.equal(cmd.forking, 'serial');
    assert.equal(cmd.provisionalTimeout, '');
    assert.equal(cmd.provisionalTimeoutMs, undefined);
    assert.deepEqual(cmd.headers, []);
  });

  it('resolves with connected true and both responses for a scripted 503 then 200', async () => {
    const dx = await double();
    const commands: ProxyCommand[] = [];
    dx.onProxy((cmd) => {
      commands.push(cmd);
      return {
        kind: 'respond',
        responses: [{ status: 503, headers: { 'Retry-After': '300' } }, { status: 200 }],
      };
    });
    const { outcome } = await proxyApp(dx, { destination: ['10.0.0.20', '10.0.0.21:5080'] });
    const h = dx.inject({ method: 'INVITE' });
    const result = await outcome();
    assert.equal(result.connected, true);
    assert.equal(result.finalStatus, 200);
    assert.equal(result.finalResponse?.status, 200);
    assert.equal(result.finalResponse.msg.get('Contact'), '<sip:10.0.0.21:5080>');
    assert.deepEqual(
      result.responses.map((r) => ({
        address: r.address,
        port: r.port,
        statuses: r.msgs.map((m) => m.status),
      })),
      [
        { address: '10.0.0.20', port: 5060, statuses: [503] },
        { address: '10.0.0.21', port: 5080, statuses: [200] },
      ],
    );
    assert.equal(result.responses[0]?.msgs[0]?.msg.get('Retry-After'), '300');
    assert.equal((await h.final()).status, 200, 'the caller gets the 200');
    const reply = await commands[0]!.settled();
    assert.deepEqual(
      reply.continues.map((r) => r.status),
      [503, 200],
    );
    assert.equal(reply.done, true);
  });

  it('groups responses from targets on one address under one entry (srf compares addresses, not ports)', async () => {
    const dx = await double();
    dx.onProxy(() => ({ kind: 'respond', responses: [{ status: 503 }, { status: 486 }] }));
    const { outcome } = await proxyApp(dx, { destination: ['127.0.0.1:5080', '127.0.0.1:5081'] });
    const h = dx.inject({ method: 'INVITE' });
    const result = await outcome();
    assert.equal(result.connected, false);
    assert.equal(result.finalStatus, 486, 'finalStatus is the last response srf saw');
    assert.equal(result.responses.length, 1);
    assert.deepEqual(
      result.responses[0]?.msgs.map((m) => m.status),
      [503, 486],
    );
    assert.equal((await h.final()).status, 486, 'the caller gets the best failure (4xx over 5xx)');
  });

  it('leaves no entry for a silent target and answers the caller 408 when every target is silent', async () => {
    const dx = await double();
    dx.onProxy(() => ({ kind: 'respond', responses: ['silent', 'silent'] }));
    const { outcome } = await proxyApp(dx, { destination: ['10.0.0.20', '10.0.0.21'] });
    const h = dx.inject({ method: 'INVITE' });
    const result = await outcome();
    assert.deepEqual(result, { connected: false, responses: [] });
    assert.equal((await h.final()).status, 408);
  });

  it('rejects with the plain reason string on NOK', async () => {
    const dx = await double();
    dx.onProxy(() => ({ kind: 'nok', reason: 'no route to host' }));
    const { outcome } = await proxyApp(dx, { destination: '10.0.0.20' });
    dx.inject({ method: 'INVITE' });
    await assert.rejects(outcome(), (err: unknown) => err === 'no route to host');
  });

  it('answers a second proxy of the same request and a response after a proxy with NOK', async () => {
    const dx = await double();
    dx.onProxy(() => ({ kind: 'respond', responses: [{ status: 480 }] }));
    const errors: unknown[] = [];
    await inviteApp(dx, (req, res) => {
      req.proxy({ destination: '10.0.0.20' }).catch((e: unknown) => errors.push(e));
      req.proxy({ destination: '10.0.0.21' }).catch((e: unknown) => errors.push(e));
      res.send(500, 'Server Internal Error', {}, (err: unknown) => errors.push(err));
    });
    const h = dx.inject({ method: 'INVITE' });
    await within(
      'two errors',
      2000,
      next(() => errors[1]),
    );
    assert.deepEqual(errors.sort(), [
      'Response not sent due to unknown transaction',
      `Unknown transaction id: ${h.txnId}`,
    ]);
    assert.equal(h.proxyCommands.length, 1);
  });

  it('never settles when the socket drops mid-proxy; srf reconnects and carries on', async () => {
    const dx = await double();
    let first = true;
    dx.onProxy(() => {
      if (!first) return { kind: 'respond', responses: [{ status: 200 }] };
      first = false;
      return { kind: 'drop' };
    });
    const outcomes: Promise<ProxyResult>[] = [];
    await inviteApp(dx, (req) => {
      const p = req.proxy({ destination: '10.0.0.20' });
      p.catch(() => undefined);
      outcomes.push(p);
    });
    const firstConn = dx.connections[0]!;
    const dropped = once(dx, 'disconnect');
    dx.inject({ method: 'INVITE' });
    await within('the drop', 2000, dropped);
    const { pending } = await within(
      'the app to proxy',
      2000,
      next(() => outcomes[0] && { pending: outcomes[0] }),
    );
    assert.equal(await settlesWithin(pending, 500), false, 'req.proxy() never settles');
    await dx.routed(['invite']);
    assert.notEqual(dx.connections[0], firstConn, 'srf reconnected and routed again');
    dx.inject({ method: 'INVITE' });
    const { second } = await within(
      'the second proxy',
      2000,
      next(() => outcomes[1] && { second: outcomes[1] }),
    );
    assert.equal((await second).connected, true);
    assert.equal(await settlesWithin(pending, 0), false);
  });

  it('holds a command until the test answers it', async () => {
    const dx = await double();
    dx.onProxy(() => ({ kind: 'hold' }));
    const { outcome } = await proxyApp(dx, { destination: '10.0.0.20' });
    const h = dx.inject({ method: 'INVITE' });
    const cmd = await h.proxied();
    const result = outcome();
    assert.equal(await settlesWithin(result, 200), false);
    cmd.answer({ kind: 'respond', responses: [{ status: 486 }] });
    const r = await result;
    assert.equal(r.connected, false);
    assert.equal(r.finalStatus, 486);
    assert.throws(() => cmd.answer({ kind: 'nok' }), /not held/);
  });
});

describe('framing', () => {
  it('works when every byte to srf is its own write (srf sees the messages in pieces)', async () => {
    const dx = await double({ framing: { split: 'byte' } });
    const chunks: number[] = [];
    const seen: AppRequest[] = [];
    await inviteApp(dx, (req, res) => {
      seen.push(req);
      res.send(486);
    });
    const h1 = dx.inject({ method: 'INVITE' });
    assert.equal((await h1.response()).status, 486);
    seen[0]!.socket.on('data', (d: Buffer) => chunks.push(d.length));
    const h2 = dx.inject({ method: 'INVITE', sdp: true });
    assert.equal((await h2.response()).status, 486);
    assert.equal(seen[1]?.get('Call-ID'), h2.callId);
    assert.ok(chunks.length > 100, `srf read the INVITE in ${chunks.length} pieces`);
  });

  it('works with random splits, and with several messages merged into one write', async () => {
    const dx = await double({ framing: { split: 'random' } });
    const callIds: string[] = [];
    const chunks: number[] = [];
    await inviteApp(dx, (req, res) => {
      if (callIds.length === 0) req.socket.on('data', (d: Buffer) => chunks.push(d.length));
      callIds.push(req.get('Call-ID'));
      res.send(480);
    });
    assert.equal((await dx.inject({ method: 'INVITE' }).response()).status, 480);
    dx.framing = { merge: true };
    const conn = dx.connections[0]!;
    const writesBefore = conn.writes;
    const handles = Array.from({ length: 5 }, () => dx.inject({ method: 'INVITE' }));
    for (const h of handles) assert.equal((await h.response()).status, 480);
    assert.deepEqual(
      callIds.slice(1),
      handles.map((h) => h.callId),
    );
    assert.equal(conn.writes - writesBefore >= 1, true);
    assert.ok(
      chunks.length > 0 && chunks.length < 5,
      `5 INVITEs reached srf in ${chunks.length} 'data' event(s)`,
    );
  });

  it('reads app messages however TCP splits or merges them (srf writes each route separately)', async () => {
    const dx = await double();
    app(dx)
      .invite(() => undefined)
      .route('options', () => undefined)
      .route('register', () => undefined)
      .route('subscribe', () => undefined)
      .connect();
    await dx.routed(['invite', 'options', 'register', 'subscribe']);
    const types = dx.connections[0]!.messages.map((m) => m.type);
    assert.equal(types[0], 'authenticate');
    assert.deepEqual(new Set(types.slice(1)), new Set(['route']));
  });
});

describe('connections', () => {
  it('drops every connection on demand; srf reconnects, authenticates and routes again', async () => {
    const dx = await double();
    const methods: string[] = [];
    await inviteApp(dx, (req, res) => {
      methods.push(req.method);
      res.send(486);
    });
    const before = dx.connections[0]!;
    await dx.dropConnections();
    assert.equal(dx.connections.length, 0);
    await dx.routed(['invite']);
    assert.notEqual(dx.connections[0], before);
    assert.equal((await dx.inject({ method: 'INVITE' }).response()).status, 486);
  });

  it('closes idempotently, and srf is told the connection is gone', async () => {
    const dx = await DrachtioDouble.start();
    const a = new SrfApp(dx, { reconnect: { maxAttempts: 1 } }).invite(() => undefined).connect();
    await dx.routed(['invite']);
    const gone = once(a.srf, 'close');
    await Promise.all([dx.close(), dx.close()]);
    await dx.close();
    await within('srf to see the close', 2000, gone);
    assert.throws(() => dx.inject({ method: 'INVITE' }), /closed/);
  });
});

describe('CANCEL from the caller', () => {
  it("reaches the app while the INVITE waits for it: srf emits cancel, the caller gets 200 and 487, the app's late answer gets NOK", async () => {
    const dx = await double();
    const seen: { req: AppRequest; res: Srf.SrfResponse }[] = [];
    await inviteApp(dx, (req, res) => seen.push({ req, res }));
    const h = dx.inject({ method: 'INVITE', sdp: true });
    const { req, res } = await within(
      'the app to get the INVITE',
      2000,
      next(() => seen[0]),
    );
    const canceled = new Promise<Srf.SipMessage>((resolve) => req.on('cancel', resolve));
    assert.equal(h.cancel(), 200);
    const cancel = await within('srf to emit cancel', 2000, canceled);
    assert.match(cancel.raw, /^CANCEL /);
    assert.equal(cancel.get('Call-ID'), h.callId);
    assert.equal(cancel.get('CSeq'), '1 CANCEL');
    assert.equal(cancel.get('Via'), h.message.get('via'), 'the INVITE top Via, so its branch');
    assert.equal(cancel.get('From'), h.message.get('from'));
    assert.equal(cancel.get('To'), h.message.get('to'));
    assert.deepEqual(
      h.callerResponses.map((r) => r.status),
      [100, 487],
    );
    assert.equal(h.cancelResponses[0]?.status, 200);
    assert.equal(h.canceled, true);
    const err = await new Promise<unknown>((resolve) =>
      res.send(486, 'Busy Here', {}, (e: unknown) => resolve(e)),
    );
    assert.equal(err, 'Response not sent due to unknown transaction');
    assert.equal(h.state, 'removed');
    assert.equal(h.responses.length, 0);
    assert.equal(h.finalResponse?.status, 487);
  });

  it('answers 481 after the app answered 2xx, 200 with no effect after a failure; only an INVITE can be canceled', async () => {
    const dx = await double();
    app(dx)
      .invite((req, res) => res.send(Number(req.get('X-Answer'))))
      .route('options', (_req, res) => res.send(200))
      .connect();
    await dx.routed(['invite', 'options']);
    const answered = dx.inject({ method: 'INVITE', headers: { 'X-Answer': '200' } });
    assert.equal((await answered.final()).status, 200);
    assert.equal(answered.cancel(), 481);
    const busy = dx.inject({ method: 'INVITE', headers: { 'X-Answer': '486' } });
    assert.equal((await busy.final()).status, 486);
    assert.equal(busy.cancel(), 200);
    assert.deepEqual(
      busy.callerResponses.map((r) => r.status),
      [100, 486],
    );
    const options = dx.inject({ method: 'OPTIONS' });
    assert.throws(() => options.cancel(), /not an INVITE/);
  });

  it('answers 481 to a CANCEL for an INVITE nobody routed', async () => {
    const dx = await double();
    const h = dx.inject({ method: 'INVITE' });
    assert.equal((await h.final()).status, 503);
    assert.equal(h.cancel(), 481);
    assert.equal(h.cancelResponses[0]?.get('cseq'), '1 CANCEL');
  });
});

describe('digest challenges', () => {
  it('sends a scripted 401 back as final and remembers its challenge, as a forwarded one', async () => {
    const dx = await double();
    dx.onProxy(() => ({
      kind: 'respond',
      responses: [
        { status: 401, headers: { 'WWW-Authenticate': 'Digest realm="r", nonce="n-9"' } },
        { status: 200 },
      ],
    }));
    const { outcome } = await proxyApp(dx, { destination: ['10.0.0.20', '10.0.0.21'] });
    const h = dx.inject({ method: 'INVITE' });
    const result = await outcome();
    assert.equal(result.connected, false);
    assert.equal(result.finalStatus, 401);
    assert.equal((await h.final()).status, 401);
    assert.deepEqual([...dx.challenges], [['"n-9"', { realm: '"r"', target: 'sip:10.0.0.20' }]]);
  });
});
