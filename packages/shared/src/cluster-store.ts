import type { Redis } from './redis-connection.js';
import type { ClusterKeys } from './cluster-keys.js';
import { runScript } from './cluster-scripts.js';
import { FslbError } from './errors.js';
import { decodeNodeRecord, type AdminState, type NodeRecord } from './node-record.js';
import { MAX_LEASE_TTL_MS } from './config/schema.js';

/** What the owner's fenced write did; `admin` is the record's admin flag after it. */
export type WriteOutcome =
  | { kind: 'changed'; version: number; admin: AdminState }
  | { kind: 'unchanged'; admin: AdminState }
  /** The lease is not held with this token: another monitor owns the node now. */
  | { kind: 'fenced' }
  /** The node is no longer configured. */
  | { kind: 'removed' }
  /**
   * The nodes set is gone (deleted, of another type, or Redis lost its keys): nothing was
   * written; the owner writes its configured nodes again (`upsertNode`), then writes again.
   */
  | { kind: 'unlisted' };

export interface NodeWrite {
  id: string;
  /** Lease token (the value redlock stored under fslb:lease:<id>). */
  token: string;
  owner: string;
  livenessTtlMs: number;
  /** Fields whose change bumps the version and publishes an event. */
  loud: Readonly<Record<string, string | number>>;
  /** Fields stored without an event (heartbeatAt). */
  quiet?: Readonly<Record<string, string | number>>;
  /**
   * Calls (`callIdentity`) FreeSWITCH has counted (CHANNEL_CREATE) and `loud.sessions` includes:
   * their reservations end in this same write.
   */
  settle?: readonly string[];
  /** The node's configured fields, to rebuild a record damaged or lost (see write-node-6.lua). */
  config?: { sip: string; weight: number; cap?: number | undefined };
  /** The admin flag the owner last read, restored if the record lost it. */
  admin?: AdminState;
  /** The owner's last write is recent enough that the liveness key must still exist. */
  aliveExpected?: boolean;
}

/** Told what the scripts repaired in keys damaged by hand: one note per key, naming it. */
export type RepairListener = (notes: readonly string[]) => void;

/** What a reservation attempt found on one candidate node. */
export const SlotStatus = {
  /** A slot was taken. */
  Taken: 1,
  /** The node has room: a failover target, no slot taken. */
  Room: 2,
  /** sessions + reservations reached maxSessions. */
  Full: 0,
  /** Not eligible in Redis: missing, not up, drained, no liveness key, unknown capacity. */
  Ineligible: -1,
  /** The node has room but is not used: enough slots and failover targets without it. */
  Skipped: -2,
  /**
   * Redis has no record a monitor wrote for the node (none, or state unknown): for a node the
   * proxy saw routable, Redis lost its state.
   */
  Lost: -3,
} as const;
export type SlotStatus = (typeof SlotStatus)[keyof typeof SlotStatus];

/** One node's load as Redis had it at `at`. */
export interface NodeLoad {
  id: string;
  sessions: number;
  reservations: number;
  maxSessions: number;
}

export interface ReserveResult {
  /** Redis time of the reservation, microseconds since the epoch: orders load figures. */
  at: number;
  /** One entry per candidate, in the order given. */
  nodes: (NodeLoad & { status: SlotStatus })[];
  /** Ids of the nodes a slot was taken on, in candidate order. */
  taken: string[];
  /** Ids of the failover targets (room, no slot), in candidate order. */
  failovers: string[];
  /** The first limit the call is over (nothing was taken), by its index in the request. */
  overLimit?: { index: number; kind: 'calls' | 'cps'; count: number };
}

/** A call live on a node, with the limit entries it counts against. */
export interface LiveCall {
  call: string;
  entries: readonly string[];
}

/** A limit counter a call counts against. */
export interface LimitHold {
  /** `<limit id>:<key value>` (see `limit-entry.ts`). */
  entry: string;
  /** Concurrent calls at most; 0 for none. */
  maxCalls: number;
  /** Admissions in any 1000 ms at most; 0 for none. */
  maxCps: number;
}

