// The FreeSWITCH contract: what fslb relies on from a node, checked through ESL and SIP only.
// Runs against the simulator always, and against a real FreeSWITCH when FSLB_FREESWITCH_BIN
// names one (started with test/freeswitch-conf); that is how the simulator stays honest.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { SipUac } from '@fslb/fs-sim';

import { connectModesl, type ModeslClient } from '../fs-sim/test-support/modesl-client.js';
import { RawEsl } from '../fs-sim/test-support/raw-esl.js';
import { waitFor, within } from '../support/wait.js';
import { freeswitchBin, freeswitchTarget, simulatorTarget, type FsTarget } from './fs-target.js';

const bin = freeswitchBin();
const REAL_SKIP =
  bin === undefined ? 'FSLB_FREESWITCH_BIN is not set: no real FreeSWITCH to hold the simulator to' : false;
if (REAL_SKIP) console.log(`skipping the contract suite against a real FreeSWITCH: ${REAL_SKIP}`);

const targets: { label: string; make: () => Promise<FsTarget>; skip: string | false }[] = [
  { label: 'simulator', make: simulatorTarget, skip: false },
  { label: 'real FreeSWITCH', make: () => freeswitchTarget(bin ?? ''), skip: REAL_SKIP },
];

for (const { label, make, skip } of targets) {
  describe(`FreeSWITCH contract: ${label}`, { skip, timeout: 120_000 }, () => {
    let target: FsTarget;
    let client: ModeslClient;
    let uac: SipUac;
    const sip = (): { host: string; port: number } => ({ host: target.host, port: target.sipPort });

    before(async () => {
      target = await make();
      client = await connectModesl(target.eslPort, target.password);
      uac = await SipUac.start({ timeoutMs: 8000 });
    });
    after(async () => {
      // Guarded: when `before` failed (no FreeSWITCH came up), these were never set.
      const started = [uac, client, target] as (SipUac | ModeslClient | FsTarget | undefined)[];
      if (started[0]) await uac.close();
      if (started[1]) client.close();
      if (started[2]) await target.stop();
    });

    it('greets with auth/request and accepts the password', async () => {
      const c = await RawEsl.connect(target.eslPort);
      assert.equal((await c.next()).raw.toString(), 'Content-Type: auth/request\n\n');
      c.send(`auth ${target.password}`);
      assert.equal(
        (await c.next()).raw.toString(),
        'Content-Type: command/reply\nReply-Text: +OK accepted\n\n',
      );
      c.close();
    });

    it('answers a wrong password -ERR invalid, a disconnect notice, and closes', async () => {
      const c = await RawEsl.connect(target.eslPort);
      await c.next();
      c.send('auth not-the-password');
      assert.equal((await c.next()).headers.get('Reply-Text'), '-ERR invalid');
      assert.equal((await c.next()).headers.get('Content-Type'), 'text/disconnect-notice');
      await within('close', 5000, c.closed);
    });

    it('answers commands before auth with -ERR command not found', async () => {
      const c = await RawEsl.connect(target.eslPort);
      await c.next();
      c.send('api status');
      assert.equal((await c.next()).headers.get('Reply-Text'), '-ERR command not found');
      c.close();
    });

    it('replies to event and noevents as FreeSWITCH does', async () => {
      const c = await RawEsl.authed(target.eslPort, target.password);
      c.send('event plain CHANNEL_CREATE');
      assert.equal((await c.next()).headers.get('Reply-Text'), '+OK event listener enabled plain');
      c.send('noevents');
      assert.equal(
        (await c.nextOfType('command/reply')).headers.get('Reply-Text'),
        '+OK no longer listening for events',
      );
      c.send('noevents');
      assert.equal(
        (await c.nextOfType('command/reply')).headers.get('Reply-Text'),
        '-ERR not listening for events',
      );
      c.close();
    });

    it('sends HEARTBEAT with the headers fslb reads', async () => {
      await client.send('event plain HEARTBEAT');
      const hb = await client.nextEvent('HEARTBEAT', () => true, target.heartbeatMs * 3 + 2000);
      for (const name of [
        'Core-UUID',
        'FreeSWITCH-Hostname',
        'FreeSWITCH-Switchname',
        'FreeSWITCH-IPv4',
        'Event-Date-Timestamp',
        'Up-Time',
        'Uptime-msec',
        'Session-Count',
        'Max-Sessions',
        'Session-Per-Sec',
        'Session-Peak-Max',
        'Idle-CPU',
      ]) {
        assert.ok(hb.getHeader(name) !== null, `HEARTBEAT carries ${name}`);
      }
      assert.match(hb.getHeader('Session-Count') ?? '', /^\d+$/);
      assert.match(hb.getHeader('Idle-CPU') ?? '', /^\d+\.\d{6}$/);
      assert.match(hb.getHeader('Event-Date-Timestamp') ?? '', /^\d{16}$/);
    });

    it('answers status, show ... count, fsctl checks and sofia status in FreeSWITCH words', async () => {
      const status = await client.api('status');
      assert.match(status, /^UP \d+ years?, \d+ days?, /);
      assert.match(status, /\nFreeSWITCH \(Version .+\) is ready\n/);
      assert.match(status, /\n\d+ session\(s\) - peak \d+, last 5min \d+ \n/);
      assert.match(status, /\n\d+ session\(s\) max\n/);
      assert.match(await client.api('show calls count'), /^\n\d+ total\.\n$/);
      assert.match(await client.api('show channels count'), /^\n\d+ total\.\n$/);
      const json = JSON.parse(await client.api('show channels count as json')) as { row_count: unknown };
      assert.equal(typeof json.row_count, 'number');
      assert.equal(await client.api('fsctl pause_check'), 'false');
      assert.equal(await client.api('fsctl pause_check inbound'), 'false');
      assert.equal(await client.api('fsctl ready_check'), 'true');
      assert.equal(await client.api('fsctl shutdown_check'), 'false');
      assert.match(await client.api(`sofia status profile ${target.profile}`), /\nName +\t/);
      assert.equal(await client.api('sofia status profile no-such-profile'), 'Invalid Profile!\n');
      assert.equal(
        await client.api('fslb_no_such_command'),
        '-ERR fslb_no_such_command Command not found!\n',
      );
    });

    it('runs bgapi: +OK Job-UUID, then BACKGROUND_JOB with the result', async () => {
      const job = await client.bgapi('fsctl ready_check');
      assert.match(job.getHeader('Job-UUID') ?? '', /^[0-9a-f-]{36}$/);
      assert.equal(job.getBody(), 'true');
    });

    it('takes a call: CHANNEL_CREATE with its Call-ID, counted until BYE, then CHANNEL_DESTROY', async () => {
      await client.send('event plain CHANNEL_CREATE CHANNEL_DESTROY');
      const before = Number((/(\d+) total/.exec(await client.api('show channels count')) ?? [])[1]);
      const call = uac.invite(sip());
      const created = client.nextEvent(
        'CHANNEL_CREATE',
        (e) => e.getHeader('variable_sip_call_id') === call.callId,
        8000,
      );
      const ok = await call.final();
      assert.equal(ok.status, 200);
      assert.ok(ok.toTag);
      const uuid = (await created).getHeader('Unique-ID');
      assert.equal((await created).getHeader('Call-Direction'), 'inbound');
      await waitFor('the call counted', async () =>
        (await client.api('show channels count')).includes(`${before + 1} total`),
      );
      const destroyed = client.nextEvent('CHANNEL_DESTROY', (e) => e.getHeader('Unique-ID') === uuid, 8000);
      assert.equal((await call.bye()).status, 200);
      await destroyed;
      await waitFor('the call gone', async () =>
        (await client.api('show channels count')).includes(`${before} total`),
      );
    });

    it('keeps the limits header as a channel variable, lists the channel, and expands it with eval uuid:', async () => {
      await client.send('event plain CHANNEL_CREATE CHANNEL_DESTROY');
      const call = uac.invite(sip(), { headers: ['X-Fslb-Limits: tenant:acme trunk:t1'] });
      const created = client.nextEvent(
        'CHANNEL_CREATE',
        (e) => e.getHeader('variable_sip_call_id') === call.callId,
        8000,
      );
      assert.equal((await call.final()).status, 200);
      const event = await created;
      assert.equal(event.getHeader('variable_sip_h_X-Fslb-Limits'), 'tenant:acme trunk:t1');
      const uuid = event.getHeader('Unique-ID') ?? '';
      // The core database that `show channels` reads is written a moment after the event.
      const rows = await waitFor('the channel listed', async () => {
        const listed = JSON.parse(await client.api('show channels as json')) as {
          row_count: number;
          rows?: { uuid: string; direction: string }[];
        };
        return listed.rows?.find((row) => row.uuid === uuid);
      });
      assert.equal(rows.direction, 'inbound');
      const facts = await client.api(
        `eval uuid:${uuid} \${variable_sip_call_id}|\${variable_sip_from_tag}|\${variable_sip_h_X-Fslb-Limits}`,
      );
      assert.equal(
        facts.trim(),
        `${call.callId}|${event.getHeader('variable_sip_from_tag') ?? ''}|tenant:acme trunk:t1`,
      );
      const destroyed = client.nextEvent('CHANNEL_DESTROY', (e) => e.getHeader('Unique-ID') === uuid, 8000);
      assert.equal((await call.bye()).status, 200);
      await destroyed;
      await waitFor('the channel no longer listed', async () => {
        const listed = JSON.parse(await client.api('show channels as json')) as { rows?: { uuid: string }[] };
        return !(listed.rows ?? []).some((row) => row.uuid === uuid);
      });
    });

    it('answers OPTIONS with 200', async () => {
      assert.equal((await uac.options(sip())).status, 200);
    });

    it('answers 503 Maximum Calls In Progress with Retry-After at the session limit', async () => {
      // A real node tears a hung-up channel down a moment after its BYE: start from none.
      await waitFor(
        'no channel left from earlier tests',
        async () => (await client.api('show channels count')).trim() === '0 total.',
      );
      // Sofia counts the new call's own session against the limit: 2 lets one call in.
      assert.equal(await client.api('fsctl max_sessions 2'), '+OK max sessions: 2\n');
      try {
        const first = uac.invite(sip());
        assert.equal((await first.final()).status, 200);
        const second = await uac.invite(sip()).final();
        assert.equal(second.status, 503);
        assert.equal(second.reason, 'Maximum Calls In Progress');
        assert.equal(second.header('Retry-After'), '300');
        await first.bye();
      } finally {
        await client.api('fsctl max_sessions 100');
      }
    });

    it('answers 503 while paused, and reports the pause', async () => {
      assert.equal(await client.api('fsctl pause'), '+OK\n');
      try {
        assert.equal(await client.api('fsctl pause_check'), 'true');
        assert.equal(await client.api('fsctl ready_check'), 'false');
        const r = await uac.invite(sip()).final();
        assert.equal(r.status, 503);
      } finally {
        assert.equal(await client.api('fsctl resume'), '+OK\n');
      }
      assert.equal(await client.api('fsctl pause_check'), 'false');
    });

    it('says +OK bye to exit, then the disconnect notice, and closes', async () => {
      const c = await RawEsl.authed(target.eslPort, target.password);
      c.send('exit');
      assert.equal((await c.next()).headers.get('Reply-Text'), '+OK bye');
      assert.equal((await c.next()).headers.get('Content-Type'), 'text/disconnect-notice');
      await within('close', 5000, c.closed);
    });
  });
}
