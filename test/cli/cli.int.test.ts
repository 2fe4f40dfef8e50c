import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import type { Redis } from 'ioredis';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterKeys, ClusterStore } from '@fslb/shared';
import { runCli } from '@fslb/cli';
import { FsCluster } from '@fslb/fs-sim';
import { parseConfig } from '@fslb/shared';
import { config, rawConfig, recordEvents, startMonitor, waitForNode } from '../monitor/support.js';
import { proxyScene, viewOf } from '../proxy/scene.js';
import { freeTcpPort } from '../support/net.js';
import { deletePrefix, testPrefix, useRedis, type TestRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';

/**
 * The `fslb` command in this process (`runCli`, what bin/fslb runs) against a real Redis that a
 * real monitor writes from simulated FreeSWITCH nodes: what it prints, what it changes, and how
 * it fails.
 */
interface Run {
  code: number;
  out: string;
  err: string;
}

function io(env: Record<string, string | undefined> = {}, signal?: AbortSignal) {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: {
      stdout: { write: (s: string) => out.push(s), isTTY: false },
      stderr: { write: (s: string) => err.push(s) },
      env,
      ...(signal ? { signal } : {}),
    },
  };
}

async function fslb(argv: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const c = io(env);
  const code = await runCli(argv, c.io);
  return { code, out: c.out.join(''), err: c.err.join('') };
}

interface Cluster {
  prefix: string;
  keys: ClusterKeys;
  sims: FsCluster;
  args: string[];
  monitorId: string;
  /** The session cap the monitor published for every node. */
  max: number;
}

/** Three simulated nodes watched by one real monitor; CLI args that point at them. */
async function cluster(t: TestContext, r: { server: TestRedis; client: Redis }, count = 3): Promise<Cluster> {
  const prefix = testPrefix('cli');
  const keys = new ClusterKeys(prefix);
  const sims = await FsCluster.start({ count, heartbeatMs: 500, maxSessions: 100 });
  t.after(async () => {
    await sims.close();
    await deletePrefix(r.client, prefix);
  });
  const monitorId = `mon-${prefix}`;
  const monitor = await startMonitor(
    config({ redisUrl: r.server.url, prefix, nodes: sims.nodes, monitorId }),
  );
  t.after(() => monitor.close());
  let max = 0;
  for (let i = 1; i <= count; i++) {
    const h = await waitForNode(
      r.client,
      keys,
      `fs${i}`,
      (x) => x.state === 'up' && Number(x.maxSessions) > 0,
      'up',
    );
    max = Number(h.maxSessions);
  }
  return { prefix, keys, sims, args: ['--redis', r.server.url, '--prefix', prefix], monitorId, max };
}

interface JsonNode {
  id: string;
  ok: boolean;
  state: string;
  sessions: number;
  maxSessions: number;
  reservations: number;
  owner: string;
  alive: boolean;
  admin: string;
  eligible: boolean;
  heartbeatAgeMs: number | null;
}

