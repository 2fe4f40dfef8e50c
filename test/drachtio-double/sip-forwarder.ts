/**
 * Forward mode: the double proxies a request over UDP the way drachtio-server v0.9.4's
 * `ProxyCore` does (src/sip-proxy-controller.cpp), and plays the caller behind it.
 *
 * Per target, a client transaction (RFC 3261 §17.1) with drachtio's states and timers: the
 * request goes out with a new top Via (branch `z9hG4bK...`), Max-Forwards decremented (or 70),
 * the Request-URI replaced by the target when it named the double itself, Route headers removed,
 * a Record-Route (Path for REGISTER) when the app asked to remain in the dialog, and the extra
 * headers of srf's stub applied as drachtio's `makeTags` does. Over UDP the INVITE is resent on
 * Timer A (T1, doubling) until a response or Timer B (64·T1). Responses are matched by the top
 * Via branch. Serial forking starts the next target after a final failure (which it ACKs, same
 * branch) or when `provisionalTimeout` passes with no response at all; that silent target leaves
 * no entry. Each final response is reported (`continue`), and `done` follows a 2xx, or the best
 * failure once every target has been tried (RFC 3261 §16.7.6 order; 408 when there was none).
 * Quirks kept from drachtio-server: Timer B (and Timer C, 185 s of ringing) end the whole
 * operation without trying the remaining targets; `finalTimeout` is ignored; a non-INVITE whose
 * targets stay silent never gets `done`. A 401/407 challenge the sink remembers ends the search
 * (`ProxyCore::processResponse`). The caller's CANCEL (`ForwardRun.cancel`) stops the search and
 * CANCELs each target that sent a provisional (`cancelOutstandingRequests`).
 *
 * The caller side is collapsed into the double: it records what the caller would receive,
 * ACKs a 2xx itself and can send BYE (straight to the callee's Contact, through the callee's
 * part of the route set), and answers in-dialog requests (a BYE from the callee) that reach its
 * UDP socket through its Record-Route or a Contact that names it.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';

import { assertLoopback } from './loopback.js';
import { isChallenge } from './challenge-cache.js';
import { newBranch, randomTag } from './sip-request.js';
import {
  failureRank,
  headerParam,
  parseSipUri,
  parseVia,
  SipMessage,
  tagOf,
  uriOf,
  type SipHeader,
} from './sip-message.js';

/** RFC 3261 timer values (§17.1.1.1, Table 4) and drachtio's Timer C, in ms. */
export interface SipTimers {
  t1Ms: number;
  t2Ms: number;
  /** drachtio-server's TIMER_C_MSECS: how long a target may ring before the proxy gives up. */
  timerCMs: number;
}

export const DEFAULT_TIMERS: Readonly<SipTimers> = { t1Ms: 500, t2Ms: 4000, timerCMs: 185_000 };

export interface Peer {
  address: string;
  port: number;
}

/** What one proxy operation is asked to do (from srf's `proxy` message). */
export interface ForwardJob {
  /** The request as the caller sent it. */
  request: SipMessage;
  destinations: readonly string[];
  recordRoute: boolean;
  followRedirects: boolean;
  simultaneous: boolean;
  fullResponse: boolean;
  provisionalTimeoutMs: number | undefined;
  /** Header lines of srf's request stub (the app's `headers` option). */
  stubHeaders: readonly SipHeader[];
  /** Whether a Request-URI names the double's own SIP address (then it is replaced by the target). */
  isLocalUri: (uri: string) => boolean;
}

/** How a proxy operation reports back (to become `continue`, `done`, `NOK`, caller events). */
export interface ForwardSink {
  /** A final response from a target (`continue`). */
  targetFinal(response: SipMessage, raw: string, from: Peer): void;
  /** The operation is over (`done`). */
  done(): void;
  /** The operation failed before anything was sent (`NOK`). */
  failed(reason: string): void;
  /** A response the caller receives (provisional, or the one final). */
  toCaller(response: SipMessage): void;
  /** The caller ACKed a 2xx: there is a call. */
  connected(call: ForwardedCall): void;
  /** A request went to a target for the first time (retransmissions are not reported). */
  requestSent(destination: string, request: SipMessage, to: Peer): void;
  /**
   * A target answered 401 or 407 with a challenge (`SipProxyController::addChallenge`): true
   * when its nonce and realm were remembered, and then the search stops.
   */
  challenged(response: SipMessage, destination: string): boolean;
}

/** A proxy operation under way, as the double holds it. */
export interface ForwardRun {
  /**
   * The caller's CANCEL (`ProxyCore::cancelOutstandingRequests`): no more targets are started,
   * a target that sent a provisional gets CANCEL, one still silent is given up (and CANCELled
   * if it answers later). The 200 to the CANCEL and the 487 to the caller are the double's.
   */
  cancel(): void;
}

