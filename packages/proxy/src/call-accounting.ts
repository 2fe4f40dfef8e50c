import {
  encodeClusterEvent,
  groupBy,
  publish,
  SlotStatus,
  type ClusterStore,
  type LimitHold,
  type LoadFigure,
  type Logger,
  type ReserveResult,
} from '@fslb/shared';
import { AdvanceSlots, type AdvanceSettings } from './advance-slots.js';
import { hasRoom } from './selection/select.js';
import type { LimitUse } from './routing/route-table.js';
import type { ClusterView } from './view/cluster-view.js';
import type { ViewNode } from './view/view-node.js';

/**
 * The longest a reservation waits for a Redis that is busy (still answering other reservations:
 * a burst queued in it) rather than gone. Past it the call proceeds on local accounting anyway.
 */
export const BUSY_REDIS_WAIT_MS = 1000;

/**
 * Slot candidates sent to Redis in one round trip: the view's best few of one pool. Redis reads
 * only these (its cost grows with each), failover targets come from the view, and only when all
 * of them are full in Redis (the view was behind) does the next few go in another round trip.
 */
export const RESERVE_BATCH = 2;

/** No node refused in Redis (a slot taken without asking it): failover targets from the view alone. */
const NONE_REFUSED: ReadonlySet<string> = new Set();

/** How a call's slots were taken. */
export const SlotMode = {
  /** Reserved in Redis, atomically across every proxy. */
  Redis: 'redis',
  /** One of this proxy's advance slots on the node, held in Redis ahead of time. */
  Advance: 'advance',
  /** Redis was slow or unreachable: counted in this proxy only. */
  Local: 'local',
} as const;
export type SlotMode = (typeof SlotMode)[keyof typeof SlotMode];

/** The slot one call holds; handed back to `release` or `connected` when its outcome is known. */
export interface CallSlots {
  /** The call: `callIdentity(Call-ID, From tag)`. */
  readonly call: string;
  readonly mode: SlotMode;
  /** The node holding the slot: the chosen one. */
  readonly node: ViewNode;
  /** Limit entries the call holds (Redis mode only), ended with the slot when the call fails. */
  readonly limits: readonly string[];
  /** Local mode: when these slots lapse by themselves (monotonic ms), unless the call connected. */
  readonly expiresAt: number;
  /** Advance mode: the slot's member name, sent to the node in the INVITE's X-Fslb-Slot. */
  readonly slot?: string;
}

export type ReserveOutcome =
  /** `targets`: the chosen node (holding the slot), then failover targets with room. */
  | { kind: 'reserved'; slots: CallSlots; targets: ViewNode[]; ms: number }
  /** Every candidate was full or not eligible in Redis. */
  | { kind: 'full'; ms: number }
  /** The call is over a limit (nothing was taken), or a limit cannot be counted without Redis. */
  | { kind: 'over-limit'; use: LimitUse; what: 'maxCalls' | 'maxCps' | 'unavailable'; ms: number };

/** How a reservation is made beyond the call and its candidates. */
export interface ReserveOptions {
  /** Take the slot in candidate order (affinity, round robin) rather than least loaded first. */
  inOrder?: boolean;
  /** Failover targets to name at most; 0 for a retry after a digest challenge. */
  failovers?: number;
  /** A retry after a digest challenge: the slot its first attempt kept ends in the same step. */
  retry?: boolean;
  /** The pool order of each candidate (1 first): the slot goes to the first pool with room. */
  groups?: readonly number[];
  /** Limit counters the call counts against, checked and taken with the slot. */
  limits?: readonly LimitUse[];
}

