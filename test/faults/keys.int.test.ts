import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import type { ProxyCommand } from '../drachtio-double/index.js';
import { deletePrefix, useRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { callOf } from '../proxy/scene.js';
import { DOWN, keyScene, tally, untilWhole, type Expected, type KeyScene } from './key-damage.js';

/**
 * Issue 9's fault suite: keys damaged by hand. Every key of the schema (cluster-keys.ts) is
 * damaged, one at a time, three ways: deleted, overwritten with the wrong Redis type, and filled
 * with garbage; and garbage is published on the events channel. All the while INVITEs go through
 * the drachtio double to a real proxy (one every 30 ms), a real monitor watches three simulated
 * nodes, and fs3 is down (crashed) throughout. For every case:
 *
 * - the cluster is whole again (every key as the schema says, the monitor owning every node, the
 *   proxy's view live with fs1 and fs2 eligible and with room) within the case's stated window:
 *   no damage darkens a healthy node for longer;
 * - no write is wedged: neither the owner's fenced writes nor the claim rounds fail on the way;
 * - a log line says what was repaired (where the damage can be told from normal absence);
 * - no call goes to fs3, nothing throws unhandled, and calls connect again afterwards;
 * - what was counted (calls sent, connected, answered 503, heal time) is printed.
 *
 * Timings are the fast ones of test/monitor/support.ts (probe 200 ms, lease 1.5 s, claim round
 * 250 ms) and test/proxy/support.ts (resync 1 s); proxies refresh their presence every 2 s.
 * Windows are the mechanism's own time plus SLACK for a busy two-core machine.
 */
const PROBE = 200;
const CLAIM = 250;
const LEASE_EXTEND = 500;
const RESYNC = 1000;
const PROXY_PRESENCE = 2000;
const SLACK = 1500;

interface Case {
  key: string;
  how: 'deleted' | 'wrong type' | 'garbage' | 'published';
  /** What heals it, and so the window. */
  heals: string;
  windowMs: number;
  /**
   * The log line that says what was repaired: its message and text it must hold (the key).
   * null where the damage cannot be told from a normal state (nothing to repair).
   */
  log: { msg: string; holds: (s: KeyScene) => string } | null;
  /** Deals the damage; may return something for `check`. */
  damage: (s: KeyScene) => Promise<unknown>;
  /** Case-specific checks once whole: the problems found. */
  check?: (s: KeyScene, ctx: unknown) => Promise<string[]>;
  expect?: Expected;
}

/** Replaces a key with one of another type, in one transaction (its writers run meanwhile). */
async function retype(
  c: Redis,
  key: string,
  write: (m: ReturnType<Redis['multi']>) => unknown,
): Promise<void> {
  const m = c.multi().del(key);
  write(m);
  await m.exec();
}

const repaired = (key: (s: KeyScene) => string) => ({ msg: 'repaired damaged keys', holds: key });
const owner = `one probe interval: the owner's next write (${PROBE} ms)`;

/** Two calls held in the double with their reservations taken, for the call-key cases. */
async function heldCalls(s: KeyScene): Promise<{ call: string; cmd: ProxyCommand; end: () => void }[]> {
  const held = [0, 1].map(() => {
    const req = s.dx.inject({ method: 'INVITE', sdp: true });
    s.scripts.set(req.callId, { kind: 'hold' });
    return req;
  });
  const cmds = await Promise.all(held.map((r) => r.proxied()));
  return held.map((req, i) => ({
    call: callOf(req),
    cmd: cmds[i]!,
    // The first connects (its owner settles the slot), the second fails everywhere (the proxy releases it).
    end: () =>
      cmds[i]!.answer(
        i === 0
          ? { kind: 'forward' }
          : { kind: 'respond', responses: cmds[i]!.destinations.map(() => ({ status: 486 })) },
      ),
  }));
}

async function callKeyCase(s: KeyScene, damage: (c: Redis, key: string) => Promise<unknown>) {
  const calls = await heldCalls(s);
  for (const c of calls) await damage(s.client, s.keys.call(c.call));
  for (const c of calls) c.end();
  const finals = await Promise.all(calls.map((c) => c.cmd.request.final()));
  assert.deepEqual(
    finals.map((f) => f.status),
    [200, 486],
  );
  return calls.map((c) => c.call);
}

async function callKeysGone(s: KeyScene, ctx: unknown): Promise<string[]> {
  const out: string[] = [];
  for (const callId of ctx as string[]) {
    if ((await s.client.exists(s.keys.call(callId))) === 1) out.push(`call key of ${callId} left`);
    for (const id of ['fs1', 'fs2']) {
      if ((await s.client.zscore(s.keys.resv(id), callId)) !== null)
        out.push(`${callId} still holds a slot on ${id}`);
    }
  }
  return out;
}

const cases: Case[] = [
  // fslb:nodes (SET)
  {
    key: 'fslb:nodes',
    how: 'deleted',
    heals: `${owner} finds the set gone and writes every configured node again; a proxy that reloaded meanwhile takes the nodes back from the events, at the latest at its next resync`,
    windowMs: PROBE + RESYNC + SLACK,
    log: repaired((s) => s.keys.nodes),
    damage: (s) => s.client.del(s.keys.nodes),
  },
  {
    key: 'fslb:nodes',
    how: 'wrong type',
    heals: `${owner} deletes it and writes every configured node again; the proxy routes on its last view meanwhile`,
    windowMs: PROBE + RESYNC + SLACK,
    log: repaired((s) => s.keys.nodes),
    damage: (s) => retype(s.client, s.keys.nodes, (m) => m.set(s.keys.nodes, 'fs1 fs2 fs3')),
  },
  {
    key: 'fslb:nodes',
    how: 'garbage',
    heals: `${owner} adds fs1 again; the next claim round (${CLAIM} ms) drops ids nobody configured`,
    windowMs: PROBE + CLAIM + RESYNC + SLACK,
    log: repaired((s) => s.keys.nodes),
    damage: async (s) => {
      await s.client.srem(s.keys.nodes, 'fs1');
      await s.client.sadd(s.keys.nodes, 'ghost', 'not an id!');
    },
  },
  // fslb:node:<id> (HASH)
  {
    key: 'fslb:node:<id>',
    how: 'deleted',
    heals: `${owner} rebuilds the record from its configuration and what it sees`,
    windowMs: PROBE + RESYNC + SLACK,
    log: repaired((s) => s.keys.node('fs1')),
    damage: (s) => s.client.del(s.keys.node('fs1')),
  },
  {
    key: 'fslb:node:<id>',
    how: 'wrong type',
    heals: `${owner} replaces it with a rebuilt record`,
    windowMs: PROBE + RESYNC + SLACK,
    log: repaired((s) => s.keys.node('fs1')),
    damage: (s) => retype(s.client, s.keys.node('fs1'), (m) => m.set(s.keys.node('fs1'), 'state=up')),
  },
  {
    key: 'fslb:node:<id>',
    how: 'garbage',
    heals: `${owner} rewrites what it measures (state, sessions)`,
    windowMs: PROBE + RESYNC + SLACK,
    log: repaired((s) => s.keys.node('fs1')),
    damage: (s) => s.client.hset(s.keys.node('fs1'), { state: 'sideways', sessions: 'abc' }),
  },
  {
    key: 'fslb:node:<id>',
    how: 'garbage',
    heals: `${owner} repairs the fields it does not measure (id, sip, weight, admin, version, updatedAt)`,
    windowMs: PROBE + RESYNC + SLACK,
    log: repaired((s) => s.keys.node('fs1')),
    damage: (s) =>
      s.client.hset(s.keys.node('fs1'), {
        id: 'fs9',
        sip: '',
        weight: 'abc',
        admin: 'sideways',
        version: 'x',
        updatedAt: '-1',
      }),
  },
  // fslb:alive:<id> (STRING, TTL)
  {
    key: 'fslb:alive:<id>',
    how: 'deleted',
    heals: `${owner} writes it again; the proxy trusts the node again at its next event or resync`,
    windowMs: PROBE + RESYNC + SLACK,
    log: repaired((s) => s.keys.alive('fs1')),
    damage: (s) => s.client.del(s.keys.alive('fs1')),
  },
  {
    key: 'fslb:alive:<id>',
    how: 'wrong type',
    heals: `${owner} replaces it`,
    windowMs: PROBE + RESYNC + SLACK,
    log: repaired((s) => s.keys.alive('fs1')),
    damage: (s) =>
      retype(s.client, s.keys.alive('fs1'), (m) => m.hset(s.keys.alive('fs1'), 'owner', 'mon-a')),
  },
  {
    key: 'fslb:alive:<id>',
    how: 'garbage',
    heals: `${owner} writes it again with its expiry`,
    windowMs: PROBE + RESYNC + SLACK,
    log: repaired((s) => s.keys.alive('fs1')),
    damage: (s) => s.client.set(s.keys.alive('fs1'), 'garbage'),
  },
  // fslb:lease:<id> (STRING, TTL, redlock)
  {
    key: 'fslb:lease:<id>',
    how: 'deleted',
    heals: `the owner's lease extension fails (every ${LEASE_EXTEND} ms) and the next claim round takes the node again`,
    windowMs: LEASE_EXTEND + CLAIM + PROBE + RESYNC + SLACK,
    log: { msg: 'lease acquired: watching node', holds: () => '"nodeId":"fs1"' },
    damage: (s) => s.client.del(s.keys.lease('fs1')),
  },
  {
    key: 'fslb:lease:<id>',
    how: 'wrong type',
    heals: `the owner is fenced out; the next claim round (${CLAIM} ms) deletes a lease without expiry and claims the node`,
    windowMs: LEASE_EXTEND + CLAIM + PROBE + RESYNC + SLACK,
    log: repaired((s) => s.keys.lease('fs1')),
    damage: (s) => retype(s.client, s.keys.lease('fs1'), (m) => m.hset(s.keys.lease('fs1'), 'token', 'x')),
  },
  {
    key: 'fslb:lease:<id>',
    how: 'garbage',
    heals: `as the wrong type: a lease without expiry is deleted at the next claim round and claimed`,
    windowMs: LEASE_EXTEND + CLAIM + PROBE + RESYNC + SLACK,
    log: repaired((s) => s.keys.lease('fs1')),
    damage: (s) => s.client.set(s.keys.lease('fs1'), 'garbage'),
  },
  {
    key: 'fslb:lease:<id>',
    how: 'garbage',
    heals: `a lease expiring later than any lease can (the config's 5-minute maximum) is deleted at the next claim round and claimed`,
    windowMs: LEASE_EXTEND + CLAIM + PROBE + RESYNC + SLACK,
    log: repaired((s) => s.keys.lease('fs1')),
    damage: (s) => s.client.set(s.keys.lease('fs1'), 'garbage', 'PX', 600_000),
  },
  // fslb:monitors (ZSET)
  {
    key: 'fslb:monitors',
    how: 'deleted',
    heals: `the next claim round (${CLAIM} ms) adds the monitor again`,
    windowMs: CLAIM + SLACK,
    log: repaired((s) => s.keys.monitors),
    damage: (s) => s.client.del(s.keys.monitors),
  },
  {
    key: 'fslb:monitors',
    how: 'wrong type',
    heals: `the next claim round starts the set afresh`,
    windowMs: CLAIM + SLACK,
    log: repaired((s) => s.keys.monitors),
    damage: (s) => retype(s.client, s.keys.monitors, (m) => m.set(s.keys.monitors, 'mon-a')),
  },
  {
    key: 'fslb:monitors',
    how: 'garbage',
    heals: `the next claim round drops members without a presence key (a phantom would shrink the fair share)`,
    windowMs: CLAIM + SLACK,
    log: repaired((s) => s.keys.monitors),
    damage: (s) => s.client.zadd(s.keys.monitors, '+inf', 'ghost', -5, 'gone'),
  },
  // fslb:monitor:<id> (STRING JSON, TTL)
  {
    key: 'fslb:monitor:<id>',
    how: 'deleted',
    heals: `the next claim round writes it again`,
    windowMs: CLAIM + SLACK,
    log: repaired((s) => s.keys.monitor(s.monitor.id)),
    damage: (s) => s.client.del(s.keys.monitor(s.monitor.id)),
  },
  {
    key: 'fslb:monitor:<id>',
    how: 'wrong type',
    heals: `the next claim round replaces it`,
    windowMs: CLAIM + SLACK,
    log: repaired((s) => s.keys.monitor(s.monitor.id)),
    damage: (s) =>
      retype(s.client, s.keys.monitor(s.monitor.id), (m) =>
        m.hset(s.keys.monitor(s.monitor.id), 'id', 'mon-a'),
      ),
  },
  {
    key: 'fslb:monitor:<id>',
    how: 'garbage',
    heals: `the next claim round replaces it`,
    windowMs: CLAIM + SLACK,
    log: repaired((s) => s.keys.monitor(s.monitor.id)),
    damage: (s) => s.client.set(s.keys.monitor(s.monitor.id), '{"id": mon-a'),
  },
  // fslb:version (STRING counter)
  {
    key: 'fslb:version',
    how: 'deleted',
    heals: `${owner} sets the counter above the node's own version: versions keep rising`,
    windowMs: PROBE + RESYNC + SLACK,
    log: repaired((s) => s.keys.version),
    damage: (s) => s.client.del(s.keys.version),
  },
  {
    key: 'fslb:version',
    how: 'wrong type',
    heals: `${owner} replaces the counter, above the node's own version`,
    windowMs: PROBE + RESYNC + SLACK,
    log: repaired((s) => s.keys.version),
    damage: (s) => retype(s.client, s.keys.version, (m) => m.hset(s.keys.version, 'v', '5')),
  },
  {
    key: 'fslb:version',
    how: 'garbage',
    heals: `${owner} replaces the counter, above the node's own version`,
    windowMs: PROBE + RESYNC + SLACK,
    log: repaired((s) => s.keys.version),
    damage: (s) => s.client.set(s.keys.version, 'x'),
  },
  // fslb:resv:<id> (ZSET)
  {
    key: 'fslb:resv:<id>',
    how: 'deleted',
    heals: 'nothing to repair: the calls in setup lose their slots early (no more than ~1 s of them)',
    windowMs: RESYNC + SLACK,
    log: null,
    damage: (s) => s.client.del(s.keys.resv('fs1')),
  },
  {
    key: 'fslb:resv:<id>',
    how: 'wrong type',
    heals: `the next reservation or the owner's next write (${PROBE} ms) starts the set afresh`,
    windowMs: PROBE + RESYNC + SLACK,
    log: repaired((s) => s.keys.resv('fs1')),
    damage: (s) => retype(s.client, s.keys.resv('fs1'), (m) => m.sadd(s.keys.resv('fs1'), 'a-call-id')),
  },
  {
    key: 'fslb:resv:<id>',
    how: 'garbage',
    heals: `${owner} drops reservations no proxy can have made (lapsing past 10 minutes) that fill the node`,
    windowMs: PROBE + RESYNC + SLACK,
    log: repaired((s) => s.keys.resv('fs1')),
    damage: async (s) => {
      const junk: (string | number)[] = [];
      for (let i = 0; i < 30; i++) junk.push('+inf', `forever-${i}`, 1e15, `far-${i}`);
      await s.client.zadd(s.keys.resv('fs1'), ...junk, -5, 'negative');
    },
  },
  // fslb:call:<callId> (STRING, TTL): two calls in setup, one connects, one fails
  {
    key: 'fslb:call:<callId>',
    how: 'deleted',
    heals: "nothing to repair: the owner settles the node's own slot, the proxy releases the one it took",
    windowMs: PROBE + SLACK,
    log: null,
    damage: (s) => callKeyCase(s, (c, key) => c.del(key)),
    check: callKeysGone,
  },
  {
    key: 'fslb:call:<callId>',
    how: 'wrong type',
    heals: "the owner's settling write and the proxy's release delete it and end the slots they know",
    windowMs: PROBE + SLACK,
    log: repaired(() => ':call:'),
    damage: (s) => callKeyCase(s, (c, key) => retype(c, key, (m) => m.rpush(key, 'fs1'))),
    check: callKeysGone,
  },
  {
    key: 'fslb:call:<callId>',
    how: 'garbage',
    heals: 'the settling write and the release skip node ids that cannot be, and end the rest',
    windowMs: PROBE + SLACK,
    log: repaired(() => ':call:'),
    damage: (s) => callKeyCase(s, (c, key) => c.set(key, 'fs1 ../../x ;;drop fs2 fs9')),
    check: callKeysGone,
  },
  // fslb:proxies (ZSET)
  {
    key: 'fslb:proxies',
    how: 'deleted',
    heals: `the proxy's next presence refresh (${PROXY_PRESENCE} ms) adds it again`,
    windowMs: PROXY_PRESENCE + SLACK,
    log: repaired((s) => s.keys.proxies),
    damage: (s) => s.client.del(s.keys.proxies),
  },
  {
    key: 'fslb:proxies',
    how: 'wrong type',
    heals: `the proxy's next presence refresh starts the set afresh`,
    windowMs: PROXY_PRESENCE + SLACK,
    log: repaired((s) => s.keys.proxies),
    damage: (s) => retype(s.client, s.keys.proxies, (m) => m.rpush(s.keys.proxies, 'px-a')),
  },
  {
    key: 'fslb:proxies',
    how: 'garbage',
    heals: `the proxy's next presence refresh drops members without a presence key`,
    windowMs: PROXY_PRESENCE + SLACK,
    log: repaired((s) => s.keys.proxies),
    damage: (s) => s.client.zadd(s.keys.proxies, '+inf', 'ghost', -5, 'gone'),
  },
  // fslb:proxy:<id> (STRING JSON, TTL)
  {
    key: 'fslb:proxy:<id>',
    how: 'deleted',
    heals: `the proxy's next presence refresh writes it again`,
    windowMs: PROXY_PRESENCE + SLACK,
    log: repaired((s) => s.keys.proxy(s.proxy.id)),
    damage: (s) => s.client.del(s.keys.proxy(s.proxy.id)),
  },
  {
    key: 'fslb:proxy:<id>',
    how: 'wrong type',
    heals: `the proxy's next presence refresh replaces it`,
    windowMs: PROXY_PRESENCE + SLACK,
    log: repaired((s) => s.keys.proxy(s.proxy.id)),
    damage: (s) =>
      retype(s.client, s.keys.proxy(s.proxy.id), (m) => m.sadd(s.keys.proxy(s.proxy.id), 'px-a')),
  },
  {
    key: 'fslb:proxy:<id>',
    how: 'garbage',
    heals: `the proxy's next presence refresh replaces it`,
    windowMs: PROXY_PRESENCE + SLACK,
    log: repaired((s) => s.keys.proxy(s.proxy.id)),
    damage: (s) => s.client.set(s.keys.proxy(s.proxy.id), '[]garbage'),
  },
  // fslb:events (channel)
  {
    key: 'fslb:events',
    how: 'published',
    heals:
      'unreadable messages are skipped with one line; forged figures (a version or a load from the far future) give way at the next resync',
    windowMs: RESYNC + SLACK,
    log: { msg: 'unreadable message on the events channel skipped', holds: () => '' },
    damage: async (s) => {
      const rec = await s.client.hgetall(s.keys.node('fs1'));
      // Forged figures first: a version from the far future (fs1 down), and a load from the far
      // future (fs1 full: it outranked every true figure for ever); then garbage. One subscriber
      // gets them in order, so the garbage's log line says the forged ones were applied before it.
      for (const m of [
        JSON.stringify({ v: 1, type: 'node', id: 'fs1', version: 9e15, record: { ...rec, state: 'down' } }),
        JSON.stringify({
          v: 1,
          type: 'load',
          from: 'x',
          nodes: { fs1: { s: 999, r: 0, at: '9999999999999999' } },
        }),
        'not json',
        'null',
        '{"v":1,"type":"node","id":"fs1","version":"x"}',
        '{"v":1,"type":"load","from":"x","nodes":{"fs1":{"s":-1,"r":0,"at":"1"}}}',
      ])
        await s.client.publish(s.keys.events, m);
      await waitFor('the garbage received', () =>
        s.logText().includes('"msg":"unreadable message on the events channel skipped"'),
      );
    },
  },
];

describe('keys damaged by hand, under load', () => {
  const r = useRedis({ before, after });

  it('every key of the schema, deleted, of the wrong type or filled with garbage, heals by itself', async (t) => {
    const s = await keyScene(t, r, { maxSessions: 50, holdMs: 300, loadEveryMs: 30 });
    const started = performance.now();
    await untilWhole(s, 5000);
    const totals = { sent: 0, connected: 0, noCapacity: 0, other: 0 };

    const run = async (name: string, c: Omit<Case, 'key' | 'how'>): Promise<void> => {
      await untilWhole(s, 5000, c.expect);
      const logFrom = s.logText().length;
      try {
        await damageAndHeal(name, c, logFrom);
      } catch (err) {
        // What the components said meanwhile, beyond the call lines, to tell why.
        const said = s
          .logText()
          .slice(logFrom)
          .split('\n')
          .filter((l) => !l.includes('"msg":"request routed"'));
        process.stdout.write(`# ${name} failed; the log since the damage:\n# ${said.join('\n# ')}\n`);
        throw err;
      }
    };

    const damageAndHeal = async (name: string, c: Omit<Case, 'key' | 'how'>, logFrom: number) => {
      const from = s.calls.length;
      const damaged = performance.now();
      const ctx = await c.damage(s);
      const healMs = await untilWhole(s, c.windowMs, c.expect).then(() =>
        Math.round(performance.now() - damaged),
      );
      const healedAt = s.calls.length;
      // Calls flow again: three sent after the heal connect.
      await waitFor('calls connecting after the heal', () => tally(s, healedAt).connected >= 3, {
        timeoutMs: 5000,
      });
      const extra = c.check ? await c.check(s, ctx) : [];
      assert.deepEqual(extra, [], `${name}: ${extra.join('; ')}`);
      if (c.log) {
        const { msg, holds } = c.log;
        const want = holds(s);
        await waitFor(`a log line "${msg}" holding ${want}`, () =>
          s
            .logText()
            .slice(logFrom)
            .split('\n')
            .some((l) => l.includes(`"msg":"${msg}"`) && l.includes(want)),
        );
      }
      // No write was wedged on the way: the owner's fenced writes and the claim rounds never failed.
      const wedged = s
        .logText()
        .slice(logFrom)
        .split('\n')
        .filter((l) => /"msg":"(cannot write the node record to redis|claim round failed[^"]*)"/.test(l));
      assert.deepEqual(wedged, [], `${name}: writes failed`);
      // Every call of the case has its answer before it is counted.
      await waitFor('every call of the case answered', () => tally(s, from, healedAt).pending === 0, {
        timeoutMs: 5000,
      });
      const n = tally(s, from, healedAt);
      assert.deepEqual(n.toDown, [], `${name}: calls routed to ${DOWN}, known down`);
      assert.deepEqual(s.crashes, [], `${name}: unhandled errors`);
      assert.equal(n.other, 0, `${name}: calls failed otherwise than by the proxy's 503`);
      totals.sent += n.sent;
      totals.connected += n.connected;
      totals.noCapacity += n.noCapacity;
      process.stdout.write(
        `# ${name}: healed in ${healMs} ms (window ${c.windowMs} ms; ${c.heals}); calls sent ${n.sent}, connected ${n.connected}, 503 ${n.noCapacity}\n`,
      );
    };

    for (const c of cases) {
      await t.test(`${c.key} ${c.how}`, () => run(`${c.key} ${c.how}`, c));
    }

    // Everything at once, with fs2 drained by the operator: the monitor remembers the flag.
    await t.test('every key of the prefix deleted (a flush) while fs2 is drained', async () => {
      await s.store.setAdmin('fs2', 'drain');
      // The owner learns the flag at its next write of fs2 (a drain set less than one write
      // before Redis loses it is not remembered).
      const beat = await s.client.hget(s.keys.node('fs2'), 'heartbeatAt');
      await waitFor('the owner writing fs2 after the drain', async () => {
        return (await s.client.hget(s.keys.node('fs2'), 'heartbeatAt')) !== beat;
      });
      await run('flush while fs2 is drained', {
        heals: `the owner's fenced write fails (its lease is gone), the next claim round (${CLAIM} ms) takes each node again, its first write finds the nodes set gone and writes the configured nodes again, and each write rebuilds the record, admin=drain included`,
        windowMs: LEASE_EXTEND + CLAIM + PROBE + RESYNC + SLACK,
        log: repaired((x) => `${x.keys.node('fs2')}: admin restored to drain`),
        expect: { drained: ['fs2'] },
        damage: (x) => deletePrefix(x.client, x.prefix),
      });
      await s.store.setAdmin('fs2', '');
      await untilWhole(s, 5000);
    });

    // The whole run, between the cases too: every call answered, none sent to fs3.
    s.stopLoad();
    await waitFor('every call answered', () => tally(s, 0).pending === 0, { timeoutMs: 5000 });
    const all = tally(s, 0);
    process.stdout.write(
      `# keys damaged by hand: ${cases.length + 1} cases in ${Math.round((performance.now() - started) / 1000)} s; calls sent ${all.sent}, connected ${all.connected}, 503 ${all.noCapacity}, other ${all.other} (in the damage-to-heal windows: sent ${totals.sent}, connected ${totals.connected}, 503 ${totals.noCapacity})\n`,
    );
    assert.deepEqual(all.toDown, [], `calls routed to ${DOWN}, known down`);
    assert.equal(all.other, 0, "calls failed otherwise than by the proxy's 503");
  });
});