enum TxState {
  NotStarted = 'not_started',
  Calling = 'calling',
  Trying = 'trying',
  Proceeding = 'proceeding',
  Completed = 'completed',
  Terminated = 'terminated',
}

/** One target's client transaction (drachtio's `ProxyCore::ClientTransaction`). */
class ClientTx {
  state = TxState.NotStarted;
  status = 0;
  canceled = false;
  removed = false;
  readonly branch = newBranch();
  peer: Peer | undefined;
  bytes: Buffer | undefined;
  sent: SipMessage | undefined;
  finalResponse: SipMessage | undefined;
  ack: Buffer | undefined;
  interval = 0;
  timers = new Map<string, NodeJS.Timeout>();

  constructor(readonly target: string) {}

  setTimer(name: string, ms: number, fn: () => void): void {
    this.clearTimer(name);
    const t = setTimeout(() => {
      this.timers.delete(name);
      fn();
    }, ms);
    this.timers.set(name, t);
  }

  clearTimer(...names: string[]): void {
    for (const name of names) {
      const t = this.timers.get(name);
      if (t) clearTimeout(t);
      this.timers.delete(name);
    }
  }

  clearAll(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}

export interface ForwardedCallEvents {
  /** The call ended: 'local' after `hangup()`, 'remote' after the callee's BYE. */
  ended: [by: 'local' | 'remote'];
}

/** A call the double (as the caller) set up through a forward: ACKed, and ended by BYE. */
export class ForwardedCall extends EventEmitter<ForwardedCallEvents> {
  state: 'confirmed' | 'ending' | 'ended' = 'confirmed';
  endedBy: 'local' | 'remote' | undefined;
  private cseq: number;
  private ackBytes: Buffer | undefined;

  constructor(
    private readonly forwarder: SipForwarder,
    readonly callId: string,
    /** The caller's From header value, and its tag. */
    readonly from: string,
    readonly localTag: string,
    /** The To header value of the 2xx (with the callee's tag). */
    readonly to: string,
    readonly remoteTag: string,
    /** The 2xx's Contact URI. */
    readonly remoteTarget: string,
    /** Route set for the caller's requests (the callee's side of the Record-Route). */
    readonly routeSet: readonly string[],
    readonly peer: Peer,
    /** The destination (as the app named it) that answered. */
    readonly destination: string,
    inviteCseq: number,
  ) {
    super();
    this.cseq = inviteCseq;
  }

  /** The caller's ACK for the 2xx (RFC 3261 §13.2.2.4): its own transaction, sent again on each 2xx resend. */
  sendAck(): void {
    this.ackBytes ??= Buffer.from(this.inDialogRequest('ACK', this.cseq).toString(), 'utf8');
    this.forwarder.sendTo(this.ackBytes, this.peer);
  }

  /** Sends BYE; resolves with its final status (408 when nothing answers within 64·T1), rejects if the double closes first. */
  async hangup(): Promise<number> {
    if (this.state !== 'confirmed') throw new Error(`call ${this.callId} is ${this.state}`);
    this.state = 'ending';
    this.cseq++;
    const bye = this.inDialogRequest('BYE', this.cseq);
    const status = await this.forwarder.nonInviteTransaction(bye, this.peer);
    this.end('local');
    return status;
  }

  /** The callee's BYE arrived. */
  remoteBye(): void {
    if (this.state === 'ended') return;
    this.end('remote');
  }

  private end(by: 'local' | 'remote'): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    this.endedBy = by;
    this.emit('ended', by);
  }

  private inDialogRequest(method: string, seq: number): SipMessage {
    const msg = SipMessage.request(method, this.remoteTarget);
    msg.add('Via', this.forwarder.viaValue(newBranch()));
    msg.add('Max-Forwards', '70');
    for (const route of this.routeSet) msg.add('Route', route);
    msg.add('From', this.from);
    msg.add('To', this.to);
    msg.add('Call-ID', this.callId);
    msg.add('CSeq', `${seq} ${method}`);
    return msg;
  }
}

/** One proxy operation (drachtio's `ProxyCore`). */
class ProxyRun implements ForwardRun {
  private readonly clients: ClientTx[];
  private readonly peers = new Map<string, Peer | undefined>();
  private searching = true;
  private canceled = false;
  private doneSent = false;
  private callerFinal = false;
  private started = false;
  private cancelOnStart = false;
  private readonly method: string;
  private readonly isInvite: boolean;
  closed = false;