export interface AccountingSettings {
  /** Targets a call gets at most: the chosen node, then failovers. */
  maxTargets: number;
  /**
   * How long a reservation waits for a Redis that answers nothing; past it the call proceeds on
   * local accounting. While Redis answers other reservations it is waited for, up to
   * BUSY_REDIS_WAIT_MS.
   */
  timeoutMs: number;
  /** Lifetime of a slot (a little above the provisional timeout). */
  ttlMs: number;
  /** Load figures learnt from replies are published at most this often; 0: never. */
  publishMs: number;
  /** Advance slots (`max` 0: off): held ahead of time, taken with no round trip. */
  advance?: AdvanceSettings;
  proxyId: string;
  /**
   * How long a limit holds a call in setup: past the slot's TTL, until the node's monitor has
   * seen the channel (a takeover and a reconcile included), so a connected call never drops out.
   */
  limitHoldMs: number;
}

type LocalWhy = 'local-timeout' | 'local-error' | 'local-offline' | 'local-rebuilding';

export interface AccountingObserver {
  reservation(result: 'redis' | 'advance' | 'full' | 'over-limit' | LocalWhy, ms: number): void;
}

/**
 * Exact cluster-wide accounting of calls in setup. Before a call is proxied, one script call
 * takes a slot on the chosen node in Redis (`reserve-call.lua`), so that however many proxies
 * send at once no node is handed more first calls than it takes. Failover targets, which take no
 * slot, come from the view. The reply's load figures update this proxy's view at once and are published,
 * coalesced, for the others.
 *
 * A slot ends when FreeSWITCH counts the call (the owning monitor settles it), when the proxy
 * learns the call failed at that node (`release`), or by its TTL. When Redis is slow or gone the
 * call proceeds at once on local accounting: slots counted in this proxy's view only.
 */
export class CallAccounting {
  /** The store of a node's shard: a call's slots and limits live in its pools' shard. */
  readonly #storeOf: (nodeId: string) => ClusterStore;
  readonly #view: ClusterView;
  readonly #settings: AccountingSettings;
  readonly #observer: AccountingObserver;
  readonly #log: Logger;
  readonly #redisReady: () => boolean;
  readonly #onLost: () => void;
  /** Local-mode slots by call, swept when they lapse. */
  readonly #local = new Map<string, CallSlots>();
  #sweep: NodeJS.Timeout | undefined;
  readonly #outbox = new Map<string, LoadFigure>();
  #flush: NodeJS.Timeout | undefined;
  #closed = false;
  /** When Redis last answered a reservation (monotonic ms). */
  #lastAnswerAt = -Infinity;
  readonly #busyWaitMs: number;
  readonly #advance: AdvanceSlots | undefined;

