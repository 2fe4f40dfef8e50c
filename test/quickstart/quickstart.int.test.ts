import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { interruptAndCheck, startDemo } from '../support/demo.js';
import { freeTcpPort, listening } from '../support/net.js';
import { startRedis, testPrefix, type TestRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';

/**
 * The README's first steps, as a newcomer takes them: a fresh copy of the repository (the files
 * git tracks, and new ones not ignored; no dist/, no node_modules), `npm ci`, then the Quick
 * start's commands, with no `npm run build` and no drachtio-server. The commands are read from
 * the README, so that a change there fails here until the test follows. It runs with the others,
 * one file at a time: beside them its `npm ci` and demo starved timing-sensitive tests (a real-peer
 * flood test lost ordinary calls) and, at a lower CPU priority, were starved in turn (the demo's
 * probes timed out).
 */
const root = new URL('../..', import.meta.url).pathname;
const run = promisify(execFile);

/** The lines of each ```sh block under a README heading, comments and blank lines left out. */
function shBlocks(heading: string): string[][] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const start = readme.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `README has "## ${heading}"`);
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) =>
    (m[1] ?? '')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#')),
  );
}

const [newcomer, byHand] = shBlocks('Quick start');
/** The README's picture of what the demo prints: the first plain code block of the Quick start. */
const sample = (() => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const quick = readme.slice(readme.indexOf('\n## Quick start\n'));
  return (/\n```\n([\s\S]*?)```/.exec(quick)?.[1] ?? '').split('\n');
})();
let copy = '';

/** Runs a command in the copy; resolves with its status and output (a failure is not thrown). */
async function sh(cmd: string, args: string[], env: Record<string, string> = {}, timeout = 60_000) {
  try {
    const r = await run(cmd, args, { cwd: copy, env: { ...process.env, ...env }, timeout });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

before(async () => {
  copy = mkdtempSync(join(tmpdir(), 'fslb-fresh-'));
  const files = (
    await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root })
  ).stdout
    .split('\0')
    .filter((f) => f !== '' && existsSync(join(root, f)));
  for (const f of files) {
    mkdirSync(dirname(join(copy, f)), { recursive: true });
    copyFileSync(join(root, f), join(copy, f));
  }
  // The first command of the README, from the npm cache when it holds the packages already.
  assert.deepEqual(newcomer, ['npm ci', 'npm run demo']);
  const ci = await sh('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund'], {}, 180_000);
  assert.equal(ci.code, 0, ci.stderr);
  for (const pkg of ['shared', 'monitor', 'proxy', 'cli'])
    assert.ok(!existsSync(join(copy, 'packages', pkg, 'dist')), `packages/${pkg} is not built`);
});

after(() => {
  if (copy !== '') rmSync(copy, { recursive: true, force: true });
});

