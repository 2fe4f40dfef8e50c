import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

import { SipUac } from '@fslb/fs-sim';

import { connectModesl } from '../fs-sim/test-support/modesl-client.js';
import { freeswitchTarget } from './fs-target.js';
import { listening } from '../support/net.js';

const FAKE = fileURLToPath(new URL('./fake-freeswitch.sh', import.meta.url));

describe('the real-FreeSWITCH runner of the contract suite', () => {
  it('starts a binary with the test configuration on free ports, waits for it, and stops it', async () => {
    const target = await freeswitchTarget(FAKE);
    try {
      const client = await connectModesl(target.eslPort, target.password);
      assert.match(await client.api(`sofia status profile ${target.profile}`), /\nName +\texternal\n/);
      client.close();
      const uac = await SipUac.start();
      assert.equal((await uac.options({ host: target.host, port: target.sipPort })).status, 200);
      await uac.close();
    } finally {
      await target.stop();
    }
    assert.equal(await listening(target.eslPort), false);
  });

  it('fails with what the binary printed when it does not come up', async () => {
    await assert.rejects(freeswitchTarget('/nonexistent/freeswitch'), /FreeSWITCH did not come up/);
  });
});