export interface ReserveRequest {
  /** The call: `callIdentity(Call-ID, From tag)`. */
  call: string;
  /** Node ids in order of preference; slots are taken on the first ones with room. */
  candidates: readonly string[];
  /** Slots to take at most (1: the chosen node). */
  slots: number;
  /** Failover targets (room, no slot) wanted after the slots. */
  failovers: number;
  /** Lifetime of a slot. */
  ttlMs: number;
  /** Take slots in candidate order (affinity) instead of least loaded first. */
  inOrder?: boolean;
  /**
   * The call may hold slots from an earlier attempt (an INVITE sent again with credentials after
   * a digest challenge): they end first. A first attempt skips the lookup.
   */
  retry?: boolean;
  /**
   * The pool order of each candidate (1 first; all 1 when absent): the slot is taken in the
   * first group with room, failover targets from that group only.
   */
  groups?: readonly number[];
  /** Limit counters the call counts against, checked and taken in the same step. */
  limits?: readonly LimitHold[];
  /** How long a limit holds a call in setup before the node's monitor makes it live. */
  limitHoldMs?: number;
}

/** One node's book of advance slots, as a proxy hands it to `advanceSlots`. */
export interface AdvanceBook {
  id: string;
  /** Unused slots the proxy would like to hold there, within its share of the node's room. */
  want: number;
  /** The number in the first new member's name (`prefix + first`, then +1 for each). */
  first: number;
  /** Slots spent on calls that no node took: removed. */
  drop: readonly string[];
  /** Slots in use by calls still in setup: refreshed while they are there. */
  busy: readonly string[];
  /** Unused slots the proxy holds there. */
  held: number;
  /** Unused slots to refresh and check (all held ones, some, or none): those gone are reported. */
  keep: readonly string[];
}

/** What `advanceSlots` found and did on one node. */
export interface AdvanceRow extends NodeLoad {
  /** 1 can take calls, 0 full, -1 cannot take calls, -3 no monitor's record (Redis lost it). */
  status: SlotStatus;
  /** Unused slots the proxy may hold there now. */
  allowed: number;
  /** New members added, named `prefix + (first + 0 .. granted - 1)`. */
  granted: number;
  /** Indices into `keep` of members no longer there. */
  missing: number[];
}

/** One node in a consistent snapshot of the cluster. */
export type ViewEntry =
  | { id: string; ok: true; record: NodeRecord; alive: boolean; reservations: number }
  | { id: string; ok: false; problems: string[] };

export interface ViewSnapshot {
  /** Redis time of the snapshot, microseconds since the epoch. */
  at: number;
  /** The `fslb:version` counter at the end of the read; 0 when it is missing or unreadable. */
  version: number;
  /**
   * The counter when the read began (a read in chunks): a node the reader holds at a version
   * above it was added or changed after the read began, and is not gone for being absent.
   */
  startVersion?: number;
  nodes: ViewEntry[];
}

export interface InvalidRecord {
  id: string;
  problems: string[];
}

/**
 * Typed access to the cluster state in Redis: every write goes through one Lua script, every
 * read decodes and validates. Shared by the monitor, the proxy and the CLI.
 */
export class ClusterStore {
  readonly redis: Redis;
  readonly keys: ClusterKeys;
  readonly #onRepaired: RepairListener;

  /**
   * @param opts.onRepaired told whenever a script found a key damaged by hand and rebuilt,
   *   deleted or skipped it (components log it; the CLI does not listen).
   */
  constructor(redis: Redis, keys: ClusterKeys, opts: { onRepaired?: RepairListener } = {}) {
    this.redis = redis;
    this.keys = keys;
    this.#onRepaired = opts.onRepaired ?? (() => undefined);
  }