  constructor(
    private readonly fwd: SipForwarder,
    private readonly job: ForwardJob,
    private readonly sink: ForwardSink,
  ) {
    this.method = job.request.method;
    this.isInvite = this.method === 'INVITE';
    this.clients = job.destinations.map((d) => new ClientTx(d));
  }

  get branches(): string[] {
    return this.clients.map((c) => c.branch);
  }

  /** Resolves the destinations (IP literals, or DNS A lookups), then starts. */
  async begin(): Promise<void> {
    await Promise.all(this.job.destinations.map(async (d) => this.peers.set(d, await this.fwd.peerOf(d))));
    if (this.closed) return;
    this.start();
    this.started = true;
    if (this.cancelOnStart) this.cancel();
  }

  /** `ProxyCore::setCanceled` and `cancelOutstandingRequests`; before the start, at the start. */
  cancel(): void {
    if (this.closed) return;
    if (!this.started) {
      this.cancelOnStart = true;
      return;
    }
    this.canceled = true;
    this.searching = false;
    for (const c of this.clients) {
      if (c.state === TxState.NotStarted) {
        this.setState(c, TxState.Terminated);
        c.removed = true;
      } else {
        this.cancelClient(c);
      }
    }
  }

  private start(): void {
    const mf = this.job.request.get('max-forwards');
    if (mf !== undefined && Number(mf) <= 0) {
      this.sink.failed('Rejected with 483 Too Many Hops due to Max-Forwards value of 0');
      this.toCaller(this.generated(483, 'Too Many Hops'));
      this.close();
      return;
    }
    if (this.startRequests() === 0) {
      this.sink.failed('error proxying request to ');
      this.toCaller(this.generated(500, 'Server Internal Error'));
      this.close();
      return;
    }
    if (!this.job.fullResponse) this.done();
  }

  close(): void {
    this.closed = true;
    for (const c of this.clients) c.clearAll();
    this.fwd.forget(this);
  }

  owns(branch: string): ClientTx | undefined {
    return this.clients.find((c) => c.branch === branch);
  }

  /** `ProxyCore::processResponse`. */
  onResponse(c: ClientTx, res: SipMessage, raw: string, from: Peer): void {
    this.clientResponse(c, res, raw, from);
    if (this.closed) return;
    c.removed ||= c.state === TxState.Terminated;
    if (isChallenge(res) && this.sink.challenged(res, c.target)) {
      // A challenge ends the search: no further target is started (`removeTerminated(true)`),
      // and the best final so far, the challenge itself unless a 6xx came first, goes back.
      for (const n of this.clients) {
        if (n.state !== TxState.NotStarted) continue;
        this.setState(n, TxState.Terminated);
        n.removed = true;
      }
      this.forwardBestResponse();
      return;
    }
    if (res.status > 200) this.startRequests();
    if (this.searching && this.exhausted()) this.forwardBestResponse();
  }

  /** `ClientTransaction::processResponse`. */
  private clientResponse(c: ClientTx, res: SipMessage, raw: string, from: Peer): void {
    const status = res.status;
    if (c.state === TxState.Terminated) {
      if (status >= 200 && status < 300) this.fwd.resendAckFor(res);
      return;
    }
    if (c.canceled && c.state === TxState.Completed && c.status === 0 && this.isInvite) {
      // Late response to a target given up on (provisional timeout): drachtio CANCELs it.
      this.setState(c, TxState.Proceeding);
      this.cancelClient(c);
      if (status >= 300) this.ackFailure(c, res, from);
      else if (status >= 200) this.fwd.cleanUpLate2xx(res, from, c.target);
      return;
    }
    if (res.cseq.method !== this.method) return;
    if (c.state === TxState.Completed && status >= 200) {
      if (this.isInvite && c.ack && c.peer) this.fwd.sendTo(c.ack, c.peer);
      return;
    }
    c.status = status;
    if (status < 200) {
      this.setState(c, TxState.Proceeding);
      if (status !== 100 && this.isInvite) c.setTimer('C', this.fwd.timers.timerCMs, () => this.timerC(c));
    } else if (status < 300) {
      this.setState(c, this.isInvite ? TxState.Terminated : TxState.Completed);
      this.forwarded2xx();
    } else {
      this.setState(c, TxState.Completed);
    }
    if (status >= 200 && this.isInvite) c.clearTimer('C');
    if (status === 100) return;
    if (status < 300) this.toCaller(res);
    if (status >= 300) {
      c.finalResponse = res;
      if (this.isInvite) this.ackFailure(c, res, from);
      if (status < 400 && this.job.followRedirects) this.addRedirectTargets(c, res);
    }
    if (status >= 200 && this.job.fullResponse) {
      this.continueWith(res, raw, from);
      if (status < 300 || (this.canceled && this.exhausted())) this.done();
    }
    if (status >= 200 && status < 300 && this.isInvite) this.fwd.callerAcks(res, from, c.target, this.sink);
  }

