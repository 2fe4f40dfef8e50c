import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SourceAcl } from './acl.js';
import { SourceRateLimiter, TokenBucket } from './token-bucket.js';

describe('SourceAcl', () => {
  it('allows sources inside IPv4 and IPv6 CIDRs and refuses the rest', () => {
    const acl = new SourceAcl(['10.0.0.0/8', '192.168.1.7', '2001:db8::/32']);
    assert.equal(acl.allows('10.200.3.4'), true);
    assert.equal(acl.allows('11.0.0.1'), false);
    assert.equal(acl.allows('192.168.1.7'), true);
    assert.equal(acl.allows('192.168.1.8'), false);
    assert.equal(acl.allows('2001:db8:1::5'), true);
    assert.equal(acl.allows('2001:db9::5'), false);
    assert.equal(acl.allows('::ffff:10.1.2.3'), true);
    assert.equal(acl.allows('not an address'), false);
  });
  it('allows everything with the default any-address rules', () => {
    const acl = new SourceAcl(['0.0.0.0/0', '::/0']);
    assert.equal(acl.allows('203.0.113.9'), true);
    assert.equal(acl.allows('::1'), true);
  });
  it('matches IPv6 loopback and full-length prefixes exactly', () => {
    const acl = new SourceAcl(['::1/128', '127.0.0.0/8']);
    assert.equal(acl.allows('::1'), true);
    assert.equal(acl.allows('::2'), false);
    assert.equal(acl.allows('127.0.0.2'), true);
  });
});

describe('TokenBucket', () => {
  it('allows a burst, then the rate', () => {
    const b = new TokenBucket(10, 5, 0);
    let ok = 0;
    for (let i = 0; i < 20; i++) if (b.take(0)) ok++;
    assert.equal(ok, 5);
    assert.equal(b.take(50), false);
    assert.equal(b.take(100), true);
    assert.equal(b.take(100), false);
    assert.equal(b.idle(100_000), true);
  });
});

describe('SourceRateLimiter', () => {
  it('limits each source on its own', () => {
    const l = new SourceRateLimiter(1, 2);
    assert.deepEqual([l.take('a', 0), l.take('a', 0), l.take('a', 0)], [true, true, false]);
    assert.equal(l.take('b', 10), true);
    assert.equal(l.take('a', 1100), true);
    assert.equal(l.take('a', 1100), false);
  });
  it('forgets idle sources and never holds more than its bound', () => {
    const l = new SourceRateLimiter(100, 1, { sweepMs: 1000, maxSources: 100 });
    for (let i = 0; i < 1000; i++) l.take(`10.0.${i >> 8}.${i & 255}`, i);
    assert.ok(l.sources <= 100, String(l.sources));
  });
});
