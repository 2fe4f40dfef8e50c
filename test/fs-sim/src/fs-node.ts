import { EventEmitter } from 'node:events';

import { DEFAULT_VERSION, SwitchCore } from './core/switch-core.js';
import { executeApi, type ApiHost, type ShutdownMode } from './esl/api-commands.js';
import { SHUTTING_DOWN, type MalformedKind } from './esl/esl-frames.js';
import { EslServer, type EslServerHost } from './esl/esl-server.js';
import type { FsEvent } from './event/fs-event.js';
import type { CallInfo } from './sip/sip-call.js';
import { SipServer, type InviteRefusal, type SipServerHost } from './sip/sip-server.js';

export interface FsNodeOptions {
  /** Address both sides bind to; 127.0.0.1 by default. */
  host?: string;
  /** 0 (the default) picks a free port. */
  eslPort?: number;
  /** 0 (the default) picks a free port, the same for UDP and TCP. */
  sipPort?: number;
  /** ESL password; ClueCon by default. */
  password?: string;
  /** Max-Sessions; 100 by default. */
  maxSessions?: number;
  /** HEARTBEAT interval; 1000 ms by default (FreeSWITCH's own default is 20 s). */
  heartbeatMs?: number;
  /** Answered calls get a BYE from the node after this long; 0 (default) = wait for the caller. */
  holdMs?: number;
  /** Ringing time before the 200 OK (180 Ringing meanwhile); 0 by default. */
  answerDelayMs?: number;
  /** FreeSWITCH-Hostname; `fs-sim-<eslPort>` by default. */
  hostname?: string;
  /** Core-UUID; random by default. */
  coreUuid?: string;
  /** The sofia profile's name; `external` by default. */
  profile?: string;
  /** sessions-per-second limit; 1000 by default (FreeSWITCH's own default is 30). */
  sessionsPerSecond?: number;
  /** Idle-CPU percentage reported; 98.5 by default. */
  idleCpu?: number;
  /** Answer OPTIONS with 503 while calls are refused; false by default, as in sofia. */
  options503OnBusy?: boolean;
  /**
   * Challenge INVITEs (sofia's `auth-calls`): one without an Authorization naming a nonce this
   * node issued in the last 60 s gets 401 with `WWW-Authenticate: Digest realm="<host>", ...`.
   * The digest itself is not checked. False by default.
   */
  challenge?: boolean;
  /** FreeSWITCH-Version. */
  version?: string;
  userAgent?: string;
}

/** A node's life: running, stopped (after a shutdown or a crash; can restart), or closed for good. */
export enum NodeState {
  Running = 'running',
  ShuttingDown = 'shutting-down',
  Stopped = 'stopped',
  Closed = 'closed',
}

const ALLOWED: Record<NodeState, readonly NodeState[]> = {
  [NodeState.Running]: [NodeState.ShuttingDown, NodeState.Stopped, NodeState.Closed],
  [NodeState.ShuttingDown]: [NodeState.Running, NodeState.Stopped, NodeState.Closed],
  [NodeState.Stopped]: [NodeState.Running, NodeState.Closed],
  [NodeState.Closed]: [],
};

export interface FsNodeEvents {
  /** A command line an ESL client sent (the password of `auth` masked). */
  eslCommand: [line: string];
  /** The number of connected ESL clients changed. */
  eslClients: [count: number];
  /** An event the node fired (delivered to the ESL clients subscribed to it). */
  event: [event: FsEvent];
  callStarted: [call: CallInfo];
  callEnded: [call: CallInfo, cause: string];
  /** An INVITE was answered 503 (busy, paused, shutting down) or 488 (no common codec). */
  inviteRefused: [reason: InviteRefusal, callId: string];
  /** An INVITE was answered 401 with a digest challenge carrying `nonce`. */
  challenged: [callId: string, nonce: string];
  sipRequest: [method: string, callId: string];
  /** A SIP message that parsed but could not be handled was dropped. */
  sipDropped: [error: unknown];
  /** An elegant shutdown finished: the node is stopped (we ended it). */
  shutdown: [];
  /** The node crashed (a fault we injected): stopped without goodbye. */
  crashed: [];
  /** `close()` finished. */
  closed: [];
}

