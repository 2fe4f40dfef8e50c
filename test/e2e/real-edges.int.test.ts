import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { after, before, describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterKeys, parseConfig } from '@fslb/shared';
import type { FslbProxy } from '@fslb/proxy';
import { FsCluster, type FsNodeOptions } from '@fslb/fs-sim';
import { captureLogger } from '../support/log-capture.js';
import { redisRelay } from '../support/redis-relay.js';
import { tenantRouting } from '../support/routing.js';
import { realPeers, startDrachtioServer, type RealDrachtio } from '../support/drachtio-server.js';
import { freeUdpPort } from '../support/net.js';
import { deletePrefix, testPrefix, useRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { rawConfig, startMonitor, waitForNode } from '../monitor/support.js';
import { metricValue, proxyRawConfig, startProxy } from '../proxy/support.js';

/**
 * Carrier traffic at the edges through real peers: SIPp callers -> a real drachtio-server ->
 * fslb-proxy -> FreeSWITCH simulators watched by a real monitor. A flood from one source beside
 * ordinary callers, a callee that challenges every INVITE, and a caller that cancels while Redis
 * is slow. Runs when a drachtio-server binary (FSLB_DRACHTIO_BIN or `drachtio` on PATH) and
 * `sipp` are present; otherwise it says why it skips.
 */
const peers = realPeers('real-peer edge cases');
const skip = peers.skip;
const bin = 'bin' in peers ? peers.bin : undefined;
const sipp = 'sipp' in peers ? peers.sipp : undefined;

const scenario = (name: string) => fileURLToPath(new URL(`sipp/${name}`, import.meta.url));

interface Sipp {
  exited: Promise<number | null>;
  stderr(): string;
}

/** Runs a SIPp caller against drachtio-server from `address`; killed when the test ends. */
async function runSipp(
  t: TestContext,
  o: { sipPort: number; address: string; scenario: string; service: string; args: string[]; cwd?: string },
): Promise<Sipp> {
  const child = spawn(
    sipp as string,
    [
      `127.0.0.1:${o.sipPort}`,
      '-sf',
      scenario(o.scenario),
      '-s',
      o.service,
      '-i',
      o.address,
      '-p',
      String(await freeUdpPort()),
      '-timeout',
      '40s',
      '-nostdin',
      ...o.args,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], ...(o.cwd ? { cwd: o.cwd } : {}) },
  );
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-5000)));
  return { exited: once(child, 'exit').then(([code]) => code as number | null), stderr: () => stderr };
}

interface Rig {
  keys: ClusterKeys;
  proxy: FslbProxy;
  drachtio: RealDrachtio;
  sims: FsCluster;
  sipPort: number;
  lines(): Record<string, unknown>[];
  drachtioOutput(): string;
}

/**
 * Nodes, their monitor, a real drachtio-server and one fslb-proxy beside it, all ended with the
 * test. `redisUrl` lets the proxy reach Redis through a relay.
 */
