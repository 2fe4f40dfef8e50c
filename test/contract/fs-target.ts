import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { FsNode } from '@fslb/fs-sim';

import { connectModesl } from '../fs-sim/test-support/modesl-client.js';
import { freeTcpPort } from '../support/net.js';

/**
 * Something that speaks FreeSWITCH's protocols: the simulator, or a real FreeSWITCH. The
 * contract tests reach it only through ESL and SIP, so the same tests run against both.
 */
export interface FsTarget {
  name: string;
  host: string;
  eslPort: number;
  password: string;
  sipPort: number;
  /** The sofia profile that takes calls. */
  profile: string;
  /** HEARTBEAT interval in milliseconds. */
  heartbeatMs: number;
  stop(): Promise<void>;
}

const PASSWORD = 'ContractTest';
const CONF_DIR = fileURLToPath(new URL('../freeswitch-conf/', import.meta.url));

/** The FreeSWITCH binary to test against, from FSLB_FREESWITCH_BIN, if any. */
export function freeswitchBin(): string | undefined {
  const bin = process.env.FSLB_FREESWITCH_BIN;
  return bin === undefined || bin === '' ? undefined : bin;
}

export async function simulatorTarget(): Promise<FsTarget> {
  const node = await FsNode.start({ password: PASSWORD, heartbeatMs: 1000, maxSessions: 100 });
  return {
    name: 'simulator',
    host: node.host,
    eslPort: node.eslPort,
    password: PASSWORD,
    sipPort: node.sipPort,
    profile: 'external',
    heartbeatMs: 1000,
    stop: () => node.close(),
  };
}

/**
 * Starts a real FreeSWITCH from `bin` with the minimal configuration in test/freeswitch-conf
 * (copied to a temporary directory with the ports picked for this run), waits until the Event
 * Socket answers and the sofia profile runs, and stops it with SIGTERM (then SIGKILL).
 * FSLB_FREESWITCH_MOD_DIR, if set, is passed as -mod.
 */
export async function freeswitchTarget(bin: string): Promise<FsTarget> {
  const dir = await mkdtemp(join(tmpdir(), 'fslb-freeswitch-'));
  const sub = (name: string): string => join(dir, name);
  for (const d of ['conf', 'log', 'db', 'run', 'temp', 'cache', 'storage', 'recordings', 'sounds']) {
    await mkdir(sub(d));
  }
  const eslPort = await freeTcpPort();
  const sipPort = await freeUdpAndTcpPort();
  const rtpStart = 20000 + Math.floor(Math.random() * 20000) * 2;
  await copyFile(join(CONF_DIR, 'freeswitch.xml'), join(sub('conf'), 'freeswitch.xml'));
  await writeFile(
    join(sub('conf'), 'vars.xml'),
    [
      '<include>',
      `  <X-PRE-PROCESS cmd="set" data="fslb_esl_port=${eslPort}"/>`,
      `  <X-PRE-PROCESS cmd="set" data="fslb_esl_password=${PASSWORD}"/>`,
      `  <X-PRE-PROCESS cmd="set" data="fslb_sip_port=${sipPort}"/>`,
      `  <X-PRE-PROCESS cmd="set" data="fslb_rtp_start=${rtpStart}"/>`,
      `  <X-PRE-PROCESS cmd="set" data="fslb_rtp_end=${rtpStart + 200}"/>`,
      '</include>',
      '',
    ].join('\n'),
  );
  const args = ['-nf', '-nc', '-nonat', '-nocal', '-cfgname', 'freeswitch.xml'];
  for (const d of ['conf', 'log', 'db', 'run', 'temp', 'cache', 'storage', 'recordings', 'sounds']) {
    args.push(`-${d}`, sub(d));
  }
  const modDir = process.env.FSLB_FREESWITCH_MOD_DIR;
  if (modDir) args.push('-mod', modDir);
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.on('error', (err) => (output += `\nspawn error: ${err.message}`));
  child.stdout.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  child.stderr.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  const stop = async (): Promise<void> => {
    await stopChild(child);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitUntilReady(eslPort, child);
  } catch (err) {
    await stop();
    throw new Error(`FreeSWITCH did not come up: ${String(err)}\n${output}`, { cause: err });
  }
  return {
    name: `FreeSWITCH (${bin})`,
    host: '127.0.0.1',
    eslPort,
    password: PASSWORD,
    sipPort,
    profile: 'external',
    heartbeatMs: 1000,
    stop,
  };
}

async function waitUntilReady(eslPort: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  let last = '';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
      throw new Error(`exited (code ${String(child.exitCode)}, signal ${String(child.signalCode)})`);
    }
    try {
      const client = await connectModesl(eslPort, PASSWORD);
      try {
        last = await client.api('sofia status profile external');
        if (!last.startsWith('Invalid Profile')) return;
      } finally {
        client.close();
      }
    } catch (err) {
      last = String(err);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`not ready within 60 s; last: ${last}`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/** A port free for both UDP and TCP right now (sofia binds both). */
async function freeUdpAndTcpPort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const udp = createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind({ port: 0, address: '127.0.0.1' }, resolve));
    const port = udp.address().port;
    const tcp = createServer();
    const ok = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen({ port, host: '127.0.0.1' }, () => resolve(true));
    });
    if (ok) await new Promise<void>((resolve) => tcp.close(() => resolve()));
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (ok) return port;
  }
  throw new Error('no port free for UDP and TCP');
}