  /** The same store over another shard's keys (see `ShardMap`): same connection, same listener. */
  shard(keys: ClusterKeys): ClusterStore {
    if (keys.prefix === this.keys.prefix) return this;
    let store = this.#shards.get(keys.prefix);
    if (!store) {
      store = new ClusterStore(this.redis, keys, { onRepaired: this.#onRepaired });
      this.#shards.set(keys.prefix, store);
    }
    return store;
  }

  readonly #shards = new Map<string, ClusterStore>();

  /** Passes the notes (the strings among `replies`) to the repair listener. */
  #repaired(replies: readonly unknown[]): void {
    const notes = replies.filter((r): r is string => typeof r === 'string');
    if (notes.length > 0) this.#onRepaired(notes);
  }

  /** Adds a configured node or updates its configured fields; returns the version, 0 if unchanged. */
  async upsertNode(n: {
    id: string;
    sip: string;
    weight: number;
    cap?: number | undefined;
  }): Promise<number> {
    const k = this.keys;
    const reply = await runScript(
      this.redis,
      'upsert-node-3',
      [k.nodes, k.node(n.id), k.version],
      [n.id, k.eventsPublish, n.sip, String(n.weight), String(n.cap ?? 0)],
    );
    if (!Array.isArray(reply)) throw new TypeError('upsert-node: unexpected reply');
    this.#repaired(reply.slice(1));
    return Number(reply[0]);
  }

  /**
   * Removes a node that is no longer configured; returns the version, 0 if it was not there.
   * `strayOnly`: only an id in the nodes set without a record (one added by hand: adding a node
   * writes both), so that a monitor never removes a node another monitor's newer file added;
   * returns 1 when one was removed (no reader holds it: no version, no event).
   */
  async removeNode(id: string, opts: { strayOnly?: boolean } = {}): Promise<number> {
    const k = this.keys;
    return Number(
      await runScript(
        this.redis,
        'remove-node-6',
        [k.nodes, k.node(id), k.alive(id), k.lease(id), k.version, k.resv(id)],
        [id, k.eventsPublish, opts.strayOnly ? '1' : '', k.live(id), k.limit('')],
      ),
    );
  }

  /** The owning monitor's write, fenced by its lease token. */
  async writeNode(w: NodeWrite): Promise<WriteOutcome> {
    const k = this.keys;
    const loud = Object.entries(w.loud).flatMap(([f, v]) => [f, String(v)]);
    const quiet = Object.entries(w.quiet ?? {}).flatMap(([f, v]) => [f, String(v)]);
    const reply = await runScript(
      this.redis,
      'write-node-6',
      [k.node(w.id), k.lease(w.id), k.alive(w.id), k.nodes, k.version, k.resv(w.id)],
      [
        w.token,
        w.owner,
        w.livenessTtlMs,
        k.eventsPublish,
        w.id,
        loud.length / 2,
        quiet.length / 2,
        k.resv(''),
        k.call(''),
        w.config?.sip ?? '',
        w.config ? String(w.config.weight) : '',
        w.config ? String(w.config.cap ?? 0) : '',
        w.admin ?? '',
        w.aliveExpected ? '1' : '',
        ...loud,
        ...quiet,
        ...(w.settle ?? []),
      ],
    );
    if (!Array.isArray(reply)) throw new TypeError('write-node: unexpected reply');
    const r = Number(reply[0]);
    if (r < 0) this.#repaired(reply.slice(1));
    if (r === -1) return { kind: 'fenced' };
    if (r === -2) return { kind: 'removed' };
    if (r === -3) return { kind: 'unlisted' };
    this.#repaired(reply.slice(2));
    const admin = reply[1] === 'drain' ? 'drain' : '';
    return r === 0 ? { kind: 'unchanged', admin } : { kind: 'changed', version: r, admin };
  }

  /**
   * Sets a node's admin flag (`drain` or none) for every proxy at once (`set-admin-3.lua`).
   * Throws an `UnknownNodeError` for a node that is not configured or has no record yet.
   */
  async setAdmin(id: string, admin: AdminState): Promise<{ changed: boolean; version: number }> {
    const k = this.keys;
    const r = Number(
      await runScript(
        this.redis,
        'set-admin-3',
        [k.nodes, k.node(id), k.version],
        [id, k.eventsPublish, admin],
      ),
    );
    if (r === -2) throw new UnknownNodeError(id, 'is not a configured node');
    if (r === -3)
      throw new UnknownNodeError(id, 'has no record yet (its monitor writes one within a claim round)');
    return r === 0 ? { changed: false, version: 0 } : { changed: true, version: r };
  }

  /**
   * Records that a monitor is alive for `ttlMs` (or, with `summary` null, that it left) and
   * returns how many monitors are alive.
   */
  async monitorPresence(monitorId: string, ttlMs: number, summary: object | null): Promise<number> {
    const k = this.keys;
    return this.#presence(k.monitors, k.monitor(''), monitorId, ttlMs, summary);
  }

  /** The same for a proxy: returns how many proxies are alive. */
  async proxyPresence(proxyId: string, ttlMs: number, summary: object | null): Promise<number> {
    const k = this.keys;
    return this.#presence(k.proxies, k.proxy(''), proxyId, ttlMs, summary);
  }

  async #presence(
    zset: string,
    keyPrefix: string,
    id: string,
    ttlMs: number,
    summary: object | null,
  ): Promise<number> {
    const reply = await runScript(
      this.redis,
      'presence-2',
      [zset, keyPrefix + id],
      [id, ttlMs, summary === null ? '' : JSON.stringify(summary), keyPrefix],
    );
    if (!Array.isArray(reply)) throw new TypeError('presence: unexpected reply');
    this.#repaired(reply.slice(1));
    return Number(reply[0]);
  }

