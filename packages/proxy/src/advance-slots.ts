import {
  advanceSlotPrefix,
  groupBy,
  SlotStatus,
  type AdvanceBook,
  type AdvanceRow,
  type ClusterStore,
  type Logger,
} from '@fslb/shared';
import type { ViewNode } from './view/view-node.js';

/** A proxy holds at most a node's room (not counting its own unused slots) divided by this. */
export const ADVANCE_SHARE = 4;
/** How often every advance slot held is refreshed, ms. */
export const ADVANCE_REFRESH_MS = 1000;

/** How an advance slot's demand estimate forgets: the time constant of its moving rate, ms. */
const RATE_TAU_MS = 1000;
/** Slots wanted on a node cover this much of its recent demand, ms, plus one. */
const HORIZON_MS = 500;
/** A node that was nobody's first choice for this long wants no slots: its unused ones go back. */
const IDLE_MS = 5000;
/** Book-keeping calls asked for by demand are this far apart at least, ms. */
const MIN_GAP_MS = 5;
/** How the book-keeping round trip's recent high forgets: its time constant, ms. */
const RTT_TAU_MS = 2000;

/**
 * What a node's slots should be, for a demand of `rate` calls/s when a book-keeping call takes
 * `leadMs` from being asked for to its answer (see `AdvanceSlots.leadMs`), at most `max`:
 * - `need`: the calls that arrive while one is under way, plus one. Fewer unused than that and
 *   the next calls would find none before the refill lands;
 * - `want`: about HORIZON_MS of demand, or twice the calls of a wait if more, plus one, so each
 *   call grants many slots and Redis does the work of many calls in one script;
 * - `low`: unused slots at or under this ask for more: a quarter of `want` (asking at half made
 *   each call grant fewer slots, so more calls: Redis spent 20 µs per reservation instead of 11
 *   in `redis-cost`), or `need` where the round trip is long (a busy host).
 */
export function slotTargets(rate: number, leadMs: number, max: number): { want: number; low: number } {
  const during = Math.ceil((rate * leadMs) / 1000);
  const need = during + 1;
  const want = Math.min(max, Math.max(Math.ceil((rate * HORIZON_MS) / 1000), 2 * during) + 1);
  return { want, low: Math.min(want, Math.max(want / 4, need)) };
}

const NONE = { want: 0, low: 0 } as const;

export interface AdvanceSettings {
  /** Unused advance slots held per node at most; 0 turns advance slots off. */
  max: number;
  /** A proxy holds at most the node's room (not counting its own unused slots) / share. */
  share: number;
  /** How often every slot held is refreshed, even with no demand, ms. */
  refreshMs: number;
  /** A slot lives this long after each refresh, ms (a call's slot TTL plus refreshes' slack). */
  ttlMs: number;
}

export interface AdvanceDeps {
  store: ClusterStore;
  /** The store of a node's shard (see `ShardMap`); `store` for every node without it. */
  storeOf?: (nodeId: string) => ClusterStore;
  settings: AdvanceSettings;
  proxyId: string;
  log: Logger;
  redisReady: () => boolean;
  node: (id: string) => ViewNode | undefined;
  /** Load figures of a reply (`at`: Redis time, µs). */
  learn: (at: number, rows: readonly AdvanceRow[]) => void;
  /**
   * Redis has no monitor's record of a node the proxy holds slots on: it lost its state (the
   * slots held are gone with it and already forgotten).
   */
  onLost: () => void;
}

/** One node's slots, as this proxy holds them. */
class Book {
  /** Unused slots, newest last. */
  unused: string[] = [];
  /** Slots calls in setup were proxied on: refreshed until the call's outcome is known. */
  readonly busy = new Set<string>();
  /** Slots spent on calls that no node took: removed at the next book-keeping call. */
  spent: string[] = [];
  /** Calls per second that had this node first, as a moving rate, at `at` (monotonic ms). */
  rate = 0;
  at = -Infinity;
  /** When its slots were last refreshed (monotonic ms). */
  refreshedAt = -Infinity;
  constructor(readonly id: string) {}
}

/**
 * Advance slots: a few reservations per node held by this proxy ahead of time
 * (`advance-slots.lua`), so that an INVITE whose first choice holds one is proxied at once, with
 * no round trip on its path. They are members of the node's reservation set, counted by every
 * proxy's reservations and by the monitors, so exactness does not depend on them: a proxy holds
 * at most a share of a node's room, so near capacity it holds none and calls take their slot in
 * Redis one by one. How many it asks for follows the node's recent demand; unused slots of a
 * node that nobody chose for a while go back.
 *
 * One book-keeping call at a time, for every node at once: asked for when a node's unused slots
 * run low or a slot was spent on a call that failed (at most every MIN_GAP_MS), and every
 * refreshMs regardless, so slots in use or unused never lapse while held.
 */
