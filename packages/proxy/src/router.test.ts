import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import pino from 'pino';
import {
  parseConfig,
  type LimitConfig,
  type NodeRecord,
  type PoolConfig,
  type RouteConfig,
} from '@fslb/shared';
import {
  SlotMode,
  type CallAccounting,
  type CallSlots,
  type ReserveOptions,
  type ReserveOutcome,
} from './call-accounting.js';
import type { InboundRequest, ProxyRequest, ProxyResult } from './drachtio/drachtio-link.js';
import { SourceAcl } from './guards/acl.js';
import { SourceLimits, type SourceLimitSettings } from './guards/source-limits.js';
import { TokenBucket } from './guards/token-bucket.js';
import { ProxyMetrics } from './metrics.js';
import { challengerOf, Router, type RouterSettings } from './router.js';
import { RouteTable } from './routing/route-table.js';
import { selectWithAffinity } from './selection/select.js';
import { ClusterView } from './view/cluster-view.js';
import type { ViewNode } from './view/view-node.js';

/**
 * The router on its own: a view built from plain records, requests and drachtio-server's answers
 * as plain objects, and an accounting stand-in that records what the router asks of it. What is
 * asserted is what a caller and the cluster would see: the answer, whether and where the request
 * was proxied, which slots were taken and handed back, and the counters.
 */

function rec(id: string, port: number, more: Partial<NodeRecord> = {}): NodeRecord {
  return {
    id,
    sip: `127.0.0.1:${port}`,
    state: 'up',
    reason: '',
    sessions: 0,
    maxSessions: 10,
    cap: 0,
    idleCpu: 90,
    cps: 0,
    weight: 1,
    admin: '',
    owner: 'mon',
    pool: '',
    heartbeatAt: 1,
    updatedAt: 1,
    version: 1,
    ...more,
  };
}

function viewOf(records: NodeRecord[]): ClusterView {
  const v = new ClusterView();
  v.applySnapshot(
    {
      at: Date.now() * 1000,
      version: 1,
      nodes: records.map((record) => ({ id: record.id, ok: true, record, alive: true, reservations: 0 })),
    },
    performance.now(),
  );
  return v;
}

/** Stands in for the Redis-backed accounting: one slot on the first candidate with room. */
class Ledger {
  readonly reserved: { call: string; candidates: string[]; failovers: number; opts: ReserveOptions }[] = [];
  readonly released: CallSlots[] = [];
  readonly connected: CallSlots[] = [];
  full = false;
  /** Refuses the next reservations as over their first limit, by that kind. */
  overLimit: 'maxCalls' | 'maxCps' | undefined;
  /** Resolves the next reservation only when called: a slow Redis. */
  hold: (() => void) | undefined;

  reserve(call: string, candidates: readonly ViewNode[], opts: ReserveOptions = {}): Promise<ReserveOutcome> {
    const failovers = opts.failovers ?? 2;
    this.reserved.push({ call, candidates: candidates.map((n) => n.id), failovers, opts });
    // The first group with a node: as Redis would with every node having room.
    const group = opts.groups?.[0] ?? 1;
    const inGroup = candidates.filter((_, i) => (opts.groups?.[i] ?? 1) === group);
    const chosen = inGroup[0];
    const use = opts.limits?.[0];
    const outcome: ReserveOutcome =
      this.overLimit && use
        ? { kind: 'over-limit', use, what: this.overLimit, ms: 0 }
        : this.full || !chosen
          ? { kind: 'full', ms: 0 }
          : {
              kind: 'reserved',
              ms: 0,
              slots: {
                call,
                mode: SlotMode.Redis,
                node: chosen,
                limits: (opts.limits ?? []).map((u) => u.entry),
                expiresAt: 0,
              },
              targets: [chosen, ...inGroup.slice(1, 1 + failovers)],
            };
    if (!this.hold) return Promise.resolve(outcome);
    return new Promise((resolve) => {
      this.hold = () => resolve(outcome);
    });
  }
  release(slots: CallSlots): void {
    this.released.push(slots);
  }
  markConnected(slots: CallSlots): void {
    this.connected.push(slots);
  }
  asAccounting(): CallAccounting {
    return {
      reserve: this.reserve.bind(this),
      release: this.release.bind(this),
      connected: this.markConnected.bind(this),
    } as unknown as CallAccounting;
  }
}

