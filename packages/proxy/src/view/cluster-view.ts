import type { ClusterEvent, LoadFigure, ViewSnapshot } from '@fslb/shared';
import { hasRoom } from '../selection/select.js';
import { ViewNode } from './view-node.js';

/** What applying one event did, so that the caller can react (resync on a gap). */
export const EventEffect = {
  Applied: 'applied',
  /** Older than what the view holds (in flight while a snapshot was read): ignored. */
  Stale: 'stale',
  /** A version was skipped: a message was lost, the view must be reloaded from the keys. */
  Gap: 'gap',
} as const;
export type EventEffect = (typeof EventEffect)[keyof typeof EventEffect];

export interface SnapshotReport {
  added: string[];
  removed: string[];
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
  /** Highest `fslb:version` seen, from a snapshot or an event. */
  #version = 0;
  #loaded = false;
  /** Monotonic ms of the last snapshot or event, -Infinity before the first. */
  #touchedAt = -Infinity;

  get nodes(): readonly ViewNode[] {
    return this.#nodes;
  }

  get loaded(): boolean {
    return this.#loaded;
  }

  get version(): number {
    return this.#version;
  }

  get touchedAt(): number {
    return this.#touchedAt;
  }

  get(id: string): ViewNode | undefined {
    return this.#byId.get(id);
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
  applySnapshot(s: ViewSnapshot, now: number): SnapshotReport {
    const report: SnapshotReport = { added: [], removed: [], unreadable: [] };
    const seen = new Set<string>();
    for (const e of s.nodes) {
      seen.add(e.id);
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
      // A counter that went backwards (the version key was lost) makes the snapshot the truth.
      held.setLoad(e.record.sessions, e.reservations, s.at);
      if (e.record.version >= held.version || held.version > s.version) held.setRecord(e.record, s.at);
      held.setAlive(e.alive);
    }
    for (const id of [...this.#byId.keys()]) {
      if (!seen.has(id)) {
        this.#byId.delete(id);
        report.removed.push(id);
      }
    }
    this.#nodes = [...this.#byId.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
    this.#version = s.version;
    this.#loaded = true;
    this.#touchedAt = now;
    return report;
  }

  /** Applies one message from the events channel. */
  applyEvent(e: ClusterEvent, now: number): EventEffect {
    this.#touchedAt = now;
    if (e.type === 'load') {
      for (const f of e.nodes) this.applyLoad(f);
      return EventEffect.Applied;
    }
    const gap = this.#loaded && e.version > this.#version + 1;
    if (e.version > this.#version) this.#version = e.version;
    const held = this.#byId.get(e.id);
    if (e.type === 'removed') {
      if (held && held.version < e.version) {
        this.#byId.delete(e.id);
        this.#nodes = this.#nodes.filter((n) => n !== held);
      }
      return gap ? EventEffect.Gap : EventEffect.Applied;
    }
    if (!held) {
      const n = new ViewNode(e.record, e.reservations !== undefined, e.reservations ?? 0, e.at ?? 0);
      this.#byId.set(e.id, n);
      this.#nodes = [...this.#nodes, n].sort((a, b) => (a.id < b.id ? -1 : 1));
      return gap ? EventEffect.Gap : EventEffect.Applied;
    }
    if (e.version <= held.version) return gap ? EventEffect.Gap : EventEffect.Stale;
    if (e.at !== undefined) held.setLoad(e.record.sessions, e.reservations, e.at);
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
    this.#byId.get(id)?.setAlive(false);
  }
}
