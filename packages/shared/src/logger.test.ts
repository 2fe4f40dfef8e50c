import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger } from './logger.js';
import { redactConfig, redactUrl } from './redact.js';

function capture(): { lines: () => Record<string, unknown>[]; raw: () => string; stream: Writable } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return {
    stream,
    raw: () => text,
    lines: () =>
      text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('logger', () => {
  it('writes JSON lines with child bindings', () => {
    const out = capture();
    const log = createLogger({ level: 'info', name: 'fslb-test' }, out.stream);
    log.child({ component: 'monitor', nodeId: 'fs1' }).info({ sessions: 3 }, 'hello');
    const line = out.lines()[0];
    assert.ok(line);
    assert.equal(line.name, 'fslb-test');
    assert.equal(line.component, 'monitor');
    assert.equal(line.nodeId, 'fs1');
    assert.equal(line.level, 'info');
    assert.equal(line.msg, 'hello');
  });

  it('censors every secret it is handed, wherever it sits', () => {
    const out = capture();
    const log = createLogger({ level: 'info' }, out.stream);
    const secrets = ['esl-pw-1', 'redis-pw-2', 'drachtio-3', 'url-pw-4', 'sentinel-5'];
    log.info(
      {
        password: secrets[0],
        config: {
          redis: {
            url: `redis://user:${secrets[3]}@h:6379`,
            password: secrets[1],
            sentinelPassword: secrets[4],
          },
          nodes: [{ id: 'fs1', esl: { host: 'h', password: secrets[0] } }],
          proxy: { drachtio: { secret: secrets[2] } },
        },
        url: `rediss://:${secrets[3]}@h:6379/0`,
      },
      'config loaded',
    );
    const raw = out.raw();
    for (const s of secrets) assert.ok(!raw.includes(s), `${s} leaked: ${raw}`);
    assert.ok(raw.includes('fs1'));
  });

  it('masks URL credentials and secret keys in config dumps', () => {
    assert.equal(redactUrl('redis://u:pw@h:1/0'), 'redis://u:[redacted]@h:1/0');
    assert.equal(redactUrl('rediss://:pw@h'), 'rediss://:[redacted]@h');
    assert.equal(redactUrl('redis://h:1'), 'redis://h:1');
    const dump = JSON.stringify(
      redactConfig({
        redis: { url: 'redis://a:b@h' },
        nodes: [{ esl: { password: 'x1y2' } }],
        proxy: { drachtio: { secret: 's9' } },
      }),
    );
    assert.ok(!dump.includes('x1y2') && !dump.includes('s9') && !dump.includes(':b@'), dump);
  });

  it('writes a buffered line out by itself while the process lives on', { timeout: 10_000 }, async (t) => {
    // A process that logs one line and then idles: the line must not wait for a flush or an exit.
    const child = spawn(
      process.execPath,
      [
        '--conditions=@fslb/source',
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `import { createLogger } from '@fslb/shared';
         createLogger({ level: 'info', name: 'fslb-test', buffered: true }).info('one line');
         setInterval(() => {}, 60_000);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    t.after(() => child.kill('SIGKILL'));
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out);
      });
      child.on('exit', (code) => reject(new Error(`exited (${code}) before writing its line`)));
    });
    assert.equal((JSON.parse(line) as { msg: string }).msg, 'one line');
    assert.equal(child.exitCode, null, 'still running');
  });
});
