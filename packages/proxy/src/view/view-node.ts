import { AdminState, NodeState, type NodeRecord } from '@fslb/shared';
import { hashString } from '../selection/hash.js';
import type { SelectNode } from '../selection/select.js';

/**
 * One node as this proxy sees it: the monitor's record, its liveness, and its load from every
 * source (Redis' figures stamped with Redis time, plus what this proxy has in flight). Updated in
 * place so that selection reads plain fields and allocates nothing.
 */
export class ViewNode implements SelectNode {
  readonly id: string;
  readonly idHash: number;
  tier = 0;
  record: NodeRecord;
  /** `fslb:alive:<id>` exists: the owning monitor is watching the node. */
  alive: boolean;
  eligible = false;
  /** SIP URI that drachtio-server proxies to. */
  destination = '';
  /** `host:port` of the destination when it is an address, to match per-target responses. */
  hostPort = '';

  sessions: number;
  /** Live reservations in Redis at `loadAt`. */
  redisReservations: number;
  /** Reservations this proxy has asked Redis for and not heard back about yet. */
  pending = 0;
  /** Reservations this proxy made on its own while Redis could not be reached. */
  local = 0;
  /**
   * Unused advance slots this proxy holds on the node: counted in `redisReservations` (they are
   * members of its reservation set), but room this proxy may still use, so not load to it.
   */
  advance = 0;
  /** Redis time (µs) of the newest load figures applied; older ones are ignored. */
  loadAt: number;
  /**
   * Redis lost this node's record (it restarted empty, or was flushed) while the node was
   * routable: the view keeps what it knew until the owning monitor writes the node again, or
   * until this monotonic time (ms) passes. 0 when the record is Redis' own.
   */
  carriedUntil = 0;

  constructor(record: NodeRecord, alive: boolean, reservations: number, at: number) {
    this.id = record.id;
    this.idHash = hashString(record.id);
    this.record = record;
    this.alive = alive;
    this.sessions = record.sessions;
    this.redisReservations = reservations;
    this.loadAt = at;
    this.#derive();
  }

  get reservations(): number {
    const r = this.redisReservations + this.pending + this.local - this.advance;
    return r > 0 ? r : 0;
  }
  get maxSessions(): number {
    return this.record.maxSessions;
  }
  get weight(): number {
    return this.record.weight;
  }
  get version(): number {
    return this.record.version;
  }

  /**
   * A newer record (higher version) replaces the old one. Its session count is a load figure:
   * applied here only when it carries no Redis time (`at`), otherwise through `setLoad`.
   */
  setRecord(record: NodeRecord, at: number | undefined): void {
    const sipChanged = record.sip !== this.record.sip;
    this.record = record;
    if (at === undefined) this.sessions = record.sessions;
    else this.setLoad(record.sessions, undefined, at);
    if (sipChanged) this.#derive();
    else this.eligible = this.#isEligible();
  }

  setAlive(alive: boolean): void {
    this.alive = alive;
    this.eligible = this.#isEligible();
  }

  /** Load figures from any writer, applied only when newer than what is held. */
  setLoad(sessions: number, reservations: number | undefined, at: number): boolean {
    if (at <= this.loadAt) return false;
    this.sessions = sessions;
    if (reservations !== undefined) this.redisReservations = reservations;
    this.loadAt = at;
    return true;
  }

  #derive(): void {
    this.destination = sipUri(this.record.sip);
    this.hostPort = hostPortOf(this.destination);
    this.eligible = this.#isEligible();
  }

  #isEligible(): boolean {
    const r = this.record;
    return r.state === NodeState.Up && r.admin !== AdminState.Drain && this.alive && r.maxSessions > 0;
  }
}

/** `10.0.0.1:5080` -> `sip:10.0.0.1:5080`; a sip:/sips: URI is kept as it is. */
export function sipUri(sip: string): string {
  return /^sips?:/i.test(sip) ? sip : `sip:${sip}`;
}

/**
 * `host:port` of a SIP URI (default port 5060, 5061 for sips), lower-cased, with IPv6 brackets
 * removed, or '' when it has no host; used to tell which target a response came from.
 */
export function hostPortOf(uri: string): string {
  const m = /^sips?:(?:[^@;?]*@)?(\[[^\]]+\]|[^:;?]+)(?::(\d+))?/i.exec(uri);
  if (!m) return '';
  const host = (m[1] ?? '').replace(/^\[|\]$/g, '').toLowerCase();
  const port = m[2] ?? (/^sips:/i.test(uri) ? '5061' : '5060');
  return `${host}:${port}`;
}
