import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { parsePlainEvent, RawEsl } from '../../test-support/raw-esl.js';
import { FsNode } from '../fs-node.js';

const GOODBYE = 'Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n';

/** The exact bytes of a command/reply frame. */
const reply = (text: string): string => `Content-Type: command/reply\nReply-Text: ${text}\n\n`;

describe('ESL wire format, byte for byte', () => {
  let node: FsNode;
  before(async () => {
    node = await FsNode.start({ heartbeatMs: 50 });
  });
  after(() => node.close());

  it('greets with auth/request and accepts the right password', async () => {
    const c = await RawEsl.connect(node.eslPort);
    assert.equal((await c.next()).raw.toString(), 'Content-Type: auth/request\n\n');
    c.send('auth ClueCon');
    assert.equal((await c.next()).raw.toString(), reply('+OK accepted'));
    c.close();
  });

  it('answers a wrong password -ERR invalid, then a disconnect notice, then closes', async () => {
    const c = await RawEsl.connect(node.eslPort);
    await c.next();
    c.send('auth wrong');
    assert.equal((await c.next()).raw.toString(), reply('-ERR invalid'));
    const notice = await c.next();
    assert.equal(
      notice.raw.toString(),
      `Content-Type: text/disconnect-notice\nContent-Length: ${Buffer.byteLength(GOODBYE)}\n\n${GOODBYE}`,
    );
    await c.closed;
  });

  it('answers commands before auth with -ERR command not found and keeps the connection', async () => {
    const c = await RawEsl.connect(node.eslPort);
    await c.next();
    c.send('api status');
    assert.equal((await c.next()).raw.toString(), reply('-ERR command not found'));
    c.send('event plain ALL');
    assert.equal((await c.next()).raw.toString(), reply('-ERR command not found'));
    c.send('auth ClueCon');
    assert.equal((await c.next()).raw.toString(), reply('+OK accepted'));
    c.close();
  });

  it('replies to event, nixevent and noevents as FreeSWITCH does', async () => {
    const c = await RawEsl.authed(node.eslPort);
    c.send('event plain HEARTBEAT CHANNEL_CREATE');
    assert.equal(
      (await c.nextOfType('command/reply')).raw.toString(),
      reply('+OK event listener enabled plain'),
    );
    c.send('event json CHANNEL_DESTROY');
    assert.equal(
      (await c.nextOfType('command/reply')).raw.toString(),
      reply('+OK event listener enabled json'),
    );
    c.send('event xml');
    assert.equal((await c.nextOfType('command/reply')).raw.toString(), reply('-ERR no keywords supplied'));
    c.send('event plain NOT_AN_EVENT');
    assert.equal((await c.nextOfType('command/reply')).raw.toString(), reply('-ERR no keywords supplied'));
    c.send('nixevent HEARTBEAT');
    assert.equal((await c.nextOfType('command/reply')).raw.toString(), reply('+OK events nixed'));
    c.send('noevents');
    assert.equal(
      (await c.nextOfType('command/reply')).raw.toString(),
      reply('+OK no longer listening for events'),
    );
    c.send('noevents');
    assert.equal((await c.next()).raw.toString(), reply('-ERR not listening for events'));
    c.send('bogus');
    assert.equal((await c.next()).raw.toString(), reply('-ERR command not found'));
    c.close();
  });

  it('frames api responses with Content-Length in bytes, unknown commands included', async () => {
    const c = await RawEsl.authed(node.eslPort);
    c.send('api foo bar baz');
    const body = '-ERR foo Command not found!\n';
    assert.equal(
      (await c.next()).raw.toString(),
      `Content-Type: api/response\nContent-Length: ${body.length}\n\n${body}`,
    );
    c.send('api fsctl pause_check');
    assert.equal((await c.next()).raw.toString(), 'Content-Type: api/response\nContent-Length: 5\n\nfalse');
    c.close();
  });

  it('answers bgapi with the Job-UUID it was given, then fires BACKGROUND_JOB with the result', async () => {
    const c = await RawEsl.authed(node.eslPort);
    c.send('event plain BACKGROUND_JOB');
    await c.next();
    c.write('bgapi show calls count\nJob-UUID: 11111111-2222-3333-4444-555555555555\n\n');
    const r = await c.next();
    assert.equal(
      r.raw.toString(),
      'Content-Type: command/reply\nReply-Text: +OK Job-UUID: 11111111-2222-3333-4444-555555555555\n' +
        'Job-UUID: 11111111-2222-3333-4444-555555555555\n\n',
    );
    const job = await c.nextOfType('text/event-plain');
    const headers = parsePlainEvent(job.body);
    assert.equal(headers.get('Event-Name'), 'BACKGROUND_JOB');
    assert.equal(headers.get('Job-UUID'), '11111111-2222-3333-4444-555555555555');
    assert.equal(headers.get('Job-Command'), 'show');
    assert.equal(headers.get('Job-Command-Arg'), 'calls count');
    assert.match(job.body, /Job-Owner-UUID: _undef_\n/);
    assert.ok(job.body.endsWith('Content-Length: 10\n\n\n0 total.\n'), job.body);
    c.close();
  });

  it('makes up a Job-UUID when the client gives none', async () => {
    const c = await RawEsl.authed(node.eslPort);
    c.send('bgapi status');
    const r = await c.next();
    const id = r.headers.get('Job-UUID') ?? '';
    assert.match(id, /^[0-9a-f-]{36}$/);
    assert.equal(r.headers.get('Reply-Text'), `+OK Job-UUID: ${id}`);
    c.close();
  });

  it('writes text/event-plain frames: Content-Length of the body in bytes, values url-encoded', async () => {
    const c = await RawEsl.authed(node.eslPort);
    c.send('event plain HEARTBEAT');
    await c.next();
    const frame = await c.nextOfType('text/event-plain');
    const text = frame.raw.toString();
    assert.match(text, /^Content-Length: (\d+)\nContent-Type: text\/event-plain\n\n/);
    assert.equal(Number(frame.headers.get('Content-Length')), Buffer.byteLength(frame.body));
    assert.match(
      frame.body,
      /\nEvent-Date-GMT: [A-Z][a-z]{2},%20\d\d%20[A-Z][a-z]{2}%20\d{4}%20\d\d%3A\d\d%3A\d\d%20GMT\n/,
    );
    assert.match(frame.body, /\nFreeSWITCH-IPv6: %3A%3A1\n/);
    assert.ok(frame.body.endsWith('\n\n'));
    c.close();
  });

  it('writes text/event-json frames whose values are all strings', async () => {
    const c = await RawEsl.authed(node.eslPort);
    c.send('event json HEARTBEAT');
    await c.next();
    const frame = await c.nextOfType('text/event-json');
    assert.equal(Number(frame.headers.get('Content-Length')), Buffer.byteLength(frame.body));
    const data = JSON.parse(frame.body) as Record<string, unknown>;
    assert.equal(data['Event-Name'], 'HEARTBEAT');
    for (const [k, v] of Object.entries(data)) assert.equal(typeof v, 'string', k);
    c.close();
  });

  it('writes text/event-xml frames', async () => {
    const c = await RawEsl.authed(node.eslPort);
    c.send('event xml HEARTBEAT');
    assert.equal((await c.next()).headers.get('Reply-Text'), '+OK event listener enabled xml');
    const frame = await c.nextOfType('text/event-xml');
    assert.match(frame.body, /^<event>\n {2}<headers>\n {4}<Event-Name>HEARTBEAT<\/Event-Name>\n/);
    c.close();
  });

  it('applies filters: with a filter set only matching events pass', async () => {
    const c = await RawEsl.authed(node.eslPort);
    c.send('event plain BACKGROUND_JOB');
    await c.next();
    c.send('filter Job-UUID aaaaaaaa-0000-0000-0000-000000000001');
    assert.equal(
      (await c.next()).raw.toString(),
      reply('+OK filter added. [Job-UUID]=[aaaaaaaa-0000-0000-0000-000000000001]'),
    );
    c.write('bgapi hostname\nJob-UUID: bbbbbbbb-0000-0000-0000-000000000002\n\n');
    await c.next();
    c.write('bgapi hostname\nJob-UUID: aaaaaaaa-0000-0000-0000-000000000001\n\n');
    await c.next();
    const job = await c.nextOfType('text/event-plain');
    assert.equal(parsePlainEvent(job.body).get('Job-UUID'), 'aaaaaaaa-0000-0000-0000-000000000001');
    c.send('filter delete Job-UUID');
    assert.equal(
      (await c.nextOfType('command/reply')).raw.toString(),
      reply('+OK filter deleted. [Job-UUID][]'),
    );
    c.close();
  });

  it('answers log and nolog without ever sending log lines', async () => {
    const c = await RawEsl.authed(node.eslPort);
    c.send('nolog');
    assert.equal((await c.next()).raw.toString(), reply('-ERR not loging'));
    c.send('log info');
    assert.equal((await c.next()).raw.toString(), reply('+OK log level info [6]'));
    c.send('nolog');
    assert.equal((await c.next()).raw.toString(), reply('+OK no longer logging'));
    c.close();
  });

  it('says +OK bye to exit, then the disconnect notice, then closes', async () => {
    const c = await RawEsl.authed(node.eslPort);
    c.send('exit');
    assert.equal((await c.next()).raw.toString(), reply('+OK bye'));
    const notice = await c.next();
    assert.equal(notice.headers.get('Content-Type'), 'text/disconnect-notice');
    assert.equal(notice.body, GOODBYE);
    await c.closed;
  });

  it('serves several clients at once, each with its own subscriptions and format', async () => {
    const clients = await Promise.all([1, 2, 3].map(() => RawEsl.authed(node.eslPort)));
    assert.ok(node.eslClientCount >= 3);
    clients[0]?.send('event plain HEARTBEAT');
    clients[1]?.send('event json HEARTBEAT');
    for (const c of clients.slice(0, 2)) await c.next();
    assert.equal(
      (await clients[0]!.nextOfType('text/event-plain')).headers.get('Content-Type'),
      'text/event-plain',
    );
    assert.equal(
      (await clients[1]!.nextOfType('text/event-json')).headers.get('Content-Type'),
      'text/event-json',
    );
    clients[2]?.send('api hostname');
    assert.equal((await clients[2]!.next()).body, node.hostname);
    for (const c of clients) c.close();
  });
});