async function rig(
  t: TestContext,
  r: { server: { url: string }; client: Redis },
  o: {
    count: number;
    sim?: Omit<FsNodeOptions, 'hostname' | 'coreUuid'>;
    proxy?: Record<string, unknown>;
    redisUrl?: string;
    /** Top-level sections both components read (pools, routes, limits). */
    routing?: Record<string, unknown>;
  },
): Promise<Rig> {
  const prefix = testPrefix('edge');
  const keys = new ClusterKeys(prefix);
  const sims = await FsCluster.start({ count: o.count, heartbeatMs: 500, maxSessions: 1000, ...o.sim });
  const redisUrl = r.server.url;
  t.after(async () => {
    await sims.close();
    await deletePrefix(r.client, prefix);
  });
  const monitor = await startMonitor(
    parseConfig({ ...rawConfig({ redisUrl, prefix, nodes: sims.nodes }), ...o.routing }, {}),
  );
  t.after(() => monitor.close());
  for (let i = 1; i <= o.count; i++) {
    await waitForNode(r.client, keys, `fs${i}`, (h) => h.state === 'up' && Number(h.maxSessions) > 0, 'up');
  }
  const sipPort = await freeUdpPort();
  const drachtio = await startDrachtioServer(bin as string, sipPort);
  t.after(() => drachtio.close());
  const { log, text } = captureLogger('info');
  const proxy = await startProxy(
    parseConfig(
      {
        ...proxyRawConfig({
          redisUrl: o.redisUrl ?? redisUrl,
          prefix,
          nodes: sims.nodes,
          drachtioPort: drachtio.appPort,
          proxy: o.proxy ?? {},
          // These tests read every call's outcome line, connected ones included.
          log: { calls: 'all' },
        }),
        ...o.routing,
      },
      {},
    ),
    undefined,
    log,
  );
  t.after(() => proxy.close());
  await waitFor('proxy connected to drachtio-server', () => proxy.drachtioConnected, { timeoutMs: 10_000 });
  await waitFor('proxy sees the nodes', () => proxy.view.nodes.filter((n) => n.eligible).length === o.count);
  const lines = () =>
    text()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { keys, proxy, drachtio, sims, sipPort, lines, drachtioOutput: () => drachtio.output() };
}

