import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';

import { ORIGINS, type EventOrigin, type OriginName } from '../event/event-origin.js';
import { FsEvent } from '../event/fs-event.js';

/** Identity and tunables of one simulated FreeSWITCH core. */
export interface SwitchCoreOptions {
  coreUuid?: string;
  hostname: string;
  ipv4: string;
  version?: string;
  maxSessions: number;
  /** FreeSWITCH's `sessions-per-second` limit (its own default is 30). */
  sessionsPerSecond: number;
  idleCpu: number;
  profile: string;
}

/** Why the core refuses a new inbound session; each one is a SIP 503 on the sofia side. */
export type Refusal = 'max-sessions' | 'profile-down' | 'paused' | 'shutting-down' | 'sps-exceeded';

export interface SwitchCoreEvents {
  /** An event was fired; the ESL server delivers it to the subscribed clients. */
  event: [FsEvent];
  /** The session count changed. */
  sessions: [count: number];
}

export const DEFAULT_VERSION = '1.10.12-release~64bit';
const FIVE_MINUTES_MS = 300_000;

/**
 * The state FreeSWITCH's core keeps about itself: identity, uptime, the session count and its
 * peaks, the pause and shutdown flags, the session limit, idle CPU. It fires events and answers
 * questions; it owns no socket. Facts from src/switch_core.c and src/switch_core_session.c
 * (https://github.com/signalwire/freeswitch).
 */
export class SwitchCore extends EventEmitter<SwitchCoreEvents> {
  readonly coreUuid: string;
  /** FreeSWITCH-Hostname; the node may settle it once its port is known. */
  hostname: string;
  readonly ipv4: string;
  readonly ipv6 = '::1';
  readonly version: string;
  readonly profile: string;

  maxSessions: number;
  sessionsPerSecond: number;
  idleCpu: number;
  minIdleCpu = 0;

  /** `fsctl pause inbound` (SCF_NO_NEW_INBOUND_SESSIONS). */
  pausedInbound = false;
  /** `fsctl pause outbound` (SCF_NO_NEW_OUTBOUND_SESSIONS). */
  pausedOutbound = false;
  /** SCF_SHUTDOWN_REQUESTED: `fsctl shutdown_check` is true. */
  shutdownRequested = false;
  /** SCF_SHUTTING_DOWN: the final teardown has begun. */
  shuttingDown = false;
  /** The sofia profile's PFLAG_RUNNING. */
  profileRunning = true;

  private readonly startedAt = process.hrtime.bigint();
  private realSessions = 0;
  private phantomSessions = 0;
  private sessionsCreated = 0;
  private sessionsPeak = 0;
  private sessionsPeakFiveMin = 0;
  private fiveMinWindowStart = Date.now();
  private spsSecond = 0;
  private spsUsed = 0;
  private spsLast = 0;
  private spsPeak = 0;
  private spsPeakFiveMin = 0;
  private eventSequence = 0;

  constructor(options: SwitchCoreOptions) {
    super();
    this.coreUuid = options.coreUuid ?? randomUUID();
    this.hostname = options.hostname;
    this.ipv4 = options.ipv4;
    this.version = options.version ?? DEFAULT_VERSION;
    this.profile = options.profile;
    this.maxSessions = options.maxSessions;
    this.sessionsPerSecond = options.sessionsPerSecond;
    this.idleCpu = options.idleCpu;
  }

  /** FreeSWITCH-Switchname: the hostname unless configured otherwise. */
  get switchname(): string {
    return this.hostname;
  }

  /** Sessions in progress: real calls plus the phantom ones set with `setSessions`. */
  get sessions(): number {
    return this.realSessions + this.phantomSessions;
  }

  get realSessionCount(): number {
    return this.realSessions;
  }

  /** Sessions created since start-up (FreeSWITCH's session id minus one). */
  get sessionsSinceStartup(): number {
    return this.sessionsCreated;
  }

  get peak(): number {
    return this.sessionsPeak;
  }