interface Req extends InboundRequest {
  answers: { status: number; reason: string; headers: Record<string, string> }[];
  proxied: ProxyRequest[];
  cancel(): void;
}

let seq = 0;
function request(
  opts: {
    method?: string;
    source?: string;
    port?: number;
    protocol?: string;
    fromTag?: string;
    toTag?: string;
    headers?: Record<string, string>;
    credentials?: { realm: string; nonce: string };
    callId?: string;
    result?: () => ProxyResult | Promise<ProxyResult>;
    reject?: string;
    ruri?: string;
    from?: string;
  } = {},
): Req {
  let canceled = false;
  const answers: Req['answers'] = [];
  const proxied: ProxyRequest[] = [];
  const callId = opts.callId ?? `call-${++seq}@test`;
  return {
    method: opts.method ?? 'INVITE',
    callId,
    sourceAddress: opts.source ?? '192.0.2.10',
    sourcePort: opts.port ?? 5060,
    protocol: opts.protocol ?? 'udp',
    get canceled() {
      return canceled;
    },
    cancel: () => (canceled = true),
    header: (name) => opts.headers?.[name],
    fromTag: () => opts.fromTag ?? `tag-${callId}`,
    toTag: () => opts.toTag,
    credentials: () => opts.credentials,
    toUri: () => 'sip:alice@example.com',
    requestUri: () => opts.ruri ?? 'sip:1000@cluster.example.com',
    fromUri: () => opts.from ?? 'sip:bob@carrier.example.net',
    respond: (status, reason, headers = {}) => void answers.push({ status, reason, headers }),
    proxy: (p) => {
      proxied.push(p);
      // srf rejects with drachtio-server's NOK reason, a plain string.
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
      if (opts.reject !== undefined) return Promise.reject(opts.reject);
      return Promise.resolve(opts.result?.() ?? connected());
    },
    answers,
    proxied,
  };
}

function connected(): ProxyResult {
  return {
    connected: true,
    finalStatus: 200,
    responses: [{ address: '127.0.0.1', port: 5081, status: 200 }],
    contact: 'sip:x@127.0.0.1:5081',
    challenge: undefined,
  };
}

const settings: RouterSettings = {
  maxTargets: 3,
  recordRoute: false,
  provisionalTimeoutMs: 2000,
  finalTimeoutMs: 30_000,
  retryAfterSec: 5,
  affinityHeader: 'X-Fslb-Affinity',
  affinityFrom: 'trusted',
  fromNodes: 'reject',
  viewMaxAgeMs: 30_000,
  callLog: 'all',
  balance: 'least-loaded',
  reservations: true,
};

const limits: SourceLimitSettings = {
  perSourcePerSec: 1,
  burst: 2,
  registerPerSourcePerSec: 1,
  registerBurst: 1,
  trusted: ['203.0.113.0/24'],
  trustedPerSourcePerSec: 1,
  trustedBurst: 5,
};

