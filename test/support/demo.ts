/**
 * `npm run demo` under test: run without the npm wrapper (the command package.json names for it),
 * so that the test owns the process it signals, with every process the demo starts tracked and
 * killed by the test should the demo fail to stop them.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { childPids } from './proc-stat.js';

/** A process identity that survives pid reuse: pid and start time (field 22 of /proc/pid/stat). */
function identity(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' ? undefined : `${pid}:${fields[19]}`;
  } catch {
    return undefined;
  }
}

/** Every live descendant of `pid`, with its command line. */
export function descendants(pid: number): { pid: number; id: string; cmd: string }[] {
  const out: { pid: number; id: string; cmd: string }[] = [];
  for (const child of childPids(pid, () => true)) {
    const id = identity(child);
    if (id === undefined) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${child}/cmdline`, 'utf8').split('\0').join(' ').trim();
    } catch {
      continue;
    }
    out.push({ pid: child, id, cmd }, ...descendants(child));
  }
  return out;
}

export interface Demo {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  lastFrame: () => string;
  /** Sessions per node on the last screen, by node id (nodes shown `up`). */
  sessions: () => Map<string, number>;
}

/**
 * `npm run demo`'s own command (from package.json in `cwd`), run by this Node.js with `env` on
 * top of a private Redis and no configuration.
 */
export function startDemo(t: TestContext, cwd: string, env: Record<string, string>): Demo {
  const pkg = JSON.parse(readFileSync(join(cwd, 'package.json'), 'utf8')) as { scripts: { demo: string } };
  const [node, ...args] = pkg.scripts.demo.split(/\s+/);
  assert.equal(node, 'node', `npm run demo runs node: ${pkg.scripts.demo}`);
  const child = spawn(process.execPath, args, {
    cwd,
    env: { ...process.env, REDIS_URL: '', FSLB_CONFIG: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const seen = new Map<string, number>();
  const track = setInterval(() => {
    if (child.pid !== undefined) for (const d of descendants(child.pid)) seen.set(d.id, d.pid);
  }, 100);
  t.after(async () => {
    clearInterval(track);
    // A failed test must not leave the cluster running: kill whatever is still there.
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    for (const [id, pid] of seen) if (identity(pid) === id) process.kill(pid, 'SIGKILL');
  });
  const lastFrame = (): string => out.trimEnd().split('\n\n').at(-1) ?? '';
  return {
    child,
    out: () => out,
    err: () => err,
    lastFrame,
    sessions: () =>
      new Map([...lastFrame().matchAll(/^(fs\d)\s+up\s+(\d+)\//gm)].map((m) => [m[1] ?? '', Number(m[2])])),
  };
}

/** SIGINT: the demo exits 0 having stopped every process it started, its Redis included. */
export async function interruptAndCheck(d: Demo): Promise<void> {
  const pid = d.child.pid ?? 0;
  const before = descendants(pid);
  assert.ok(
    before.some((p) => p.cmd.includes('redis-server')),
    'its own redis-server',
  );
  assert.equal(
    before.filter((p) => p.cmd.includes('packages/monitor/src/main.ts')).length,
    2,
    'two monitors',
  );
  const exited = once(d.child, 'exit');
  d.child.kill('SIGINT');
  const [code] = (await exited) as [number | null];
  assert.equal(code, 0, d.err());
  assert.match(d.err(), /stopped everything it started/);
  const left = before.filter((p) => identity(p.pid) === p.id);
  assert.deepEqual(left, [], 'no process left behind');
  // Nothing of the demo's is listening any more: its temp dir holds only logs and configs.
  const dir = /logs of every process in (\S+)/.exec(d.err())?.[1] ?? '';
  assert.ok(readdirSync(dir).includes('monitor-1.log'));
}