  constructor(opts: {
    store: ClusterStore;
    /** The store of a node's shard (see `ShardMap`); `store` for every node without it. */
    storeOf?: (nodeId: string) => ClusterStore;
    view: ClusterView;
    settings: AccountingSettings;
    observer: AccountingObserver;
    log: Logger;
    redisReady: () => boolean;
    /** Called when a reservation finds that Redis lost node records: reload the view. */
    onLost?: () => void;
  }) {
    this.#onLost = opts.onLost ?? (() => undefined);
    const storeOf = opts.storeOf;
    this.#storeOf = storeOf ?? (() => opts.store);
    this.#view = opts.view;
    this.#settings = opts.settings;
    this.#observer = opts.observer;
    this.#log = opts.log;
    this.#redisReady = opts.redisReady;
    this.#busyWaitMs = Math.max(BUSY_REDIS_WAIT_MS, opts.settings.timeoutMs);
    const advance = opts.settings.advance;
    if (advance && advance.max > 0) {
      this.#advance = new AdvanceSlots({
        store: opts.store,
        ...(storeOf ? { storeOf } : {}),
        settings: advance,
        proxyId: opts.settings.proxyId,
        log: opts.log,
        redisReady: opts.redisReady,
        node: (id) => this.#view.get(id),
        learn: (at, rows) => {
          this.#view.learnRedisTime(at, performance.now());
          for (const r of rows) {
            if (r.status === SlotStatus.Lost) continue;
            if (r.status === SlotStatus.Ineligible) this.#view.markUnavailable(r.id);
            this.#learn({ id: r.id, sessions: r.sessions, reservations: r.reservations, at });
          }
        },
        onLost: () => this.#onLost(),
      });
    }
  }

  /** Local-mode slots held now (for metrics and tests). */
  get localSlots(): number {
    return this.#local.size;
  }

  /**
   * Takes a slot for a call on one candidate and picks up to `maxTargets - 1` failover targets
   * with room. `candidates` is the selection's ordered list, longer than
   * maxTargets so that a node found full in Redis is replaced within the same round trip. Redis
   * gives the slot to the least loaded candidate by its own counts, or, `inOrder` (affinity), to
   * the first one with room. `failovers`: how many failover targets to name at most (0 for a
   * retry after a digest challenge, which drachtio-server sends to the challenger only).
   *
   * Decided without Redis (an advance slot, or local accounting), the outcome comes at once rather
   * than as a promise: the INVITE is then proxied in the same turn that received it.
   */
  reserve(
    call: string,
    candidates: readonly ViewNode[],
    opts: ReserveOptions = {},
  ): ReserveOutcome | Promise<ReserveOutcome> {
    const started = performance.now();
    const s = this.#settings;
    const inOrder = opts.inOrder ?? false;
    const failovers = opts.failovers ?? s.maxTargets - 1;
    const limits = opts.limits ?? [];
    if (!this.#redisReady()) {
      return this.#reserveLocally(call, candidates, started, 'local-offline', failovers, limits, opts.groups);
    }
    // Redis lost its state and the monitors are writing it again: its counts (and its idea of
    // which nodes exist) are incomplete for a moment, so count this call here.
    if (this.#view.rebuilding) {
      return this.#reserveLocally(
        call,
        candidates,
        started,
        'local-rebuilding',
        failovers,
        limits,
        opts.groups,
      );
    }
    const primary = candidates[0];
    // An advance slot on the first choice: proxied at once. Not for limits (counted in Redis,
    // call by call) nor for a fixed order (affinity, round robin), which Redis decides.
    if (this.#advance && primary && limits.length === 0 && !inOrder) {
      let node = primary;
      let slot = this.#advance.take(primary, started);
      // None there: the next candidate of the same pool, as Redis would be offered (RESERVE_BATCH).
      const second = candidates[1];
      if (slot === undefined && second && (opts.groups?.[1] ?? 1) === (opts.groups?.[0] ?? 1)) {
        slot = this.#advance.takeInstead(second, started);
        node = second;
      }
      if (slot !== undefined) {
        const ms = performance.now() - started;
        this.#observer.reservation('advance', ms);
        return {
          kind: 'reserved',
          ms,
          slots: { call, mode: SlotMode.Advance, node, limits: [], expiresAt: 0, slot },
          targets: [node, ...this.#spares(node, candidates, opts.groups, failovers, NONE_REFUSED)],
        };
      }
    }
    return this.#reserveInRedis(call, candidates, opts, started, inOrder, failovers, limits);
  }

  /** The round trip of `reserve`: a slot taken in Redis, or local accounting when Redis is slow. */
  async #reserveInRedis(
    call: string,
    candidates: readonly ViewNode[],
    opts: ReserveOptions,
    started: number,
    inOrder: boolean,
    failovers: number,
    limits: readonly LimitUse[],
  ): Promise<ReserveOutcome> {
    const s = this.#settings;
    const local = (why: LocalWhy): ReserveOutcome =>
      this.#reserveLocally(call, candidates, started, why, failovers, limits, opts.groups);
    const primary = candidates[0];
    if (primary) primary.pending++;
    const clock = { timedOut: false, done: false };
    let timer: NodeJS.Timeout | undefined;
    const attempt = this.#askRedis(
      call,
      candidates,
      opts.groups,
      { inOrder, retry: opts.retry ?? false },
      limits.map((u) => ({
        entry: u.entry,
        maxCalls: u.limit.maxCalls ?? 0,
        maxCps: u.limit.maxCps ?? 0,
      })),
    );
    const settled = attempt.finally(() => {
      if (primary) primary.pending--;
    });
    try {
      const result = await Promise.race([
        settled.then((r) => {
          this.#lastAnswerAt = performance.now();
          return r;
        }),
        new Promise<never>((_, reject) => {
          const arm = (): void => {
            timer = setTimeout(() => {
              // The reply may already wait in the socket while this proxy's own event loop was
              // busy (a burst): let this turn's I/O phase deliver it before deciding.
              setImmediate(() => {
                if (clock.done) return;
                const now = performance.now();
                // Redis answered other reservations lately: it is busy (a burst queued in it),
                // not gone, and this reply will come. Waiting keeps the call in the cluster-wide
                // count; a slot counted here only is one the other proxies cannot see.
                if (now - this.#lastAnswerAt < s.timeoutMs && now - started < this.#busyWaitMs) {
                  arm();
                  return;
                }
                clock.timedOut = true;
                reject(new Error(`no reply within ${Math.round(now - started)} ms`));
              });
            }, s.timeoutMs);
          };
          arm();
        }),
      ]);
      clock.done = true;
      clearTimeout(timer);
      const ms = performance.now() - started;
      this.#view.learnRedisTime(result.at, started + ms);
      let chosen: ViewNode | undefined;
      let lost = false;
      const refused = new Set<string>();
      let gone: string | undefined;
      for (const r of result.nodes) {
        if (r.status === SlotStatus.Lost) {
          // The view had it routable, Redis has no monitor's record of it: Redis lost its
          // state. Its figures mean nothing; the view keeps the node and reloads.
          lost = true;
          continue;
        }
        this.#learn({ id: r.id, sessions: r.sessions, reservations: r.reservations, at: result.at });
        if (r.status === SlotStatus.Ineligible) this.#view.markUnavailable(r.id);
        if (r.status === SlotStatus.Full || r.status === SlotStatus.Ineligible) refused.add(r.id);
        const n = this.#view.get(r.id);
        if (!n) {
          // The node left this proxy's view while the script ran: a slot taken there would hold
          // capacity that no call uses until it lapses. End it now.
          if (r.status === SlotStatus.Taken) gone = r.id;
          continue;
        }
        if (r.status === SlotStatus.Taken) chosen = n;
      }
      const entries = limits.map((u) => u.entry);
      if (gone !== undefined) void this.#releaseRedis(call, [gone], entries);
      if (lost) this.#onLost();
      if (result.overLimit) {
        const use = limits[result.overLimit.index];
        if (use) {
          this.#observer.reservation('over-limit', ms);
          return {
            kind: 'over-limit',
            use,
            what: result.overLimit.kind === 'cps' ? 'maxCps' : 'maxCalls',
            ms,
          };
        }
      }
      if (!chosen && lost) return local('local-rebuilding');
      if (!chosen) {
        // The call may have no slot, but the script may have ended an earlier attempt's: nothing to undo.
        this.#observer.reservation('full', ms);
        return { kind: 'full', ms };
      }
      this.#observer.reservation('redis', ms);
      return {
        kind: 'reserved',
        ms,
        slots: { call, mode: SlotMode.Redis, node: chosen, limits: entries, expiresAt: 0 },
        targets: [chosen, ...this.#spares(chosen, candidates, opts.groups, failovers, refused)],
      };
    } catch (err) {
      clock.done = true;
      clearTimeout(timer);
      if (clock.timedOut) {
        // The script may still run: whatever it takes then is ended when it answers.
        settled.then(
          (late) =>
            void this.#releaseRedis(
              call,
              late.taken,
              limits.map((u) => u.entry),
              primary?.id,
            ),
          () => undefined,
        );
      } else {
        this.#log.debug({ err, call }, 'reservation failed; counting locally');
      }
      return local(clock.timedOut ? 'local-timeout' : 'local-error');
    }
  }

  /**
   * Asks Redis for a slot, a few candidates of one pool at a time (`RESERVE_BATCH`), in the
   * candidates' order, until one has room or the call is over a limit; pools are asked in turn,
   * so a call spills over only when its first pool is full in Redis. One round trip unless the
   * view was behind Redis. The replies are merged: every node asked, in order.
   */
  async #askRedis(
    call: string,
    candidates: readonly ViewNode[],
    groups: readonly number[] | undefined,
    how: { inOrder: boolean; retry: boolean },
    limits: LimitHold[],
  ): Promise<ReserveResult> {
    const s = this.#settings;
    const merged: ReserveResult = { at: 0, nodes: [], taken: [], failovers: [] };
    for (let i = 0; i < candidates.length;) {
      const group = groups?.[i] ?? 1;
      let j = i + 1;
      while (j < candidates.length && j - i < RESERVE_BATCH && (groups?.[j] ?? 1) === group) j++;
      const first = candidates[i];
      if (!first) break;
      const r = await this.#storeOf(first.id).reserveCall({
        call,
        candidates: candidates.slice(i, j).map((n) => n.id),
        slots: 1,
        failovers: 0,
        ttlMs: s.ttlMs,
        inOrder: how.inOrder,
        retry: how.retry,
        limits,
        limitHoldMs: s.limitHoldMs,
      });
      merged.at = r.at;
      merged.nodes.push(...r.nodes);
      merged.taken.push(...r.taken);
      if (r.overLimit) merged.overLimit = { ...r.overLimit };
      if (r.overLimit || r.taken.length > 0) return merged;
      i = j;
    }
    return merged;
  }

  /**
   * Failover targets from the view: the chosen node's pool's other candidates that have room
   * there and that Redis did not just find full or unusable (`refused`), in the candidates' order.
   */
  #spares(
    chosen: ViewNode,
    candidates: readonly ViewNode[],
    groups: readonly number[] | undefined,
    max: number,
    refused: ReadonlySet<string>,
  ): ViewNode[] {
    const out: ViewNode[] = [];
    const at = candidates.indexOf(chosen);
    const group = groups?.[at] ?? 1;
    for (let i = 0; i < candidates.length && out.length < max; i++) {
      const n = candidates[i];
      if (!n || n === chosen || (groups?.[i] ?? 1) !== group || refused.has(n.id) || !hasRoom(n)) continue;
      out.push(n);
    }
    return out;
  }

  /**
   * Ends a call's slots when no node holds the call (every target failed, or drachtio-server
   * was lost). A connected call's slots are the monitor's to settle. Never throws and never
   * delays the caller: Redis work runs in the background.
   */
  release(slots: CallSlots): void {
    if (slots.mode === SlotMode.Advance) {
      if (slots.slot !== undefined) this.#advance?.finish(slots.node.id, slots.slot, false);
      return;
    }
    if (slots.mode === SlotMode.Local) {
      if (this.#local.get(slots.call) === slots) {
        this.#local.delete(slots.call);
        slots.node.local--;
      }
      return;
    }
    void this.#releaseRedis(slots.call, [slots.node.id], slots.limits);
  }

  /**
   * A call connected. Its Redis slot is the monitor's to settle. A local slot ends now: while
   * Redis is down no session count arrives, and a slot kept for every connected call would fill
   * the view with calls long over (a proxy would refuse everything after capacity / rate
   * seconds of outage). Counting calls in setup only, the node's own limit guards capacity
   * (a node that refuses answers 503 and the next target is tried).
   */
  connected(slots: CallSlots): void {
    if (slots.mode === SlotMode.Local) this.release(slots);
    else if (slots.mode === SlotMode.Advance && slots.slot !== undefined) {
      this.#advance?.finish(slots.node.id, slots.slot, true);
    }
  }

  /** `ids` and `limits` live in one shard: the call's pools' (`shardOf` names a node of it). */
  async #releaseRedis(
    call: string,
    ids: readonly string[],
    limits: readonly string[],
    shardOf: string | undefined = ids[0],
  ): Promise<void> {
    if ((ids.length === 0 && limits.length === 0) || this.#closed || shardOf === undefined) return;
    try {
      const r = await this.#storeOf(shardOf).releaseCall(call, ids, limits);
      for (const n of r.nodes) {
        const held = this.#view.get(n.id);
        if (held) this.#learn({ id: n.id, sessions: held.sessions, reservations: n.reservations, at: r.at });
      }
    } catch (err) {
      // The slots lapse by their TTL; nothing is lost but a little capacity for a few seconds.
      this.#log.debug({ err, call }, 'could not release reservations; they lapse by their TTL');
    }
  }

  #reserveLocally(
    call: string,
    candidates: readonly ViewNode[],
    started: number,
    why: LocalWhy,
    failovers: number,
    limits: readonly LimitUse[],
    groups: readonly number[] | undefined,
  ): ReserveOutcome {
    const s = this.#settings;
    const ms = () => performance.now() - started;
    // A limit cannot be counted across proxies without Redis: it refuses, unless told to admit.
    const refusing = limits.find((u) => u.limit.whenRedisDown === 'refuse');
    if (refusing) {
      this.#observer.reservation('over-limit', ms());
      return { kind: 'over-limit', use: refusing, what: 'unavailable', ms: ms() };
    }
    this.#observer.reservation(why, ms());
    const chosen = candidates.find(hasRoom);
    if (!chosen) return { kind: 'full', ms: ms() };
    const targets = [chosen, ...this.#spares(chosen, candidates, groups, failovers, NONE_REFUSED)];
    const previous = this.#local.get(call);
    if (previous) this.release(previous);
    chosen.local++;
    const slots: CallSlots = {
      call,
      mode: SlotMode.Local,
      node: chosen,
      limits: [],
      expiresAt: performance.now() + s.ttlMs,
    };
    this.#local.set(call, slots);
    this.#sweep ??= setInterval(() => this.#sweepLocal(), 250);
    return { kind: 'reserved', ms: ms(), slots, targets };
  }

  #sweepLocal(): void {
    const now = performance.now();
    for (const slots of [...this.#local.values()]) {
      if (slots.expiresAt <= now) this.release(slots);
    }
    if (this.#local.size === 0) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }

  /** Load figures from a script reply: into this proxy's view now, and to the others, coalesced. */
  #learn(f: LoadFigure): void {
    this.#view.applyLoad(f);
    this.#queue(f);
  }

  /** Queues a load figure for the coalesced `load` message (none when publishing is off). */
  #queue(f: LoadFigure): void {
    if (this.#closed || this.#settings.publishMs === 0) return;
    const held = this.#outbox.get(f.id);
    if (!held || held.at < f.at) this.#outbox.set(f.id, f);
    this.#flush ??= setTimeout(() => {
      this.#flush = undefined;
      this.#publish();
    }, this.#settings.publishMs);
  }

  /** One `load` message per shard, on the events channel of the shard the nodes live in. */
  #publish(): void {
    if (this.#outbox.size === 0 || !this.#redisReady()) return;
    const byShard = groupBy(this.#outbox.values(), (f) => this.#storeOf(f.id));
    this.#outbox.clear();
    for (const [store, nodes] of byShard) {
      const message = encodeClusterEvent({ type: 'load', from: this.#settings.proxyId, nodes });
      publish(store.redis, store.keys.events, message).catch((err: unknown) => {
        this.#log.debug({ err }, 'could not publish load figures');
      });
    }
  }

  close(): void {
    this.#closed = true;
    this.#advance?.close();
    clearInterval(this.#sweep);
    clearTimeout(this.#flush);
    this.#outbox.clear();
  }
}