export interface ShutdownOptions {
  /** How long to wait for calls to end before hanging them up; 5000 ms by default. */
  graceMs?: number;
  /**
   * 'asap' (default): refuse new calls at once, as `fsctl shutdown asap` does. 'elegant': keep
   * taking calls until the count reaches zero, as `fsctl shutdown elegant` does.
   */
  mode?: 'asap' | 'elegant';
}

interface Resolved extends Required<Omit<FsNodeOptions, 'hostname' | 'coreUuid'>> {
  hostname: string | undefined;
  coreUuid: string | undefined;
}

interface ShutdownRun {
  cancelled: boolean;
  cancel: () => void;
  done: Promise<void>;
}

/**
 * One simulated FreeSWITCH node: an Event Socket server and a SIP UAS sharing one core, with the
 * faults and controls tests need. Start with `FsNode.start`, end with `close()`.
 */
export class FsNode extends EventEmitter<FsNodeEvents> {
  private readonly options: Resolved;
  private coreRef: SwitchCore;
  private esl: EslServer | undefined;
  private sip: SipServer | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private current = NodeState.Stopped;
  private boundEsl = 0;
  private boundSip = 0;
  private isStalled = false;
  private refusingAuth = false;
  private rejectingByAcl = false;
  private shutdownRun: ShutdownRun | undefined;
  private closing: Promise<void> | undefined;
  private readonly apiHost: ApiHost;
  private readonly eslHost: EslServerHost;
  private readonly sipHost: SipServerHost;

  private constructor(options: FsNodeOptions) {
    super();
    this.options = {
      host: options.host ?? '127.0.0.1',
      eslPort: options.eslPort ?? 0,
      sipPort: options.sipPort ?? 0,
      password: options.password ?? 'ClueCon',
      maxSessions: options.maxSessions ?? 100,
      heartbeatMs: options.heartbeatMs ?? 1000,
      holdMs: options.holdMs ?? 0,
      answerDelayMs: options.answerDelayMs ?? 0,
      hostname: options.hostname,
      coreUuid: options.coreUuid,
      profile: options.profile ?? 'external',
      sessionsPerSecond: options.sessionsPerSecond ?? 1000,
      idleCpu: options.idleCpu ?? 98.5,
      options503OnBusy: options.options503OnBusy ?? false,
      challenge: options.challenge ?? false,
      version: options.version ?? DEFAULT_VERSION,
      userAgent: options.userAgent ?? `FreeSWITCH-mod_sofia/${options.version ?? DEFAULT_VERSION} (fs-sim)`,
    };
    this.coreRef = this.newCore(this.options.coreUuid);
    this.apiHost = {
      core: () => this.coreRef,
      profileUrl: () => `sip:mod_sofia@${this.options.host}:${this.boundSip}`,
      profileCounters: () => ({
        callsIn: this.sip?.callsIn ?? 0,
        failedCallsIn: this.sip?.failedCallsIn ?? 0,
      }),
      hangupAll: (cause) => this.hangupAll(cause),
      kill: (uuid, cause) => this.sip?.kill(uuid, cause) ?? false,
      shutdown: (mode, restart) => this.fsctlShutdown(mode, restart),
      channels: () => this.sip?.channelRows() ?? [],
      channelData: (uuid) => this.sip?.channelData(uuid),
    };
    this.eslHost = {
      core: () => this.coreRef,
      password: () => this.options.password,
      api: (command, arg) => executeApi(this.apiHost, command, arg),
      commandSeen: (line) => this.safeEmit('eslCommand', line),
      clientsChanged: (count) => this.safeEmit('eslClients', count),
    };
    this.sipHost = {
      core: () => this.coreRef,
      stalled: () => this.isStalled,
      holdMs: () => this.options.holdMs,
      answerDelayMs: () => this.options.answerDelayMs,
      options503OnBusy: () => this.options.options503OnBusy,
      challenge: () => this.options.challenge,
      challenged: (callId, nonce) => this.safeEmit('challenged', callId, nonce),
      userAgent: () => this.options.userAgent,
      callStarted: (call) => this.safeEmit('callStarted', call),
      callEnded: (call, cause) => this.safeEmit('callEnded', call, cause),
      inviteRefused: (reason, callId) => this.safeEmit('inviteRefused', reason, callId),
      request: (method, callId) => this.safeEmit('sipRequest', method, callId),
      messageDropped: (err) => this.safeEmit('sipDropped', err),
    };
  }

