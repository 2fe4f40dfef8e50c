import { NodeState, type ClusterEvent, type LoadFigure, type ViewSnapshot } from '@fslb/shared';
import { hasRoom } from '../selection/select.js';
import { ViewNode } from './view-node.js';

/** How far (µs of Redis time) a load figure may be stamped after a snapshot read at once. */
const FUTURE_LOAD_US = 60_000_000;

/**
 * How far ahead of Redis' time as the view estimates it (µs) an event's figures may be stamped.
 * Every writer stamps with Redis' own clock, so a true figure is never ahead of it; the margin
 * covers the estimate's drift between resyncs and a failover to a primary whose clock differs a
 * little. A message stamped further ahead did not come from Redis' clock (forged or garbage): it
 * would outrank every true figure until the next resync.
 */
export const MAX_EVENT_SKEW_US = 2_000_000;

/** What applying one event did, so that the caller can react (resync on a gap). */
export const EventEffect = {
  Applied: 'applied',
  /** Older than what the view holds (in flight while a snapshot was read): ignored. */
  Stale: 'stale',
  /** A version was skipped: a message was lost, the view must be reloaded from the keys. */
  Gap: 'gap',
  /** Stamped too far ahead of Redis' time (see MAX_EVENT_SKEW_US): not applied. */
  Skewed: 'skewed',
} as const;
export type EventEffect = (typeof EventEffect)[keyof typeof EventEffect];

export interface SnapshotReport {
  added: string[];
  removed: string[];
  /**
   * Routable nodes whose records Redis lost (its version counter went backwards and the record is
   * missing or not yet rewritten by its monitor): kept as they were, see `ClusterView.carryMs`.
   */
  carried: string[];
  /** Nodes whose record could not be read: kept out of routing until they can. */
  unreadable: { id: string; problems: string[] }[];
}

/**
 * The cluster as one proxy sees it, in memory: no I/O. Filled from a consistent snapshot of
 * the keys, then kept current by events (records in `version` order, load figures in Redis-time
 * order) and by the replies of this proxy's own reservation scripts. `nodes` is the array that
 * selection reads; entries are updated in place.
 */
export class ClusterView {
  readonly #byId = new Map<string, ViewNode>();
  #nodes: ViewNode[] = [];
  /**
   * Highest `fslb:version` seen per shard (see `ShardMap`; '' without shards), from a snapshot
   * or an event: each shard has its own counter and events channel.
   */
  readonly #versions = new Map<string, number>();
  /** The shard of each node, as its snapshot or event came. */
  readonly #shardOf = new Map<string, string>();
  #loaded = false;
  /** Monotonic ms of the last snapshot or event, -Infinity before the first. */
  #touchedAt = -Infinity;
  /** Nodes carried over a loss of Redis' state (see `ViewNode.carriedUntil`). */
  #carried = 0;
  /** Nodes by the `host:port` and the host of their SIP address; rebuilt when addresses change. */
  #byAddress: Map<string, ViewNode> | undefined;
  /** The newest Redis time known (µs) and the monotonic ms it was learnt at. */
  #redisAt = 0;
  #redisAtMono = 0;

  /**
   * @param carryMs how long a routable node whose record Redis lost is kept as it was, waiting
   *   for its monitor to write it again (a monitor rewrites within a claim round and a probe).
   */
  constructor(readonly carryMs = 10_000) {}

  /**
   * Some nodes are carried over a loss of Redis' state: Redis' counts are incomplete until
   * their monitors have written them again, so calls are counted locally meanwhile.
   */
  get rebuilding(): boolean {
    return this.#carried > 0;
  }

  get nodes(): readonly ViewNode[] {
    return this.#nodes;
  }

  get loaded(): boolean {
    return this.#loaded;
  }

  /** The highest version seen in `shard` ('' without shards). */
  version(shard = ''): number {
    return this.#versions.get(shard) ?? 0;
  }

  get touchedAt(): number {
    return this.#touchedAt;
  }

  get(id: string): ViewNode | undefined {
    return this.#byId.get(id);
  }