describe('ESL refusals', () => {
  it('refuses by ACL with text/rude-rejection, the disconnect notice, and a close', async () => {
    const node = await FsNode.start();
    try {
      node.aclReject(true);
      const c = await RawEsl.connect(node.eslPort);
      assert.equal(
        (await c.next()).raw.toString(),
        'Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n',
      );
      assert.equal((await c.next()).headers.get('Content-Type'), 'text/disconnect-notice');
      await c.closed;
      node.aclReject(false);
      const ok = await RawEsl.authed(node.eslPort);
      ok.close();
    } finally {
      await node.close();
    }
  });

  it('answers every auth -ERR invalid while refusing auth', async () => {
    const node = await FsNode.start();
    try {
      node.refuseAuth(true);
      const c = await RawEsl.connect(node.eslPort);
      await c.next();
      c.send('auth ClueCon');
      assert.equal((await c.next()).raw.toString(), reply('-ERR invalid'));
      await c.closed;
    } finally {
      await node.close();
    }
  });

  it('takes the password it was started with', async () => {
    const node = await FsNode.start({ password: 's3cret' });
    try {
      const bad = await RawEsl.connect(node.eslPort);
      await bad.next();
      bad.send('auth ClueCon');
      assert.equal((await bad.next()).headers.get('Reply-Text'), '-ERR invalid');
      const good = await RawEsl.authed(node.eslPort, 's3cret');
      good.close();
    } finally {
      await node.close();
    }
  });
});

