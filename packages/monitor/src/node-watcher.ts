import { EventEmitter } from 'node:events';
import {
  callIdentity,
  LIMITS_HEADER,
  SLOT_HEADER,
  advanceSlotOf,
  parseLimitEntries,
  type LiveCall,
  type Logger,
  type NodeConfig,
  type NodeState,
} from '@fslb/shared';
import { ChannelTable } from './calls/channel-table.js';
import { EslConnection, EslError, EslErrorCode, type EslEventMessage } from './esl/esl-connection.js';
import { readFlag, readHeartbeat, readProfileRunning, readStatus } from './health/fs-readings.js';
import { assessNode, backoffDelay, effectiveMaxSessions, type CoreFacts } from './health/node-health.js';
import { SessionCount } from './health/session-count.js';

/** What the monitor publishes about one node. */
export interface NodeSnapshot {
  state: NodeState;
  reason: string;
  sessions: number;
  maxSessions: number;
  idleCpu: number;
  cps: number;
  /** Epoch ms of the node's last sign of life, 0 = never. */
  heartbeatAt: number;
}

export interface WatcherSettings {
  probeIntervalMs: number;
  probeTimeoutMs: number;
  maxBackoffMs: number;
  /** How often the channels are compared with FreeSWITCH's own list. */
  reconcileIntervalMs: number;
}

export const ConnectionState = {
  Connecting: 'connecting',
  Connected: 'connected',
  Down: 'down',
  Closed: 'closed',
} as const;
export type ConnectionState = (typeof ConnectionState)[keyof typeof ConnectionState];

type Events = {
  /** The snapshot changed. `urgent`: more than the session count or load figures moved. */
  change: [NodeSnapshot, { urgent: boolean }];
  /** A probe finished (ok) or failed, with its round trip. */
  probe: [{ ok: boolean; ms: number }];
  connection: [ConnectionState];
  /**
   * FreeSWITCH created an inbound channel for this call (`callIdentity`: its Call-ID and From
   * tag) and the session count includes it: a proxy's reservation for that call can end
   * (emitted just before the `change`).
   */
  counted: [call: string];
  /** A channel counting against limits was created (CHANNEL_CREATE carried the limits header). */
  callStarted: [LiveCall];
  /** A channel counting against limits was destroyed. */
  callEnded: [call: string];
  /**
   * The live calls counting against limits were compared with FreeSWITCH's channel list, or the
   * node went down (`down`: it has none, nor any call in setup): `limitedCalls()` is the whole
   * truth now.
   */
  reconciled: [{ added: number; removed: number; down: boolean }];
};

/** `eval`s sent at once while reading channels the monitor had no event for. */
const EVAL_BATCH = 20;

/** The channel variables that name a call and its limits, read with `eval` at a reconcile. */
const CHANNEL_FACTS = `\${variable_sip_call_id}|\${variable_sip_from_tag}|\${variable_sip_h_${LIMITS_HEADER}}`;

/** Events the monitor subscribes to; modesl adds BACKGROUND_JOB and CHANNEL_EXECUTE_COMPLETE. */
export const SUBSCRIBED_EVENTS = [
  'HEARTBEAT',
  'CHANNEL_CREATE',
  'CHANNEL_DESTROY',
  'SHUTDOWN_REQUESTED',
  'SHUTDOWN',
];

/** First reconnect delay; auth failures start higher, since retrying a wrong password fast helps no one. */
const RETRY_BASE_MS = 250;
const AUTH_RETRY_BASE_MS = 5000;

/**
 * Watches one FreeSWITCH node over ESL for as long as this monitor owns it: connects, subscribes,
 * probes every interval, follows HEARTBEAT and channel events, and tells its owner what it sees
 * through `change`. Each connection attempt is a new `EslConnection`; any fault ends that one
 * and, after a capped, jittered backoff, a new one is made.
 */
export class NodeWatcher extends EventEmitter<Events> {
  #node: NodeConfig;
  readonly #settings: WatcherSettings;
  readonly #log: Logger;
  #conn: EslConnection | undefined;
  #connection: ConnectionState = ConnectionState.Connecting;
  #closed = false;
  #wake: (() => void) | undefined;
  #attempt = 0;