export class AdvanceSlots {
  readonly #books = new Map<string, Book>();
  readonly #prefix: string;
  #seq = 1;
  #running = false;
  #again = false;
  #lastRun = -Infinity;
  #timer: NodeJS.Timeout | undefined;
  readonly #periodic: NodeJS.Timeout;
  #closed = false;
  /** The next book-keeping call refreshes every slot held, not only the nodes that need slots. */
  #refreshAll = false;
  /** The recent high of a book-keeping call's time, ms, as of `#rttAt` (monotonic ms). */
  #rttHigh = 0;
  #rttAt = 0;
  #leadMs = MIN_GAP_MS;

  readonly #deps: AdvanceDeps;

  constructor(deps: AdvanceDeps) {
    this.#deps = deps;
    this.#prefix = advanceSlotPrefix(deps.proxyId);
    this.#periodic = setInterval(() => {
      this.#refreshAll = true;
      this.#ask();
    }, deps.settings.refreshMs);
    this.#periodic.unref();
  }

  /** Unused slots held on every node (for tests and metrics). */
  get held(): number {
    let n = 0;
    for (const b of this.#books.values()) n += b.unused.length;
    return n;
  }

  /**
   * An INVITE has `node` first: takes one of its unused slots if this proxy holds one (the member
   * name, for the INVITE's header), and counts the demand either way.
   */
  take(node: ViewNode, now: number): string | undefined {
    let b = this.#books.get(node.id);
    if (!b) {
      b = new Book(node.id);
      this.#books.set(node.id, b);
    }
    b.rate = this.#rateAt(b, now) + 1000 / RATE_TAU_MS;
    b.at = now;
    return this.#use(b, node, now);
  }

  /**
   * An INVITE whose first choice holds none takes one of `node`'s unused slots, if this proxy
   * holds one, without counting demand there (the call did not choose it first).
   */
  takeInstead(node: ViewNode, now: number): string | undefined {
    const b = this.#books.get(node.id);
    return b && b.unused.length > 0 ? this.#use(b, node, now) : undefined;
  }

  #use(b: Book, node: ViewNode, now: number): string | undefined {
    const slot = b.unused.pop();
    if (slot !== undefined) {
      b.busy.add(slot);
      node.advance = b.unused.length;
    }
    if (b.unused.length <= this.#targets(b, now).low) this.#ask();
    return slot;
  }

  /**
   * The outcome of a call proxied on `slot` is known. Connected: the slot stays in Redis until
   * the node's monitor settles it with the call (or it lapses), as a reserved call's does.
   * Failed: no node holds the call, so the slot is removed.
   */
  finish(nodeId: string, slot: string, connected: boolean): void {
    const b = this.#books.get(nodeId);
    if (!b?.busy.delete(slot)) return;
    if (!connected) {
      b.spent.push(slot);
      this.#ask();
    }
  }

  #rateAt(b: Book, now: number): number {
    return b.rate === 0 ? 0 : b.rate * Math.exp(-(now - b.at) / RATE_TAU_MS);
  }

  /** What `b`'s slots should be now (nothing once nobody chose the node for IDLE_MS). */
  #targets(b: Book, now: number): { want: number; low: number } {
    if (now - b.at > IDLE_MS) return NONE;
    return slotTargets(this.#rateAt(b, now), this.#leadMs, this.#deps.settings.max);
  }

  /**
   * How long slots asked for take to arrive, ms, as of the last book-keeping call: a call may
   * have to wait for the one under way (one at a time) and then make its own round trip, so
   * twice the recent high of a book-keeping call's time (its round trip plus this process's own
   * delay in reading the reply: on a busy host that is most of it), plus the gap between calls.
   */
  get leadMs(): number {
    return this.#leadMs;
  }

  #sampleRtt(ms: number, now: number): void {
    const high = this.#rttHigh * Math.exp(-(now - this.#rttAt) / RTT_TAU_MS);
    this.#rttHigh = Math.max(ms, high);
    this.#rttAt = now;
    this.#leadMs = 2 * this.#rttHigh + MIN_GAP_MS;
  }

  /** Asks for a book-keeping call: now, or once the one under way answers. */
  #ask(): void {
    if (this.#closed) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    if (this.#timer) return;
    // Whole ms: Node.js keeps a timer list per duration, and a fractional one made a new list
    // (and a priority-queue insert) for each of these timers.
    const wait = Math.max(0, Math.ceil(this.#lastRun + MIN_GAP_MS - performance.now()));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#run();
    }, wait);
  }

  async #run(): Promise<void> {
    if (this.#closed || this.#running) return;
    const started = performance.now();
    if (!this.#deps.redisReady()) {
      // Whatever Redis holds now is unknown to this proxy: hold nothing (they lapse there).
      this.#forgetAll();
      return;
    }
    // Only the nodes whose slots run low or were spent, and every refreshMs those not refreshed
    // for half of it: most calls cost Redis nothing of their own, and a slot held never lapses.
    // Slots held are named (refreshed, and checked for being still there) only in that periodic
    // refresh: a call asked for by demand names only what it drops and how many it holds.
    const all = this.#refreshAll;
    this.#refreshAll = false;
    const books: AdvanceBook[] = [];
    for (const b of this.#books.values()) {
      const node = this.#deps.node(b.id);
      const { want, low } = node?.eligible ? this.#targets(b, started) : NONE;
      if (want === 0 && b.unused.length === 0 && b.busy.size === 0 && b.spent.length === 0) {
        if (started - b.at > IDLE_MS) this.#books.delete(b.id);
        continue;
      }
      // Low on slots, or holding some nobody wants any more (the node went idle or unusable).
      const due = (want > 0 && b.unused.length <= low) || (want === 0 && b.unused.length > 0);
      const stale = all && started - b.refreshedAt >= this.#deps.settings.refreshMs / 2;
      if (!stale && !due && b.spent.length === 0) continue;
      const first = this.#seq;
      this.#seq += Math.max(0, want - b.unused.length);
      books.push({
        id: b.id,
        want,
        first,
        held: b.unused.length,
        drop: b.spent,
        busy: stale ? [...b.busy] : [],
        keep: stale ? [...b.unused] : [],
      });
      b.spent = [];
      if (stale) b.refreshedAt = started;
    }
    if (books.length === 0) return;
    this.#running = true;
    this.#lastRun = started;
    try {
      const rows = await this.#send(books);
      const answered = performance.now();
      this.#sampleRtt(answered - started, answered);
      let lost = false;
      const askedOf = new Map(books.map((b) => [b.id, b]));
      for (const row of rows) {
        const asked = askedOf.get(row.id);
        const b = this.#books.get(row.id);
        if (!asked || !b) continue;
        // No monitor's record of a node this proxy still sees: Redis lost its state. A node that
        // left the view (removed from the cluster) has no record either: its slots just go back.
        const node = this.#deps.node(row.id);
        if (row.status === SlotStatus.Lost && node) lost = true;
        if (row.missing.length > 0) {
          const gone = new Set(row.missing.map((j) => asked.keep[j - 1]));
          b.unused = b.unused.filter((m) => !gone.has(m));
        }
        for (let j = 0; j < row.granted; j++) b.unused.push(`${this.#prefix}${asked.first + j}`);
        // Above this proxy's share now (the node filled), or wanted no more (nobody chose it for
        // a while, or it cannot take calls): the oldest go back. A want that merely dipped keeps
        // what is held, so slots are not handed back and taken again as demand wobbles.
        const keep = asked.want === 0 ? 0 : row.allowed;
        if (b.unused.length > keep) {
          b.spent.push(...b.unused.splice(0, b.unused.length - keep));
          this.#again = true;
        }
        if (node) node.advance = b.unused.length;
      }
      if (lost) {
        // Redis restarted empty or was flushed: calls take their slot one by one until the
        // monitors have written their nodes again.
        this.#forgetAll();
        this.#deps.onLost();
      }
    } catch (err) {
      // Unknown which slots Redis holds now: use none of them (they lapse there by their TTL).
      this.#deps.log.debug({ err }, 'advance slots: book-keeping failed; holding none until it works again');
      this.#forgetAll();
    } finally {
      this.#running = false;
      if (this.#again) {
        this.#again = false;
        this.#ask();
      }
    }
  }

  /** Holds no unused slot any more (Redis unreachable, or lost its state). */
  #forgetAll(): void {
    for (const b of this.#books.values()) {
      b.unused = [];
      b.spent = [];
      const node = this.#deps.node(b.id);
      if (node) node.advance = 0;
    }
  }

  /** Stops, handing the unused slots back (best effort: they lapse by their TTL otherwise). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#periodic);
    clearTimeout(this.#timer);
    const books: AdvanceBook[] = [];
    for (const b of this.#books.values()) {
      const drop = [...b.spent, ...b.unused];
      if (drop.length > 0) books.push({ id: b.id, want: 0, first: 0, held: 0, drop, busy: [], keep: [] });
    }
    this.#forgetAll();
    if (books.length === 0 || !this.#deps.redisReady()) return;
    this.#send(books).catch(() => undefined);
  }

  /**
   * One book-keeping script per shard the books' nodes live in (one script reaches one slot of a
   * Redis Cluster), at once; the load figures of each reply are learnt. Rows name their node.
   */
  async #send(books: readonly AdvanceBook[]): Promise<AdvanceRow[]> {
    const s = this.#deps.settings;
    const opts = { ttlMs: s.ttlMs, share: s.share, prefix: this.#prefix };
    const storeOf = this.#deps.storeOf ?? (() => this.#deps.store);
    const parts = groupBy(books, (b) => storeOf(b.id));
    const replies = await Promise.all([...parts].map(([store, part]) => store.advanceSlots(part, opts)));
    for (const r of replies) this.#deps.learn(r.at, r.nodes);
    return replies.flatMap((r) => r.nodes);
  }
}