  /** Starts a node and resolves once both sides listen. */
  static async start(options: FsNodeOptions = {}): Promise<FsNode> {
    const node = new FsNode(options);
    await node.boot(node.options.eslPort, node.options.sipPort);
    return node;
  }

  get host(): string {
    return this.options.host;
  }

  get eslPort(): number {
    return this.boundEsl;
  }

  get sipPort(): number {
    return this.boundSip;
  }

  get password(): string {
    return this.options.password;
  }

  get state(): NodeState {
    return this.current;
  }

  get coreUuid(): string {
    return this.coreRef.coreUuid;
  }

  get hostname(): string {
    return this.coreRef.hostname;
  }

  /** Sessions in progress (real calls plus those set with `setSessions`). */
  get sessions(): number {
    return this.coreRef.sessions;
  }

  get maxSessions(): number {
    return this.coreRef.maxSessions;
  }

  get eslClientCount(): number {
    return this.esl?.clientCount ?? 0;
  }

  get stalled(): boolean {
    return this.isStalled;
  }

  /** INVITEs answered 401 with a digest challenge since the node (re)started. */
  get challengesSent(): number {
    return this.sip?.challengesSent ?? 0;
  }

  /** The calls in progress. */
  calls(): CallInfo[] {
    return this.sip?.callInfos() ?? [];
  }

  /** The next `count` events named `name` never reach an ESL client (a lost event). */
  loseEvents(name: string, count = 1): void {
    this.coreRef.loseEvents(name, count);
  }

  /** Makes Session-Count read `n` (phantom sessions; real calls still count). */
  setSessions(n: number): void {
    this.coreRef.setSessions(n);
  }

  setIdleCpu(pct: number): void {
    this.coreRef.idleCpu = pct;
  }

  setMaxSessions(n: number): void {
    this.coreRef.maxSessions = n;
  }

  /** `fsctl pause`: pause_check true, ready_check false, new INVITEs get 503. */
  pause(): void {
    this.coreRef.pausedInbound = true;
    this.coreRef.pausedOutbound = true;
  }

  /** `fsctl resume`. */
  resume(): void {
    this.coreRef.pausedInbound = false;
    this.coreRef.pausedOutbound = false;
  }

  /** The sofia profile RUNNING or not: `sofia status profile <name>` and INVITEs follow it. */
  setProfileRunning(running: boolean): void {
    this.coreRef.profileRunning = running;
  }

  /** Every `auth` answered `-ERR invalid` (then the disconnect notice and close). */
  refuseAuth(refuse: boolean): void {
    this.refusingAuth = refuse;
    if (this.esl) this.esl.refuseAuth = refuse;
  }

  /** New ESL connections refused with `text/rude-rejection`, as an ACL would. */
  aclReject(reject: boolean): void {
    this.rejectingByAcl = reject;
    if (this.esl) this.esl.aclReject = reject;
  }

  /** Nothing answered on ESL or SIP and no events sent; sockets stay open. */
  stall(): void {
    if (this.isStalled) return;
    this.isStalled = true;
    this.esl?.stall();
  }

  /** Ends a stall: what arrived meanwhile is handled, in order. */
  unstall(): void {
    if (!this.isStalled) return;
    this.isStalled = false;
    this.esl?.unstall();
    this.sip?.unstall();
  }

  /** Destroys every ESL client socket; the listener stays open. */
  dropEsl(): void {
    this.esl?.drop();
  }

  /** Writes a broken frame to every ESL client (see `MalformedKind`). */
  sendMalformed(kind: MalformedKind = 'bad-json'): void {
    this.esl?.sendMalformed(kind);
  }

