/**
 * A node's live session count, moved in real time by CHANNEL_CREATE and CHANNEL_DESTROY and
 * reset to FreeSWITCH's own count whenever one arrives (HEARTBEAT, `api status`), so that a
 * lost or doubled event never makes it drift for longer than one reconciliation.
 *
 * Each channel is counted once: a repeated CREATE or DESTROY for the same Unique-ID is ignored.
 * The remembered ids are forgotten at each reconciliation, which bounds memory.
 */
export class SessionCount {
  #count = 0;
  #created = new Set<string>();
  #destroyed = new Set<string>();
  #moved = 0;

  get value(): number {
    return this.#count;
  }

  /**
   * Net movement of the count by channel events since start. A reading taken at one moment is
   * reconciled as `reading + (moved now - moved then)`: events handled after it still count.
   */
  get moved(): number {
    return this.#moved;
  }

  /** Returns true when the count changed. */
  created(uuid: string): boolean {
    if (this.#created.has(uuid) || this.#destroyed.has(uuid)) return false;
    this.#created.add(uuid);
    this.#count++;
    this.#moved++;
    return true;
  }

  /** Returns true when the count changed. */
  destroyed(uuid: string): boolean {
    if (this.#destroyed.has(uuid)) return false;
    this.#destroyed.add(uuid);
    const wasCreated = this.#created.delete(uuid);
    if (!wasCreated && this.#count === 0) return false;
    this.#count--;
    this.#moved--;
    return true;
  }

  /** FreeSWITCH's own count wins. Returns true when it differed. */
  reconcile(authoritative: number): boolean {
    this.#created.clear();
    this.#destroyed.clear();
    if (authoritative === this.#count) return false;
    this.#count = Math.max(0, authoritative);
    return true;
  }
}
