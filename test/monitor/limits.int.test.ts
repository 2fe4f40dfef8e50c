import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ClusterKeys, LIMITS_HEADER } from '@fslb/shared';
import { FsNode, SipUac } from '@fslb/fs-sim';
import { deletePrefix, testPrefix, useRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { config, startMonitor, waitForNode } from './support.js';

/**
 * The monitor's half of cluster-wide limits: a call counts against the limit counters its INVITE
 * named from its channel's CHANNEL_CREATE to its CHANNEL_DESTROY, and the owner corrects the
 * counts from FreeSWITCH's own channel list (a lost event, a new owner, a Redis that lost them).
 */
describe('monitor: live calls counted against limits', () => {
  const r = useRedis({ before, after });

  async function scene(t: import('node:test').TestContext, maxSessions = 50) {
    const prefix = testPrefix('limits');
    const keys = new ClusterKeys(prefix);
    const node = await FsNode.start({ heartbeatMs: 60_000, maxSessions });
    const cfg = (id: string) =>
      config({
        redisUrl: r.server.url,
        prefix,
        nodes: [node],
        monitorId: id,
        monitor: { reconcileIntervalMs: 300 },
      });
    const monitor = await startMonitor(cfg('m-1'));
    const uac = await SipUac.start();
    t.after(async () => {
      await uac.close();
      await monitor.close();
      await node.close();
      await deletePrefix(r.client, prefix);
    });
    await waitForNode(r.client, keys, 'fs1', (h) => h.state === 'up', 'up');
    const target = { host: '127.0.0.1', port: node.sipPort };
    const call = async (entries: string | undefined) => {
      const c = uac.invite(target, entries ? { headers: [`${LIMITS_HEADER}: ${entries}`] } : {});
      assert.equal((await c.final()).status, 200);
      return c;
    };
    const members = (entry: string) => r.client.zrange(keys.limit(entry), 0, -1, 'WITHSCORES');
    const count = async (entry: string) => await r.client.zcard(keys.limit(entry));
    return { keys, node, monitor, uac, call, members, count, cfg };
  }

  it('counts a call from CHANNEL_CREATE to CHANNEL_DESTROY, live (`inf`), on every counter it names', async (t) => {
    const s = await scene(t);
    const a = await s.call('tenant:acme trunk:t1');
    const b = await s.call('tenant:acme');
    await s.call(undefined);
    await waitFor('two live calls on tenant:acme', async () => (await s.count('tenant:acme')) === 2);
    const m = await s.members('tenant:acme');
    assert.deepEqual([m[1], m[3]], ['inf', 'inf']);
    assert.equal(await s.count('trunk:t1'), 1);
    assert.equal(await r.client.hlen(s.keys.live('fs1')), 2);

    await a.bye();
    await waitFor('one left', async () => (await s.count('tenant:acme')) === 1);
    assert.equal(await s.count('trunk:t1'), 0);
    await b.bye();
    await waitFor('none left', async () => (await s.count('tenant:acme')) === 0);
    assert.equal(await r.client.exists(s.keys.live('fs1')), 0);
  });

  it('corrects a lost CHANNEL_DESTROY at the next reconcile', async (t) => {
    const s = await scene(t);
    const a = await s.call('tenant:lost');
    await s.call('tenant:lost');
    await waitFor('two counted', async () => (await s.count('tenant:lost')) === 2);
    s.node.loseEvents('CHANNEL_DESTROY', 1);
    await a.bye();
    assert.equal(s.node.sessions, 1);
    // The event never came; FreeSWITCH's list no longer holds the channel.
    await waitFor('the ended call no longer counts', async () => (await s.count('tenant:lost')) === 1, {
      timeoutMs: 6000,
    });
  });

  it('rebuilds the counts from FreeSWITCH when Redis comes back empty, and a new owner keeps them', async (t) => {
    const s = await scene(t);
    await s.call('tenant:kept');
    await s.call('tenant:kept');
    await waitFor('two counted', async () => (await s.count('tenant:kept')) === 2);
    await r.client.flushall();
    await waitFor('counts rebuilt', async () => (await s.count('tenant:kept')) === 2, { timeoutMs: 8000 });
    assert.deepEqual(
      (await s.members('tenant:kept')).filter((_, i) => i % 2 === 1),
      ['inf', 'inf'],
    );

    // Another monitor takes the node over; the count never drops while it does.
    const other = await startMonitor(s.cfg('m-2'));
    t.after(() => other.close());
    await s.monitor.close();
    const seen: number[] = [];
    await waitFor(
      'the new owner holds the node',
      async () => {
        seen.push(await s.count('tenant:kept'));
        return (await r.client.hget(s.keys.node('fs1'), 'owner')) === 'm-2';
      },
      { timeoutMs: 8000 },
    );
    await waitFor('the new owner reconciled', async () => (await r.client.hlen(s.keys.live('fs1'))) === 2);
    assert.ok(
      seen.every((n) => n === 2),
      seen.join(','),
    );
  });

  it('stops counting the calls of a node that crashed', async (t) => {
    const s = await scene(t);
    await s.call('tenant:crash');
    await waitFor('counted', async () => (await s.count('tenant:crash')) === 1);
    await s.node.crash();
    await waitFor('no longer counted', async () => (await s.count('tenant:crash')) === 0, {
      timeoutMs: 6000,
    });
  });

  it('reads the channels again after a connection that died with a reconcile under way', async (t) => {
    const s = await scene(t);
    const a = await s.call('tenant:again');
    await s.call('tenant:again');
    await waitFor('two counted', async () => (await s.count('tenant:again')) === 2);
    // A stalled node answers nothing: the reconcile started every 300 ms is still waiting for
    // FreeSWITCH's list when the probe times out and ends the connection.
    s.node.stall();
    await waitForNode(r.client, s.keys, 'fs1', (h) => h.state === 'down', 'down', 6000);
    s.node.unstall();
    await waitForNode(r.client, s.keys, 'fs1', (h) => h.state === 'up', 'up again', 6000);
    // Counted again from FreeSWITCH's list on the new connection, and corrected by later reads.
    await waitFor('counted again', async () => (await s.count('tenant:again')) === 2, { timeoutMs: 6000 });
    s.node.loseEvents('CHANNEL_DESTROY', 1);
    await a.bye();
    await waitFor('the ended call no longer counts', async () => (await s.count('tenant:again')) === 1, {
      timeoutMs: 6000,
    });
  });

  it('a new owner reads every channel it had no event for, a few at a time', async (t) => {
    const s = await scene(t, 200);
    const calls = await Promise.all(Array.from({ length: 120 }, () => s.call('tenant:many')));
    // Setup, not the point: 120 channels through the simulator's SIP stack take a second or two,
    // and took over 5 s once on a busy CI machine.
    await waitFor('all counted', async () => (await s.count('tenant:many')) === 120, { timeoutMs: 15_000 });
    // The owner goes, and Redis forgets the counter: the next owner has only FreeSWITCH to ask.
    await s.monitor.close();
    await r.client.del(s.keys.limit('tenant:many'), s.keys.live('fs1'));
    const next = await startMonitor(s.cfg('m-next'));
    t.after(() => next.close());
    await waitFor('counted again from the channel list', async () => (await s.count('tenant:many')) === 120, {
      timeoutMs: 8000,
    });
    assert.equal(await r.client.hlen(s.keys.live('fs1')), 120);
    await Promise.all(calls.map((c) => c.bye()));
    await waitFor('none left', async () => (await s.count('tenant:many')) === 0);
  });
});