  /**
   * Whether each node's lease is held now (a claim round's look at the nodes it does not own).
   * A lease key without expiry, or expiring later than any monitor's lease can (`MAX_LEASE_TTL_MS`,
   * whatever this monitor's own TTL: monitors configured differently share a cluster), is no
   * redlock lease: it is deleted, and the node reads free (`read-leases.lua`).
   */
  async leasesHeld(ids: readonly string[]): Promise<boolean[]> {
    if (ids.length === 0) return [];
    const reply = await runScript(
      this.redis,
      'read-leases',
      ids.map((id) => this.keys.lease(id)),
      [MAX_LEASE_TTL_MS],
    );
    if (!Array.isArray(reply) || reply.length < ids.length)
      throw new TypeError('read-leases: unexpected reply');
    this.#repaired(reply.slice(ids.length));
    return ids.map((_, i) => Number(reply[i]) === 1);
  }

  /**
   * Takes a slot for a call on the least loaded candidate with room by Redis' own counts, and
   * names other candidates with room as failover targets, in one round trip and atomically
   * across every proxy (`reserve-call.lua`). Throws on a Redis error or an unreadable reply.
   */
  async reserveCall(req: ReserveRequest): Promise<ReserveResult> {
    const k = this.keys;
    const keys = [k.call(req.call)];
    for (const id of req.candidates) keys.push(k.node(id), k.resv(id), k.alive(id));
    const limits = req.limits ?? [];
    const limitArgs: (string | number)[] = [];
    for (const l of limits) {
      keys.push(k.limit(l.entry), k.rate(l.entry));
      limitArgs.push(l.maxCalls, l.maxCps);
    }
    const c = req.candidates.length;
    const reply = await runScript(this.redis, 'reserve-call', keys, [
      req.call,
      req.slots,
      req.failovers,
      Math.ceil(req.ttlMs),
      req.retry ? k.resv('') : '',
      req.inOrder ? '1' : '0',
      c,
      Math.ceil(Math.max(req.limitHoldMs ?? req.ttlMs, req.ttlMs)),
      ...req.candidates,
      ...(req.groups ?? req.candidates.map(() => 1)),
      ...limitArgs,
      k.limit(''),
    ]);
    if (!Array.isArray(reply) || reply.length < c + 3 || !Array.isArray(reply[2])) {
      throw new TypeError('reserve-call: unexpected reply');
    }
    this.#repaired(reply.slice(c + 3));
    const nodes: ReserveResult['nodes'] = [];
    const taken: string[] = [];
    const failovers: string[] = [];
    req.candidates.forEach((id, i) => {
      const row = reply[i + 3] as unknown;
      if (!Array.isArray(row)) throw new TypeError('reserve-call: unexpected reply');
      const status = Number(row[0]) as SlotStatus;
      if (status === SlotStatus.Taken) taken.push(id);
      else if (status === SlotStatus.Room) failovers.push(id);
      nodes.push({
        id,
        status,
        sessions: Number(row[1]),
        reservations: Number(row[2]),
        maxSessions: Number(row[3]),
      });
    });
    const verdict = reply[2] as unknown[];
    const over = Number(verdict[0]);
    const result: ReserveResult = { at: redisMicros(reply[0], reply[1]), nodes, taken, failovers };
    if (over > 0) {
      result.overLimit = {
        index: over - 1,
        kind: Number(verdict[1]) === 2 ? 'cps' : 'calls',
        count: Number(verdict[2]),
      };
    }
    return result;
  }

  /**
   * Ends every slot of a call that no node took, on `nodes` and on whatever the call key lists
   * (`release-call.lua`). Returns the Redis time and the live reservations left on each node.
   */
  async releaseCall(
    call: string,
    nodes: readonly string[],
    limitEntries: readonly string[] = [],
  ): Promise<{ at: number; nodes: { id: string; reservations: number }[] }> {
    const k = this.keys;
    const reply = await runScript(
      this.redis,
      'release-call',
      [k.call(call)],
      [call, k.resv(''), k.limit(''), limitEntries.length, ...limitEntries, ...nodes],
    );
    if (!Array.isArray(reply) || reply.length < 2) throw new TypeError('release-call: unexpected reply');
    const rest = reply.slice(2) as unknown[];
    this.#repaired(rest);
    return {
      at: redisMicros(reply[0], reply[1]),
      nodes: rest.filter(Array.isArray).map((row) => ({
        id: String(row[0]),
        reservations: Number(row[1]),
      })),
    };
  }

