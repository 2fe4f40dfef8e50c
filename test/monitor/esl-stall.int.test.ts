import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { createLogger } from '@fslb/shared';
import { FsNode } from '@fslb/fs-sim';
import { EslConnection, EslErrorCode } from '@fslb/monitor';

const log = createLogger({ level: process.env.FSLB_TEST_LOG ?? 'silent', name: 'test' });

/** Holds this thread, as a long collection or a starved host does. */
function blockFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin
  }
}

/** An fs-sim node and an ESL connection to it, both ended with the test. */
async function connected(t: TestContext): Promise<{ node: FsNode; conn: EslConnection }> {
  const node = await FsNode.start();
  t.after(() => node.close());
  const conn = await EslConnection.open(
    { host: '127.0.0.1', port: node.eslPort, password: 'ClueCon' },
    { timeoutMs: 2000, log },
  );
  t.after(() => conn.close());
  return { node, conn };
}

describe('ESL command timeouts when the monitor itself stalls', () => {
  it('reads a reply that came in while its own event loop was held, instead of timing it out', async (t) => {
    const { node, conn } = await connected(t);
    let blocked = false;
    node.on('eslCommand', (line) => {
      // The node has written its reply by the check phase of this turn; the monitor's side then
      // holds the thread past the command's timeout before it can read it.
      if (line === 'api uptime') {
        setImmediate(() => {
          blocked = true;
          blockFor(600);
        });
      }
    });
    const reply = await conn.api('uptime', 200);
    assert.equal(blocked, true, 'the event loop was held');
    assert.match(reply, /^\d+\n?$/);
    assert.equal(conn.ended, false);
    // The connection still works.
    assert.match(await conn.api('uptime', 1000), /^\d+\n?$/);
  });

  it('still times out a node that does not answer at all', async (t) => {
    const { node, conn } = await connected(t);
    const died = new Promise<string>((resolve) => conn.once('died', (err) => resolve(err.code)));
    node.stall();
    await assert.rejects(conn.api('uptime', 200), { code: EslErrorCode.Timeout });
    assert.equal(await died, EslErrorCode.Timeout);
    assert.equal(conn.ended, true);
  });

  it('fails every other command pending when one times out, and when the connection is closed', async (t) => {
    const { node, conn } = await connected(t);
    node.stall();
    // A long timeout: only the first command's end (the connection's death) can settle it.
    const other = conn.api('uptime', 60_000);
    await assert.rejects(conn.api('uptime', 200), { code: EslErrorCode.Timeout });
    await assert.rejects(other, { code: EslErrorCode.Timeout });

    const second = await connected(t);
    second.node.stall();
    const pending = second.conn.api('uptime', 60_000);
    second.conn.close();
    await assert.rejects(pending, { code: EslErrorCode.Closed });
  });
});
