import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import esl from 'modesl';

import { connectModesl, type ModeslClient } from '../../test-support/modesl-client.js';
import { settlesWithin, within } from '../../../support/wait.js';
import { FsNode } from '../fs-node.js';
import { SipUac } from '../uac/sip-uac.js';

describe('driven by the real modesl client', () => {
  let node: FsNode;
  let client: ModeslClient;
  before(async () => {
    node = await FsNode.start({ heartbeatMs: 100, maxSessions: 50, idleCpu: 87.25 });
    client = await connectModesl(node.eslPort);
  });
  after(async () => {
    client.close();
    await node.close();
  });

  it('authenticates; a wrong password makes modesl report auth failure and the end', async () => {
    const conn = new esl.Connection('127.0.0.1', node.eslPort, 'nope');
    const failed = new Promise<void>((resolve) => conn.on('esl::event::auth::fail', () => resolve()));
    const ended = new Promise<void>((resolve) => conn.on('esl::end', () => resolve()));
    conn.on('error', () => undefined);
    await within('auth::fail', 2000, failed);
    await within('esl::end', 2000, ended);
  });

  it('subscribes with event plain and receives HEARTBEAT with the real header set', async () => {
    const reply = await client.send('event plain HEARTBEAT CHANNEL_CREATE CHANNEL_DESTROY');
    assert.equal(reply.getHeader('Reply-Text'), '+OK event listener enabled plain');
    node.setSessions(7);
    const hb = await client.nextEvent('HEARTBEAT', (e) => e.getHeader('Session-Count') === '7');
    const h = (name: string): string => hb.getHeader(name) ?? `<missing ${name}>`;
    assert.equal(h('Core-UUID'), node.coreUuid);
    assert.equal(h('FreeSWITCH-Hostname'), node.hostname);
    assert.equal(h('FreeSWITCH-Switchname'), node.hostname);
    assert.equal(h('FreeSWITCH-IPv4'), '127.0.0.1');
    assert.equal(h('Event-Info'), 'System Ready');
    assert.match(
      h('Up-Time'),
      /^\d+ years?, \d+ days?, \d+ hours?, \d+ minutes?, \d+ seconds?, \d+ milliseconds?, \d+ microseconds?$/,
    );
    assert.match(h('Uptime-msec'), /^\d+$/);
    const ts = Number(h('Event-Date-Timestamp'));
    assert.ok(Math.abs(ts / 1000 - Date.now()) < 5000, `Event-Date-Timestamp ${ts} is in microseconds`);
    assert.match(h('Event-Date-GMT'), / GMT$/);
    assert.match(h('Event-Date-Local'), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    assert.equal(h('Max-Sessions'), '50');
    assert.equal(h('Idle-CPU'), '87.250000');
    assert.ok(Number(h('Session-Peak-Max')) >= 7);
    for (const name of [
      'FreeSWITCH-Version',
      'Session-Per-Sec',
      'Session-Per-Sec-Last',
      'Session-Per-Sec-Max',
      'Session-Per-Sec-FiveMin',
      'Session-Since-Startup',
      'Session-Peak-FiveMin',
      'Event-Sequence',
    ]) {
      assert.ok(hb.getHeader(name) !== null, `HEARTBEAT has ${name}`);
    }
    node.setIdleCpu(12.5);
    node.setSessions(0);
    const later = await client.nextEvent('HEARTBEAT', (e) => e.getHeader('Idle-CPU') === '12.500000');
    assert.equal(later.getHeader('Session-Count'), '0');
  });

  it('delivers CHANNEL_CREATE and CHANNEL_DESTROY for a call, with its Unique-ID and Call-ID', async () => {
    await client.send('event plain CHANNEL_CREATE CHANNEL_DESTROY');
    const uac = await SipUac.start();
    try {
      const created = client.nextEvent('CHANNEL_CREATE');
      const call = uac.invite({ host: node.host, port: node.sipPort }, { user: '5551234' });
      assert.equal((await call.final()).status, 200);
      const create = await created;
      const uuid = create.getHeader('Unique-ID');
      assert.ok(uuid !== null && /^[0-9a-f-]{36}$/.test(uuid));
      assert.equal(create.getHeader('variable_sip_call_id'), call.callId);
      assert.equal(create.getHeader('Call-Direction'), 'inbound');
      assert.equal(create.getHeader('Caller-Destination-Number'), '5551234');
      assert.equal(create.getHeader('Core-UUID'), node.coreUuid);
      const destroyed = client.nextEvent('CHANNEL_DESTROY', (e) => e.getHeader('Unique-ID') === uuid);
      assert.equal((await call.bye()).status, 200);
      const destroy = await destroyed;
      assert.equal(destroy.getHeader('variable_sip_call_id'), call.callId);
      assert.equal(destroy.getHeader('Hangup-Cause'), 'NORMAL_CLEARING');
    } finally {
      await uac.close();
    }
  });

  it('answers status as FreeSWITCH words it', async () => {
    node.setSessions(3);
    const body = await client.api('status');
    node.setSessions(0);
    const lines = body.split('\n');
    assert.match(lines[0] ?? '', /^UP \d+ years?, \d+ days?, .* microseconds?$/);
    assert.match(lines[1] ?? '', /^FreeSWITCH \(Version .+\) is ready$/);
    assert.match(lines[2] ?? '', /^\d+ session\(s\) since startup$/);
    assert.match(lines[3] ?? '', /^3 session\(s\) - peak \d+, last 5min \d+ $/);
    assert.match(lines[4] ?? '', /^\d+ session\(s\) per Sec out of max \d+, peak \d+, last 5min \d+ $/);
    assert.equal(lines[5], '50 session(s) max');
    assert.match(lines[6] ?? '', /^min idle cpu 0\.00\/\d+\.\d\d$/);
  });

  it('counts calls and channels, plain and as json', async () => {
    node.setSessions(4);
    assert.equal(await client.api('show calls count'), '\n4 total.\n');
    assert.equal(await client.api('show channels count'), '\n4 total.\n');
    assert.deepEqual(JSON.parse(await client.api('show calls count as json')), { row_count: 4, rows: [] });
    assert.deepEqual(JSON.parse(await client.api('show channels count as json')), { row_count: 4, rows: [] });
    node.setSessions(0);
    assert.equal(await client.api('show channels count'), '\n0 total.\n');
  });

  it('reports pause, readiness and shutdown through fsctl', async () => {
    assert.equal(await client.api('fsctl pause_check'), 'false');
    assert.equal(await client.api('fsctl pause_check inbound'), 'false');
    assert.equal(await client.api('fsctl ready_check'), 'true');
    assert.equal(await client.api('fsctl shutdown_check'), 'false');
    node.pause();
    assert.equal(await client.api('fsctl pause_check'), 'true');
    assert.equal(await client.api('fsctl pause_check inbound'), 'true');
    assert.equal(await client.api('fsctl ready_check'), 'false');
    node.resume();
    assert.equal(await client.api('fsctl pause inbound'), '+OK\n');
    assert.equal(await client.api('fsctl pause_check inbound'), 'true');
    assert.equal(await client.api('fsctl pause_check'), 'false');
    assert.equal(await client.api('fsctl resume inbound'), '+OK\n');
    assert.equal(await client.api('fsctl max_sessions 60'), '+OK max sessions: 60\n');
    assert.equal(node.maxSessions, 60);
    node.setMaxSessions(50);
    assert.match(await client.api('fsctl no_such_thing'), /^-ERR Invalid command\nUSAGE: fsctl /);
  });

  it('tells whether the sofia profile is running', async () => {
    const running = await client.api('sofia status profile external');
    assert.match(running, /^=+\nName {13}\texternal\n/);
    assert.match(running, new RegExp(`\nURL {14}\tsip:mod_sofia@127\\.0\\.0\\.1:${node.sipPort}\n`));
    assert.match(await client.api('sofia status'), / external\tprofile\t.*\tRUNNING \(\d+\)\n/);
    assert.equal(await client.api('sofia status profile internal'), 'Invalid Profile!\n');
    node.setProfileRunning(false);
    assert.equal(await client.api('sofia status profile external'), 'Invalid Profile!\n');
    assert.doesNotMatch(await client.api('sofia status'), /RUNNING/);
    node.setProfileRunning(true);
  });

  it('answers unknown API commands as FreeSWITCH does', async () => {
    assert.equal(await client.api('no_such_command with args'), '-ERR no_such_command Command not found!\n');
  });

  it('runs bgapi and delivers BACKGROUND_JOB with the result in its body', async () => {
    const job = await client.bgapi('show calls count as json');
    assert.equal(job.getHeader('Event-Name'), 'BACKGROUND_JOB');
    assert.equal(job.getHeader('Job-Command'), 'show');
    assert.deepEqual(JSON.parse(job.getBody()), { row_count: 0, rows: [] });
    const unknown = await client.bgapi('bogus');
    assert.equal(unknown.getBody(), '-ERR bogus Command not found!\n');
  });

  it('leaves a command unanswered during a stall, and answers it after', async () => {
    node.stall();
    const pending = client.api('fsctl pause_check', 5000);
    assert.equal(await settlesWithin(pending, 300), false, 'no answer while stalled');
    node.unstall();
    assert.equal(await pending, 'false');
  });

  it('says +OK bye to exit and ends the connection', async () => {
    const other = await connectModesl(node.eslPort);
    const reply = await other.send('exit');
    assert.equal(reply.getHeader('Reply-Text'), '+OK bye');
    await within('esl::end after exit', 2000, other.ended);
    other.close();
  });
});
