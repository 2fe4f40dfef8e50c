// fslb on one machine, in one command (`npm run demo`): a private Redis, three simulated
// FreeSWITCH nodes, two monitors and the live `fslb watch` screen; with a drachtio-server binary
// (FSLB_DRACHTIO_BIN or `drachtio` on PATH), two drachtio-server + fslb-proxy pairs, and without
// one two fslb-proxies on fslb's test double of drachtio-server; a steady call load goes through
// them. Ctrl-C stops everything it started. Loopback only.
//
// Environment: REDIS_URL (use that Redis instead of a private one; keys go under fslb-demo),
// FSLB_DRACHTIO_BIN, FSLB_DEMO_CPS (offered calls per second, default 20), FSLB_DEMO_HOLD_MS
// (call length, default 8000), FSLB_DEMO_NO_DRACHTIO=1 (the test double even when a binary is found).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { runCli } from '@fslb/cli';
import { FsCluster, SipUac } from '@fslb/fs-sim';
import { DrachtioDouble } from '../test/drachtio-double/index.js';
import { freeTcpPort, freeUdpPort } from '../test/support/net.js';

const root = new URL('..', import.meta.url).pathname;
const env = process.env;
const dir = mkdtempSync(join(tmpdir(), 'fslb-demo-'));
const children: { name: string; child: ChildProcess }[] = [];
const stop = new AbortController();
const say = (line: string): void => void process.stderr.write(`demo: ${line}\n`);