  private setState(c: ClientTx, next: TxState): void {
    if (c.state === next) return;
    c.state = next;
    const t = this.fwd.timers;
    switch (next) {
      case TxState.Calling:
        c.interval = t.t1Ms;
        c.setTimer('A', c.interval, () => this.timerA(c));
        c.setTimer('B', 64 * t.t1Ms, () => this.timerB(c));
        c.setTimer('C', t.timerCMs, () => this.timerC(c));
        if (this.job.provisionalTimeoutMs !== undefined && this.job.provisionalTimeoutMs > 0) {
          c.setTimer('P', this.job.provisionalTimeoutMs, () => this.timerProvisional(c));
        }
        break;
      case TxState.Trying:
        c.interval = t.t1Ms;
        c.setTimer('E', c.interval, () => this.timerE(c));
        c.setTimer('F', 64 * t.t1Ms, () => this.timerF(c));
        break;
      case TxState.Proceeding:
        c.clearTimer('A', 'B', 'P', 'E');
        break;
      case TxState.Completed:
        c.clearTimer('A', 'B', 'C', 'P', 'E', 'F');
        break;
      case TxState.Terminated:
        c.clearAll();
        break;
      case TxState.NotStarted:
        break;
    }
  }

  /** `ProxyCore::startRequests`: the next target (serial) or all of them (simultaneous). */
  private startRequests(): number {
    if (!this.searching) return 0;
    let count = 0;
    for (const c of this.clients) {
      if (c.state !== TxState.NotStarted) continue;
      const sent = this.forwardRequest(c);
      if (sent) count++;
      if (sent && !this.job.simultaneous) break;
    }
    return count;
  }

  /** `ClientTransaction::forwardRequest`; false when the target cannot be reached over UDP. */
  private forwardRequest(c: ClientTx): boolean {
    const peer = this.peers.get(c.target);
    if (!peer) return false;
    c.peer = peer;
    c.sent = this.fwd.outgoingRequest(this.job, c.target, c.branch);
    c.bytes = Buffer.from(c.sent.toString(), 'utf8');
    this.setState(c, this.isInvite ? TxState.Calling : TxState.Trying);
    this.fwd.sendTo(c.bytes, peer);
    this.sink.requestSent(c.target, c.sent, peer);
    return true;
  }

  private resend(c: ClientTx): void {
    if (c.bytes && c.peer) this.fwd.sendTo(c.bytes, c.peer);
  }

  private timerA(c: ClientTx): void {
    if (c.state !== TxState.Calling) return;
    this.resend(c);
    c.interval *= 2;
    c.setTimer('A', c.interval, () => this.timerA(c));
  }

  private timerE(c: ClientTx): void {
    if (c.state !== TxState.Trying) return;
    this.resend(c);
    c.interval = Math.min(c.interval * 2, this.fwd.timers.t2Ms);
    c.setTimer('E', c.interval, () => this.timerE(c));
  }

  /** Timer B: no response at all. drachtio ends here without starting the next target. */
  private timerB(c: ClientTx): void {
    this.setState(c, TxState.Terminated);
    c.removed = true;
    if (this.searching && this.exhausted()) this.forwardBestResponse();
  }

  /** Timer F (non-INVITE): terminated, and, as in drachtio, nothing more (no `done`). */
  private timerF(c: ClientTx): void {
    this.setState(c, TxState.Terminated);
    c.removed = true;
  }

  /** Timer C: ringing too long. 408 to the caller, CANCEL to the target. */
  private timerC(c: ClientTx): void {
    if (c.state === TxState.Proceeding) this.cancelClient(c);
    this.toCaller(this.generated(408, 'Request Timeout'));
    this.setState(c, TxState.Terminated);
    c.removed = true;
    if (this.searching && this.exhausted()) this.forwardBestResponse();
  }

  /** No response within provisionalTimeout: give up on this target and start the next. */
  private timerProvisional(c: ClientTx): void {
    if (c.state !== TxState.Calling) return;
    this.canceled = true;
    this.setState(c, TxState.Completed);
    c.canceled = true;
    this.startRequests();
    if (this.searching && this.exhausted()) this.forwardBestResponse();
  }

  /** `notifyForwarded200OK`: stop searching and cancel what is still pending. */
  private forwarded2xx(): void {
    this.searching = false;
    for (const c of this.clients) {
      if (c.state === TxState.Calling) {
        this.setState(c, TxState.Completed);
        c.canceled = true;
      } else if (c.state === TxState.NotStarted) {
        this.setState(c, TxState.Terminated);
        c.removed = true;
      } else if (c.state === TxState.Proceeding) {
        this.cancelClient(c);
      }
    }
  }