function setup(
  t: TestContext,
  o: {
    settings?: Partial<RouterSettings>;
    limits?: Partial<SourceLimitSettings>;
    acl?: string[];
    maxCps?: number;
    cpsBurst?: number;
    nodes?: NodeRecord[];
    routing?: { pools?: PoolConfig[]; routes?: RouteConfig[]; limits?: LimitConfig[] };
    isProbe?: (callId: string) => boolean;
  } = {},
) {
  const lines: Record<string, unknown>[] = [];
  const log = pino(
    { level: 'info' },
    { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) },
  );
  const view = viewOf(o.nodes ?? [rec('fs1', 5081), rec('fs2', 5082), rec('fs3', 5083)]);
  const ledger = new Ledger();
  const metrics = new ProxyMetrics();
  const pools = o.routing?.pools ?? [{ id: 'default', nodes: view.nodes.map((n) => n.id) }];
  const routes = new RouteTable({
    pools,
    routes: o.routing?.routes ?? [{ id: 'route-0', pools: pools.map((p) => p.id), limits: [] }],
    limits: o.routing?.limits ?? [],
  });
  const router = new Router({
    view,
    accounting: ledger.asAccounting(),
    settings: { ...settings, ...o.settings },
    routes,
    acl: new SourceAcl(o.acl ?? ['0.0.0.0/0', '::/0']),
    limits: new SourceLimits({ ...limits, ...o.limits }),
    cps: new TokenBucket(o.maxCps ?? 1000, o.cpsBurst ?? 1000, performance.now()),
    metrics,
    log,
    random: () => 0,
    ...(o.isProbe ? { isProbe: o.isProbe } : {}),
  });
  t.after(() => router.close());
  const refusals = async (reason: string) =>
    (await metrics.refusals.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
  return { router, view, ledger, metrics, lines, refusals };
}

/** Lets the router's promise chain run to its end. */
const settle = () => new Promise((r) => setImmediate(r));

