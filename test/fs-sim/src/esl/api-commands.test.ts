import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { SwitchCore } from '../core/switch-core.js';
import { FsEvent } from '../event/fs-event.js';
import { executeApi, type ApiHost, type ShutdownMode } from './api-commands.js';

function host(): { api: ApiHost; hungUp: string[]; killed: string[]; shutdowns: [ShutdownMode, boolean][] } {
  const core = new SwitchCore({
    hostname: 'fs-test',
    ipv4: '127.0.0.1',
    maxSessions: 10,
    sessionsPerSecond: 30,
    idleCpu: 90,
    profile: 'external',
  });
  const hungUp: string[] = [];
  const killed: string[] = [];
  const shutdowns: [ShutdownMode, boolean][] = [];
  return {
    hungUp,
    killed,
    shutdowns,
    api: {
      core: () => core,
      profileUrl: () => 'sip:mod_sofia@127.0.0.1:5080',
      profileCounters: () => ({ callsIn: 3, failedCallsIn: 1 }),
      hangupAll: (cause) => {
        hungUp.push(cause);
        return 2;
      },
      kill: (uuid) => {
        killed.push(uuid);
        return uuid === 'known';
      },
      shutdown: (mode, restart) => {
        shutdowns.push([mode, restart]);
        return Promise.resolve();
      },
      channels: () => [
        {
          uuid: 'u-1',
          direction: 'inbound',
          created_epoch: '1700000000',
          name: 'sofia/internal/alice@example.com',
          state: 'CS_EXECUTE',
          callstate: 'ACTIVE',
          dest: '1000',
          call_uuid: 'u-1',
        },
      ],
      channelData: (uuid) =>
        uuid === 'u-1'
          ? new FsEvent('CHANNEL_DATA')
              .addHeader('Unique-ID', 'u-1')
              .addHeader('variable_sip_call_id', 'abc@host')
              .addHeader('variable_sip_h_X-Fslb-Limits', 'tenant:acme')
          : undefined,
    },
  };
}

describe('executeApi', () => {
  it('returns undefined for commands it does not know (the caller words the error)', () => {
    assert.equal(executeApi(host().api, 'originate', 'sofia/x &park'), undefined);
  });

  it('answers uptime in the unit asked, and refuses an unknown unit with a usage line', () => {
    const { api } = host();
    assert.match(executeApi(api, 'uptime', undefined) as string, /^\d+\n$/);
    assert.match(executeApi(api, 'uptime', 'us') as string, /^\d+\n$/);
    assert.match(executeApi(api, 'uptime', 'fortnights') as string, /^-USAGE: /);
  });

  it('answers version in full and short forms, hostname without a line end', () => {
    const { api } = host();
    assert.match(
      executeApi(api, 'version', undefined) as string,
      /^FreeSWITCH Version 1\.10\.12-release~64bit \(.+\)\n$/,
    );
    assert.equal(executeApi(api, 'version', 'short'), '1.10.12\n');
    assert.equal(executeApi(api, 'hostname', undefined), 'fs-test');
  });

  it('hangs up through hupall and uuid_kill', () => {
    const h = host();
    assert.equal(
      executeApi(h.api, 'hupall', undefined),
      '+OK hangup all channels with cause MANAGER_REQUEST\n',
    );
    assert.deepEqual(h.hungUp, ['MANAGER_REQUEST']);
    assert.equal(executeApi(h.api, 'uuid_kill', 'known'), '+OK\n');
    assert.equal(executeApi(h.api, 'uuid_kill', 'unknown'), '-ERR No such channel!\n');
    assert.equal(executeApi(h.api, 'uuid_kill', undefined), '-USAGE: <uuid> [cause]\n');
  });

  it('parses fsctl shutdown words as FreeSWITCH does', async () => {
    const h = host();
    for (const arg of [
      'shutdown',
      'shutdown elegant',
      'shutdown asap restart',
      'shutdown now',
      'shutdown cancel elegant',
    ]) {
      assert.equal(await executeApi(h.api, 'fsctl', arg), '+OK\n');
    }
    assert.deepEqual(h.shutdowns, [
      ['plain', false],
      ['elegant', false],
      ['asap', true],
      ['now', false],
      ['cancel', false],
    ]);
  });

  it('reports the profile counters in sofia status profile', () => {
    const text = executeApi(host().api, 'sofia', 'status profile external') as string;
    assert.match(text, /\nCALLS-IN {9}\t3\nFAILED-CALLS-IN {2}\t1\n/);
    assert.equal(
      executeApi(host().api, 'sofia', 'profile external restart'),
      `-ERR fs-sim models only 'sofia status' and 'sofia status profile <name>'\n`,
    );
  });

  it("lists channels as json, and expands a channel's variables with eval uuid:", () => {
    const listed = executeApi(host().api, 'show', 'channels as json');
    assert.equal(typeof listed, 'string');
    const rows = JSON.parse(listed as string) as {
      row_count: number;
      rows: { uuid: string; direction: string }[];
    };
    assert.deepEqual([rows.row_count, rows.rows[0]?.uuid, rows.rows[0]?.direction], [1, 'u-1', 'inbound']);
    assert.equal(
      executeApi(
        host().api,
        'eval',
        'uuid:u-1 ${variable_sip_call_id}|${variable_sip_h_X-Fslb-Limits}|${nope}',
      ),
      'abc@host|tenant:acme|',
    );
    assert.equal(executeApi(host().api, 'eval', 'uuid:gone ${variable_sip_call_id}!'), '!');
    assert.equal(executeApi(host().api, 'eval', 'plain text'), 'plain text');
  });

  it('answers show counts in csv, json and xml, and refuses an unknown format', () => {
    const { api } = host();
    api.core().setSessions(2);
    assert.equal(executeApi(api, 'show', 'calls count'), '\n2 total.\n');
    assert.equal(executeApi(api, 'show', 'calls count as json'), '{"row_count":2,"rows":[]}');
    assert.equal(executeApi(api, 'show', 'channels count as xml'), '<result row_count="2"/>\n');
    assert.equal(executeApi(api, 'show', 'channels count as yaml'), '-ERR Cannot find format yaml\n');
  });
});