  private exhausted(): boolean {
    return !this.clients.some((c) => c.state === TxState.Calling || c.state === TxState.Proceeding);
  }

  /** `forwardBestResponse`: the best failure (RFC 3261 §16.7.6) or 408 to the caller, then `done`. */
  private forwardBestResponse(): void {
    this.searching = false;
    const finals = this.clients.filter(
      (c) => !c.removed && c.state === TxState.Completed && c.status > 0 && c.finalResponse,
    );
    finals.sort((a, b) => failureRank(a.status) - failureRank(b.status));
    const best = finals[0]?.finalResponse;
    this.toCaller(best ?? this.generated(408, 'Request Timeout'));
    if (this.job.fullResponse) this.done();
  }

  private addRedirectTargets(c: ClientTx, res: SipMessage): void {
    const at = this.clients.indexOf(c);
    const added = res.getAll('contact').map((v) => new ClientTx(uriOf(v)));
    for (const n of added) this.peers.set(n.target, this.fwd.peerOfSync(n.target));
    this.clients.splice(at + 1, 0, ...added);
  }

  /** CANCEL for a target that sent a provisional (RFC 3261 §9.1), same branch as its INVITE. */
  private cancelClient(c: ClientTx): void {
    c.clearTimer('A', 'B', 'C', 'P');
    if (c.state !== TxState.Proceeding || !c.sent || !c.peer) {
      if (c.state === TxState.Calling) {
        this.setState(c, TxState.Completed);
        c.canceled = true;
      }
      return;
    }
    const invite = c.sent;
    const msg = SipMessage.request('CANCEL', invite.uri);
    msg.add('Via', this.fwd.viaValue(c.branch));
    msg.add('Max-Forwards', '70');
    msg.add('From', invite.get('from') ?? '');
    msg.add('To', invite.get('to') ?? '');
    msg.add('Call-ID', invite.callId);
    msg.add('CSeq', `${invite.cseq.seq} CANCEL`);
    c.canceled = true;
    this.fwd.nonInviteTransaction(msg, c.peer, c.branch).catch(() => undefined);
  }

  /** drachtio's `ackResponse`: ACK for a failure response, same branch, to where it came from. */
  private ackFailure(c: ClientTx, res: SipMessage, from: Peer): void {
    const contact = res.get('contact');
    const uri =
      contact !== undefined && res.status > 399 ? uriOf(contact) : `sip:${from.address}:${from.port}`;
    const msg = SipMessage.request('ACK', uri);
    msg.add('Via', this.fwd.viaValue(parseVia(res.get('via') ?? '')?.branch ?? c.branch));
    msg.add('Max-Forwards', '70');
    msg.add('From', res.get('from') ?? '');
    msg.add('To', res.get('to') ?? '');
    msg.add('Call-ID', res.callId);
    msg.add('CSeq', `${res.cseq.seq} ACK`);
    c.ack = Buffer.from(msg.toString(), 'utf8');
    this.fwd.sendTo(c.ack, from);
  }

  private continueWith(res: SipMessage, raw: string, from: Peer): void {
    if (this.doneSent) return;
    this.sink.targetFinal(res, raw, from);
  }

  private done(): void {
    if (this.doneSent) return;
    this.doneSent = true;
    this.sink.done();
  }

  private toCaller(res: SipMessage): void {
    if (this.callerFinal) return;
    if (res.status >= 200) this.callerFinal = true;
    const copy = res.clone();
    if (this.fwd.isOwnVia(copy.get('via'))) copy.removeFirst('via');
    this.sink.toCaller(copy);
  }

  /** A response drachtio generates itself (408, 483, 500) for the caller. */
  private generated(status: number, reason: string): SipMessage {
    const req = this.job.request;
    const res = SipMessage.response(status, reason);
    for (const via of req.getAll('via')) res.add('Via', via);
    res.add('From', req.get('from') ?? '');
    const to = req.get('to') ?? '';
    res.add('To', tagOf(to) === undefined ? `${to};tag=${randomTag()}` : to);
    res.add('Call-ID', req.callId);
    res.add('CSeq', req.get('cseq') ?? '');
    return res;
  }
}

/** Headers srf's stub may not set (drachtio's `m_setImmutableHdrs` and the dialog-forming ones). */
const UNSETTABLE = new Set([
  'via',
  'route',
  'rseq',
  'record_route',
  'content_length',
  'from',
  'to',
  'contact',
  'p_asserted_identity',
  'call_id',
  'cseq',
]);

