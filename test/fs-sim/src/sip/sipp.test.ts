import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { afterEach, describe, it, type TestContext } from 'node:test';

import { connectModesl } from '../../test-support/modesl-client.js';
import { waitFor } from '../../../support/wait.js';
import { FsNode } from '../fs-node.js';

const sippMissing = spawnSync('sipp', ['-v'], { stdio: 'ignore' }).error !== undefined;
const SKIP_REASON = 'sipp (Debian package sip-tester) is not on PATH; .ci/run installs it';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function skipWithoutSipp(t: TestContext): boolean {
  if (!sippMissing) return false;
  console.log(`skipping SIPp test: ${SKIP_REASON}`);
  t.skip(SKIP_REASON);
  return true;
}

/** A UDP port free right now (SIPp needs one given; it would take 5060 otherwise). */
async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind({ port: 0, address: '127.0.0.1' }, resolve));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** Runs SIPp's built-in uac scenario against the node; resolves with its exit code. */
async function sipp(node: FsNode, args: string[]): Promise<number> {
  const [local, media] = [await freeUdpPort(), await freeUdpPort()];
  const child = spawn(
    'sipp',
    [
      '-sn',
      'uac',
      '-i',
      '127.0.0.1',
      '-p',
      String(local),
      '-mp',
      String(media),
      '-nostdin',
      '-timeout',
      '20s',
      ...args,
      `127.0.0.1:${node.sipPort}`,
    ],
    { cwd: tmpdir(), stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 25_000);
  const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? -1)));
  clearTimeout(timer);
  if (code !== 0 && code !== 1) throw new Error(`sipp exited ${code}: ${stderr}`);
  return code;
}

describe('SIPp against the simulator', () => {
  it('places calls: each raises Session-Count and fires CHANNEL_CREATE; its BYE lowers the count', async (t) => {
    if (skipWithoutSipp(t)) return;
    const node = await FsNode.start({ heartbeatMs: 50 });
    cleanups.push(() => node.close());
    const client = await connectModesl(node.eslPort);
    cleanups.push(() => client.close());
    await client.send('event plain HEARTBEAT CHANNEL_CREATE CHANNEL_DESTROY');
    let peak = 0;
    node.on('callStarted', () => (peak = Math.max(peak, node.sessions)));
    const run = sipp(node, ['-m', '3', '-l', '3', '-r', '50', '-d', '400']);
    await client.nextEvent('HEARTBEAT', (e) => Number(e.getHeader('Session-Count')) >= 1, 5000);
    assert.equal(await run, 0, 'SIPp saw every call succeed');
    const creates = client.events.filter((e) => e.getHeader('Event-Name') === 'CHANNEL_CREATE');
    assert.equal(creates.length, 3);
    await waitFor(
      'three CHANNEL_DESTROY',
      () => client.events.filter((e) => e.getHeader('Event-Name') === 'CHANNEL_DESTROY').length === 3,
    );
    assert.equal(peak, 3);
    assert.equal(node.sessions, 0);
  });

  it('gets 503 once the cap is reached', async (t) => {
    if (skipWithoutSipp(t)) return;
    // Max-Sessions 2 takes one inbound call (the new call's own session counts).
    const node = await FsNode.start({ maxSessions: 2 });
    cleanups.push(() => node.close());
    const refused: string[] = [];
    node.on('inviteRefused', (reason) => refused.push(reason));
    const code = await sipp(node, ['-m', '2', '-l', '2', '-r', '100', '-d', '1000']);
    assert.equal(code, 1, 'SIPp counts the refused call as failed');
    assert.deepEqual(refused, ['max-sessions']);
    assert.equal(node.sessions, 0);
  });
});