describe('fslb CLI', () => {
  const r = useRedis({ before, after });

  it('status prints every node as a table and as JSON', async (t) => {
    const c = await cluster(t, r);
    c.sims.nodes[1]!.setSessions(40);
    await waitForNode(r.client, c.keys, 'fs2', (h) => h.sessions === '40', '40 sessions');

    const json = await fslb(['status', '--json', ...c.args]);
    assert.equal(json.code, 0, json.err);
    const s = JSON.parse(json.out) as { prefix: string; version: number; nodes: JsonNode[] };
    assert.equal(s.prefix, c.prefix);
    assert.ok(s.version > 0);
    assert.deepEqual(
      s.nodes.map((n) => [n.id, n.state, n.sessions, n.maxSessions, n.owner, n.alive, n.admin, n.eligible]),
      [
        ['fs1', 'up', 0, c.max, c.monitorId, true, '', true],
        ['fs2', 'up', 40, c.max, c.monitorId, true, '', true],
        ['fs3', 'up', 0, c.max, c.monitorId, true, '', true],
      ],
    );
    for (const n of s.nodes)
      assert.ok(n.heartbeatAgeMs !== null && n.heartbeatAgeMs < 5000, 'a recent heartbeat');

    const table = await fslb(['status', ...c.args]);
    assert.equal(table.code, 0, table.err);
    assert.ok(!table.out.includes('\x1b['), 'no colour when stdout is not a TTY');
    const lines = table.out.trimEnd().split('\n');
    assert.ok(
      lines[0]!.includes(`3 nodes · 3 taking calls · 40/${3 * c.max} sessions · 0 reserved`),
      lines[0],
    );
    assert.match(
      lines[1]!,
      /^NODE\s+STATE\s+REASON\s+SESSIONS\s+LOAD\s+RESV\s+IDLE\s+OWNER\s+HEARTBEAT\s+ADMIN$/,
    );
    const fs2 = lines.find((l) => l.startsWith('fs2 '));
    assert.match(
      fs2 ?? '',
      new RegExp(`^fs2\\s+up\\s+40/${c.max}\\s+\\[####\\.{6}\\]\\s+0\\s+\\d+%\\s+mon-`),
    );

    const coloured = await fslb(['status', ...c.args], { FORCE_COLOR: '1' });
    assert.ok(coloured.out.includes('\x1b[32mup\x1b[39m'), 'up in green when colour is asked for');
  });

  it("status shows the pools; limits shows each limit's busiest keys, live and in setup, with the caps of --config", async (t) => {
    const prefix = testPrefix('cli-pools');
    const keys = new ClusterKeys(prefix);
    const sims = await FsCluster.start({ count: 3, heartbeatMs: 500, maxSessions: 100 });
    const raw = {
      ...rawConfig({ redisUrl: r.server.url, prefix, nodes: sims.nodes, monitorId: 'mon-pools' }),
      pools: [
        { id: 'pstn', nodes: ['fs1', 'fs2'] },
        { id: 'conf', nodes: ['fs3'] },
      ],
      limits: [{ id: 'tenant', key: { header: 'X-Tenant' }, maxCalls: 4, maxCps: 20 }],
    };
    const monitor = await startMonitor(parseConfig(raw, {}));
    t.after(async () => {
      await monitor.close();
      await sims.close();
      await deletePrefix(r.client, prefix);
    });
    for (const id of ['fs1', 'fs2', 'fs3'])
      await waitForNode(
        r.client,
        keys,
        id,
        (h) => h.pool !== undefined && h.state === 'up',
        'up with a pool',
      );
    const args = ['--redis', r.server.url, '--prefix', prefix];
    const status = await fslb(['status', ...args]);
    assert.equal(status.code, 0, status.err);
    assert.match(status.out, /^pool pstn: 2 nodes, 2 taking calls, 0\/\d+ in use$/m);
    assert.match(status.out, /^pool conf: 1 node, 1 taking calls, 0\/\d+ in use$/m);
    assert.match(status.out, /^fs3\s+conf\s+up/m);

    // Counters as the proxies and the monitor write them: three acme calls (one live), one globex.
    const store = new ClusterStore(r.client, keys);
    const take = (call: string, tenant: string) =>
      store.reserveCall({
        call,
        candidates: ['fs1'],
        slots: 1,
        failovers: 0,
        ttlMs: 60_000,
        limits: [{ entry: `tenant:${tenant}`, maxCalls: 4, maxCps: 20 }],
      });
    for (const [call, tenant] of [
      ['a1', 'acme'],
      ['a2', 'acme'],
      ['a3', 'acme'],
      ['g1', 'globex'],
    ] as const) {
      assert.equal((await take(call, tenant)).taken.length, 1);
    }
    await r.client.zadd(keys.limit('tenant:acme'), 'inf', 'a1');

    const file = join(mkdtempSync(join(tmpdir(), 'fslb-cli-')), 'fslb.json');
    writeFileSync(file, JSON.stringify(raw));
    const json = await fslb(['limits', '--json', '--config', file]);
    assert.equal(json.code, 0, json.err);
    const l = JSON.parse(json.out) as {
      limits: {
        id: string;
        maxCalls: number;
        keys: number;
        calls: number;
        busiest: { key: string; calls: number; live: number; lastSecond: number }[];
      }[];
    };
    assert.deepEqual(l.limits, [
      {
        id: 'tenant',
        maxCalls: 4,
        maxCps: 20,
        keys: 2,
        calls: 4,
        busiest: [
          { key: 'acme', calls: 3, live: 1, lastSecond: 3 },
          { key: 'globex', calls: 1, live: 0, lastSecond: 1 },
        ],
      },
    ]);
    const text = await fslb(['limits', '--top', '1', ...args]);
    assert.equal(text.code, 0, text.err);
    assert.match(text.out, /^LIMIT\s+KEY\s+CALLS\s+MAX\s+LAST 1S\s+MAX CPS$/m);
    assert.match(text.out, /^tenant\s+acme\s+3 \(1 live\)\s+-\s+3\s+-$/m);
    assert.match(text.out, /\.\.\. 1 more keys/);
    assert.equal((await fslb(['limits', '--top', 'x', ...args])).code, 2);
  });

  it('status shows a node that went down, and monitors lists who owns what', async (t) => {
    const c = await cluster(t, r);
    await c.sims.nodes[2]!.crash();
    await waitForNode(r.client, c.keys, 'fs3', (h) => h.state === 'down', 'down');
    const s = JSON.parse((await fslb(['status', '--json', ...c.args])).out) as { nodes: JsonNode[] };
    const fs3 = s.nodes.find((n) => n.id === 'fs3');
    assert.ok(fs3);
    assert.equal(fs3.state, 'down');
    assert.equal(fs3.eligible, false);
    const table = await fslb(['status', ...c.args]);
    assert.match(table.out, /3 nodes · 2 taking calls/);
    assert.match(table.out.split('\n').find((l) => l.startsWith('fs3 ')) ?? '', /^fs3\s+down\s+\S/);

    // The presence key is refreshed every claim round: wait for one that lists every lease.
    const m = await waitFor('the monitor listed with its three nodes', async () => {
      const mons = await fslb(['monitors', '--json', ...c.args]);
      assert.equal(mons.code, 0, mons.err);
      const v = JSON.parse(mons.out) as { monitors: { id: string; owned: string[]; version: string }[] };
      return v.monitors[0]?.owned.length === 3 ? v : undefined;
    });
    assert.deepEqual(
      m.monitors.map((x) => [x.id, [...x.owned].sort()]),
      [[c.monitorId, ['fs1', 'fs2', 'fs3']]],
    );
    assert.match(m.monitors[0]!.version, /^\d+\.\d+\.\d+/);
    const text = await fslb(['monitors', ...c.args]);
    assert.match(
      text.out,
      new RegExp(`^${c.monitorId}\\s+\\S+\\s+\\d+\\s+\\S+\\s+\\S+\\s+3\\s+fs1 fs2 fs3`, 'm'),
    );
  });

  it('drain persists with a drained event, a proxy stops choosing the node, undrain brings it back', async (t) => {
    const s = await proxyScene(t, r, { count: 2, random: () => 0 });
    const args = ['--redis', r.server.url, '--prefix', s.prefix];
    const events = await recordEvents(t, r.client, s.keys);

    const d = await fslb(['drain', 'fs1', ...args]);
    assert.equal(d.code, 0, d.err);
    assert.match(d.out, /^fs1 drained: proxies send it no new calls \(0 sessions now\)/);
    assert.equal(await r.client.hget(s.keys.node('fs1'), 'admin'), 'drain');
    await waitFor('a drained event', () => events.some((e) => e.type === 'node' && e.cause === 'drained'));
    await viewOf(s, 'fs1', (n) => !n.eligible, 'not eligible');
    for (let i = 0; i < 5; i++) {
      const call = s.dx.inject({ method: 'INVITE', sdp: true });
      const cmd = await call.proxied();
      assert.deepEqual(cmd.destinations, [`sip:127.0.0.1:${s.sims.nodes[1]!.sipPort}`], 'only fs2');
      assert.equal((await call.final()).status, 200);
      await call.hangup();
    }
    // A monitor write (a probe, a heartbeat) keeps the flag.
    s.sims.nodes[0]!.setSessions(3);
    await waitForNode(r.client, s.keys, 'fs1', (h) => h.sessions === '3', '3 sessions');
    assert.equal(await r.client.hget(s.keys.node('fs1'), 'admin'), 'drain');
    assert.match((await fslb(['drain', 'fs1', ...args])).out, /already drained/);

    const u = await fslb(['undrain', 'fs1', ...args]);
    assert.equal(u.code, 0, u.err);
    assert.match(u.out, /fs1 undrained/);
    await waitFor('an undrained event', () =>
      events.some((e) => e.type === 'node' && e.cause === 'undrained'),
    );
    await viewOf(s, 'fs1', (n) => n.eligible, 'eligible again');
    assert.equal(await r.client.hget(s.keys.node('fs1'), 'admin'), '');

    // The proxy's presence is refreshed every few seconds: wait for one that saw drachtio up.
    const p = await waitFor('the proxy listed, live and connected', async () => {
      const px = JSON.parse((await fslb(['proxies', '--json', ...args])).out) as {
        proxies: { id: string; viewSource: string; drachtio: boolean; nodes: number }[];
      };
      return px.proxies[0]?.drachtio === true ? px : undefined;
    });
    assert.deepEqual(
      p.proxies.map((x) => [x.id, x.viewSource, x.drachtio, x.nodes]),
      [[s.proxy.id, 'live', true, 2]],
    );
    const text = await fslb(['proxies', ...args]);
    assert.match(text.out, /^PROXY\s+HOST\s+PID\s+VERSION\s+UPTIME\s+VIEW\s+VIEW AGE\s+NODES\s+DRACHTIO$/m);
    assert.match(text.out, new RegExp(`^${s.proxy.id}\\s.*\\slive\\s.*\\s2\\s+connected$`, 'm'));
  });

  it('drain --wait returns when the node has no calls left, or fails with the count left', async (t) => {
    const c = await cluster(t, r, 2);
    const fs1 = c.sims.nodes[0]!;
    fs1.setSessions(2);
    await waitForNode(r.client, c.keys, 'fs1', (h) => h.sessions === '2', '2 sessions');

    const timedOut = await fslb(['drain', 'fs1', '--wait', '--timeout', '400ms', ...c.args]);
    assert.equal(timedOut.code, 1);
    assert.match(timedOut.err, /timed out after 0s: fs1 still has 2 sessions/);

    const waiting = io();
    let finished = false;
    const running = runCli(['drain', 'fs1', '--wait', '--timeout', '30s', ...c.args], waiting.io).finally(
      () => {
        finished = true;
      },
    );
    await waitFor('progress printed', () => waiting.err.join('').includes('fs1: 2 sessions left'));
    fs1.setSessions(1);
    await waitFor('progress: 1 left', () => waiting.err.join('').includes('fs1: 1 session left'));
    assert.equal(finished, false, 'still waiting with a call on the node');
    fs1.setSessions(0);
    assert.equal(await running, 0, waiting.err.join(''));
    assert.match(waiting.out.join(''), /fs1 has no calls left/);
  });

  it('watch redraws on changes and survives a Redis restart', async (t) => {
    const own = await (await import('../support/redis.js')).startRedis();
    t.after(() => own.close());
    if (!own.controllable) {
      t.skip('REDIS_URL points at a server this test cannot restart');
      return;
    }
    const prefix = testPrefix('cliw');
    const sims = await FsCluster.start({ count: 2, heartbeatMs: 500, maxSessions: 50 });
    t.after(() => sims.close());
    const monitor = await startMonitor(config({ redisUrl: own.url, prefix, nodes: sims.nodes }));
    t.after(() => monitor.close());

    const stop = new AbortController();
    const w = io({}, stop.signal);
    const running = runCli(['watch', '--interval', '300ms', '--redis', own.url, '--prefix', prefix], w.io);
    const lastFrame = () => w.out.join('').trimEnd().split('\n\n').at(-1) ?? '';
    await waitFor('both nodes up on screen', () => /2 taking calls/.test(lastFrame()), { timeoutMs: 8000 });
    sims.nodes[0]!.setSessions(7);
    await waitFor('7 sessions on screen', () => /^fs1\s+up\s+7\//m.test(lastFrame()));

    await own.kill();
    await waitFor('an unreachable banner', () => /Redis unreachable/.test(lastFrame()), { timeoutMs: 8000 });
    assert.match(lastFrame(), /^fs1\s+up\s+7\//m, 'the last table stays on screen');
    await own.restart();
    sims.nodes[1]!.setSessions(9);
    await waitFor('rebuilt after the restart', () => /^fs2\s+up\s+9\//m.test(lastFrame()), {
      timeoutMs: 15000,
    });
    assert.doesNotMatch(lastFrame(), /unreachable/);
    stop.abort();
    assert.equal(await running, 0);
  });

  it('fails clearly on an unknown node, an unreachable Redis and a bad flag', async (t) => {
    const c = await cluster(t, r, 2);
    const unknown = await fslb(['drain', 'fs9', ...c.args]);
    assert.equal(unknown.code, 1);
    assert.equal(unknown.err, 'fslb: node "fs9" is not a configured node (known: fs1, fs2)\n');
    assert.equal(await r.client.exists(c.keys.node('fs9')), 0, 'nothing written for it');

    const port = await freeTcpPort();
    const down = await fslb(['status', '--redis', `redis://127.0.0.1:${port}`]);
    assert.equal(down.code, 1);
    assert.match(
      down.err,
      new RegExp(`^fslb: cannot reach Redis at redis://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`),
    );
    const secret = await fslb(['status', '--redis', `redis://u:hunter2@127.0.0.1:${port}`]);
    assert.doesNotMatch(secret.err, /hunter2/, 'no password in the message');

    const flag = await fslb(['status', '--frobnicate', ...c.args]);
    assert.equal(flag.code, 2);
    assert.match(flag.err, /^fslb: status: Unknown option '--frobnicate'; see "fslb status --help"\n$/);
    const cmd = await fslb(['stauts']);
    assert.equal(cmd.code, 2);
    assert.match(cmd.err, /unknown command "stauts"/);
    const dur = await fslb(['drain', 'fs1', '--wait', '--timeout', 'soon', ...c.args]);
    assert.equal(dur.code, 2);
    assert.match(dur.err, /--timeout "soon": expected a duration/);
    assert.equal(await r.client.hget(c.keys.node('fs1'), 'admin'), '', 'a usage error changes nothing');

    for (const command of ['status', 'watch', 'drain', 'undrain', 'proxies', 'monitors']) {
      const h = await fslb([command, '--help']);
      assert.equal(h.code, 0);
      assert.match(h.out, /^Usage: fslb /);
      assert.match(h.out, /--redis URL/);
    }
    const top = await fslb(['--help']);
    assert.match(top.out, /Commands:\n {2}status/);
  });
});
