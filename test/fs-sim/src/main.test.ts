import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, it } from 'node:test';

import { RawEsl } from '../test-support/raw-esl.js';
import { within } from '../../support/wait.js';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

const children: ChildProcessWithoutNullStreams[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

function run(args: string[]): {
  child: ChildProcessWithoutNullStreams;
  lines: string[];
  exit: Promise<number | null>;
} {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { stdio: 'pipe' });
  children.push(child);
  const lines: string[] = [];
  let partial = '';
  child.stdout.on('data', (d: Buffer) => {
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
  });
  child.stderr.on('data', (d: Buffer) => lines.push(...d.toString().split('\n')));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, lines, exit };
}

async function lineCount(lines: string[], pattern: RegExp, n: number): Promise<string[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const found = lines.filter((l) => pattern.test(l));
    if (found.length >= n) return found;
    if (Date.now() > deadline)
      throw new Error(`expected ${n} lines like ${pattern}; got:\n${lines.join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('fs-sim command line', () => {
  it('prints one line per node when listening, and on SIGTERM shuts down with a goodbye and exits 0', async () => {
    const { child, lines, exit } = run([
      '--count',
      '2',
      '--esl-port',
      '0',
      '--sip-port',
      '0',
      '--heartbeat-ms',
      '100',
    ]);
    const listening = await lineCount(lines, /^fs-sim node \d\/2 listening: /, 2);
    const port = Number(/esl 127\.0\.0\.1:(\d+) /.exec(listening[0] ?? '')?.[1]);
    assert.ok(port > 0);
    assert.match(
      listening[1] ?? '',
      /sip udp\+tcp 127\.0\.0\.1:\d+ hostname fs-sim-\d+ core-uuid [0-9a-f-]{36}/,
    );
    const c = await RawEsl.authed(port);
    c.send('event plain SHUTDOWN');
    await c.next();
    child.kill('SIGTERM');
    const shutdown = await c.nextOfType('text/event-plain');
    assert.match(shutdown.body, /^Event-Name: SHUTDOWN\n/);
    assert.equal((await c.next()).headers.get('Content-Type'), 'text/disconnect-notice');
    assert.equal(await within('exit', 10_000, exit), 0);
  });

  it('exits 2 listing every bad argument', async () => {
    const { lines, exit } = run(['--count', 'x', '--hold-ms', 'soon']);
    assert.equal(await within('exit', 10_000, exit), 2);
    const text = lines.join('\n');
    assert.match(text, /--count: expected an integer/);
    assert.match(text, /--hold-ms: expected an integer/);
  });
});