  /** Hangs up every call (BYE from the node). */
  hangupAll(cause = 'MANAGER_REQUEST'): number {
    return this.sip?.hangupAll(cause) ?? 0;
  }

  /**
   * Shuts the node down as FreeSWITCH does: SHUTDOWN_REQUESTED, new calls refused (mode asap),
   * a wait for calls to end (at most `graceMs`, then they are hung up), SHUTDOWN, the disconnect
   * notice to every ESL client, and the sockets closed. Resolves when the node is stopped.
   */
  async shutdownElegant(options: ShutdownOptions = {}): Promise<void> {
    await this.runShutdown(options.mode ?? 'asap', options.graceMs ?? 5000, () => undefined).done;
  }

  /** Closes every socket and listener at once (RST where possible); no event, no goodbye. */
  async crash(): Promise<void> {
    if (this.current !== NodeState.Running && this.current !== NodeState.ShuttingDown) return;
    this.shutdownRun?.cancel();
    this.stopHeartbeat();
    this.esl?.crash();
    this.sip?.crash();
    this.esl = undefined;
    this.sip = undefined;
    this.isStalled = false;
    this.coreRef.clearSessions();
    this.transition(NodeState.Stopped);
    this.safeEmit('crashed');
    await new Promise((resolve) => setImmediate(resolve));
  }

  /**
   * Brings a stopped node back on the same ports, as a fresh FreeSWITCH process: a new Core-UUID
   * (unless given), uptime from zero, no sessions, not paused; auth and ACL settings kept.
   */
  async restart(options: { coreUuid?: string } = {}): Promise<void> {
    if (this.current !== NodeState.Stopped) throw new Error(`cannot restart a node that is ${this.current}`);
    const old = this.coreRef;
    this.coreRef = this.newCore(options.coreUuid);
    this.coreRef.maxSessions = old.maxSessions;
    this.coreRef.idleCpu = old.idleCpu;
    await this.boot(this.boundEsl, this.boundSip);
  }

  /** Stops the node for good, without ceremony. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.shutdownRun?.cancel();
      this.stopHeartbeat();
      const esl = this.esl;
      const sip = this.sip;
      this.esl = undefined;
      this.sip = undefined;
      this.isStalled = false;
      await Promise.all([esl?.close(), sip?.close()]);
      this.transition(NodeState.Closed);
      this.safeEmit('closed');
    })();
    return this.closing;
  }

  private newCore(coreUuid: string | undefined): SwitchCore {
    const core = new SwitchCore({
      ...(coreUuid === undefined ? {} : { coreUuid }),
      hostname: this.options.hostname ?? 'fs-sim',
      ipv4: this.options.host,
      version: this.options.version,
      maxSessions: this.options.maxSessions,
      sessionsPerSecond: this.options.sessionsPerSecond,
      idleCpu: this.options.idleCpu,
      profile: this.options.profile,
    });
    core.on('event', (event) => {
      this.esl?.deliver(event);
      this.safeEmit('event', event);
    });
    return core;
  }

  private async boot(eslPort: number, sipPort: number): Promise<void> {
    const esl = new EslServer(this.eslHost, this.options.host);
    esl.refuseAuth = this.refusingAuth;
    esl.aclReject = this.rejectingByAcl;
    const sip = new SipServer(this.sipHost, this.options.host);
    try {
      this.boundEsl = await esl.listen(eslPort);
      this.boundSip = await sip.listen(sipPort);
    } catch (err) {
      await Promise.allSettled([esl.close(), sip.close()]);
      throw err;
    }
    this.esl = esl;
    this.sip = sip;
    this.coreRef.hostname = this.options.hostname ?? `fs-sim-${this.boundEsl}`;
    this.transition(NodeState.Running);
    this.startHeartbeat();
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    const ms = this.options.heartbeatMs;
    if (ms <= 0) return;
    this.heartbeat = setInterval(() => {
      if (this.isStalled || !this.esl || this.esl.clientCount === 0) return;
      this.coreRef.fire(this.coreRef.heartbeat());
    }, ms);
    this.heartbeat.unref();
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  /** Read through a call, so that awaits in between are not narrowed away. */
  private isIn(state: NodeState): boolean {
    return this.current === state;
  }

