import { EventEmitter } from 'node:events';
import type { AdminState, ClusterStore, LiveCall, Logger, MonitorConfig, NodeConfig } from '@fslb/shared';
import type { NodeLease } from './lease/node-lease.js';
import type { MonitorMetrics } from './metrics.js';
import { NodeWatcher, type NodeSnapshot } from './node-watcher.js';

export interface OwnedNodeDeps {
  store: ClusterStore;
  monitor: MonitorConfig;
  metrics: MonitorMetrics;
  log: Logger;
  /** The admin flag of each node as its owner last read it, kept across leases (see Monitor). */
  admin: Map<string, AdminState>;
  /** Writes every configured node again: a write found the nodes set gone. */
  relist: () => Promise<void>;
  /** The pool a node is in, by the configuration ('' for none). */
  poolOf: (id: string) => string;
}

/** Live calls counting against limits, queued for the next write. */
interface LiveBatch {
  started: LiveCall[];
  ended: string[];
  /** Write the watcher's whole table (after a reconcile or a failed write). */
  full: boolean;
  /** The node is down: end its calls and the limit holds of calls in setup there. */
  down: boolean;
}

/** Call-IDs held for settling while Redis cannot be written; beyond this they lapse by TTL. */
const MAX_UNSETTLED = 10_000;

type Events = {
  /** The lease is gone (not extended in time, taken, or the node was removed). */
  lost: [reason: string];
};

/**
 * A node this monitor holds the lease of: its watcher, the lease's extension, and the fenced
 * writes of what the watcher sees. Session-only changes are coalesced to one write per
 * `coalesceMs`; state changes are written at once; every probe interval a write refreshes the
 * liveness key even when nothing changed. Writes never overlap.
 */
export class OwnedNode extends EventEmitter<Events> {
  readonly id: string;
  readonly watcher: NodeWatcher;
  readonly #lease: NodeLease;
  readonly #deps: OwnedNodeDeps;
  readonly #log: Logger;
  #timers: NodeJS.Timeout[] = [];
  #coalesce: NodeJS.Timeout | undefined;
  #writing: Promise<void> | undefined;
  #pending = false;
  #lastWriteAt = 0;
  /** When the last write that reached Redis started (epoch ms), 0 before one did. */
  #lastOkAt = 0;
  #node: NodeConfig;
  #stopped = false;
  #redisFailing = false;
  /** Calls (`callIdentity`) FreeSWITCH has counted whose reservations the next write settles. */
  #settle = new Set<string>();
  /** Live calls counting against limits, to be written (see `#writeLive`). */
  #live: LiveBatch = { started: [], ended: [], full: false, down: false };
  #liveWriting = false;
  #liveRetry: NodeJS.Timeout | undefined;

  constructor(node: NodeConfig, lease: NodeLease, deps: OwnedNodeDeps) {
    super();
    this.id = node.id;
    this.#node = node;
    this.#lease = lease;
    this.#deps = deps;
    this.#log = deps.log;
    const m = deps.monitor;
    this.watcher = new NodeWatcher(
      node,
      {
        probeIntervalMs: m.probeIntervalMs,
        probeTimeoutMs: m.probeTimeoutMs,
        maxBackoffMs: m.maxBackoffMs,
        reconcileIntervalMs: m.reconcileIntervalMs,
      },
      this.#log,
    );
  }