/** Headers sofia knows by name (drachtio's `m_mapHdr2Tag`): set in place rather than added. */
const WELL_KNOWN = new Set(
  (
    'user_agent subject max_forwards proxy_require accept_contact reject_contact expires date retry_after ' +
    'timestamp min_expires priority call_info organization server in_reply_to accept accept_encoding ' +
    'accept_language allow require supported unsupported event allow_events subscription_state ' +
    'proxy_authenticate proxy_authentication_info proxy_authorization authorization www_authenticate ' +
    'authentication_info error_info warning refer_to referred_by replaces session_expires min_se path ' +
    'service_route reason security_client security_server security_verify privacy sip_etag sip_if_match ' +
    'mime_version content_type content_encoding content_language content_disposition request_disposition ' +
    'error refer_sub alert_info reply_to p_preferred_identity remote_party_id rack'
  ).split(' '),
);

/** drachtio's `capitalizeAfterDash`: `x-...` names keep their case, others are Capital-Dashed. */
function capitalizeAfterDash(name: string): string {
  if (/^x-/i.test(name)) return name;
  return name.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}

export interface SipForwarderEvents {
  /** A datagram that did not parse, or a send that failed. */
  warning: [message: string];
  /** An in-dialog request from a callee reached the double. */
  request: [request: SipMessage, from: Peer];
}

/**
 * The UDP side of the double: one socket for every forward, plus the caller's ACK and BYE.
 * Start with `SipForwarder.start`, end with `close()`.
 */
