import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { deletePrefix, startRedis, testPrefix } from './redis.js';
import { waitFor } from './wait.js';

describe('test harness: startRedis', () => {
  it('gives each caller a working server that it can kill and restart at the same address', async (t) => {
    const server = await startRedis();
    t.after(() => server.close());
    const c = new Redis(server.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
    c.on('error', () => undefined);
    t.after(() => c.disconnect());
    assert.equal(await c.ping(), 'PONG');
    if (!server.controllable) {
      t.skip(`REDIS_URL names an external server (${server.kind}); kill/restart cannot be exercised`);
      return;
    }
    await server.kill();
    await assert.rejects(c.ping());
    await server.restart();
    await waitFor('reconnect', () => c.status === 'ready', { timeoutMs: 10_000 });
    assert.equal(await c.ping(), 'PONG');
  });

  it('hands out distinct prefixes and deletes only the keys under one', async (t) => {
    const server = await startRedis();
    t.after(() => server.close());
    const c = new Redis(server.url);
    t.after(() => c.disconnect());
    const [a, b] = [testPrefix(), testPrefix()];
    assert.notEqual(a, b);
    await c.mset(`${a}:x`, 1, `${a}:y`, 2, `${b}:x`, 3);
    assert.equal(await deletePrefix(c, a), 2);
    assert.equal(await c.exists(`${a}:x`, `${a}:y`, `${b}:x`), 1);
    await deletePrefix(c, b);
  });
});