  get peakFiveMin(): number {
    this.rollWindows();
    return this.sessionsPeakFiveMin;
  }

  /** `switch_core_ready()`: false while shutting down or paused both ways. */
  ready(): boolean {
    return !this.shuttingDown && !(this.pausedInbound && this.pausedOutbound);
  }

  /** `switch_core_ready_inbound()`. */
  readyInbound(): boolean {
    return !this.shuttingDown && !this.pausedInbound;
  }

  /**
   * Whether a new inbound call may start, in sofia's order of checks: the session limit, the
   * profile, the inbound pause or shutdown, then the per-second rate.
   */
  refusal(): Refusal | undefined {
    // Sofia makes the new call's session before it compares the count with the limit, so the
    // call itself counts: a node with Max-Sessions N answers at most N - 1 inbound calls.
    // (mod_sofia/sofia.c: `sess_count >= sess_max` after the session was requested; seen on
    // FreeSWITCH 1.11.1 with `fsctl max_sessions 1`: the first INVITE gets 503.)
    if (this.sessions + 1 >= this.maxSessions) return 'max-sessions';
    if (!this.profileRunning) return 'profile-down';
    if (this.shuttingDown) return 'shutting-down';
    if (!this.readyInbound()) return 'paused';
    this.rollSps();
    if (this.sessionsPerSecond > 0 && this.spsUsed >= this.sessionsPerSecond) return 'sps-exceeded';
    return undefined;
  }

  /** A real session (one call leg) begins. */
  sessionStarted(): void {
    this.rollSps();
    this.spsUsed++;
    if (this.spsUsed > this.spsPeak) this.spsPeak = this.spsUsed;
    if (this.spsUsed > this.spsPeakFiveMin) this.spsPeakFiveMin = this.spsUsed;
    this.sessionsCreated++;
    this.realSessions++;
    this.sessionsChanged();
  }

  /** A real session ends. */
  sessionEnded(): void {
    if (this.realSessions === 0) return;
    this.realSessions--;
    this.sessionsChanged();
  }

  /**
   * Makes the count read `total` by adding or removing phantom sessions (they never end by
   * themselves). The count cannot go below the real calls in progress.
   */
  setSessions(total: number): void {
    const wanted = Math.max(0, Math.floor(total) - this.realSessions);
    if (wanted > this.phantomSessions) this.sessionsCreated += wanted - this.phantomSessions;
    this.phantomSessions = wanted;
    this.sessionsChanged();
  }

  /** Drops every session at once (a crash or the end of a shutdown); fires nothing. */
  clearSessions(): void {
    this.realSessions = 0;
    this.phantomSessions = 0;
    this.sessionsChanged();
  }

  /** Microseconds since start-up (`switch_core_uptime`). */
  uptimeMicros(): bigint {
    return (process.hrtime.bigint() - this.startedAt) / 1000n;
  }

  /** `0 years, 0 days, 0 hours, 1 minute, 5 seconds, 12 milliseconds, 345 microseconds`. */
  uptimeText(): string {
    const us = this.uptimeMicros();
    const unit = (n: bigint, name: string): string => `${n} ${name}${n === 1n ? '' : 's'}`;
    let t = us / 1000n;
    const mms = us % 1000n;
    const ms = t % 1000n;
    t /= 1000n;
    const sec = t % 60n;
    t /= 60n;
    const min = t % 60n;
    t /= 60n;
    const hr = t % 24n;
    t /= 24n;
    const day = t % 365n;
    const yr = t / 365n;
    return [
      unit(yr, 'year'),
      unit(day, 'day'),
      unit(hr, 'hour'),
      unit(min, 'minute'),
      unit(sec, 'second'),
      unit(ms, 'millisecond'),
      unit(mms, 'microsecond'),
    ].join(', ');
  }

  /** Per-second session figures as FreeSWITCH reports them. */
  spsFigures(): { remaining: number; last: number; peak: number; peakFiveMin: number; total: number } {
    this.rollSps();
    this.rollWindows();
    return {
      remaining: Math.max(0, this.sessionsPerSecond - this.spsUsed),
      last: this.spsLast,
      peak: this.spsPeak,
      peakFiveMin: this.spsPeakFiveMin,
      total: this.sessionsPerSecond,
    };
  }

