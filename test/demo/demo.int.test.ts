import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import { drachtioBin } from '../support/drachtio-server.js';
import { childPids } from '../support/proc-stat.js';
import { fromSource } from '../support/source-process.js';
import { waitFor } from '../support/wait.js';

/**
 * `npm run demo` (scripts/demo.ts, run here without the npm wrapper so that the test owns the
 * process it signals): it starts a cluster, shows it on the watch screen, and on SIGINT stops
 * every process it started.
 */
const root = new URL('../..', import.meta.url).pathname;

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
function descendants(pid: number): { pid: number; id: string; cmd: string }[] {
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

interface Demo {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  lastFrame: () => string;
}

function startDemo(t: TestContext, env: Record<string, string>): Demo {
  const child = spawn(process.execPath, fromSource('scripts/demo.ts'), {
    cwd: root,
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
  return {
    child,
    out: () => out,
    err: () => err,
    lastFrame: () => out.trimEnd().split('\n\n').at(-1) ?? '',
  };
}

async function interruptAndCheck(d: Demo): Promise<void> {
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

describe('npm run demo', () => {
  it('without drachtio-server: shows three nodes up under two monitors, says how to get drachtio, stops on SIGINT', async (t) => {
    const d = startDemo(t, { FSLB_DEMO_NO_DRACHTIO: '1' });
    // The two monitors share the nodes out within a few claim rounds.
    const frame = await waitFor(
      'three nodes taking calls on the screen, owned by both monitors',
      () => {
        const f = d.lastFrame();
        const both = f.includes('demo-monitor-1') && f.includes('demo-monitor-2');
        return /3 nodes · 3 taking calls/.test(f) && both ? f : undefined;
      },
      { timeoutMs: 30_000 },
    );
    for (const id of ['fs1', 'fs2', 'fs3']) assert.match(frame, new RegExp(`^${id}\\s+up\\s+0/\\d+`, 'm'));
    assert.match(d.err(), /no drachtio-server found .*\n.*build drachtio-server/);
    await interruptAndCheck(d);
  });

  it('with drachtio-server: two proxy pairs spread a steady load over every node', async (t) => {
    const bin = drachtioBin();
    if (bin === undefined) {
      const reason = 'no drachtio-server binary (FSLB_DRACHTIO_BIN or drachtio on PATH)';
      process.stdout.write(`# skipped: ${reason}\n`);
      t.skip(reason);
      return;
    }
    const d = startDemo(t, { FSLB_DRACHTIO_BIN: bin, FSLB_DEMO_CPS: '30', FSLB_DEMO_HOLD_MS: '20000' });
    await waitFor(
      'calls on every node',
      () => {
        const counts = [...d.lastFrame().matchAll(/^fs\d\s+up\s+(\d+)\//gm)].map((m) => Number(m[1]));
        return counts.length === 3 && counts.every((n) => n >= 10);
      },
      { timeoutMs: 45_000 },
    ).catch((err: unknown) => {
      // What the demo showed and said, so that a failure explains itself.
      console.log(`last frame:\n${d.lastFrame()}\n--- demo stderr (tail):\n${d.err().slice(-3000)}`);
      throw err;
    });
    const counts = [...d.lastFrame().matchAll(/^fs\d\s+up\s+(\d+)\//gm)].map((m) => Number(m[1]));
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
