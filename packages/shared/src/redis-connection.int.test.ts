import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { startRedis, type TestRedis } from '../../../test/support/redis.js';
import { waitFor } from '../../../test/support/wait.js';
import { parseConfig } from './config/load-config.js';
import { createLogger } from './logger.js';
import { reconnectDelay, RedisConnections } from './redis-connection.js';
import { captureLogger } from '../../../test/support/log-capture.js';

const silent = createLogger({ level: 'silent' });

describe('redis connections', () => {
  let server: TestRedis;
  before(async () => {
    server = await startRedis();
  });
  after(() => server.close());

  it('connects, and opens a separate subscriber that receives publishes', async () => {
    const cfg = parseConfig({ redis: { url: server.url } }, {});
    const conns = new RedisConnections(cfg.redis, { name: 'test', log: silent });
    await conns.connect();
    assert.equal(await conns.client.ping(), 'PONG');
    const sub = conns.subscriber;
    assert.notEqual(sub, conns.client);
    await sub.subscribe('chan');
    const got = once(sub, 'message');
    await conns.client.publish('chan', 'hi');
    assert.deepEqual(await got, ['chan', 'hi']);
    assert.equal(await conns.client.client('GETNAME'), 'test');
    await conns.close();
  });

  it(
    'reconnects by itself after the server restarts',
    { skip: !process.env.REDIS_URL ? false : 'REDIS_URL names a server this test cannot restart' },
    async () => {
      const cfg = parseConfig({ redis: { url: server.url, maxRetryDelayMs: 100 } }, {});
      const conns = new RedisConnections(cfg.redis, { name: 'restart', log: silent });
      await conns.connect();
      await conns.client.set('k', 'v');
      await server.kill();
      await waitFor('the client to notice', () => conns.client.status !== 'ready');
      await server.restart();
      await waitFor('ready again', () => conns.client.status === 'ready', { timeoutMs: 10_000 });
      assert.equal(await conns.client.ping(), 'PONG');
      // A fresh server (nothing persisted): the key is gone, which proves it really restarted.
      assert.equal(await conns.client.get('k'), null);
      await conns.close();
    },
  );

  it('close is idempotent and ends both connections', async () => {
    const cfg = parseConfig({ redis: { url: server.url } }, {});
    const conns = new RedisConnections(cfg.redis, { name: 'close', log: silent });
    await conns.connect();
    const sub = conns.subscriber;
    await sub.subscribe('x');
    const a = conns.close();
    const b = conns.close();
    assert.equal(a, b);
    await a;
    assert.equal(conns.client.status, 'end');
    await waitFor('subscriber end', () => sub.status === 'end');
    assert.throws(() => conns.subscriber, /closed/);
  });

  it('logs a failing connection without its password', async () => {
    const { log, text } = captureLogger('debug');
    // Nothing listens on port 1: every attempt fails.
    const cfg = parseConfig({ redis: { url: 'redis://fslb:hunter2@127.0.0.1:1', maxRetryDelayMs: 50 } }, {});
    const conns = new RedisConnections(cfg.redis, { name: 'fail', log });
    await assert.rejects(conns.connect());
    await waitFor('an error line', () => text().includes('redis connection error'));
    await conns.close();
    assert.ok(!text().includes('hunter2'), text());
    assert.ok(text().includes('127.0.0.1:1'));
  });

  it('backs off with a cap and jitter', () => {
    assert.equal(
      reconnectDelay(1, 2000, () => 0),
      50,
    );
    assert.equal(
      reconnectDelay(1, 2000, () => 1),
      100,
    );
    assert.equal(
      reconnectDelay(30, 2000, () => 1),
      2000,
    );
    assert.ok(reconnectDelay(30, 2000, () => 0) >= 1000);
  });
});