describe('garbage from a client', () => {
  it('survives bytes that are no command, and drops a client whose command never ends', async () => {
    const node = await FsNode.start();
    try {
      const c = await RawEsl.authed(node.eslPort);
      c.write(Buffer.from([0, 255, 10, 10, 1, 2, 3, 10, 13, 10]));
      assert.equal((await c.next()).headers.get('Reply-Text'), '-ERR command not found');
      const flood = await RawEsl.connect(node.eslPort);
      await flood.next();
      flood.write(Buffer.alloc(11 * 1024 * 1024, 'a'));
      await flood.closed;
      c.send('api hostname');
      assert.equal((await c.nextOfType('api/response')).body, node.hostname);
      c.close();
    } finally {
      await node.close();
    }
  });
});

describe('malformed frames', () => {
  it('writes each kind of broken frame to every client', async () => {
    const node = await FsNode.start({ heartbeatMs: 0 });
    try {
      const c = await RawEsl.authed(node.eslPort);
      node.sendMalformed('bad-json');
      const json = await c.next();
      assert.equal(json.headers.get('Content-Type'), 'text/event-json');
      assert.throws(() => JSON.parse(json.body) as unknown);
      node.sendMalformed('bad-percent');
      const plain = await c.next();
      assert.throws(() => parsePlainEvent(plain.body), URIError);
      node.sendMalformed('bad-values');
      assert.equal(parsePlainEvent((await c.next()).body).get('Session-Count'), 'many');
      node.sendMalformed('garbage');
      assert.ok((await c.next()).raw.includes(Buffer.from('not a frame')));
      node.sendMalformed('short-body');
      await new Promise<void>((resolve) => c.socket.once('data', () => resolve()));
      assert.ok(c.pendingBytes > 0, 'a frame promising more bytes than sent stays incomplete');
      c.close();
    } finally {
      await node.close();
    }
  });
});