/** Starts a child in its own process group, so that Ctrl-C reaches the demo, which stops it. */
function start(
  name: string,
  cmd: string,
  args: string[],
  extraEnv: Record<string, string> = {},
): ChildProcess {
  const log = createWriteStream(join(dir, `${name}.log`));
  const child = spawn(cmd, args, {
    cwd: root,
    env: { ...env, ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  children.push({ name, child });
  child.once('exit', (code, signal) => {
    if (!stop.signal.aborted)
      say(`${name} exited (${signal ?? `status ${String(code)}`}); see ${dir}/${name}.log`);
  });
  return child;
}

/** A TypeScript entry point of this repository, run from source as the tests do. */
function startMain(
  name: string,
  main: string,
  args: string[],
  extraEnv: Record<string, string>,
): ChildProcess {
  return start(
    name,
    process.execPath,
    ['--conditions=@fslb/source', '--import', 'tsx', main, ...args],
    extraEnv,
  );
}

async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (stop.signal.aborted) throw new Error('stopped');
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; logs in ${dir}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function drachtioBin(): string | undefined {
  if (env.FSLB_DEMO_NO_DRACHTIO === '1') return undefined;
  if (env.FSLB_DRACHTIO_BIN) return env.FSLB_DRACHTIO_BIN;
  return spawnSync('drachtio', ['--version'], { stdio: 'ignore' }).error === undefined
    ? 'drachtio'
    : undefined;
}

/** Stops every child: SIGTERM to its group, SIGKILL after 5 s; resolves when all have exited. */
async function stopAll(): Promise<void> {
  await Promise.all(
    children.reverse().map(async ({ child }) => {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      const exited = once(child, 'exit');
      const signal = (sig: NodeJS.Signals): void => {
        try {
          process.kill(-(child.pid ?? 0), sig);
        } catch {
          // already gone
        }
      };
      signal('SIGTERM');
      const t = setTimeout(() => signal('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }),
  );
}

/** A SIP front end for one fslb-proxy: where it connects, and a way to send it a call. */
interface Front {
  adminPort: number;
  /** Where callers send SIP, for the log line. */
  sip: string;
  /** Sends one INVITE through it; resolves with the caller's final status. */
  call: () => Promise<number>;
  close: () => Promise<void> | void;
}

/** A real drachtio-server on free loopback ports; calls come from a SIP user agent. */
async function realDrachtio(bin: string, i: number, secret: string): Promise<Front> {
  const sipPort = await freeUdpPort();
  const adminPort = await freeTcpPort();
  const conf = join(dir, `drachtio-${i}.conf.xml`);
  writeFileSync(
    conf,
    `<drachtio>\n  <admin port="${adminPort}" secret="${secret}">127.0.0.1</admin>\n` +
      `  <sip><contacts></contacts></sip>\n  <cdrs>false</cdrs>\n` +
      `  <logging><console/><loglevel>notice</loglevel><sofia-loglevel>1</sofia-loglevel></logging>\n</drachtio>\n`,
  );
  start(`drachtio-${i}`, bin, ['-f', conf, '--contact', `sip:127.0.0.1:${sipPort};transport=udp`]);
  const uac = await SipUac.start();
  return {
    adminPort,
    sip: `127.0.0.1:${sipPort}`,
    call: async () => (await uac.invite({ host: '127.0.0.1', port: sipPort }).final()).status,
    close: () => uac.close(),
  };
}

/**
 * fslb's test double of drachtio-server (test/drachtio-double), in this process: fslb-proxy
 * connects to it as to drachtio-server, and it forwards each call over UDP to the node the proxy
 * chose, playing the caller itself. It binds loopback only.
 */
async function standIn(secret: string): Promise<Front> {
  const dx = await DrachtioDouble.start({ secret });
  return {
    adminPort: dx.port,
    sip: `${dx.forwarder.address}:${dx.forwarder.port}`,
    call: async () => {
      const req = dx.inject({ method: 'INVITE', sdp: true });
      const status = (await req.final()).status;
      // Done with it once the call has ended (the node hangs up), or at once if none was set up.
      if (status >= 200 && status < 300) {
        req.connected().then(
          (call) => (call.state === 'ended' ? dx.forget(req) : call.once('ended', () => dx.forget(req))),
          () => dx.forget(req),
        );
      } else dx.forget(req);
      return status;
    },
    close: () => dx.close(),
  };
}

async function main(): Promise<number> {
  const cleanups: (() => Promise<void> | void)[] = [];
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => stop.abort());
  try {
    say(`logs of every process in ${dir}`);
    // 1. Redis: a private one unless REDIS_URL names one.
    let redisUrl = env.REDIS_URL ?? '';
    const prefix = redisUrl === '' ? 'fslb' : 'fslb-demo';
    if (redisUrl === '') {
      const port = await freeTcpPort();
      start('redis', 'redis-server', [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
      ]);
      redisUrl = `redis://127.0.0.1:${port}`;
      const probe = new Redis(redisUrl, { lazyConnect: true, retryStrategy: () => null });
      probe.on('error', () => undefined);
      await until('redis-server', async () => {
        if (probe.status !== 'ready') await probe.connect();
        await probe.ping();
        return true;
      });
      probe.disconnect();
    }
    say(`redis at ${redisUrl}, keys under ${prefix}:`);

    // 2. Three simulated FreeSWITCH nodes (in this process); each call lasts FSLB_DEMO_HOLD_MS.
    const holdMs = Number(env.FSLB_DEMO_HOLD_MS ?? 8000);
    const sims = await FsCluster.start({ count: 3, heartbeatMs: 1000, maxSessions: 100, holdMs });
    cleanups.push(() => sims.close());
    say(`3 simulated FreeSWITCH nodes: ESL ${sims.nodes.map((n) => n.eslPort).join(', ')}`);

    // 3. The configuration every process reads.
    const config = join(dir, 'fslb.yaml');
    const secret = 'demo-secret';
    writeFileSync(
      config,
      JSON.stringify(
        {
          redis: { url: redisUrl },
          prefix,
          nodes: sims.nodes.map((n, i) => ({
            id: `fs${i + 1}`,
            sip: `127.0.0.1:${n.sipPort}`,
            esl: { host: '127.0.0.1', port: n.eslPort, passwordEnv: 'FSLB_DEMO_ESL_PASSWORD' },
          })),
          monitor: { probeIntervalMs: 1000, leaseTtlMs: 5000, http: { host: '127.0.0.1' } },
          proxy: {
            drachtio: { host: '127.0.0.1', secretEnv: 'FSLB_DEMO_DRACHTIO_SECRET' },
            acl: ['127.0.0.0/8'],
            rateLimit: { perSourcePerSec: 1000, burst: 1000 },
            http: { host: '127.0.0.1' },
          },
          log: { level: 'info' },
        },
        null,
        2,
      ),
    );
    const secrets = {
      FSLB_DEMO_ESL_PASSWORD: 'ClueCon',
      FSLB_DEMO_DRACHTIO_SECRET: secret,
      FSLB_CONFIG: config,
    };

    // 4. Two monitors.
    for (const i of [1, 2]) {
      startMain(`monitor-${i}`, 'packages/monitor/src/main.ts', [], {
        ...secrets,
        FSLB_MONITOR_ID: `demo-monitor-${i}`,
        FSLB_MONITOR_HTTP_PORT: String(await freeTcpPort()),
      });
    }
    const redis = new Redis(redisUrl);
    redis.on('error', () => undefined);
    cleanups.push(() => redis.disconnect());
    await until('every node up', async () => {
      const states = await Promise.all([1, 2, 3].map((i) => redis.hget(`${prefix}:node:fs${i}`, 'state')));
      return states.every((s) => s === 'up');
    });
    say('monitors started; every node is up');

    // 5. Two SIP front ends, each with its fslb-proxy, and a steady call load through them: real
    // drachtio-servers when a binary is found, otherwise fslb's test double of drachtio-server.
    const bin = drachtioBin();
    const cps = Number(env.FSLB_DEMO_CPS ?? 20);
    const fronts: Front[] = [];
    for (const i of [1, 2]) {
      const front = bin === undefined ? await standIn(secret) : await realDrachtio(bin, i, secret);
      cleanups.unshift(() => front.close());
      fronts.push(front);
      startMain(`proxy-${i}`, 'packages/proxy/src/main.ts', [], {
        ...secrets,
        FSLB_PROXY_ID: `demo-proxy-${i}`,
        FSLB_DRACHTIO_PORT: String(front.adminPort),
        FSLB_PROXY_HTTP_PORT: String(await freeTcpPort()),
      });
    }
    await until('both proxies connected to their SIP front end', async () => {
      const ids = await redis.zrange(`${prefix}:proxies`, 0, -1);
      if (ids.length < 2) return false;
      const docs = await redis.mget(ids.map((id) => `${prefix}:proxy:${id}`));
      return (
        docs.filter((d) => d !== null && (JSON.parse(d) as { drachtio?: boolean }).drachtio === true)
          .length === 2
      );
    });
    let sent = 0;
    const answers = new Map<number, number>();
    const load = setInterval(() => {
      const front = fronts[sent++ % fronts.length];
      front?.call().then(
        (status) => answers.set(status, (answers.get(status) ?? 0) + 1),
        () => answers.set(0, (answers.get(0) ?? 0) + 1),
      );
    }, 1000 / cps);
    cleanups.unshift(() => {
      clearInterval(load);
      say(
        `calls sent: ${sent}; final answers: ${[...answers].map(([s, n]) => `${s === 0 ? 'none' : s} x${n}`).join(', ')}`,
      );
    });
    if (bin === undefined) {
      say(
        `${env.FSLB_DEMO_NO_DRACHTIO === '1' ? 'FSLB_DEMO_NO_DRACHTIO=1' : 'no drachtio-server found'}: calls go through fslb's test double of drachtio-server (a stand-in for tests and this demo, loopback only, never for real traffic)`,
      );
      say(
        'to run real drachtio-servers instead: FSLB_DRACHTIO_BIN=/path/to/drachtio npm run demo (build it from https://github.com/drachtio/drachtio-server)',
      );
    }
    say(
      `2 ${bin === undefined ? 'test-double' : 'drachtio-server'} + fslb-proxy pairs (SIP ${fronts.map((f) => f.sip).join(', ')}); ${cps} calls/s of ${holdMs / 1000} s each`,
    );
    say(`in another terminal: npx fslb status --config ${config}   (or drain fs1 --wait, undrain fs1)`);

    // 6. The live screen, until Ctrl-C.
    say('fslb watch follows; Ctrl-C stops everything');
    return await runCli(['watch', '--interval', '1s', '--redis', redisUrl, '--prefix', prefix], {
      stdout: process.stdout,
      stderr: process.stderr,
      env,
      signal: stop.signal,
    });
  } finally {
    for (const c of cleanups) await c();
    await stopAll();
    say('stopped everything it started');
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  async (err: unknown) => {
    say(err instanceof Error ? err.message : String(err));
    await stopAll();
    process.exitCode = stop.signal.aborted ? 0 : 1;
  },
);