  start(): void {
    const m = this.#deps.monitor;
    this.watcher.on('counted', (callId) => {
      // Bounded: a reservation left unsettled lapses by its TTL, so dropping one costs only time.
      if (this.#settle.size < MAX_UNSETTLED) this.#settle.add(callId);
    });
    this.watcher.on('change', (_s, { urgent }) => this.#schedule(urgent));
    this.watcher.on('callStarted', (c) => {
      this.#live.started.push(c);
      this.#flushLive();
    });
    this.watcher.on('callEnded', (call) => {
      this.#live.ended.push(call);
      this.#flushLive();
    });
    this.watcher.on('reconciled', ({ down }) => {
      // The watcher's table is the whole truth now: what was queued is part of it.
      this.#live = { started: [], ended: [], full: true, down };
      this.#flushLive();
    });
    this.watcher.on('probe', ({ ok, ms }) =>
      this.#deps.metrics.probeSeconds.observe({ node: this.id, result: ok ? 'ok' : 'failed' }, ms / 1000),
    );
    this.watcher.start();
    this.#timers.push(
      setInterval(() => void this.#extend(), Math.max(50, Math.floor(m.leaseTtlMs / 3))),
      setInterval(() => this.#schedule(true), m.probeIntervalMs),
    );
  }

  get snapshot(): NodeSnapshot {
    return this.watcher.snapshot;
  }

  update(node: NodeConfig): void {
    this.#node = node;
    this.watcher.update(node);
  }

  /** Stops watching and gives the lease back so that another monitor can take the node at once. */
  async release(): Promise<void> {
    this.#stop();
    await this.#writing;
    await this.#lease.release();
  }

  /** Stops watching without touching Redis (the lease is already lost). */
  abandon(): void {
    this.#stop();
  }

  #stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    clearTimeout(this.#coalesce);
    clearTimeout(this.#liveRetry);
    this.watcher.close();
    this.#deps.metrics.nodeState.remove({ node: this.id });
  }

  #lose(reason: string): void {
    if (this.#stopped) return;
    this.#log.warn({ reason }, 'lease lost: closing the ESL connection');
    this.#stop();
    this.emit('lost', reason);
  }

  async #extend(): Promise<void> {
    if (this.#stopped) return;
    if (Date.now() >= this.#lease.expiresAt) {
      this.#lose('lease expired before it could be extended');
      return;
    }
    try {
      const ok = await this.#lease.extend(this.#deps.monitor.leaseTtlMs);
      if (!ok) this.#lose('lease taken or expired');
    } catch (err) {
      this.#deps.metrics.errors.inc({ kind: 'lease' });
      this.#log.warn({ err }, 'lease extension failed; retrying until it expires');
    }
  }

  /**
   * Writes the live calls that count against limits (`live-calls-2.lua`), one write at a time:
   * the changes queued since the last one, or the whole list after a reconcile or a failed
   * write (the watcher's table is the truth, so a write lost to a Redis fault is replaced, not
   * replayed).
   */
  #flushLive(): void {
    if (this.#liveWriting || this.#stopped) return;
    const batch = this.#live;
    if (!batch.full && batch.started.length === 0 && batch.ended.length === 0) return;
    this.#live = { started: [], ended: [], full: false, down: false };
    this.#liveWriting = true;
    const change = batch.down
      ? { kind: 'down' as const }
      : batch.full
        ? { kind: 'full' as const, calls: this.watcher.limitedCalls() }
        : { kind: 'delta' as const, started: batch.started, ended: batch.ended };
    this.#deps.store
      .liveCalls(this.id, this.#lease.token, change)
      .then((r) => {
        if (r.fenced) this.#lose('fenced: another monitor holds the lease');
      })
      .catch((err: unknown) => {
        this.#deps.metrics.errors.inc({ kind: 'redis' });
        this.#log.debug({ err }, 'cannot write live calls; the whole list is written again');
        this.#live = { started: [], ended: [], full: true, down: batch.down || this.#live.down };
        clearTimeout(this.#liveRetry);
        this.#liveRetry = setTimeout(() => {
          this.#liveRetry = undefined;
          this.#flushLive();
        }, 500);
      })
      .finally(() => {
        this.#liveWriting = false;
        // What was queued meanwhile goes now, unless a failed write waits to be tried again.
        if (!this.#liveRetry) this.#flushLive();
      });
  }

  #schedule(urgent: boolean): void {
    if (this.#stopped || !this.watcher.reported) return;
    if (this.#writing) {
      this.#pending = true;
      return;
    }
    const wait = urgent ? 0 : this.#lastWriteAt + this.#deps.monitor.coalesceMs - Date.now();
    if (wait <= 0) {
      clearTimeout(this.#coalesce);
      this.#coalesce = undefined;
      this.#writing = this.#write().finally(() => {
        this.#writing = undefined;
        if (this.#pending) {
          this.#pending = false;
          this.#schedule(false);
        }
      });
    } else {
      this.#coalesce ??= setTimeout(() => {
        this.#coalesce = undefined;
        this.#schedule(true);
      }, wait);
    }
  }

  async #write(): Promise<void> {
    const s = this.watcher.snapshot;
    const m = this.#deps.monitor;
    const settle = [...this.#settle];
    this.#settle.clear();
    const now = Date.now();
    this.#lastWriteAt = now;
    const node = this.#node;
    try {
      const outcome = await this.#deps.store.writeNode({
        id: this.id,
        token: this.#lease.token,
        owner: m.id,
        livenessTtlMs: m.livenessTtlMs,
        loud: {
          state: s.state,
          reason: s.reason,
          sessions: s.sessions,
          maxSessions: s.maxSessions,
          pool: this.#deps.poolOf(this.id),
        },
        // No proxy reads these: stored for operators, published with nothing.
        quiet: { heartbeatAt: s.heartbeatAt, idleCpu: s.idleCpu, cps: s.cps },
        settle,
        config: { sip: node.sip, weight: node.weight, cap: node.maxSessions },
        admin: this.#deps.admin.get(this.id) ?? '',
        aliveExpected: now - this.#lastOkAt < m.livenessTtlMs / 2,
      });
      if (outcome.kind === 'changed' || outcome.kind === 'unchanged') {
        this.#lastOkAt = now;
        this.#deps.admin.set(this.id, outcome.admin);
      }
      this.#deps.metrics.publishes.inc({ outcome: outcome.kind });
      this.#deps.metrics.nodeState.set({ node: this.id }, s.state === 'up' ? 1 : 0);
      if (this.#redisFailing) this.#log.info('redis writes work again');
      this.#redisFailing = false;
      if (outcome.kind === 'fenced') this.#lose('fenced: another monitor holds the lease');
      else if (outcome.kind === 'removed') this.#lose('node removed from the configuration');
      else if (outcome.kind === 'unlisted') {
        // Nothing was written: the nodes come back first, then this write is made again.
        for (const callId of settle) if (this.#settle.size < MAX_UNSETTLED) this.#settle.add(callId);
        await this.#deps.relist();
        this.#pending = true;
      }
    } catch (err) {
      for (const callId of settle) if (this.#settle.size < MAX_UNSETTLED) this.#settle.add(callId);
      this.#deps.metrics.publishes.inc({ outcome: 'error' });
      this.#deps.metrics.errors.inc({ kind: 'redis' });
      if (!this.#redisFailing) this.#log.warn({ err }, 'cannot write the node record to redis');
      this.#redisFailing = true;
    }
  }
}
