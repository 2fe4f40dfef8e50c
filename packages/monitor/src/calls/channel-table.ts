import type { LiveCall } from '@fslb/shared';

/** One inbound channel FreeSWITCH has, as the monitor knows it. */
interface Channel {
  call: string;
  entries: readonly string[];
  /** When the monitor learnt of it (epoch ms). */
  seenAt: number;
}

/**
 * A channel the list did not hold yet, or no longer holds, is left alone while younger than
 * this: FreeSWITCH's `show channels` reads its core database, which its SQL thread writes a
 * moment after the channel events.
 */
export const LIST_LAG_MS = 2000;

/** Destroyed channels are remembered this long, so a list read before their end cannot bring them back. */
const GONE_MS = 60_000;

/**
 * The inbound channels of one node, as the owner learns them from CHANNEL_CREATE and
 * CHANNEL_DESTROY and corrects them from FreeSWITCH's channel list. Plain logic: the watcher
 * feeds it events and lists, and writes what it says to Redis.
 */
export class ChannelTable {
  readonly #channels = new Map<string, Channel>();
  readonly #gone = new Map<string, number>();

  get size(): number {
    return this.#channels.size;
  }

  /** A channel was created. Returns true when it is new to the table. */
  created(uuid: string, call: string, entries: readonly string[], now: number): boolean {
    if (this.#channels.has(uuid) || this.#gone.has(uuid)) return false;
    this.#channels.set(uuid, { call, entries, seenAt: now });
    return true;
  }

  /** A channel was destroyed: its call, when the table held it. */
  destroyed(uuid: string, now: number): LiveCall | undefined {
    const ch = this.#channels.get(uuid);
    this.#channels.delete(uuid);
    this.#gone.delete(uuid);
    this.#gone.set(uuid, now);
    this.#forget(now);
    return ch ? { call: ch.call, entries: ch.entries } : undefined;
  }

  /** Forgets destroyed channels older than GONE_MS (oldest first: a Map keeps insertion order). */
  #forget(now: number): void {
    for (const [uuid, at] of this.#gone) {
      if (now - at <= GONE_MS) break;
      this.#gone.delete(uuid);
    }
  }

  /** Destroyed channels remembered now (tests). */
  get remembered(): number {
    return this.#gone.size;
  }

  /** Channel ids of a list that the table does not know (and that did not end since): their details are needed. */
  unknown(listed: ReadonlySet<string>): string[] {
    return [...listed].filter((u) => !this.#channels.has(u) && !this.#gone.has(u));
  }

  /**
   * Applies FreeSWITCH's list, read at `askedAt`: channels it holds that the table lacks are
   * added (`found`, their details read since); channels the table holds that the list lacks,
   * and that are older than the list's lag, ended without their event. Returns how many of each.
   */
  reconcile(
    listed: ReadonlySet<string>,
    found: ReadonlyMap<string, { call: string; entries: readonly string[] }>,
    askedAt: number,
    now: number,
  ): { added: number; removed: number } {
    let added = 0;
    let removed = 0;
    for (const [uuid, d] of found) {
      if (this.created(uuid, d.call, d.entries, askedAt)) added++;
    }
    for (const [uuid, ch] of this.#channels) {
      if (!listed.has(uuid) && ch.seenAt < askedAt - LIST_LAG_MS) {
        this.#channels.delete(uuid);
        removed++;
      }
    }
    this.#forget(now);
    return { added, removed };
  }

  /** The node is down or FreeSWITCH restarted: it has no channel. */
  clear(): void {
    this.#channels.clear();
  }

  /** The calls that count against limits (those with entries). */
  limited(): LiveCall[] {
    const out: LiveCall[] = [];
    for (const ch of this.#channels.values()) {
      if (ch.entries.length > 0) out.push({ call: ch.call, entries: ch.entries });
    }
    return out;
  }
}