describe('real drachtio-server and SIPp: carrier traffic at the edges', { skip, timeout: 120_000 }, () => {
  const r = useRedis({ before, after });

  it('connects ordinary calls while one source floods at 300/s, with a short log', async (t) => {
    const s = await rig(t, r, {
      count: 2,
      proxy: { maxCps: 100, rateLimit: { perSourcePerSec: 20, burst: 20 } },
    });
    const flood = await runSipp(t, {
      sipPort: s.sipPort,
      address: '127.0.0.2',
      scenario: 'uac-contact.xml',
      service: 'flood',
      args: ['-r', '300', '-m', '2100', '-l', '3000', '-d', '500'],
    });
    const calls = await runSipp(t, {
      sipPort: s.sipPort,
      address: '127.0.0.3',
      scenario: 'uac-contact.xml',
      service: 'caller',
      args: ['-r', '10', '-m', '50', '-l', '50', '-d', '500'],
    });
    await calls.exited;
    await flood.exited;
    const routed = s.lines().filter((l) => l.msg === 'request routed');
    const from = (address: string) => routed.filter((l) => String(l.source).startsWith(`${address}:`));
    const connected = from('127.0.0.3').filter((l) => l.outcome === 'connected').length;
    const floodThrough = from('127.0.0.2').filter((l) => l.outcome === 'connected').length;
    const aboutFlood = s
      .lines()
      .filter((l) => l.msg !== 'request routed' && JSON.stringify(l).includes('127.0.0.2'));
    t.diagnostic(
      `ordinary calls connected: ${connected}/50; flood calls through: ${floodThrough}; ` +
        `log lines about the flood: ${aboutFlood.length}; all lines: ${s.lines().length}`,
    );
    assert.ok(connected >= 48, `ordinary calls connected: ${connected} of 50`);
    assert.ok(aboutFlood.length <= 3, `lines about the flood: ${aboutFlood.length}`);
  });

  it("sheds new INVITEs while drachtio-server's SIP thread is held up, and takes every call again once it catches up", async (t) => {
    const s = await rig(t, r, {
      count: 2,
      proxy: {
        maxCps: 10_000,
        rateLimit: { perSourcePerSec: 10_000, burst: 10_000 },
        overload: { sampleMs: 20, highBytes: 16_384, lowBytes: 4096 },
      },
    });
    const admitted = (): Promise<number> => metricValue(s.proxy, 'fslb_proxy_admit_ratio');
    await waitFor('the proxy watches the real SIP socket', () =>
      s.lines().some((l) => l.msg === "watching drachtio-server's SIP socket backlog"),
    );
    // drachtio-server stopped: its SIP socket is read by no one, as when its thread falls behind.
    const { pid } = s.drachtio;
    process.kill(pid, 'SIGSTOP');
    let calls: Sipp;
    try {
      calls = await runSipp(t, {
        sipPort: s.sipPort,
        address: '127.0.0.3',
        scenario: 'uac-contact.xml',
        service: 'caller',
        args: ['-r', '50', '-m', '100', '-l', '100', '-d', '200'],
      });
      await waitFor('nothing admitted while the INVITEs wait', async () => (await admitted()) === 0);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await calls.exited;
    const outcomes = () =>
      s
        .lines()
        .filter((l) => l.msg === 'request routed')
        .map((l) => String(l.outcome));
    // A shed INVITE is a refusal (counted, its log line sampled), not a routed request.
    const shed = await metricValue(s.proxy, 'fslb_proxy_refusals_total', { reason: 'backlog' });
    const connected = outcomes().filter((o) => o === 'connected').length;
    t.diagnostic(`first run: ${shed} shed, ${connected} connected of 100`);
    assert.ok(shed >= 1, `INVITEs read after the stop were shed: ${shed}`);
    assert.ok(connected >= 1, `calls after the backlog drained connected: ${connected}`);
    assert.equal(shed + connected, 100, 'every call either connected or was shed');
    assert.equal(
      s.lines().filter((l) => String(l.msg).startsWith('drachtio-server is falling behind')).length,
      1,
    );

    await waitFor('every INVITE admitted again', async () => (await admitted()) === 1);
    const before = connected;
    const again = await runSipp(t, {
      sipPort: s.sipPort,
      address: '127.0.0.3',
      scenario: 'uac-contact.xml',
      service: 'caller',
      args: ['-r', '20', '-m', '20', '-l', '20', '-d', '200'],
    });
    assert.equal(await again.exited, 0, again.stderr());
    assert.equal(outcomes().filter((o) => o === 'connected').length - before, 20);
  });

  it("times drachtio-server's queue with an OPTIONS of its own, answered through the real drachtio-server", async (t) => {
    const s = await rig(t, r, { count: 1, proxy: { overload: { sampleMs: 20 } } });
    await waitFor('the proxy watches the real SIP socket', () =>
      s.lines().some((l) => l.msg === "watching drachtio-server's SIP socket backlog"),
    );
    const low = Number(
      s.lines().find((l) => l.msg === "watching drachtio-server's SIP socket backlog")?.lowBytes,
    );
    // drachtio-server stopped with datagrams queued past the low mark: the proxy sends its probe
    // behind them, and drachtio-server reaches it only once it has read them all.
    const { pid } = s.drachtio;
    process.kill(pid, 'SIGSTOP');
    try {
      const junk = createSocket('udp4');
      t.after(() => junk.close());
      const payload = Buffer.alloc(1200, 0x78);
      for (let i = 0; i < 40; i++) {
        await new Promise<void>((resolve, reject) =>
          junk.send(payload, s.sipPort, '127.0.0.1', (err) => (err ? reject(err) : resolve())),
        );
      }
      await waitFor(
        'the backlog past the low mark',
        async () => (await metricValue(s.proxy, 'fslb_proxy_drachtio_udp_queued_bytes')) >= low,
      );
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await waitFor('the probe answered', () =>
      s.lines().some((l) => String(l.msg).startsWith('learnt how fast drachtio-server works')),
    );
    const learnt = s.lines().find((l) => String(l.msg).startsWith('learnt how fast drachtio-server works'));
    assert.ok(
      Number(learnt?.bytesAhead) >= low,
      `the probe went behind the backlog: ${JSON.stringify(learnt)}`,
    );
    assert.ok(Number(learnt?.drainMBps) > 0);
    // Past it, the proxy reports the wait the backlog means; the probe was neither counted nor refused.
    await waitFor('the wait reported', async () => {
      const m = await s.proxy.metrics.registry
        .getSingleMetric('fslb_proxy_drachtio_queue_wait_seconds')
        ?.get();
      return m?.values.length === 1 && (m.values[0]?.value ?? 1) < 0.5;
    });
    assert.equal(
      await metricValue(s.proxy, 'fslb_proxy_requests_total', { method: 'OPTIONS', outcome: 'options-ok' }),
      0,
    );
  });

  it('accounts the retry after a digest challenge on the node that challenged', async (t) => {
    const s = await rig(t, r, { count: 2, sim: { challenge: true } });
    const calls = 12;
    const run = await runSipp(t, {
      sipPort: s.sipPort,
      address: '127.0.0.1',
      scenario: 'uac-auth.xml',
      service: 'caller',
      args: ['-r', '6', '-m', String(calls), '-l', String(calls), '-d', '1000'],
    });
    const code = await run.exited;
    assert.equal(code, 0, `sipp failed (exit ${code}): ${run.stderr()}\n${s.drachtioOutput().slice(-2000)}`);
    const routed = s.lines().filter((l) => l.msg === 'request routed');
    const challenged = routed.filter((l) => l.outcome === 'challenged');
    if (process.env.FSLB_DEBUG)
      writeFileSync('/tmp/routed.log', routed.map((l) => JSON.stringify(l)).join('\n'));
    const retries = routed.filter((l) => l.retryOf !== undefined);
    assert.equal(challenged.length, calls);
    assert.equal(retries.length, calls);
    for (const l of retries) {
      assert.equal(l.outcome, 'connected', JSON.stringify(l));
      assert.equal(l.node, l.retryOf, JSON.stringify(l));
      assert.equal(l.answeredBy, l.retryOf, `the slot was taken where the call went: ${JSON.stringify(l)}`);
    }
    // The calls' slots end as the monitor settles them; the proxy's unused advance slots, members
    // of the same sets, go back once the nodes have had no demand for 5 s (IDLE_MS). On a busy
    // host that hand-back came after a 5 s wait had given up.
    await waitFor(
      'no reservation left',
      async () =>
        (await Promise.all(['fs1', 'fs2'].map((id) => r.client.zcard(s.keys.resv(id))))).every(
          (n) => n === 0,
        ),
      { timeoutMs: 15_000 },
    );
  });

  it('ends the slot at once and counts the call cancelled when the caller cancels while Redis is slow', async (t) => {
    const relay = await redisRelay(new URL(r.server.url), 400, false);
    t.after(() => relay.close());
    // The caller cancels during the reservation's round trip: no advance slot to skip it.
    const s = await rig(t, r, {
      count: 1,
      redisUrl: relay.url,
      proxy: { reserveTimeoutMs: 2000, advanceSlots: 0 },
    });
    relay.slow = true;
    const run = await runSipp(t, {
      sipPort: s.sipPort,
      address: '127.0.0.1',
      scenario: 'uac-cancel.xml',
      service: 'caller',
      args: ['-m', '3', '-r', '3', '-l', '3'],
    });
    const code = await run.exited;
    assert.equal(code, 0, `sipp failed (exit ${code}): ${run.stderr()}`);
    const cancelled = await waitFor('three outcomes', () => {
      const l = s.lines().filter((x) => x.msg === 'request routed');
      return l.length >= 3 ? l : undefined;
    });
    assert.deepEqual(
      cancelled.map((l) => l.outcome),
      ['cancelled', 'cancelled', 'cancelled'],
    );
    relay.slow = false;
    await waitFor('the slots ended', async () => (await r.client.zcard(s.keys.resv('fs1'))) === 0, {
      timeoutMs: 2000,
    });
    assert.equal(s.sims.nodes[0]!.calls().length, 0, 'no INVITE reached the node');
  });
});

describe(
  'real drachtio-server and SIPp: pools, routes and a tenant limit',
  { skip, timeout: 120_000 },
  () => {
    const r = useRedis({ before, after });
    const routing = tenantRouting(10);

    it('caps a tenant at 10 held calls out of 40, with the limit named in the Reason the caller gets; 10 more after hang-up', async (t) => {
      const s = await rig(t, r, { count: 3, routing });
      const dir = mkdtempSync(join(tmpdir(), 'fslb-sipp-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      const run = await runSipp(t, {
        sipPort: s.sipPort,
        address: '127.0.0.1',
        scenario: 'uac-tenant.xml',
        service: '5551000',
        args: ['-r', '100', '-m', '40', '-l', '40', '-d', '3000', '-trace_msg'],
        cwd: dir,
      });
      const code = await run.exited;
      assert.equal(code, 0, `sipp failed (exit ${code}): ${run.stderr()}`);
      const routed = s.lines().filter((l) => l.msg === 'request routed');
      const outcomes = routed.map((l) => String(l.outcome));
      assert.equal(outcomes.filter((o) => o === 'connected').length, 10, outcomes.join(','));
      assert.equal(outcomes.filter((o) => o === 'over-limit').length, 30, outcomes.join(','));
      assert.ok(
        routed.filter((l) => l.outcome === 'connected').every((l) => l.node === 'fs1' || l.node === 'fs2'),
      );
      const trace = readdirSync(dir)
        .filter((f) => f.endsWith('_messages.log'))
        .map((f) => readFileSync(join(dir, f), 'utf8'))
        .join('');
      const reasons = trace.match(/^Reason: SIP;cause=503;text="limit tenant maxCalls"\r?$/gm) ?? [];
      assert.equal(reasons.length, 30, 'every refused caller got the Reason naming the limit');
      await waitFor(
        'the counter back to 0',
        async () => (await r.client.zcard(s.keys.limit('tenant:acme'))) === 0,
      );

      const again = await runSipp(t, {
        sipPort: s.sipPort,
        address: '127.0.0.1',
        scenario: 'uac-tenant.xml',
        service: '5551000',
        args: ['-r', '50', '-m', '10', '-l', '10', '-d', '500'],
      });
      assert.equal(await again.exited, 0);
      const later = s
        .lines()
        .filter((l) => l.msg === 'request routed')
        .slice(40)
        .map((l) => l.outcome);
      assert.deepEqual(later, Array<string>(10).fill('connected'));
    });

    it('routes a prefix to its pool, spills over when it is full, and answers a reject route', async (t) => {
      // fs3 (the conference pool) takes 3 calls.
      const s = await rig(t, r, { count: 3, routing, sim: { maxSessions: 4 } });
      const conf = await runSipp(t, {
        sipPort: s.sipPort,
        address: '127.0.0.1',
        scenario: 'uac-tenant.xml',
        service: '8001',
        args: ['-r', '50', '-m', '5', '-l', '5', '-d', '2000'],
      });
      assert.equal(await conf.exited, 0, conf.stderr());
      const blocked = await runSipp(t, {
        sipPort: s.sipPort,
        address: '127.0.0.1',
        scenario: 'uac-tenant.xml',
        service: '9001234',
        args: ['-m', '1'],
      });
      assert.equal(await blocked.exited, 0, blocked.stderr());
      const routed = s.lines().filter((l) => l.msg === 'request routed');
      const connected = routed.filter((l) => l.outcome === 'connected').map((l) => String(l.node));
      assert.equal(connected.length, 5);
      assert.equal(connected.filter((n) => n === 'fs3').length, 3, connected.join(','));
      assert.ok(
        connected.filter((n) => n !== 'fs3').every((n) => n === 'fs1' || n === 'fs2'),
        connected.join(','),
      );
      const rejected = routed.filter((l) => l.outcome === 'rejected');
      assert.deepEqual(
        rejected.map((l) => [l.status, l.route]),
        [[403, 'blocked']],
      );
    });
  },
);
