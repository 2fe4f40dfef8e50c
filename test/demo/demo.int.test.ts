import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { descendants, interruptAndCheck, startDemo } from '../support/demo.js';
import { drachtioBin } from '../support/drachtio-server.js';
import { waitFor } from '../support/wait.js';

/**
 * `npm run demo` with real drachtio-servers: it starts a cluster, carries calls through two
 * drachtio-server + fslb-proxy pairs, and on SIGINT stops every process it started. Without a
 * drachtio-server (its test double carries the calls) it is tested on a fresh copy of the
 * repository: test/quickstart.
 */
const root = new URL('../..', import.meta.url).pathname;

describe('npm run demo', () => {
  it('with drachtio-server: two proxy pairs spread a steady load over every node', async (t) => {
    const bin = drachtioBin();
    if (bin === undefined) {
      const reason = 'no drachtio-server binary (FSLB_DRACHTIO_BIN or drachtio on PATH)';
      process.stdout.write(`# skipped: ${reason}\n`);
      t.skip(reason);
      return;
    }
    const d = startDemo(t, root, { FSLB_DRACHTIO_BIN: bin, FSLB_DEMO_CPS: '30', FSLB_DEMO_HOLD_MS: '20000' });
    await waitFor(
      'calls on every node',
      () => {
        const counts = [...d.sessions().values()];
        return counts.length === 3 && counts.every((n) => n >= 10);
      },
      { timeoutMs: 45_000 },
    ).catch((err: unknown) => {
      // What the demo showed and said, so that a failure explains itself.
      console.log(`last frame:\n${d.lastFrame()}\n--- demo stderr (tail):\n${d.err().slice(-3000)}`);
      throw err;
    });
    const counts = [...d.sessions().values()];
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 6, `spread evenly: ${counts.join(', ')}`);
    assert.equal(
      descendants(d.child.pid ?? 0).filter((p) => p.cmd.includes('packages/proxy/src/main.ts')).length,
      2,
    );
    await interruptAndCheck(d);
    assert.match(d.err(), /calls sent: \d+; final answers: 200 x\d+$/m);
    assert.doesNotMatch(d.err(), /final answers: .*(503|none)/, 'every call answered 200');
  });
});