  /**
   * A proxy's advance slots on a few nodes, in one script call (`advance-slots.lua`): spent
   * slots removed, slots in use and unused ones refreshed (`ttlMs` from now), new ones added
   * within the proxy's share (`share`) of each node's room. The nodes' keys must share a slot.
   */
  async advanceSlots(
    books: readonly AdvanceBook[],
    opts: { ttlMs: number; share: number; prefix: string },
  ): Promise<{ at: number; nodes: AdvanceRow[] }> {
    const k = this.keys;
    const keys: string[] = [];
    const argv: (string | number)[] = [Math.ceil(opts.ttlMs), opts.share, opts.prefix, books.length];
    for (const b of books) {
      keys.push(k.node(b.id), k.resv(b.id), k.alive(b.id));
      argv.push(
        b.want,
        b.first,
        b.held,
        b.drop.length,
        b.busy.length,
        b.keep.length,
        ...b.drop,
        ...b.busy,
        ...b.keep,
      );
    }
    const reply = await runScript(this.redis, 'advance-slots', keys, argv);
    if (!Array.isArray(reply) || reply.length < books.length + 2) {
      throw new TypeError('advance-slots: unexpected reply');
    }
    this.#repaired(reply.slice(books.length + 2));
    const nodes = books.map((b, i): AdvanceRow => {
      const row = reply[i + 2] as unknown;
      if (!Array.isArray(row) || row.length < 6) throw new TypeError('advance-slots: unexpected reply');
      return {
        id: b.id,
        status: Number(row[0]) as SlotStatus,
        sessions: Number(row[1]),
        reservations: Number(row[2]),
        maxSessions: Number(row[3]),
        allowed: Number(row[4]),
        granted: Number(row[5]),
        missing: row.slice(6).map(Number),
      };
    });
    return { at: redisMicros(reply[0], reply[1]), nodes };
  }

  /**
   * The owner's record of its node's live calls that count against limits, fenced by its lease
   * (`live-calls-2.lua`): `delta` applies calls created and destroyed; `full` makes the record
   * exactly `calls` (FreeSWITCH's channel list at a reconcile); `down` ends every call of a node
   * that is down, the limit holds of calls in setup there included.
   */
  async liveCalls(
    id: string,
    token: string,
    change:
      | { kind: 'delta'; started: readonly LiveCall[]; ended: readonly string[] }
      | { kind: 'full'; calls: readonly LiveCall[] }
      | { kind: 'down' },
  ): Promise<{ fenced: boolean; started: number; ended: number }> {
    const k = this.keys;
    const items =
      change.kind === 'full'
        ? change.calls.map((c) => [c.call, ...c.entries].join(' '))
        : change.kind === 'down'
          ? []
          : [
              ...change.started.map((c) => `+${[c.call, ...c.entries].join(' ')}`),
              ...change.ended.map((call) => `-${call}`),
            ];
    const reply = await runScript(
      this.redis,
      'live-calls-2',
      [k.lease(id), k.live(id)],
      [token, k.limit(''), change.kind, k.resv(id), k.call(''), ...items],
    );
    if (!Array.isArray(reply) || reply.length < 3) throw new TypeError('live-calls: unexpected reply');
    this.#repaired(reply.slice(3));
    return { fenced: Number(reply[0]) === -1, started: Number(reply[1]), ended: Number(reply[2]) };
  }