export class SipForwarder extends EventEmitter<SipForwarderEvents> {
  private readonly runs = new Set<ProxyRun>();
  private readonly nonInvite = new Map<string, (outcome: number | Error) => void>();
  private readonly calls = new Map<string, ForwardedCall>();
  private readonly lateCleanups = new Set<Promise<unknown>>();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly socket: Socket,
    readonly address: string,
    readonly port: number,
    readonly timers: SipTimers,
  ) {
    super();
    socket.on('message', (bytes, rinfo) => this.receive(bytes, rinfo));
    socket.on('error', (err) => this.emit('warning', `udp socket error: ${err.message}`));
  }

  static async start(
    options: { host?: string; port?: number; timers?: Partial<SipTimers> } = {},
  ): Promise<SipForwarder> {
    const host = options.host ?? '127.0.0.1';
    assertLoopback(host, 'SIP socket');
    const socket = createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(options.port ?? 0, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new SipForwarder(socket, host, socket.address().port, { ...DEFAULT_TIMERS, ...options.timers });
  }

  /** The calls set up through this forwarder, still up or not. */
  get activeCalls(): ForwardedCall[] {
    return [...this.calls.values()].filter((c) => c.state !== 'ended');
  }

  /**
   * Starts one proxy operation; it sends once its destinations are resolved (IP literals, or DNS
   * A lookups). `started` settles then; a caller's CANCEL may come before.
   */
  forward(job: ForwardJob, sink: ForwardSink): { run: ForwardRun; started: Promise<void> } {
    const run = new ProxyRun(this, job, sink);
    if (this.closing) {
      run.closed = true;
      return { run, started: Promise.resolve() };
    }
    this.runs.add(run);
    return { run, started: run.begin() };
  }

  /** `SIP/2.0/UDP <us>;branch=...;rport`. */
  viaValue(branch: string): string {
    return `SIP/2.0/UDP ${this.hostPort};branch=${branch};rport`;
  }

  isOwnVia(value: string | undefined): boolean {
    const via = value === undefined ? undefined : parseVia(value);
    return via !== undefined && via.host === this.address && via.port === this.port;
  }

  private get hostPort(): string {
    return `${this.address.includes(':') ? `[${this.address}]` : this.address}:${this.port}`;
  }

  private get ownRecordRoute(): string {
    return `<sip:${this.hostPort};lr>`;
  }

  /** The request for one target, as `ClientTransaction::forwardRequest` makes it. */
  outgoingRequest(job: ForwardJob, target: string, branch: string): SipMessage {
    const msg = job.request.clone();
    msg.remove('route');
    const mf = msg.get('max-forwards');
    if (mf === undefined) msg.add('Max-Forwards', '70');
    else msg.set('Max-Forwards', String(Number(mf) - 1));
    if (/^sips?:/i.test(msg.uri) && job.isLocalUri(msg.uri)) msg.uri = target;
    msg.prepend('Via', this.viaValue(branch));
    if (job.recordRoute) {
      if (msg.method === 'REGISTER') {
        msg.prepend('Path', this.ownRecordRoute);
        msg.add('Require', 'path');
      } else {
        msg.prepend('Record-Route', this.ownRecordRoute);
      }
    }
    for (const h of job.stubHeaders) {
      const key = h.name.trim().toLowerCase().replace(/-/g, '_');
      if (UNSETTABLE.has(key) || /[\r\n]/.test(h.value)) continue;
      if (WELL_KNOWN.has(key)) msg.set(h.name.trim(), h.value);
      else msg.add(capitalizeAfterDash(h.name.trim()), h.value);
    }
    return msg;
  }

  sendTo(bytes: Buffer, peer: Peer): void {
    if (this.closing) return;
    this.socket.send(bytes, peer.port, peer.address, (err) => {
      if (err) this.emit('warning', `send to ${peer.address}:${peer.port} failed: ${err.message}`);
    });
  }

  /**
   * A non-INVITE client transaction (BYE, CANCEL): Timer E resends over UDP until a final
   * response, Timer F (64·T1) gives up with 408. Resolves with the final status.
   */
  nonInviteTransaction(msg: SipMessage, peer: Peer, branch?: string): Promise<number> {
    if (this.closing) return Promise.reject(new Error('SipForwarder is closed'));
    const key = `${branch ?? parseVia(msg.get('via') ?? '')?.branch ?? ''}|${msg.method}`;
    const bytes = Buffer.from(msg.toString(), 'utf8');
    return new Promise<number>((resolve, reject) => {
      let interval = this.timers.t1Ms;
      let timer: NodeJS.Timeout | undefined;
      const giveUp = setTimeout(() => finish(408), 64 * this.timers.t1Ms);
      const finish = (outcome: number | Error): void => {
        clearTimeout(timer);
        clearTimeout(giveUp);
        this.nonInvite.delete(key);
        if (typeof outcome === 'number') resolve(outcome);
        else reject(outcome);
      };
      const resend = (): void => {
        this.sendTo(bytes, peer);
        timer = setTimeout(resend, interval);
        interval = Math.min(interval * 2, this.timers.t2Ms);
      };
      this.nonInvite.set(key, finish);
      resend();
    });
  }

  /** The caller's side of a 2xx: a call, ACKed (straight to the callee's Contact). */
  callerAcks(res: SipMessage, from: Peer, destination: string, sink: ForwardSink): void {
    const key = callKey(res);
    if (this.calls.has(key)) return;
    const contact = res.get('contact');
    const routeSet = res
      .getAll('record-route')
      .reverse()
      .filter((r) => {
        const uri = parseSipUri(uriOf(r));
        return !(uri && uri.host === this.address && (uri.port ?? 5060) === this.port);
      });
    const remoteTarget = contact === undefined ? `sip:${from.address}:${from.port}` : uriOf(contact);
    const next = parseSipUri(routeSet[0] === undefined ? remoteTarget : uriOf(routeSet[0]));
    const peer = next ? { address: next.host, port: next.port ?? 5060 } : from;
    const fromHeader = res.get('from') ?? '';
    const to = res.get('to') ?? '';
    const call = new ForwardedCall(
      this,
      res.callId,
      fromHeader,
      tagOf(fromHeader) ?? '',
      to,
      tagOf(to) ?? '',
      remoteTarget,
      routeSet,
      isIP(peer.address) ? peer : from,
      destination,
      res.cseq.seq,
    );
    this.calls.set(key, call);
    call.sendAck();
    sink.connected(call);
  }

  /** Lets go of a call that has ended (see `DrachtioDouble.forget`). */
  forgetCall(call: ForwardedCall): void {
    for (const [key, c] of this.calls) if (c === call && c.state === 'ended') this.calls.delete(key);
  }

  /** A 2xx sent again (our ACK was lost, or crossed it): ACK again. */
  resendAckFor(res: SipMessage): void {
    this.calls.get(callKey(res))?.sendAck();
  }

  /** A 2xx from a target drachtio had given up on: ACK and BYE it so no call is left behind. */
  cleanUpLate2xx(res: SipMessage, from: Peer, destination: string): void {
    const key = callKey(res);
    if (this.calls.has(key)) {
      this.calls.get(key)?.sendAck();
      return;
    }
    const sink: ForwardSink = {
      targetFinal: () => undefined,
      done: () => undefined,
      failed: () => undefined,
      toCaller: () => undefined,
      requestSent: () => undefined,
      challenged: () => false,
      connected: (call) => {
        const p = call.hangup().catch(() => undefined);
        this.lateCleanups.add(p);
        void p.finally(() => this.lateCleanups.delete(p));
      },
    };
    this.callerAcks(res, from, destination, sink);
  }

  forget(run: ProxyRun): void {
    this.runs.delete(run);
  }

  /** A destination's UDP address, or undefined when it is not a sip: URI over UDP. */
  async peerOf(destination: string): Promise<Peer | undefined> {
    const uri = parseSipUri(destination);
    if (!uri || uri.scheme !== 'sip') return undefined;
    const transport = uri.params.get('transport');
    if (transport !== undefined && transport.toLowerCase() !== 'udp') return undefined;
    const address = isIP(uri.host)
      ? uri.host
      : await lookup(uri.host, { family: 4 }).then(
          (r) => r.address,
          () => undefined,
        );
    return address === undefined ? undefined : { address, port: uri.port ?? 5060 };
  }

  /** As `peerOf` for IP literals only (redirect targets, added while a run is under way). */
  peerOfSync(destination: string): Peer | undefined {
    const uri = parseSipUri(destination);
    if (!uri || uri.scheme !== 'sip' || !isIP(uri.host)) return undefined;
    const transport = uri.params.get('transport');
    if (transport !== undefined && transport.toLowerCase() !== 'udp') return undefined;
    return { address: uri.host, port: uri.port ?? 5060 };
  }

  private receive(bytes: Buffer, rinfo: RemoteInfo): void {
    let msg: SipMessage;
    try {
      msg = SipMessage.parse(bytes);
    } catch (err) {
      this.emit('warning', `unparsable datagram from ${rinfo.address}:${rinfo.port}: ${String(err)}`);
      return;
    }
    const from = { address: rinfo.address, port: rinfo.port };
    if (msg.kind === 'response') this.onResponse(msg, bytes.toString('utf8'), from);
    else this.onRequest(msg, from);
  }

  private onResponse(res: SipMessage, raw: string, from: Peer): void {
    const branch = parseVia(res.get('via') ?? '')?.branch;
    if (branch === undefined) return;
    const method = res.cseq.method;
    if (res.status >= 200) {
      const finish = this.nonInvite.get(`${branch}|${method}`);
      if (finish) {
        finish(res.status);
        return;
      }
    }
    if (method === 'CANCEL' || method === 'BYE' || method === 'ACK') return;
    for (const run of this.runs) {
      const c = run.owns(branch);
      if (c) {
        run.onResponse(c, res, raw, from);
        return;
      }
    }
    // A 2xx resent after its run was closed.
    if (res.status >= 200 && res.status < 300) this.resendAckFor(res);
  }

  /** In-dialog requests from a callee (its BYE): answered as the caller would. */
  private onRequest(req: SipMessage, from: Peer): void {
    this.emit('request', req, from);
    if (req.method === 'ACK') return;
    const call = this.calls.get(`${req.callId}|${tagOf(req.get('to')) ?? ''}`);
    let status = 200;
    let reason = 'OK';
    if (['BYE', 'INFO', 'NOTIFY', 'UPDATE', 'OPTIONS'].includes(req.method)) {
      if (!call || call.state === 'ended') {
        if (req.method !== 'OPTIONS') [status, reason] = [481, 'Call/Transaction Does Not Exist'];
      }
    } else {
      [status, reason] = [501, 'Not Implemented'];
    }
    const res = SipMessage.response(status, reason);
    for (const via of req.getAll('via')) res.add('Via', via);
    res.add('From', req.get('from') ?? '');
    res.add('To', req.get('to') ?? '');
    res.add('Call-ID', req.callId);
    res.add('CSeq', req.get('cseq') ?? '');
    this.sendTo(Buffer.from(res.toString(), 'utf8'), replyPeer(req, from));
    if (req.method === 'BYE' && status === 200) call?.remoteBye();
  }

  /** Closes the socket and stops every timer. Calls still up are left as they are (no BYE). Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const run of [...this.runs]) run.close();
      for (const finish of [...this.nonInvite.values()]) finish(new Error('SipForwarder closed'));
      await Promise.allSettled([...this.lateCleanups]);
      await new Promise<void>((resolve) => this.socket.close(() => resolve()));
    })();
    return this.closing;
  }
}

/** Calls are keyed by Call-ID and the caller's tag (the From tag of our side). */
function callKey(res: SipMessage): string {
  return `${res.callId}|${tagOf(res.get('from')) ?? ''}`;
}

/** Where to send a response to a request (RFC 3261 §18.2.2 with RFC 3581 rport: where it came from). */
function replyPeer(req: SipMessage, from: Peer): Peer {
  const top = req.get('via');
  if (top === undefined) return from;
  const rport = headerParam(top, 'rport');
  if (rport !== undefined) return from;
  const via = parseVia(top);
  const received = headerParam(top, 'received');
  if (!via) return from;
  return { address: received ?? via.host, port: via.port ?? 5060 };
}