  readonly #sessions = new SessionCount();
  readonly #channels = new ChannelTable();
  #reconciling = false;
  /** The connection whose channels have been read at least once (the first read is logged). */
  #reconciledOn: EslConnection | undefined;
  /** The connection whose channel list was found unreadable (warned once). */
  #unreadableOn: EslConnection | undefined;
  #facts: CoreFacts = {
    connected: false,
    downReason: 'not yet connected',
    ready: true,
    paused: false,
    shutdownRequested: false,
  };
  #fsMax: number | undefined;
  #idleCpu = 0;
  #cps = 0;
  #heartbeatAt = 0;
  #snapshot: NodeSnapshot;
  /** Nothing is reported until the first connection attempt has an outcome. */
  #reported = false;

  constructor(node: NodeConfig, settings: WatcherSettings, log: Logger) {
    super();
    this.#node = node;
    this.#settings = settings;
    this.#log = log;
    this.#snapshot = this.#compute();
  }

  get snapshot(): NodeSnapshot {
    return this.#snapshot;
  }

  /** The live calls counting against limits, as the last events and reconcile tell. */
  limitedCalls(): LiveCall[] {
    return this.#channels.limited();
  }

  /** True once the first connection attempt has succeeded or failed. */
  get reported(): boolean {
    return this.#reported;
  }

  get connection(): ConnectionState {
    return this.#connection;
  }

  start(): void {
    void this.#run();
  }

  /** Hot reload: a new ESL address or password reconnects; a new cap is published at once. */
  update(node: NodeConfig): void {
    const old = this.#node;
    this.#node = node;
    const eslChanged =
      old.esl.host !== node.esl.host ||
      old.esl.port !== node.esl.port ||
      old.esl.password !== node.esl.password;
    if (old.sipProfile !== node.sipProfile) this.#facts = { ...this.#facts, profile: undefined };
    if (eslChanged) {
      this.#log.info({ host: node.esl.host, port: node.esl.port }, 'ESL settings changed: reconnecting');
      this.#attempt = 0;
      this.#endSession(new EslError(EslErrorCode.Closed, 'ESL settings changed'));
      this.#wake?.();
    }
    this.#refresh();
  }

  #isClosed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#endSession(undefined);
    this.#wake?.();
    this.#setConnection(ConnectionState.Closed);
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      this.#attempt++;
      this.#setConnection(ConnectionState.Connecting);
      let failure: EslError | undefined;
      try {
        failure = await this.#session();
      } catch (err) {
        failure =
          err instanceof EslError ? err : new EslError(EslErrorCode.Protocol, String(err), { cause: err });
      }
      if (this.#isClosed()) break;
      if (failure) this.#markDown(failure);
      const base = failure?.code === EslErrorCode.Auth ? AUTH_RETRY_BASE_MS : RETRY_BASE_MS;
      const cap =
        failure?.code === EslErrorCode.Auth
          ? Math.max(this.#settings.maxBackoffMs, 30_000)
          : this.#settings.maxBackoffMs;
      const delay = backoffDelay(this.#attempt, base, cap);
      this.#log.debug({ delayMs: delay, attempt: this.#attempt }, 'reconnecting after backoff');
      await this.#sleep(delay);
    }
  }

  /**
   * One connection's life: open, subscribe, first probe, then probe every interval until it
   * dies. Resolves with the reason it ended, or undefined when we closed it.
   */
  async #session(): Promise<EslError | undefined> {
    const { probeTimeoutMs } = this.#settings;
    const conn = await EslConnection.open(this.#node.esl, {
      timeoutMs: Math.max(probeTimeoutMs, 1000),
      log: this.#log,
    });
    if (this.#closed) {
      conn.close();
      return undefined;
    }
    this.#conn = conn;
    let failure: EslError | undefined;
    const ended = new Promise<void>((resolve) => {
      this.#stopSession = (err) => {
        failure ??= err;
        resolve();
      };
      conn.once('died', (err) => this.#stopSession?.(err));
    });
    conn.on('event', (e) => this.#onEvent(e));
    try {
      await conn.subscribe(SUBSCRIBED_EVENTS, probeTimeoutMs);
      await this.#probe(conn);
    } catch (err) {
      conn.close();
      this.#conn = undefined;
      return err instanceof EslError ? err : new EslError(EslErrorCode.Protocol, String(err), { cause: err });
    }
    this.#attempt = 0;
    this.#setConnection(ConnectionState.Connected);
    this.#log.info('ESL connected');

    const timer = setInterval(() => {
      this.#probe(conn).catch(() => undefined);
    }, this.#settings.probeIntervalMs);
    // The channels are read from FreeSWITCH at once (a new owner knows none of them) and then
    // every interval, to correct what a lost event left wrong.
    void this.#reconcile(conn);
    const reconciler = setInterval(() => void this.#reconcile(conn), this.#settings.reconcileIntervalMs);
    await ended;
    clearInterval(timer);
    clearInterval(reconciler);
    this.#stopSession = undefined;
    conn.close();
    if (this.#conn === conn) this.#conn = undefined;
    return this.#isClosed() ? undefined : failure;
  }

  /** Ends the current connection's session with a reason (undefined: we are closing). */
  #stopSession: ((err: EslError | undefined) => void) | undefined;

  #endSession(err: EslError | undefined): void {
    this.#conn?.close();
    this.#stopSession?.(err);
  }

  /** Asks the core whether it answers, is paused, is shutting down, and how loaded it is. */
  async #probe(conn: EslConnection): Promise<void> {
    const t = this.#settings.probeTimeoutMs;
    const started = performance.now();
    const profile = this.#node.sipProfile;
    // The `status` reply can be followed, in the same read, by a channel event that this
    // function only sees after its awaits: reconcile to the reading plus what moved since.
    let movedAtReply = this.#sessions.moved;
    try {
      const [status, paused, shutdown, profileBody] = await Promise.all([
        conn.api('status', t, () => (movedAtReply = this.#sessions.moved)),
        conn.api('fsctl pause_check inbound', t),
        conn.api('fsctl shutdown_check', t),
        profile === undefined ? Promise.resolve(undefined) : conn.api(`sofia status profile ${profile}`, t),
      ]);
      this.emit('probe', { ok: true, ms: performance.now() - started });
      const s = readStatus(status);
      if (!s) throw new EslError(EslErrorCode.Protocol, 'unreadable `status` reply');
      if (s.sessions !== undefined)
        this.#sessions.reconcile(s.sessions + this.#sessions.moved - movedAtReply);
      if (s.maxSessions !== undefined) this.#fsMax = s.maxSessions;
      if (s.idleCpu !== undefined) this.#idleCpu = round1(s.idleCpu);
      if (s.cps !== undefined) this.#cps = s.cps;
      this.#heartbeatAt = Date.now();
      this.#facts = {
        connected: true,
        ready: s.ready,
        paused: readFlag(paused) ?? false,
        // shutdown_check is the truth (a cancelled shutdown clears it); the event only got there first.
        shutdownRequested: readFlag(shutdown) ?? this.#facts.shutdownRequested,
        ...(profile !== undefined && profileBody !== undefined
          ? { profile: { name: profile, running: readProfileRunning(profileBody) } }
          : {}),
      };
      this.#reported = true;
      this.#refresh();
    } catch (err) {
      this.emit('probe', { ok: false, ms: performance.now() - started });
      // A timeout has already ended the connection; anything else must end it too.
      const e =
        err instanceof EslError ? err : new EslError(EslErrorCode.Protocol, String(err), { cause: err });
      if (conn === this.#conn) this.#endSession(e);
      throw e;
    }
  }

  /**
   * Compares the channels with FreeSWITCH's list (`show channels as json`): a channel it lists
   * that the monitor has no event for is read with `eval uuid:` (its Call-ID, From tag and limits
   * header); one the monitor holds that the list lacks ended without its event. A failure is
   * left to the next interval (or to the probe, which ends a connection that stopped answering).
   */
  async #reconcile(conn: EslConnection): Promise<void> {
    if (this.#reconciling || conn !== this.#conn) return;
    this.#reconciling = true;
    const t = this.#settings.probeTimeoutMs;
    try {
      const askedAt = Date.now();
      const listed = readChannelList(await conn.api('show channels as json', t));
      if (!listed) {
        // Once per connection: a node whose list cannot be read says so, not every interval.
        if (this.#unreadableOn !== conn) {
          this.#log.warn(
            'unreadable `show channels as json` reply; calls counting against limits are not reconciled',
          );
        }
        this.#unreadableOn = conn;
        return;
      }
      const found = new Map<string, { call: string; entries: string[] }>();
      // A new owner may find thousands of channels: a few `eval`s at a time, so that none waits
      // behind the rest long enough to time out (a timeout ends the connection).
      const unknown = this.#channels.unknown(listed);
      for (let i = 0; i < unknown.length && conn === this.#conn; i += EVAL_BATCH) {
        await Promise.all(
          unknown.slice(i, i + EVAL_BATCH).map(async (uuid) => {
            const facts = (await conn.api(`eval uuid:${uuid} ${CHANNEL_FACTS}`, t)).trim().split('|');
            const [callId = '', fromTag = '', limits] = facts;
            if (callId !== '')
              found.set(uuid, { call: callIdentity(callId, fromTag), entries: parseLimitEntries(limits) });
          }),
        );
      }
      if (conn !== this.#conn) return;
      const r = this.#channels.reconcile(listed, found, askedAt, Date.now());
      const first = this.#reconciledOn !== conn;
      this.#reconciledOn = conn;
      if (first || r.added > 0 || r.removed > 0) {
        this.#log.info(
          { ...r, channels: listed.size, limited: this.#channels.limited().length, first },
          first
            ? 'channels read from FreeSWITCH: calls counting against limits taken from its list'
            : 'channels reconciled with FreeSWITCH: added those without an event seen, removed those that ended unseen',
        );
      }
      this.emit('reconciled', { ...r, down: false });
    } catch (err) {
      this.#log.debug({ err }, 'channel reconcile failed; the next interval tries again');
    } finally {
      this.#reconciling = false;
    }
  }

  #onEvent(e: EslEventMessage): void {
    switch (e.name) {
      case 'CHANNEL_CREATE': {
        const id = e.header('Unique-ID');
        // sofia stores the INVITE's Call-ID and From tag as the channel variables sip_call_id and
        // sip_from_tag; a drachtio proxy keeps both, so they name the slot the proxy took.
        const callId = e.header('variable_sip_call_id');
        if (callId && e.header('Call-Direction') === 'inbound') {
          const call = callIdentity(callId, e.header('variable_sip_from_tag'));
          this.emit('counted', call);
          // A call proxied on an advance slot names it: the slot is settled with the call.
          const slot = advanceSlotOf(e.header(`variable_sip_h_${SLOT_HEADER}`));
          if (slot !== undefined) this.emit('counted', slot);
          // The proxy named the limit counters the call holds in a header of the INVITE.
          const entries = parseLimitEntries(e.header(`variable_sip_h_${LIMITS_HEADER}`));
          if (id && this.#channels.created(id, call, entries, Date.now()) && entries.length > 0) {
            this.emit('callStarted', { call, entries });
          }
        }
        if (id && this.#sessions.created(id)) this.#refresh();
        break;
      }
      case 'CHANNEL_DESTROY': {
        const id = e.header('Unique-ID');
        if (id) {
          const ended = this.#channels.destroyed(id, Date.now());
          if (ended && ended.entries.length > 0) this.emit('callEnded', ended.call);
        }
        if (id && this.#sessions.destroyed(id)) this.#refresh();
        break;
      }
      case 'HEARTBEAT': {
        const h = readHeartbeat(e.header);
        if (h.sessions !== undefined) this.#sessions.reconcile(h.sessions);
        if (h.maxSessions !== undefined) this.#fsMax = h.maxSessions;
        if (h.idleCpu !== undefined) this.#idleCpu = round1(h.idleCpu);
        if (h.cps !== undefined) this.#cps = h.cps;
        this.#heartbeatAt = Date.now();
        this.#refresh();
        break;
      }
      case 'SHUTDOWN_REQUESTED':
        this.#log.warn('FreeSWITCH announced a shutdown: draining');
        this.#facts = { ...this.#facts, shutdownRequested: true };
        this.#refresh();
        break;
      case 'SHUTDOWN':
        this.#facts = { ...this.#facts, shutdownRequested: true };
        this.#refresh();
        break;
      default:
        break;
    }
  }

  #markDown(err: EslError): void {
    const reason = downReason(err, this.#facts.shutdownRequested);
    const wasUp = this.#facts.connected;
    this.#facts = {
      connected: false,
      downReason: reason,
      ready: true,
      paused: false,
      shutdownRequested: false,
    };
    this.#sessions.reconcile(0);
    // A node that is down (or restarting) has no calls: they stop counting against limits.
    this.#channels.clear();
    this.emit('reconciled', { added: 0, removed: 0, down: true });
    this.#reported = true;
    this.#setConnection(ConnectionState.Down);
    if (err.code === EslErrorCode.Auth) {
      this.#log.error('ESL password refused: check nodes[].esl.password; retrying slowly');
    } else if (wasUp || this.#snapshot.reason !== reason) {
      this.#log.warn({ reason, err: err.message }, 'node down');
    }
    this.#refresh();
  }

  #refresh(): void {
    const next = this.#compute();
    const prev = this.#snapshot;
    const urgent =
      prev.state !== next.state || prev.reason !== next.reason || prev.maxSessions !== next.maxSessions;
    const changed =
      urgent ||
      prev.sessions !== next.sessions ||
      prev.idleCpu !== next.idleCpu ||
      prev.cps !== next.cps ||
      prev.heartbeatAt !== next.heartbeatAt;
    this.#snapshot = next;
    if (urgent && this.#reported) this.#log.info({ state: next.state, reason: next.reason }, 'node state');
    if (changed && this.#reported) this.emit('change', next, { urgent });
  }

  #compute(): NodeSnapshot {
    const { state, reason } = assessNode(this.#facts);
    return {
      state,
      reason,
      sessions: this.#sessions.value,
      maxSessions: effectiveMaxSessions(this.#fsMax, this.#node.maxSessions),
      idleCpu: this.#idleCpu,
      cps: this.#cps,
      heartbeatAt: this.#heartbeatAt,
    };
  }

  #setConnection(s: ConnectionState): void {
    if (this.#connection === s || this.#connection === ConnectionState.Closed) return;
    this.#connection = s;
    this.emit('connection', s);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = () => {
        this.#wake = undefined;
        done();
      };
    });
  }
}

function downReason(err: EslError, shuttingDown: boolean): string {
  switch (err.code) {
    case EslErrorCode.Auth:
      return 'auth';
    case EslErrorCode.Rejected:
      return 'esl acl rejected';
    case EslErrorCode.Timeout:
      return 'probe timeout';
    case EslErrorCode.Protocol:
      return 'protocol error';
    case EslErrorCode.Connect:
      return /ECONNREFUSED/.test(err.message) ? 'connection refused' : 'connect failed';
    case EslErrorCode.Closed:
      return shuttingDown || /shut ?down/i.test(err.message) ? 'shutdown' : 'connection lost';
  }
}

/** The inbound channel ids of a `show channels as json` reply; undefined when unreadable. */
export function readChannelList(body: string): Set<string> | undefined {
  try {
    const parsed = JSON.parse(body) as { row_count?: unknown; rows?: unknown };
    if (typeof parsed.row_count !== 'number') return undefined;
    const out = new Set<string>();
    for (const row of Array.isArray(parsed.rows) ? parsed.rows : []) {
      const r = row as { uuid?: unknown; direction?: unknown };
      if (typeof r.uuid === 'string' && r.direction === 'inbound') out.add(r.uuid);
    }
    return out;
  } catch {
    return undefined;
  }
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}