  /**
   * The node whose SIP address a request came from: by address and port over UDP (a node
   * sends from its SIP profile's socket), by address alone over TCP and TLS (their source port
   * is the client's own). Addresses are compared as configured, so a node named by host name
   * is not recognised.
   */
  nodeAt(address: string, port: number, protocol: string): ViewNode | undefined {
    let index = this.#byAddress;
    if (!index) {
      index = new Map();
      for (const n of this.#nodes) {
        if (!n.hostPort) continue;
        index.set(n.hostPort, n);
        const host = n.hostPort.slice(0, n.hostPort.lastIndexOf(':'));
        if (!index.has(host)) index.set(host, n);
      }
      this.#byAddress = index;
    }
    const addr = address.toLowerCase().replace(/^\[|\]$/g, '');
    return protocol.toLowerCase() === 'udp' ? index.get(`${addr}:${port}`) : index.get(addr);
  }

  /**
   * Redis' time now as this view estimates it (µs): the newest Redis time it learnt plus the
   * time passed since. 0 before any.
   */
  redisNow(now: number): number {
    return this.#redisAt === 0 ? 0 : this.#redisAt + (now - this.#redisAtMono) * 1000;
  }

  /** A Redis time (µs) read at monotonic `now`: from a snapshot or a script reply. */
  learnRedisTime(at: number, now: number): void {
    if (at > this.redisNow(now)) {
      this.#redisAt = at;
      this.#redisAtMono = now;
    }
  }