describe('Router admission', () => {
  it('checks the per-source limit before the replica-wide budget: a flood spends only its own tokens', async (t) => {
    // Replica budget of 3 INVITEs, no refill in the test's time; the flooder may send 2.
    const { router, ledger, refusals } = setup(t, { maxCps: 0.001, cpsBurst: 3 });
    const flood = Array.from({ length: 50 }, () => request({ source: '198.51.100.66' }));
    for (const r of flood) router.handle(r);
    const other = request({ source: '192.0.2.20' });
    router.handle(other);
    await settle();
    assert.equal(flood.filter((r) => r.proxied.length === 1).length, 2, 'the flood gets its own rate');
    assert.ok(flood.slice(2).every((r) => r.answers[0]?.reason === 'Rate Limit Exceeded'));
    assert.equal(other.proxied.length, 1, 'the other source still has the replica budget');
    assert.equal(ledger.reserved.length, 3);
    assert.equal(await refusals('rate-limited'), 48);
    // The replica budget is now spent: the next caller, within its own rate, is shed.
    const late = request({ source: '192.0.2.21' });
    router.handle(late);
    await settle();
    assert.deepEqual(late.answers[0], { status: 503, reason: 'Overloaded', headers: { 'Retry-After': '5' } });
    assert.equal(await refusals('overloaded'), 1);
  });

  it('refuses outside the ACL with 403 before anything else, OPTIONS included', async (t) => {
    const { router, ledger, refusals } = setup(t, { acl: ['10.0.0.0/8'] });
    const invite = request({ source: '192.0.2.9' });
    const options = request({ method: 'OPTIONS', source: '192.0.2.9' });
    const inside = request({ method: 'OPTIONS', source: '10.1.1.1' });
    for (const r of [invite, options, inside]) router.handle(r);
    await settle();
    assert.equal(invite.answers[0]?.status, 403);
    assert.equal(options.answers[0]?.status, 403);
    assert.equal(inside.answers[0]?.status, 200);
    assert.equal(ledger.reserved.length, 0);
    assert.equal(await refusals('forbidden'), 2);
  });

  it("answers the proxy's own queue probe 200 at once, outside the ACL and the limits, and counts nothing", async (t) => {
    const { router, metrics, refusals } = setup(t, {
      acl: ['10.0.0.0/8'],
      limits: { perSourcePerSec: 0.001, burst: 1 },
      isProbe: (callId) => callId.startsWith('probe-secret-'),
    });
    const probes = [1, 2, 3].map((i) =>
      request({ method: 'OPTIONS', source: '127.0.0.1', callId: `probe-secret-${i}` }),
    );
    const other = request({ method: 'OPTIONS', source: '127.0.0.1', callId: 'probe-guess-1' });
    for (const r of [...probes, other]) router.handle(r);
    await settle();
    assert.deepEqual(
      probes.map((r) => r.answers),
      probes.map(() => [{ status: 200, reason: 'OK', headers: {} }]),
    );
    assert.equal(other.answers[0]?.status, 403, 'an OPTIONS without the secret is admitted as any other');
    assert.equal(await refusals('forbidden'), 1);
    const counted = (await metrics.requests.get()).values.reduce((n, v) => n + v.value, 0);
    assert.equal(counted, 1, 'only the OPTIONS that was not a probe is counted');
  });

  it('counts REGISTER, SUBSCRIBE and OPTIONS against a budget of their own, not the INVITE one', async (t) => {
    const { router } = setup(t);
    const options = [request({ method: 'OPTIONS' }), request({ method: 'OPTIONS' })];
    for (const r of options) router.handle(r);
    const invites = [request(), request()];
    for (const r of invites) router.handle(r);
    await settle();
    assert.deepEqual(
      options.map((r) => r.answers[0]?.status),
      [200, 503],
    );
    assert.equal(options[1]?.answers[0]?.reason, 'Rate Limit Exceeded');
    assert.deepEqual(
      invites.map((r) => r.proxied.length),
      [1, 1],
    );
  });

  it('gives trusted sources a limit of their own', async (t) => {
    const { router } = setup(t);
    const sbc = Array.from({ length: 6 }, () => request({ source: '203.0.113.5' }));
    for (const r of sbc) router.handle(r);
    await settle();
    assert.equal(sbc.filter((r) => r.proxied.length === 1).length, 5, 'trustedBurst, not burst');
  });

  it('answers an INVITE with a To tag 481 without taking a slot', async (t) => {
    const { router, ledger, refusals } = setup(t);
    const r = request({ toTag: 'abc' });
    router.handle(r);
    await settle();
    assert.deepEqual(r.answers[0], { status: 481, reason: 'Call/Transaction Does Not Exist', headers: {} });
    assert.equal(ledger.reserved.length, 0);
    assert.equal(await refusals('in-dialog'), 1);
  });

  it("answers 482 to an INVITE from a node's own SIP address, unless fromNodes is route", async (t) => {
    const { router, ledger, lines, refusals } = setup(t, { limits: { burst: 10 } });
    const loops = [1, 2, 3].map(() => request({ source: '127.0.0.1', port: 5082 }));
    const samePortOtherHost = request({ source: '127.0.0.2', port: 5082 });
    const sameHostOtherPort = request({ source: '127.0.0.1', port: 5999 });
    for (const r of [...loops, samePortOtherHost, sameHostOtherPort]) router.handle(r);
    await settle();
    for (const r of loops)
      assert.deepEqual(r.answers[0], { status: 482, reason: 'Loop Detected', headers: {} });
    assert.equal(samePortOtherHost.proxied.length, 1);
    assert.equal(sameHostOtherPort.proxied.length, 1);
    assert.equal(ledger.reserved.length, 2);
    assert.equal(await refusals('loop'), 3);
    const logged = lines.filter((l) => l.reason === 'loop');
    assert.equal(logged.length, 1, 'one line per node per window');
    assert.equal(logged[0]?.nodeId, 'fs2');

    const allowed = setup(t, { settings: { fromNodes: 'route' } });
    const r = request({ source: '127.0.0.1', port: 5082 });
    allowed.router.handle(r);
    await settle();
    assert.equal(r.proxied.length, 1);
  });

  it('matches a node over TCP by its address alone', async (t) => {
    const { router } = setup(t);
    const r = request({ source: '127.0.0.1', port: 40000, protocol: 'tcp' });
    router.handle(r);
    await settle();
    assert.equal(r.answers[0]?.status, 482);
  });

  it('logs refusals sampled: one line per source per window, then one summary', async (t) => {
    const { router, lines } = setup(t);
    for (let i = 0; i < 200; i++) router.handle(request({ source: '198.51.100.66' }));
    for (let i = 0; i < 5; i++) router.handle(request({ source: '198.51.100.67' }));
    await settle();
    const limited = lines.filter((l) => l.reason === 'rate-limited');
    assert.deepEqual(
      limited.map((l) => l.source),
      ['198.51.100.66', '198.51.100.67'],
    );
    router.close();
    const summary = lines.find((l) => l.suppressed !== undefined);
    assert.ok(summary, 'a summary line');
    assert.equal(summary.suppressed, 198 - 1 + (5 - 2 - 1));
    assert.deepEqual(summary.reasons, { 'rate-limited': 199 });
    assert.equal(
      lines.filter((l) => l.msg === 'request routed').length,
      4,
      'outcome lines only for routed calls',
    );
  });

  it('honours the affinity header from trusted sources only, by default', async (t) => {
    const { router, ledger, view } = setup(t, {
      nodes: [rec('fs1', 5081, { sessions: 9 }), rec('fs2', 5082)],
    });
    // A conference key that rendezvous hashing puts on fs1, the busier node: least-loaded picks fs2.
    const opts = { maxTargets: 2, random: () => 0 };
    const key = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].find(
      (k) => selectWithAffinity(view.nodes, `conf-${k}`, opts)[0]?.id === 'fs1',
    );
    assert.ok(key, 'a key that hashes to fs1');
    const pinned = (source: string) => request({ source, headers: { 'X-Fslb-Affinity': `conf-${key}` } });
    for (let i = 0; i < 3; i++) router.handle(pinned('203.0.113.5'));
    router.handle(pinned('192.0.2.44'));
    await settle();
    assert.deepEqual(
      ledger.reserved.map((r) => r.candidates[0]),
      ['fs1', 'fs1', 'fs1', 'fs2'],
    );
  });
});