  /** A new event with FreeSWITCH's standard headers, in its order. */
  newEvent(name: string, origin: EventOrigin = ORIGINS[name as OriginName]): FsEvent {
    const nowUs = Math.round((performance.timeOrigin + performance.now()) * 1000);
    const now = new Date(Math.floor(nowUs / 1000));
    return new FsEvent(name)
      .addHeader('Event-Name', name)
      .addHeader('Core-UUID', this.coreUuid)
      .addHeader('FreeSWITCH-Hostname', this.hostname)
      .addHeader('FreeSWITCH-Switchname', this.switchname)
      .addHeader('FreeSWITCH-IPv4', this.ipv4)
      .addHeader('FreeSWITCH-IPv6', this.ipv6)
      .addHeader('Event-Date-Local', localDate(now))
      .addHeader('Event-Date-GMT', now.toUTCString())
      .addHeader('Event-Date-Timestamp', String(nowUs))
      .addHeader('Event-Calling-File', origin.file)
      .addHeader('Event-Calling-Function', origin.func)
      .addHeader('Event-Calling-Line-Number', origin.line)
      .addHeader('Event-Sequence', ++this.eventSequence);
  }

  /** Events of these names are lost, as many as counted (a fault: an event that never arrives). */
  readonly #lose = new Map<string, number>();

  /** The next `count` events named `name` are lost on their way to every ESL client. */
  loseEvents(name: string, count: number): void {
    this.#lose.set(name, (this.#lose.get(name) ?? 0) + count);
  }

  fire(event: FsEvent): void {
    const lose = this.#lose.get(event.name);
    if (lose !== undefined && lose > 0) {
      this.#lose.set(event.name, lose - 1);
      return;
    }
    this.emit('event', event);
  }

  /** The HEARTBEAT event, with the headers `send_heartbeat` adds. */
  heartbeat(): FsEvent {
    const sps = this.spsFigures();
    return this.newEvent('HEARTBEAT')
      .addHeader('Event-Info', 'System Ready')
      .addHeader('Up-Time', this.uptimeText())
      .addHeader('FreeSWITCH-Version', this.version)
      .addHeader('Uptime-msec', String(this.uptimeMicros() / 1000n))
      .addHeader('Session-Count', this.sessions)
      .addHeader('Max-Sessions', this.maxSessions)
      .addHeader('Session-Per-Sec', sps.remaining)
      .addHeader('Session-Per-Sec-Last', sps.last)
      .addHeader('Session-Per-Sec-Max', sps.peak)
      .addHeader('Session-Per-Sec-FiveMin', sps.peakFiveMin)
      .addHeader('Session-Since-Startup', this.sessionsCreated)
      .addHeader('Session-Peak-Max', this.sessionsPeak)
      .addHeader('Session-Peak-FiveMin', this.peakFiveMin)
      .addHeader('Idle-CPU', this.idleCpu.toFixed(6));
  }

  private sessionsChanged(): void {
    this.rollWindows();
    const n = this.sessions;
    if (n > this.sessionsPeak) this.sessionsPeak = n;
    if (n > this.sessionsPeakFiveMin) this.sessionsPeakFiveMin = n;
    this.emit('sessions', n);
  }

  private rollSps(): void {
    const second = Math.floor(Date.now() / 1000);
    if (second === this.spsSecond) return;
    this.spsLast = second === this.spsSecond + 1 ? this.spsUsed : 0;
    this.spsSecond = second;
    this.spsUsed = 0;
  }

  private rollWindows(): void {
    const now = Date.now();
    if (now - this.fiveMinWindowStart < FIVE_MINUTES_MS) return;
    this.fiveMinWindowStart = now;
    this.sessionsPeakFiveMin = this.sessions;
    this.spsPeakFiveMin = 0;
  }
}

function localDate(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