  private transition(next: NodeState): void {
    if (next === this.current) return;
    if (!ALLOWED[this.current].includes(next)) {
      throw new Error(`fs-sim node: illegal transition ${this.current} -> ${next}`);
    }
    this.current = next;
  }

  /** Emits to listeners; a listener that throws is reported as a process warning, not fatal. */
  private safeEmit<K extends keyof FsNodeEvents>(name: K, ...args: FsNodeEvents[K]): void {
    try {
      (this.emit as (n: K, ...a: FsNodeEvents[K]) => boolean)(name, ...args);
    } catch (err) {
      process.emitWarning(`fs-sim: a '${name}' listener threw: ${String(err)}`);
    }
  }

  /**
   * The shutdown sequence, shared by `shutdownElegant` and `fsctl shutdown`. `waited` is called
   * when the wait for calls is over (the moment `fsctl shutdown elegant` returns).
   */
  private runShutdown(mode: 'asap' | 'elegant' | 'plain', graceMs: number, waited: () => void): ShutdownRun {
    if (this.shutdownRun) return this.shutdownRun;
    if (this.current !== NodeState.Running) {
      waited();
      return { cancelled: false, cancel: () => undefined, done: Promise.resolve() };
    }
    this.transition(NodeState.ShuttingDown);
    const core = this.coreRef;
    let cancelWait: () => void = () => undefined;
    const run: ShutdownRun = {
      cancelled: false,
      cancel: () => {
        run.cancelled = true;
        cancelWait();
      },
      done: Promise.resolve(),
    };
    this.shutdownRun = run;
    run.done = (async () => {
      if (mode !== 'plain') {
        core.fire(
          core.newEvent('SHUTDOWN_REQUESTED').addHeader('Event-Info', mode === 'asap' ? 'ASAP' : 'elegant'),
        );
        core.shutdownRequested = true;
        if (mode === 'asap') this.pause();
        await new Promise<void>((resolve) => {
          const finish = (): void => {
            clearTimeout(timer);
            core.off('sessions', onSessions);
            resolve();
          };
          const onSessions = (n: number): void => {
            if (n === 0) finish();
          };
          const timer = Number.isFinite(graceMs) ? setTimeout(finish, graceMs) : undefined;
          cancelWait = finish;
          core.on('sessions', onSessions);
          if (core.sessions === 0) finish();
        });
      }
      if (run.cancelled) {
        this.shutdownRun = undefined;
        core.shutdownRequested = false;
        if (mode === 'asap') this.resume();
        if (this.current === NodeState.ShuttingDown) this.transition(NodeState.Running);
        waited();
        return;
      }
      waited();
      await new Promise((resolve) => setImmediate(resolve));
      if (this.current !== NodeState.ShuttingDown) return;
      this.pause();
      core.shuttingDown = true;
      core.fire(core.newEvent('SHUTDOWN').addHeader('Event-Info', 'System Shutting Down'));
      this.sip?.hangupAll('SYSTEM_SHUTDOWN');
      core.clearSessions();
      this.stopHeartbeat();
      const esl = this.esl;
      const sip = this.sip;
      this.esl = undefined;
      this.sip = undefined;
      if (esl) {
        esl.unstall();
        await esl.goodbyeAll(SHUTTING_DOWN);
        await esl.close();
      }
      await sip?.close();
      this.isStalled = false;
      this.shutdownRun = undefined;
      if (this.isIn(NodeState.ShuttingDown)) {
        this.transition(NodeState.Stopped);
        this.safeEmit('shutdown');
      }
    })();
    return run;
  }

  private fsctlShutdown(mode: ShutdownMode, restart: boolean): Promise<void> {
    if (mode === 'cancel') {
      this.shutdownRun?.cancel();
      return Promise.resolve();
    }
    if (mode === 'now') {
      void this.crash();
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const run = this.runShutdown(mode, mode === 'plain' ? 0 : Infinity, resolve);
      if (restart) {
        void run.done.then(async () => {
          if (this.current === NodeState.Stopped) await this.restart();
        });
      }
    });
  }
}
