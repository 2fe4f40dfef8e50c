import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeTcpPort, listening } from './net.js';
import { waitFor } from './wait.js';

/**
 * A real drachtio-server for end-to-end tests, when one is installed: FSLB_DRACHTIO_BIN, else
 * `drachtio` on PATH. Loopback only; the test that starts it kills it (SIGTERM, then SIGKILL).
 */
export function drachtioBin(): string | undefined {
  const env = process.env.FSLB_DRACHTIO_BIN;
  if (env) return env;
  const r = spawnSync('drachtio', ['--version'], { stdio: 'ignore' });
  return r.error === undefined ? 'drachtio' : undefined;
}

/**
 * SIPp: FSLB_SIPP_BIN, else `sipp` on PATH. Debian's 3.6 times its calls with a coarse clock (the
 * kernel's tick, 4 ms here); SIPp 3.7 and later with a fine one, which the benchmarks' setup times
 * want.
 */
export function sippBin(): string | undefined {
  const bin = process.env.FSLB_SIPP_BIN || 'sipp';
  return spawnSync(bin, ['-v'], { stdio: 'ignore' }).error === undefined ? bin : undefined;
}

/**
 * The real peers an end-to-end test needs, or why it must skip (a reason it prints, then hands
 * to `describe`'s `skip`).
 */
export function realPeers(what: string): { bin: string; sipp: string; skip: false } | { skip: string } {
  const bin = drachtioBin();
  const sipp = sippBin();
  if (bin !== undefined && sipp !== undefined) return { bin, sipp, skip: false };
  const skip =
    bin === undefined
      ? 'no drachtio-server: set FSLB_DRACHTIO_BIN or put `drachtio` on PATH'
      : 'no SIPp: set FSLB_SIPP_BIN or put `sipp` (Debian package sip-tester) on PATH';
  console.log(`# ${what} skipped: ${skip}`);
  return { skip };
}

export interface RealDrachtio {
  readonly appPort: number;
  readonly sipPort: number;
  readonly secret: string;
  /** Its process id (tests stop and continue it to hold its SIP thread up). */
  readonly pid: number;
  /** What it printed, for failure messages. */
  output(): string;
  close(): Promise<void>;
}

export async function startDrachtioServer(
  bin: string,
  sipPort: number,
  secret = 'cymru',
): Promise<RealDrachtio> {
  const dir = mkdtempSync(join(tmpdir(), 'fslb-drachtio-'));
  const conf = join(dir, 'drachtio.conf.xml');
  const appPort = await freeTcpPort();
  // A minimal configuration: the command line sets the addresses, logs go to the console.
  writeFileSync(
    conf,
    `<drachtio>
  <admin port="${appPort}" secret="${secret}">127.0.0.1</admin>
  <sip><contacts></contacts></sip>
  <cdrs>false</cdrs>
  <logging><console/><sofia-loglevel>1</sofia-loglevel><loglevel>notice</loglevel></logging>
</drachtio>
`,
  );
  const child: ChildProcess = spawn(
    bin,
    [
      '-f',
      conf,
      '--contact',
      `sip:127.0.0.1:${sipPort};transport=udp`,
      '--address',
      '127.0.0.1',
      '--port',
      String(appPort),
      '--secret',
      secret,
      '--loglevel',
      'notice',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  const keep = (d: Buffer): void => {
    out = (out + d.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await once(child, 'exit');
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(`drachtio-server to listen on ${appPort}`, async () => {
      if (child.exitCode !== null) throw new Error(`drachtio-server exited ${child.exitCode}: ${out}`);
      return listening(appPort);
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { appPort, sipPort, secret, pid: child.pid ?? 0, output: () => out, close: stop };
}