describe('Router outcome lines', () => {
  const failedResult = (): ProxyResult => ({
    connected: false,
    finalStatus: 503,
    responses: [{ address: '127.0.0.1', port: 5081, status: 503 }],
    contact: undefined,
    challenge: undefined,
  });
  const routedLines = (lines: Record<string, unknown>[]) => lines.filter((l) => l.msg === 'request routed');
  const counted = async (metrics: ProxyMetrics, outcome: string) =>
    (await metrics.requests.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;

  it('writes a line for each request that did not connect, and counts connected calls only (log.calls failed)', async (t) => {
    const { router, lines, metrics } = setup(t, { settings: { callLog: 'failed' } });
    router.handle(request());
    router.handle(request({ result: failedResult }));
    await settle();
    assert.deepEqual(
      routedLines(lines).map((l) => [l.outcome, l.status]),
      [['failed', 503]],
    );
    assert.equal(await counted(metrics, 'connected'), 1);
    assert.equal(await counted(metrics, 'failed'), 1);
  });

  it('writes a line for every routed request with log.calls all, and none with none', async (t) => {
    const all = setup(t, { settings: { callLog: 'all' } });
    all.router.handle(request());
    all.router.handle(request({ result: failedResult }));
    await settle();
    assert.deepEqual(
      routedLines(all.lines).map((l) => l.outcome),
      ['connected', 'failed'],
    );

    const none = setup(t, { settings: { callLog: 'none' } });
    none.router.handle(request());
    none.router.handle(request({ result: failedResult }));
    await settle();
    assert.equal(routedLines(none.lines).length, 0);
    assert.equal(await counted(none.metrics, 'failed'), 1, 'still counted');
  });

  it("is 'failed' unless the configuration says otherwise", () => {
    assert.equal(parseConfig({ redis: { url: 'redis://127.0.0.1:6379' } }, {}).log.calls, 'failed');
    assert.equal(
      parseConfig({ redis: { url: 'redis://127.0.0.1:6379' }, log: { calls: 'all' } }, {}).log.calls,
      'all',
    );
    assert.throws(() =>
      parseConfig({ redis: { url: 'redis://127.0.0.1:6379' }, log: { calls: 'some' } }, {}),
    );
  });
});

describe('Router faults', () => {
  it('answers 500 and hands the slot back when the request path throws', async (t) => {
    const { router, ledger, refusals } = setup(t);
    const r = request();
    r.header = () => {
      throw new Error('boom');
    };
    // Trusted, so that the affinity header is read and throws after admission.
    Object.assign(r, { sourceAddress: '203.0.113.5' });
    router.handle(r);
    await settle();
    assert.equal(r.answers[0]?.status, 500);
    assert.equal(await refusals('error'), 1);

    const late = request({ result: () => Promise.reject(new Error('kaput')) });
    late.proxy = () => {
      throw new Error('thrown synchronously');
    };
    router.handle(late);
    await settle();
    assert.equal(ledger.reserved.length, 1);
    assert.equal(ledger.released.length, 1, 'its slot handed back');
  });
});

describe('Router and CANCEL', () => {
  it('ends the slot at once and calls the outcome cancelled when the CANCEL came during the reservation', async (t) => {
    const { router, ledger, lines, metrics } = setup(t);
    ledger.hold = () => undefined;
    const r = request();
    router.handle(r);
    await settle();
    r.cancel();
    ledger.hold();
    await settle();
    assert.equal(r.proxied.length, 0, 'not proxied');
    assert.equal(ledger.released.length, 1);
    assert.equal(lines.find((l) => l.msg === 'request routed')?.outcome, 'cancelled');
    const counted = (await metrics.requests.get()).values.find((v) => v.labels.outcome === 'cancelled');
    assert.equal(counted?.value, 1);
  });

  it("calls a proxy that drachtio-server refused after the caller's CANCEL cancelled, not error", async (t) => {
    const { router, ledger, lines } = setup(t);
    const r = request({ reject: 'Unknown transaction id' });
    const proxy = r.proxy.bind(r);
    r.proxy = (p) => {
      r.cancel();
      return proxy(p);
    };
    router.handle(r);
    await settle();
    assert.equal(ledger.released.length, 1);
    assert.equal(lines.find((l) => l.msg === 'request routed')?.outcome, 'cancelled');
    assert.equal(lines.filter((l) => l.msg === 'drachtio-server refused to proxy').length, 0);
  });
});

describe('Router and digest challenges', () => {
  const challenge = { realm: 'example.com', nonce: 'n-1' };
  const challenged = (address = '127.0.0.1'): ProxyResult => ({
    connected: false,
    finalStatus: 401,
    responses: [{ address, port: 5081, status: 401 }],
    contact: undefined,
    challenge,
  });

  it("keeps the slot on the challenger and counts the retry there, in the first slot's place", async (t) => {
    const { router, ledger, lines, view } = setup(t, {
      nodes: [rec('fs1', 5081), rec('fs2', 5082, { sessions: 5 })],
    });
    const first = request({ fromTag: 'ft', callId: 'c1@x', result: () => challenged() });
    router.handle(first);
    await settle();
    assert.equal(first.proxied[0]?.destinations[0], 'sip:127.0.0.1:5081');
    assert.equal(ledger.released.length, 0, 'the slot is kept through the challenge');
    assert.equal(router.challenges, 1);
    const line = lines.find((l) => l.callId === 'c1@x');
    assert.equal(line?.outcome, 'challenged');
    assert.equal(line.node, 'fs1');

    // fs1 is now the busier node: a new call would go to fs2, but drachtio-server sends the
    // retry to fs1 whatever the app says, so fslb reserves it there and names fs1 alone.
    view.get('fs1')?.setLoad(9, 0, Number.MAX_SAFE_INTEGER);
    const retry = request({ fromTag: 'ft', callId: 'c1@x', credentials: challenge });
    router.handle(retry);
    await settle();
    const second = ledger.reserved[1];
    assert.deepEqual(
      second && { call: second.call, candidates: second.candidates, failovers: second.failovers },
      { call: 'c1@x;ft', candidates: ['fs1'], failovers: 0 },
    );
    assert.deepEqual(retry.proxied[0]?.destinations, ['sip:127.0.0.1:5081']);
    assert.equal(ledger.released.length, 0, 'the script took the kept slot over: nothing to hand back');
    assert.equal(router.challenges, 0);
    const retryLine = lines.filter((l) => l.callId === 'c1@x')[1];
    assert.equal(retryLine?.retryOf, 'fs1');
    assert.equal(retryLine.answeredBy, 'fs1');
  });

  it('answers 503 when the challenger can no longer take the retry, and ends the kept slot', async (t) => {
    const { router, ledger } = setup(t, { nodes: [rec('fs1', 5081), rec('fs2', 5082)] });
    router.handle(request({ fromTag: 'ft', callId: 'c2@x', result: () => challenged() }));
    await settle();
    ledger.full = true;
    const retry = request({ fromTag: 'ft', callId: 'c2@x', credentials: challenge });
    router.handle(retry);
    await settle();
    assert.equal(retry.answers[0]?.status, 503);
    assert.equal(retry.proxied.length, 0);
    assert.equal(ledger.released.length, 1);
  });

  it('routes credentials it holds no challenge for as a new call', async (t) => {
    const { router, ledger } = setup(t);
    const r = request({ credentials: { realm: 'example.com', nonce: 'unknown' } });
    router.handle(r);
    await settle();
    assert.equal(ledger.reserved[0]?.candidates.length, 3);
    assert.equal(r.proxied.length, 1);
  });

  it('ends the kept slot when no retry comes before drachtio-server forgets the challenge', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    const { router, ledger } = setup(t);
    router.handle(request({ result: () => challenged() }));
    await settle();
    assert.equal(router.challenges, 1);
    const realNow = performance.now.bind(performance);
    t.mock.method(performance, 'now', () => realNow() + 3000);
    t.mock.timers.tick(250);
    assert.equal(router.challenges, 0);
    assert.equal(ledger.released.length, 1);
  });

  it('names the challenger from the responses: the first target at its address from the right position', () => {
    const view = viewOf([rec('a', 5081), { ...rec('b', 5082), sip: '10.0.0.2:5060' }, rec('c', 5083)]);
    const node = (id: string): ViewNode => view.get(id) ?? assert.fail(id);
    const [a, b, c] = [node('a'), node('b'), node('c')];
    const result = (responses: ProxyResult['responses']): ProxyResult => ({
      connected: false,
      finalStatus: 407,
      responses,
      contact: undefined,
      challenge,
    });
    // a answered 503, b (another host) challenged.
    const r1 = result([
      { address: '127.0.0.1', port: 5081, status: 503 },
      { address: '10.0.0.2', port: 5081, status: 407 },
    ]);
    assert.equal(challengerOf(r1, [a, b, c]), b);
    // a was silent, c challenged: the 407 is the first response, from 127.0.0.1, and b is elsewhere.
    assert.equal(challengerOf(result([{ address: '127.0.0.1', port: 5081, status: 407 }]), [a, b, c]), a);
    assert.equal(challengerOf(result([{ address: '127.0.0.1', port: 5081, status: 407 }]), [b, c]), c);
    assert.equal(challengerOf(result([]), [a]), undefined);
  });
});