  /**
   * The whole cluster, read in chunks of `chunk` nodes (an SSCAN of the nodes set, then
   * `read-view.lua` on the ids it listed), so that Redis serves other clients between them: every
   * node's record, liveness and live reservations. Each chunk is consistent in itself, also while
   * a Redis Cluster moves the slot (the script declares every key it reads); `at` and
   * `startVersion` are the first chunk's, `version` the last one's, so that a node added after
   * the read began (its version above `startVersion`) is not taken for one that left. Unreadable
   * records are returned as problems, never thrown; a nodes set of another type reads as empty.
   */
  async readView(opts: { chunk?: number } = {}): Promise<ViewSnapshot> {
    const k = this.keys;
    const chunk = opts.chunk ?? VIEW_CHUNK;
    const byId = new Map<string, ViewEntry>();
    let cursor = '0';
    let at = 0;
    let startVersion = 0;
    let version = 0;
    do {
      let ids: string[];
      [cursor, ids] = await this.redis.sscan(k.nodes, cursor, 'COUNT', chunk).catch((err: unknown) => {
        if (err instanceof Error && err.message.startsWith('WRONGTYPE')) return ['0', []];
        throw err;
      });
      // An empty page in the middle of a scan needs no script; the first one still reads the time.
      if (ids.length === 0 && at !== 0) continue;
      const reply = await runScript(
        this.redis,
        'read-view',
        [k.nodes, k.version, ...ids.flatMap((id) => [k.node(id), k.alive(id), k.resv(id)])],
        ids,
      );
      if (!Array.isArray(reply) || reply.length < 3) throw new TypeError('read-view: unexpected reply');
      const v = Number(reply[2] ?? 0);
      version = Number.isFinite(v) ? v : 0;
      if (at === 0) {
        at = redisMicros(reply[0], reply[1]);
        startVersion = version;
      }
      for (const row of reply.slice(3) as unknown[][]) {
        const entry = viewEntry(row);
        byId.set(entry.id, entry);
      }
    } while (cursor !== '0');
    const nodes = [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return { at, version, startVersion: Math.min(startVersion, version), nodes };
  }

  async nodeIds(): Promise<string[]> {
    return (await this.redis.smembers(this.keys.nodes)).sort();
  }

  /** Every node record, read in one round trip after the id list; unreadable ones reported apart. */
  async readNodes(): Promise<{ records: NodeRecord[]; invalid: InvalidRecord[] }> {
    const ids = await this.nodeIds();
    if (ids.length === 0) return { records: [], invalid: [] };
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hgetall(this.keys.node(id));
    const replies = (await pipe.exec()) ?? [];
    const records: NodeRecord[] = [];
    const invalid: InvalidRecord[] = [];
    ids.forEach((id, i) => {
      const [err, hash] = replies[i] ?? [new Error('no reply'), null];
      if (err) {
        invalid.push({ id, problems: [err.message] });
        return;
      }
      const d = decodeNodeRecord(hash as Record<string, string>);
      if (d.ok && d.value.id === id) records.push(d.value);
      else invalid.push({ id, problems: d.ok ? ['id field differs from key'] : d.problems });
    });
    return { records, invalid };
  }

  /** Owner named by each node's liveness key, or null where the key has expired. */
  async liveness(ids: readonly string[]): Promise<Map<string, string | null>> {
    if (ids.length === 0) return new Map();
    const values = await this.redis.mget(ids.map((id) => this.keys.alive(id)));
    return new Map(ids.map((id, i) => [id, values[i] ?? null]));
  }
}

/**
 * Nodes read per script by `readView`: at 1000 nodes a whole view in one script holds Redis for
 * 8-20 ms on the bench's VM; a chunk of 25 for a twentieth of that, well under a millisecond even
 * on its slowest days (a chunk of 50 measured 0.44-1.03 ms). A full resync of 1000 nodes is then
 * twice 40 round trips (an SSCAN and a script per chunk), every resyncIntervalMs.
 */
export const VIEW_CHUNK = 25;

/** One node of a read-view chunk: `{ id, flat record or error, alive, reservations }`. */
function viewEntry(row: unknown[]): ViewEntry {
  const id = String(row[0]);
  const flat = row[1];
  if (!Array.isArray(flat)) {
    return { id, ok: false, problems: [typeof flat === 'string' ? flat : 'unreadable record'] };
  }
  const hash: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) hash[String(flat[i])] = String(flat[i + 1]);
  const d = decodeNodeRecord(hash);
  if (!d.ok) return { id, ok: false, problems: d.problems };
  if (d.value.id !== id) return { id, ok: false, problems: ['id field differs from key'] };
  return { id, ok: true, record: d.value, alive: Number(row[2]) === 1, reservations: Number(row[3]) };
}

/** Redis TIME (seconds, microseconds) as microseconds since the epoch (exact below 2^53). */
function redisMicros(sec: unknown, usec: unknown): number {
  const v = Number(sec) * 1_000_000 + Number(usec);
  if (!Number.isFinite(v)) throw new TypeError('unexpected Redis time');
  return v;
}

/** A node id that Redis does not know (not in `fslb:nodes`, or without a record). */
export class UnknownNodeError extends FslbError {
  readonly nodeId: string;
  constructor(id: string, what: string) {
    super('unknown-node', `node ${JSON.stringify(id)} ${what}`);
    this.name = 'UnknownNodeError';
    this.nodeId = id;
  }
}
