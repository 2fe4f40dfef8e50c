import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PoolNodes, RouteTable, uriParts, type RoutableRequest } from './route-table.js';

function req(
  o: Partial<{
    method: string;
    source: string;
    ruri: string;
    from: string;
    headers: Record<string, string>;
  }> = {},
): RoutableRequest {
  return {
    method: o.method ?? 'INVITE',
    sourceAddress: o.source ?? '192.0.2.1',
    header: (n) => o.headers?.[n],
    requestUri: () => o.ruri ?? 'sip:1000@Cluster.Example.com:5060;transport=udp',
    fromUri: () => o.from ?? 'sip:alice@Carrier.Example.net',
  };
}

const limits = [
  { id: 'tenant', key: { header: 'X-Tenant' }, maxCalls: 4, status: 503, whenRedisDown: 'refuse' as const },
  { id: 'trunk', key: { source: true as const }, maxCps: 5, status: 503, whenRedisDown: 'admit' as const },
  {
    id: 'domain',
    key: { ruriHost: true as const },
    maxCalls: 9,
    status: 503,
    whenRedisDown: 'admit' as const,
  },
  { id: 'all', key: 'everyone', maxCalls: 100, status: 486, whenRedisDown: 'admit' as const },
];

describe('RouteTable', () => {
  const table = new RouteTable({
    pools: [
      { id: 'pstn', nodes: ['fs1', 'fs2'] },
      { id: 'conf', nodes: ['fs3'] },
    ],
    routes: [
      { id: 'conf', match: { ruriUser: '^8' }, pools: ['conf', 'pstn'], limits: ['all'] },
      {
        id: 'carrier',
        match: { source: ['10.0.0.0/8'], fromHost: 'carrier\\.example\\.net$' },
        pools: ['pstn'],
        limits: ['trunk', 'domain'],
      },
      {
        id: 'tenant',
        match: { header: { name: 'X-Tenant', value: '^[a-z]+$' } },
        pools: ['pstn'],
        limits: ['tenant'],
      },
      { id: 'subs', match: { method: ['SUBSCRIBE' as const] }, reject: { status: 489 }, limits: [] },
      { id: 'rest', match: { ruriHost: '^cluster\\.example\\.com$' }, pools: ['pstn'], limits: [] },
    ],
    limits,
  });

  it('takes the first route that matches, with every condition of it', () => {
    assert.deepEqual(table.decide(req({ ruri: 'sip:8001@x' })), {
      kind: 'route',
      route: 'conf',
      pools: ['conf', 'pstn'],
      limits: [{ limit: limits[3], entry: 'all:everyone' }],
    });
    const carrier = table.decide(req({ source: '10.1.2.3' }));
    assert.equal(carrier.kind === 'route' && carrier.route, 'carrier');
    assert.deepEqual(carrier.kind === 'route' && carrier.limits.map((u) => u.entry), [
      'trunk:10.1.2.3',
      'domain:cluster.example.com',
    ]);
    // From another host the carrier route does not match, whatever the source.
    const other = table.decide(req({ source: '10.1.2.3', from: 'sip:a@elsewhere' }));
    assert.equal(other.kind === 'route' && other.route, 'rest');
    // A header value that fails the route's regex does not match it.
    assert.equal(table.decide(req({ headers: { 'X-Tenant': 'ACME' } })).kind === 'route', true);
    const tenant = table.decide(req({ headers: { 'X-Tenant': 'acme' } }));
    assert.equal(tenant.kind === 'route' && tenant.route, 'tenant');
    assert.deepEqual(tenant.kind === 'route' && tenant.limits.map((u) => u.entry), ['tenant:acme']);
  });

  it('rejects with the route status and a default reason, and says none when nothing matches', () => {
    assert.deepEqual(table.decide(req({ method: 'SUBSCRIBE' })), {
      kind: 'reject',
      route: 'subs',
      status: 489,
      reason: 'Rejected',
    });
    assert.deepEqual(table.decide(req({ ruri: 'sip:1@other.example' })), { kind: 'none' });
  });

  it('counts limits only for INVITEs', () => {
    const r = table.decide(req({ method: 'REGISTER', ruri: 'sip:8001@x' }));
    assert.deepEqual(r.kind === 'route' && r.limits, []);
  });

  it('splits the view by pool, again only when the node list changes', () => {
    const pools = new PoolNodes<{ id: string }>(table);
    const nodes = [{ id: 'fs1' }, { id: 'fs3' }, { id: 'fs9' }, { id: 'fs2' }];
    assert.deepEqual(
      pools.get('pstn', nodes).map((n) => n.id),
      ['fs1', 'fs2'],
    );
    const first = pools.get('pstn', nodes);
    assert.equal(pools.get('pstn', nodes), first);
    assert.deepEqual(
      pools.get('conf', [{ id: 'fs3' }]).map((n) => n.id),
      ['fs3'],
    );
    assert.deepEqual(pools.get('nowhere', nodes), []);
  });
});

describe('uriParts', () => {
  it('reads the user and host of sip, sips and tel URIs', () => {
    assert.deepEqual(uriParts('sip:+15551234@Gw.Example.com:5060;user=phone'), {
      user: '+15551234',
      host: 'gw.example.com',
    });
    assert.deepEqual(uriParts('<sips:alice@[2001:db8::1]:5061>'), { user: 'alice', host: '2001:db8::1' });
    assert.deepEqual(uriParts('sip:example.com'), { user: '', host: 'example.com' });
    assert.deepEqual(uriParts('tel:+15551234;phone-context=x'), { user: '+15551234', host: '' });
    assert.deepEqual(uriParts('garbage'), { user: '', host: '' });
  });
});