describe('a fresh copy of the repository, after npm ci', () => {
  it('npm run demo carries calls over every node within 30 s; fslb status, drain --wait and undrain work beside it', async (t) => {
    // No drachtio-server, as on a newcomer's machine (none on PATH): the test double carries the calls.
    const path = (process.env.PATH ?? '')
      .split(':')
      .filter((p) => p !== '' && !existsSync(join(p, 'drachtio')))
      .join(':');
    // Calls of 3 s rather than 8, so that `drain --wait` returns sooner.
    const d = startDemo(t, copy, {
      PATH: path,
      FSLB_DRACHTIO_BIN: '',
      FSLB_DEMO_NO_DRACHTIO: '',
      FSLB_DEMO_HOLD_MS: '3000',
    });
    const explain = (err: unknown): never => {
      console.log(`last frame:\n${d.lastFrame()}\n--- demo stderr (tail):\n${d.err().slice(-3000)}`);
      throw err;
    };
    await waitFor(
      'calls on every node',
      () => {
        const s = [...d.sessions().values()];
        return s.length === 3 && s.every((n) => n > 0);
      },
      { timeoutMs: 30_000 },
    ).catch(explain);
    assert.match(d.err(), /calls go through fslb's test double of drachtio-server \(.*loopback only/);
    assert.match(d.err(), /to run real drachtio-servers instead: FSLB_DRACHTIO_BIN=/);
    // What the README shows the newcomer: the demo's lines (ports and paths aside) and the screen.
    for (const line of sample.filter((l) => l.startsWith('demo: '))) {
      const shape = line
        .replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
        .replace(/\/tmp\/fslb-demo-\w+/g, '/\\S+')
        .replace(/\d+/g, '\\d+');
      assert.match(d.err(), new RegExp(`^${shape}$`, 'm'), `the README's line: ${line}`);
    }
    for (const header of sample.filter((l) => l.startsWith('NODE ')))
      assert.ok(d.lastFrame().includes(header), `the screen's header: ${header}`);

    // The commands the demo suggests for another terminal.
    const config = /npx fslb status --config (\S+)/.exec(d.err())?.[1];
    assert.ok(config, d.err());
    const status = await sh('npx', ['fslb', 'status', '--config', config]);
    assert.equal(status.code, 0, status.stderr);
    for (const id of ['fs1', 'fs2', 'fs3'])
      assert.match(status.stdout, new RegExp(`^${id}\\s+up\\s+\\d+/`, 'm'));

    const drain = await sh('npx', ['fslb', 'drain', 'fs1', '--wait', '--config', config]);
    assert.equal(drain.code, 0, drain.stderr);
    const drained = await sh('npx', ['fslb', 'status', '--config', config]);
    assert.match(drained.stdout, /^fs1\s+up\s+0\/\d+ .*\bdrain$/m, drained.stdout);

    const undrain = await sh('npx', ['fslb', 'undrain', 'fs1', '--config', config]);
    assert.equal(undrain.code, 0, undrain.stderr);
    await waitFor('fs1 taking calls again', () => (d.sessions().get('fs1') ?? 0) > 0, {
      timeoutMs: 15_000,
    }).catch(explain);

    await interruptAndCheck(d);
    assert.match(d.err(), /calls sent: \d+; final answers: 200 x\d+$/m);
    assert.doesNotMatch(d.err(), /final answers: .*(503|none)/, 'every call answered 200');
  });

  it('the by-hand commands work without npm run build: fs-sim, fslb-monitor, fslb status, redis-cli, the metrics', async (t) => {
    assert.deepEqual(byHand, [
      'npm run fs-sim -- --count 2 --esl-port 8021 --sip-port 5080 &',
      'npx fslb-monitor --config fslb.example.yaml &',
      'npx fslb status',
      'redis-cli HGETALL fslb:node:fs1',
      'curl -s localhost:9101/metrics | grep fslb_monitor_leases_held',
    ]);
    // The example's ports are fixed (ESL 8021-8022, SIP 5080-5081); its Redis and HTTP port are
    // this test's own, through the environment overrides the README documents.
    for (const port of [8021, 8022]) assert.ok(!(await listening(port)), `port ${port} is free`);
    const redis: TestRedis = await startRedis();
    t.after(() => redis.close());
    const prefix = testPrefix('quick');
    const httpPort = await freeTcpPort();
    const env = { REDIS_URL: redis.url, FSLB_PREFIX: prefix, FSLB_MONITOR_HTTP_PORT: String(httpPort) };

    const children: ChildProcess[] = [];
    t.after(async () => {
      for (const c of children) {
        if (c.exitCode !== null || c.signalCode !== null) continue;
        const exited = once(c, 'exit');
        c.kill('SIGTERM');
        await exited;
      }
    });
    const background = (cmd: string, args: string[]): ChildProcess => {
      const c = spawn(cmd, args, { cwd: copy, env: { ...process.env, ...env }, stdio: 'ignore' });
      children.push(c);
      return c;
    };
    // `npm run fs-sim -- ...` and `npx fslb-monitor ...`, each started as the process itself
    // (npm's script, and the bin npx would run), so that the test stops what it started.
    const pkg = JSON.parse(readFileSync(join(copy, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    assert.equal(pkg.scripts['fs-sim'], 'tsx test/fs-sim/src/main.ts');
    background(process.execPath, [
      '--import',
      'tsx',
      'test/fs-sim/src/main.ts',
      '--count',
      '2',
      '--esl-port',
      '8021',
      '--sip-port',
      '5080',
    ]);
    background(join(copy, 'node_modules/.bin/fslb-monitor'), ['--config', 'fslb.example.yaml']);

    const status = await waitFor(
      'fslb status showing both nodes up',
      async () => {
        const r = await sh('npx', ['fslb', 'status'], env);
        return r.code === 0 && /^fs1\s+up/m.test(r.stdout) && /^fs2\s+up/m.test(r.stdout) ? r : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    assert.match(status.stdout, /2 nodes · 2 taking calls/);

    const record = await sh('redis-cli', ['-u', redis.url, 'HGETALL', `${prefix}:node:fs1`]);
    assert.equal(record.code, 0, record.stderr);
    assert.match(record.stdout, /^state\nup$/m);

    const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    assert.match(metrics, /^fslb_monitor_leases_held(\{[^}]*\})? 2$/m);

    // fslb-proxy runs from source too: without a configuration it says what it needs.
    const proxy = await sh('npx', ['fslb-proxy'], { FSLB_CONFIG: '' });
    assert.equal(proxy.code, 2, proxy.stderr);
    assert.match(proxy.stderr, /fslb-proxy: invalid configuration:\n.*--config FILE or set FSLB_CONFIG/);
  });
});
