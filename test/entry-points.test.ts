import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'fslb-entry-'));
const mains = {
  'fslb-monitor': 'packages/monitor/src/main.ts',
  'fslb-proxy': 'packages/proxy/src/main.ts',
};
const cli = 'packages/cli/src/main.ts';

async function start(main: string, args: string[], env: Record<string, string> = {}) {
  try {
    const r = await run(process.execPath, ['--conditions=@fslb/source', '--import', 'tsx', main, ...args], {
      cwd: root,
      env: { ...process.env, FSLB_CONFIG: '', ...env },
      timeout: 30_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('entry points', () => {
  for (const [name, main] of Object.entries(mains)) {
    it(`${name} exits 2 listing every problem of a bad config, without echoing its secret`, async () => {
      const bad = join(dir, `${name}-bad.yaml`);
      writeFileSync(
        bad,
        'prefix: "a b"\nnodes:\n  - id: fs1\n    sip: nowhere\n    esl: { host: h, password: S3cretPw, passwordEnv: X }\n',
      );
      const r = await start(main, ['--config', bad]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /invalid configuration/);
      for (const path of ['prefix', 'nodes.0.sip', 'nodes.0.esl.password'])
        assert.match(r.stderr, new RegExp(path));
      assert.ok(!r.stderr.includes('S3cretPw'));
    });

    it(`${name} exits 2 when no config is named`, async () => {
      const r = await start(main, []);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /--config FILE or set FSLB_CONFIG/);
    });
  }

  it('fslb prints its help and exits 2 without a command', async () => {
    const r = await start(cli, []);
    assert.equal(r.code, 2);
    assert.match(r.stdout, /^fslb \d+\.\d+\.\d+: /);
    assert.match(r.stdout, /Commands:/);
  });

  it('fslb exits 2 on a bad prefix in its config, 2 on a bad flag, 1 when Redis is unreachable', async () => {
    const bad = join(dir, 'fslb-bad.yaml');
    writeFileSync(bad, 'prefix: "a b"\nredis: { url: "redis://u:S3cretPw@127.0.0.1:1" }\n');
    const r = await start(cli, ['status', '--config', bad]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /invalid settings in .*fslb-bad\.yaml:\n {2}- prefix/);
    assert.equal((await start(cli, ['status', '--nope'])).code, 2);
    // The example names ESL passwords and a drachtio secret: the CLI reads only redis and prefix.
    const down = await start(cli, ['status', '--redis', 'redis://u:S3cretPw@127.0.0.1:1'], {
      FSLB_CONFIG: join(root, 'fslb.example.yaml'),
    });
    assert.equal(down.code, 1, down.stderr);
    assert.match(down.stderr, /^fslb: cannot reach Redis at redis:\/\/u:\[redacted\]@127\.0\.0\.1:1: /);
    assert.ok(!down.stderr.includes('S3cretPw') && !down.stdout.includes('ClueCon'));
  });
});