  /** Nodes that could take a call now (eligible, below capacity). */
  withRoom(): number {
    let n = 0;
    for (const v of this.#nodes) if (hasRoom(v)) n++;
    return n;
  }

  /**
   * Replaces the view with a snapshot of the keys. Records are the snapshot's, except where an
   * event already brought a newer version; load figures are the snapshot's unless newer ones
   * arrived meanwhile. Nodes missing from the snapshot leave; unreadable ones are held out.
   */
  applySnapshot(s: ViewSnapshot, now: number, shard = ''): SnapshotReport {
    const report: SnapshotReport = { added: [], removed: [], unreadable: [], carried: [] };
    // The version counter went backwards: Redis lost its state (a restart without persistence, a
    // FLUSH). Its records are rebuilt by the monitors within a claim round; until then a node
    // that was routable is kept as the view knew it, not darkened by the gap.
    const known = this.#versions.get(shard);
    const amnesia = known !== undefined && s.version < known;
    const seen = new Set<string>();
    for (const e of s.nodes) {
      seen.add(e.id);
      this.#shardOf.set(e.id, shard);
      const held = this.#byId.get(e.id);
      if (!e.ok) {
        report.unreadable.push({ id: e.id, problems: e.problems });
        if (held) held.setAlive(false);
        continue;
      }
      if (!held) {
        this.#byId.set(e.id, new ViewNode(e.record, e.alive, e.reservations, s.at));
        report.added.push(e.id);
        continue;
      }
      if (this.#carry(held, amnesia, now, e.alive && e.record.state !== NodeState.Unknown)) {
        report.carried.push(e.id);
        continue;
      }
      // Load figures stamped far later than this snapshot came from no Redis clock (a forged or
      // garbage message): they would outrank every true figure for ever. The snapshot's win.
      if (held.loadAt > s.at + FUTURE_LOAD_US) held.loadAt = 0;
      // A counter that went backwards (the version key was lost) makes the snapshot the truth.
      held.setLoad(e.record.sessions, e.reservations, s.at);
      if (e.record.version >= held.version || held.version > s.version) held.setRecord(e.record, s.at);
      held.setAlive(e.alive);
    }
    for (const [id, held] of [...this.#byId]) {
      if (seen.has(id) || (this.#shardOf.get(id) ?? '') !== shard) continue;
      // Added (or changed) after a read in chunks began: the read may have passed its place.
      if (!amnesia && s.startVersion !== undefined && held.version > s.startVersion) continue;
      if (this.#carry(held, amnesia, now, false)) {
        report.carried.push(id);
        continue;
      }
      this.#byId.delete(id);
      this.#shardOf.delete(id);
      report.removed.push(id);
    }
    this.#nodes = [...this.#byId.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
    this.#byAddress = undefined;
    this.#redisAt = s.at;
    this.#redisAtMono = now;
    this.#versions.set(shard, s.version);
    this.#loaded = true;
    this.#touchedAt = now;
    this.#countCarried();
    return report;
  }

  /**
   * Whether `held` stays as the view knew it instead of taking what Redis has now: it is carried
   * when Redis just lost its state and the node was routable, and stays carried until Redis has
   * a record its monitor wrote (`rewritten`) or the carry time runs out.
   */
  #carry(held: ViewNode, amnesia: boolean, now: number, rewritten: boolean): boolean {
    if (amnesia && held.eligible && held.carriedUntil === 0) held.carriedUntil = now + this.carryMs;
    if (held.carriedUntil === 0) return false;
    if (rewritten || now >= held.carriedUntil) {
      held.carriedUntil = 0;
      return false;
    }
    return true;
  }

  #countCarried(): void {
    let n = 0;
    for (const v of this.#nodes) if (v.carriedUntil !== 0) n++;
    this.#carried = n;
  }

  /** Applies one message from the events channel of `shard` ('' without shards). */
  applyEvent(e: ClusterEvent, now: number, shard = ''): EventEffect {
    this.#touchedAt = now;
    const redisNow = this.redisNow(now);
    const latest = redisNow === 0 ? Infinity : redisNow + MAX_EVENT_SKEW_US;
    if (e.type === 'load') {
      let skewed = false;
      for (const f of e.nodes) {
        if (f.at > latest) skewed = true;
        else this.applyLoad(f);
      }
      return skewed ? EventEffect.Skewed : EventEffect.Applied;
    }
    if (e.type !== 'removed' && e.at !== undefined && e.at > latest) return EventEffect.Skewed;
    const version = this.#versions.get(shard) ?? 0;
    const gap = this.#loaded && e.version > version + 1;
    if (e.version > version) this.#versions.set(shard, e.version);
    const held = this.#byId.get(e.id);
    // A node is followed in one shard: its events elsewhere (left there by a move) are not its.
    if (held && (this.#shardOf.get(e.id) ?? '') !== shard) return gap ? EventEffect.Gap : EventEffect.Stale;
    if (e.type === 'removed') {
      if (held && held.version < e.version) {
        this.#shardOf.delete(e.id);
        this.#byId.delete(e.id);
        this.#nodes = this.#nodes.filter((n) => n !== held);
        this.#byAddress = undefined;
      }
      return gap ? EventEffect.Gap : EventEffect.Applied;
    }
    if (!held) {
      const n = new ViewNode(e.record, e.reservations !== undefined, e.reservations ?? 0, e.at ?? 0);
      this.#byId.set(e.id, n);
      this.#shardOf.set(e.id, shard);
      this.#nodes = [...this.#nodes, n].sort((a, b) => (a.id < b.id ? -1 : 1));
      this.#byAddress = undefined;
      return gap ? EventEffect.Gap : EventEffect.Applied;
    }
    if (held.carriedUntil !== 0) {
      // Redis lost the node's record: only its monitor's rewrite (a fenced write, which carries
      // the reservation count) ends the carry; versions started again from the counter's new value.
      if (e.reservations === undefined || e.record.state === NodeState.Unknown) return EventEffect.Stale;
      held.carriedUntil = 0;
      this.#countCarried();
      held.setLoad(e.record.sessions, e.reservations, e.at ?? 0);
      if (e.record.sip !== held.record.sip) this.#byAddress = undefined;
      held.setRecord(e.record, undefined);
      held.setAlive(true);
      return gap ? EventEffect.Gap : EventEffect.Applied;
    }
    if (e.version <= held.version) return gap ? EventEffect.Gap : EventEffect.Stale;
    if (e.at !== undefined) held.setLoad(e.record.sessions, e.reservations, e.at);
    if (e.record.sip !== held.record.sip) this.#byAddress = undefined;
    held.setRecord(e.record, e.at);
    // Only the owner's fenced write carries the reservation count, and it refreshes liveness.
    if (e.reservations !== undefined) held.setAlive(true);
    return gap ? EventEffect.Gap : EventEffect.Applied;
  }

  /** Load figures from a reservation reply or another proxy's `load` message. */
  applyLoad(f: LoadFigure): void {
    this.#byId.get(f.id)?.setLoad(f.sessions, f.reservations, f.at);
  }

  /** A reservation script found the node not eligible in Redis: hold it out until news says otherwise. */
  markUnavailable(id: string): void {
    const n = this.#byId.get(id);
    if (n && n.carriedUntil === 0) n.setAlive(false);
  }
}
