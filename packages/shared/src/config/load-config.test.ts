import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir, hostname } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../errors.js';
import { configPathFrom, loadConfig, loadConfigFile, parseConfig, parseConfigText } from './load-config.js';
import { MAX_LEASE_TTL_MS } from './schema.js';

const dir = mkdtempSync(join(tmpdir(), 'fslb-config-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}
const exampleUrl = new URL('../../../../fslb.example.yaml', import.meta.url);

function issuesOf(fn: () => unknown): { path: string; message: string }[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return [...err.issues];
  }
  assert.fail('expected the config to be rejected');
}

describe('config', () => {
  it('loads the example file with its values and fills the documented defaults', () => {
    const cfg = loadConfigFile(exampleUrl.pathname, {});
    assert.equal(cfg.redis.url, 'redis://127.0.0.1:6379');
    assert.equal(cfg.prefix, 'fslb');
    assert.deepEqual(
      cfg.nodes.map((n) => [n.id, n.sip, n.esl.port, n.esl.password, n.weight, n.maxSessions]),
      [
        ['fs1', '127.0.0.1:5080', 8021, 'ClueCon', 1, 500],
        ['fs2', '127.0.0.1:5081', 8022, 'ClueCon', 1, undefined],
      ],
    );
    assert.equal(cfg.monitor.probeIntervalMs, 1000);
    assert.equal(cfg.monitor.claimIntervalMs, 1000);
    assert.ok(cfg.monitor.livenessTtlMs > cfg.monitor.leaseTtlMs + cfg.monitor.claimIntervalMs);
    assert.equal(cfg.proxy.provisionalTimeout, 2000);
    assert.equal(cfg.proxy.finalTimeout, 30_000);
    assert.equal(cfg.proxy.drachtio.secret, 'cymru');
    assert.deepEqual(cfg.proxy.acl, ['0.0.0.0/0']);
    assert.equal(cfg.log.level, 'info');
  });

  it('defaults instance ids to hostname-pid so replicas sharing a file stay distinct', () => {
    const cfg = parseConfig({}, {});
    const expected = `${hostname()
      .replace(/[^A-Za-z0-9._-]/g, '-')
      .slice(0, 50)}-${process.pid}`;
    assert.equal(cfg.monitor.id, expected);
    assert.equal(cfg.proxy.id, expected);
  });

  it('asks each process only for the secrets it uses', () => {
    const raw = {
      nodes: [{ id: 'a', sip: '10.0.0.1:5060', esl: { host: 'h', passwordEnv: 'ESL_PW' } }],
      proxy: { drachtio: { secretEnv: 'DX_SECRET' } },
    };
    const missing = (use: 'all' | 'monitor' | 'proxy', env: Record<string, string>): string[] => {
      try {
        parseConfig(raw, env, use);
        return [];
      } catch (err) {
        return (err as ConfigError).issues.map((i) => i.path);
      }
    };
    assert.deepEqual(missing('all', {}), ['nodes.0.esl.passwordEnv', 'proxy.drachtio.secretEnv']);
    assert.deepEqual(missing('monitor', {}), ['nodes.0.esl.passwordEnv']);
    assert.deepEqual(missing('proxy', {}), ['proxy.drachtio.secretEnv']);
    const monitor = parseConfig(raw, { ESL_PW: 'e' }, 'monitor');
    assert.equal(monitor.nodes[0]?.esl.password, 'e');
    assert.equal(monitor.proxy.drachtio.secret, '');
    const proxy = parseConfig(raw, { DX_SECRET: 'd' }, 'proxy');
    assert.equal(proxy.proxy.drachtio.secret, 'd');
    assert.equal(proxy.nodes[0]?.esl.password, '', 'a proxy holds no ESL password');
  });

  it('returns a deeply frozen object', () => {
    const cfg = parseConfig(
      { nodes: [{ id: 'a', sip: '10.0.0.1:5060', esl: { host: 'h', password: 'p' } }] },
      {},
    );
    assert.ok(Object.isFrozen(cfg));
    assert.ok(Object.isFrozen(cfg.nodes[0]?.esl));
    assert.throws(() => {
      (cfg.monitor as { probeIntervalMs: number }).probeIntervalMs = 1;
    }, TypeError);
  });

  it('applies environment overrides over the file', () => {
    const cfg = loadConfigFile(exampleUrl.pathname, {
      REDIS_URL: 'redis://10.1.1.1:6380/2',
      FSLB_PREFIX: '{fslb}',
      FSLB_LOG_LEVEL: 'debug',
      FSLB_MONITOR_ID: 'mon-x',
      FSLB_MONITOR_HTTP_PORT: '19101',
      FSLB_PROXY_ID: 'px-x',
      FSLB_PROXY_HTTP_PORT: '19102',
    });
    assert.equal(cfg.redis.url, 'redis://10.1.1.1:6380/2');
    assert.equal(cfg.prefix, '{fslb}');
    assert.equal(cfg.log.level, 'debug');
    assert.equal(cfg.monitor.id, 'mon-x');
    assert.equal(cfg.monitor.http.port, 19101);
    assert.equal(cfg.proxy.id, 'px-x');
    assert.equal(cfg.proxy.http.port, 19102);
  });

  it('names the variable when an environment override is bad', () => {
    const issues = issuesOf(() =>
      parseConfig({}, { FSLB_MONITOR_HTTP_PORT: 'eighty', FSLB_LOG_LEVEL: 'loud' }),
    );
    assert.deepEqual(
      issues.map((i) => i.path),
      ['FSLB_MONITOR_HTTP_PORT', 'FSLB_LOG_LEVEL (log.level)'],
    );
  });

  it('finds the file from --config, --config= and FSLB_CONFIG, in that order', () => {
    assert.equal(configPathFrom(['--config', 'a.yaml'], { FSLB_CONFIG: 'b.yaml' }), 'a.yaml');
    assert.equal(configPathFrom(['--config=c.yaml'], {}), 'c.yaml');
    assert.equal(configPathFrom([], { FSLB_CONFIG: 'b.yaml' }), 'b.yaml');
    assert.equal(configPathFrom([], {}), undefined);
    const issues = issuesOf(() => loadConfig([], {}));
    assert.match(issues[0]?.message ?? '', /--config FILE or set FSLB_CONFIG/);
  });

  it('reads JSON as well as YAML', () => {
    const p = file('c.json', JSON.stringify({ prefix: 'json', nodes: [] }));
    assert.equal(loadConfigFile(p, {}).prefix, 'json');
  });

  it('lists every problem with its path, at once', () => {
    const p = file(
      'bad.yaml',
      `
redis: { url: http://nope }
prefix: "has space"
nodes:
  - id: "bad id!"
    sip: nowhere
    esl: { host: h, port: 99999 }
  - id: ok
    sip: 10.0.0.1:5060
    esl: { host: h, password: x, passwordEnv: X }
    weight: -1
  - id: ok
    sip: sip:fs@10.0.0.2:5060
    esl: { host: h, password: x }
monitor: { probeIntervalMs: 0, probTimeoutMs: 5 }
proxy: { maxTargets: 0, provisionalTimeout: soon, acl: [10.0.0.0/33] }
log: { level: chatty }
`,
    );
    const paths = issuesOf(() => loadConfigFile(p, {})).map((i) => i.path);
    for (const expected of [
      'redis.url',
      'prefix',
      'nodes.0.id',
      'nodes.0.sip',
      'nodes.0.esl.port',
      'nodes.0.esl.password',
      'nodes.1.esl.password',
      'nodes.1.weight',
      'nodes.2.id',
      'monitor.probeIntervalMs',
      'monitor',
      'proxy.maxTargets',
      'proxy.provisionalTimeout',
      'proxy.acl.0',
      'log.level',
    ]) {
      assert.ok(paths.includes(expected), `missing ${expected} in ${paths.join(', ')}`);
    }
  });

  it('bounds the lease TTL, since no monitor may write a lease the others would take for damage', () => {
    const base = { nodes: [{ id: 'fs1', sip: '10.0.0.1:5060', esl: { host: 'h', password: 'x' } }] };
    const ok = parseConfig({ ...base, monitor: { leaseTtlMs: MAX_LEASE_TTL_MS } }, {});
    assert.equal(ok.monitor.leaseTtlMs, MAX_LEASE_TTL_MS);
    const issues = issuesOf(() =>
      parseConfig({ ...base, monitor: { leaseTtlMs: MAX_LEASE_TTL_MS + 1 } }, {}),
    );
    assert.deepEqual(
      issues.map((i) => i.path),
      ['monitor.leaseTtlMs'],
    );
  });

  it('puts every node in one default pool with one route when the file names none', () => {
    const cfg = parseConfig(
      {
        nodes: ['fs1', 'fs2'].map((id, i) => ({
          id,
          sip: `10.0.0.${i + 1}:5060`,
          esl: { host: 'h', password: 'x' },
        })),
      },
      {},
    );
    assert.deepEqual(cfg.pools, [{ id: 'default', nodes: ['fs1', 'fs2'] }]);
    assert.deepEqual(cfg.routes, [{ id: 'route-0', pools: ['default'], limits: [] }]);
    assert.deepEqual(cfg.limits, []);
  });

  it('refuses a route whose pools, or routes sharing a limit, live in different shards', () => {
    const node = (id: string) => ({ id, sip: '10.0.0.1:5060', esl: { host: 'h', password: 'x' } });
    const issues = issuesOf(() =>
      parseConfig(
        {
          nodes: [node('fs1'), node('fs2'), node('fs3'), node('fs4')],
          pools: [
            { id: 'a', nodes: ['fs1'], shard: 'east' },
            { id: 'b', nodes: ['fs2'], shard: 'west' },
            { id: 'c', nodes: ['fs3'], shard: 'east' },
            { id: 'd', nodes: ['fs4'] },
          ],
          routes: [
            { pools: ['a', 'b'] },
            { match: { ruriUser: '^1' }, pools: ['a', 'c'], limits: ['tenant'] },
            { match: { ruriUser: '^2' }, pools: ['d'], limits: ['tenant'] },
          ],
          limits: [{ id: 'tenant', key: { header: 'X-Tenant' }, maxCalls: 10 }],
        },
        {},
      ),
    );
    assert.deepEqual(
      issues.map((i) => `${i.path}: ${i.message}`),
      [
        'routes.0.pools.1: pool b has shard "west" but pool a of the same route has shard "east": a route\'s pools must share a shard',
        'routes.2.limits.0: limit tenant is counted in shard "east" by routes.1 but this route\'s pools have no shard: routes sharing a limit must share a shard',
      ],
    );
    // The same pools, routed apart and with a limit per shard: accepted.
    const cfg = parseConfig(
      {
        nodes: [node('fs1'), node('fs2')],
        pools: [
          { id: 'a', nodes: ['fs1'], shard: 'east' },
          { id: 'b', nodes: ['fs2'], shard: 'west' },
        ],
        routes: [{ match: { ruriUser: '^1' }, pools: ['a'], limits: ['tenant'] }, { pools: ['b'] }],
        limits: [{ id: 'tenant', key: { header: 'X-Tenant' }, maxCalls: 10 }],
      },
      {},
    );
    assert.deepEqual(
      cfg.pools.map((p) => p.shard),
      ['east', 'west'],
    );
    // Without routes every call may go to every pool: one shard for them all.
    const noRoutes = issuesOf(() =>
      parseConfig(
        {
          nodes: [node('fs1'), node('fs2')],
          pools: [
            { id: 'a', nodes: ['fs1'], shard: 'east' },
            { id: 'b', nodes: ['fs2'] },
          ],
        },
        {},
      ),
    );
    assert.deepEqual(
      noRoutes.map((i) => `${i.path}: ${i.message}`),
      [
        'pools: pool b has no shard but pool a has shard "east": without routes every call may go to every pool, so they must share a shard',
      ],
    );
  });

  it('lists every problem of the routing rules at once', () => {
    const node = (id: string) => ({ id, sip: '10.0.0.1:5060', esl: { host: 'h', password: 'x' } });
    const issues = issuesOf(() =>
      parseConfig(
        {
          nodes: [node('fs1'), node('fs2'), node('fs3')],
          pools: [
            { id: 'a', nodes: ['fs1', 'fs2'] },
            { id: 'b', nodes: ['fs2', 'fs9'] },
          ],
          routes: [
            { match: { ruriUser: '^(8' }, pools: ['a', 'nope'] },
            { pools: ['a'], limits: ['missing'] },
            { match: { method: 'INVITE' } },
            { pools: ['a'], reject: { status: 403 } },
          ],
          limits: [{ id: 'tenant', key: { header: 'X-Tenant' } }],
        },
        {},
      ),
    );
    const got = issues.map((i) => `${i.path}: ${i.message}`);
    for (const want of [
      /^routes\.0\.match\.ruriUser: not a valid regular expression/,
      /^routes\.2: set exactly one of pools and reject$/,
      /^routes\.3: set exactly one of pools and reject$/,
      /^limits\.0: set maxCalls, maxCps or both$/,
      /^pools\.1\.nodes\.0: node "fs2" is already in pool a/,
      /^pools\.1\.nodes\.1: unknown node "fs9"$/,
      /^pools: node "fs3" is in no pool$/,
      /^routes\.0\.pools\.1: unknown pool "nope"$/,
      /^routes\.1\.limits\.0: unknown limit "missing"$/,
    ]) {
      assert.ok(
        got.some((g) => want.test(g)),
        `${String(want)} among:\n${got.join('\n')}`,
      );
    }
  });

  it('reports unknown keys by name, so typos do not pass silently', () => {
    const issues = issuesOf(() => parseConfig({ monitor: { probInterval: 5 } }, {}));
    assert.deepEqual(issues, [{ path: 'monitor', message: 'unknown key(s): probInterval' }]);
  });

  it('resolves passwordEnv and reports an unset variable', () => {
    const raw = { nodes: [{ id: 'a', sip: '10.0.0.1:5060', esl: { host: 'h', passwordEnv: 'FS_A_PW' } }] };
    assert.equal(parseConfig(raw, { FS_A_PW: 's3cret' }).nodes[0]?.esl.password, 's3cret');
    const issues = issuesOf(() => parseConfig(raw, {}));
    assert.deepEqual(issues, [
      { path: 'nodes.0.esl.passwordEnv', message: 'environment variable FS_A_PW is not set' },
    ]);
  });

  it('never echoes a secret in an error', () => {
    const secret = 'Tr0ub4dor&3-very-secret';
    const err = (() => {
      try {
        parseConfig(
          {
            redis: { url: `redis://u:${secret}@h:1`, password: secret, passwordEnv: 'X', tls: secret },
            nodes: [{ id: 'a', sip: 'h:1', esl: { host: 'h', port: secret, password: 7 } }],
            proxy: { drachtio: { secret: 12, secretEnv: secret } },
          },
          {},
        );
      } catch (e) {
        return e as ConfigError;
      }
      return undefined;
    })();
    assert.ok(err instanceof ConfigError);
    assert.ok(err.issues.length >= 4);
    assert.ok(!err.message.includes(secret), err.message);
  });

  it('rejects YAML syntax errors with the line', () => {
    const issues = issuesOf(() => parseConfigText('prefix: [unclosed\nnodes: 1\n', {}, 'x.yaml'));
    assert.match(issues[0]?.message ?? '', /x\.yaml is not valid YAML or JSON at line \d/);
  });

  it('rejects a top level that is not a mapping, and a missing file', () => {
    assert.equal(
      issuesOf(() => parseConfigText('- a\n- b\n', {}))[0]?.message,
      'expected a mapping at the top level',
    );
    assert.match(issuesOf(() => loadConfigFile(join(dir, 'absent.yaml'), {}))[0]?.message ?? '', /ENOENT/);
  });

  it('accepts Sentinel and TLS settings, and requires the master name with sentinels', () => {
    const cfg = parseConfig(
      { redis: { sentinels: [{ host: 's1' }, { host: 's2', port: 26380 }], name: 'mymaster', tls: true } },
      {},
    );
    assert.deepEqual(cfg.redis.sentinels, [
      { host: 's1', port: 26379 },
      { host: 's2', port: 26380 },
    ]);
    assert.deepEqual(
      issuesOf(() => parseConfig({ redis: { sentinels: [{ host: 's1' }] } }, {})).map((i) => i.path),
      ['redis.name'],
    );
  });
});