describe('Router with pools, routes and limits', () => {
  const nodes = [rec('fs1', 5081), rec('fs2', 5082), rec('fs3', 5083)];
  const routing = {
    pools: [
      { id: 'pstn', nodes: ['fs1', 'fs2'] },
      { id: 'conf', nodes: ['fs3'] },
    ],
    routes: [
      { id: 'conference', match: { ruriUser: '^8' }, pools: ['conf', 'pstn'], limits: [] },
      { id: 'blocked', match: { fromHost: '^bad\\.example$' }, reject: { status: 403 }, limits: [] },
      { id: 'tenant', match: { header: { name: 'X-Tenant' } }, pools: ['pstn'], limits: ['tenant'] },
      { id: 'rest', match: { method: ['INVITE' as const] }, pools: ['pstn'], limits: [] },
    ],
    limits: [
      {
        id: 'tenant',
        key: { header: 'X-Tenant' },
        maxCalls: 4,
        status: 503,
        whenRedisDown: 'refuse' as const,
      },
    ],
  };

  it('offers the pools of the matching route in order, each candidate with its pool place', async (t) => {
    const { router, ledger } = setup(t, { nodes, routing });
    router.handle(request({ ruri: 'sip:8001@cluster.example.com' }));
    router.handle(request({ ruri: 'sip:1001@cluster.example.com' }));
    await settle();
    const [conf, rest] = ledger.reserved;
    assert.deepEqual(
      [conf?.candidates, conf?.opts.groups],
      [
        ['fs3', 'fs1', 'fs2'],
        [1, 2, 2],
      ],
    );
    assert.deepEqual(
      [rest?.candidates.sort(), rest?.opts.groups],
      [
        ['fs1', 'fs2'],
        [1, 1],
      ],
    );
  });

  it('answers a reject route with its status, and a request no route matches with 404, taking nothing', async (t) => {
    const { router, ledger, metrics } = setup(t, { nodes, routing });
    const blocked = request({ from: 'sip:x@bad.example' });
    const register = request({ method: 'REGISTER' });
    router.handle(blocked);
    router.handle(register);
    await settle();
    assert.deepEqual(
      [blocked.answers[0]?.status, blocked.answers[0]?.reason, register.answers[0]?.status],
      [403, 'Forbidden', 404],
    );
    assert.equal(ledger.reserved.length, 0);
    const refused = (await metrics.routeRefusals.get()).values.map((v) => [v.labels.route, v.value]);
    assert.deepEqual(refused.sort(), [
      ['blocked', 1],
      ['none', 1],
    ]);
  });

  it('counts a tenant call on its limit, tells the node in a header, and answers over the limit with a Reason naming it', async (t) => {
    const { router, ledger, metrics } = setup(t, { nodes, routing });
    const ok = request({ headers: { 'X-Tenant': 'acme corp' } });
    router.handle(ok);
    await settle();
    assert.deepEqual(
      ledger.reserved[0]?.opts.limits?.map((u) => u.entry),
      ['tenant:acme%20corp'],
    );
    assert.deepEqual(ok.proxied[0]?.headers, { 'X-Fslb-Limits': 'tenant:acme%20corp' });

    ledger.overLimit = 'maxCalls';
    const over = request({ headers: { 'X-Tenant': 'acme corp' } });
    router.handle(over);
    await settle();
    assert.equal(over.proxied.length, 0);
    assert.equal(over.answers[0]?.status, 503);
    const answer = over.answers[0];
    assert.ok(answer);
    assert.deepEqual(answer.headers, {
      Reason: 'SIP;cause=503;text="limit tenant maxCalls"',
      'Retry-After': '5',
    });
    const refused = (await metrics.limitRefusals.get()).values.map((v) => [
      v.labels.limit,
      v.labels.kind,
      v.value,
    ]);
    assert.deepEqual(refused, [['tenant', 'maxCalls', 1]]);
  });

  it("refuses an INVITE from outside that carries fslb's own limits header, before anything is counted", async (t) => {
    const { router, ledger, refusals } = setup(t, { nodes, routing });
    const forged = request({ headers: { 'X-Tenant': 'acme', 'X-Fslb-Limits': 'tenant:globex' } });
    router.handle(forged);
    await settle();
    assert.deepEqual([forged.answers[0]?.status, forged.proxied.length, ledger.reserved.length], [403, 0, 0]);
    assert.equal(await refusals('own-header'), 1);
  });

  it('hands a failed tenant call back with its limit entries', async (t) => {
    const { router, ledger } = setup(t, { nodes, routing });
    const failed = request({
      headers: { 'X-Tenant': 'acme' },
      result: () => ({
        connected: false,
        finalStatus: 486,
        responses: [{ address: '127.0.0.1', port: 5081, status: 486 }],
        contact: undefined,
        challenge: undefined,
      }),
    });
    router.handle(failed);
    await settle();
    assert.deepEqual(
      ledger.released.map((s) => s.limits),
      [['tenant:acme']],
    );
  });
});
