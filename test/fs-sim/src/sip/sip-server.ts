import { randomUUID } from 'node:crypto';

import type { Refusal, SwitchCore } from '../core/switch-core.js';
import { channelEvent, type ChannelEventName } from './channel-events.js';
import { DigestNonces } from './digest-nonces.js';
import { digestNonce } from './digest.js';
import { Retransmitter } from './retransmitter.js';
import { buildSdp, chooseCodec, parseAudioOffer, SUPPORTED_PAYLOADS } from './sdp.js';
import { CallState, SipCall, type CallInfo } from './sip-call.js';
import type { FsEvent } from '../event/fs-event.js';

/** One row of `show channels`, with the columns fs-sim fills (FreeSWITCH has more). */
export interface ChannelRow {
  uuid: string;
  direction: string;
  created_epoch: string;
  name: string;
  state: string;
  callstate: string;
  dest: string;
  call_uuid: string;
}
import {
  buildRequest,
  buildResponse,
  contacts,
  parseMessage,
  parseNameAddr,
  parseVia,
  randomToken,
  setVias,
  SipResponse,
  viaValues,
  type ResponseSpec,
  type SipRequest,
  type URI,
  type ViaValue,
} from './sip-codec.js';
import { BUSY_RETRY_AFTER_S, SIP_TIMERS } from './sip-timers.js';
import { SipTransport, type Peer } from './sip-transport.js';

/** Why an INVITE got no call: the core's refusals (503) or an offer without G.711 (488). */
export type InviteRefusal = Refusal | 'no-common-codec';

/** What the SIP side needs from its node. */
export interface SipServerHost {
  core(): SwitchCore;
  stalled(): boolean;
  /** Answered calls end with a BYE from the node after this long; 0 = never. */
  holdMs(): number;
  /** Time between the INVITE and the 200 OK (180 Ringing is sent meanwhile when > 0). */
  answerDelayMs(): number;
  /** OPTIONS answered 503 when the node refuses calls (sofia's options-respond-503-on-busy). */
  options503OnBusy(): boolean;
  /** INVITEs without credentials for a nonce this node issued get a 401 digest challenge. */
  challenge(): boolean;
  userAgent(): string;
  callStarted(call: CallInfo): void;
  callEnded(call: CallInfo, cause: string): void;
  inviteRefused(reason: InviteRefusal, callId: string): void;
  /** An INVITE was answered 401 with a challenge carrying `nonce`. */
  challenged(callId: string, nonce: string): void;
  request(method: string, callId: string): void;
  /** A message was dropped because handling it failed. */
  messageDropped(err: unknown): void;
}

/** An INVITE server transaction, kept until 64·T1 after its final response. */
interface InviteTx {
  peer: Peer;
  call: SipCall | undefined;
  lastResponse: Buffer | undefined;
  resender: Retransmitter | undefined;
  expiresAt: number;
}

interface CompletedTx {
  response: Buffer;
  peer: Peer;
  expiresAt: number;
}

const ALLOW = 'INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, INFO, UPDATE, REGISTER, REFER, NOTIFY';
const SUPPORTED = ['timer', 'path', 'replaces'];
/** Requests received while stalled, as a socket buffer would hold them. */
const MAX_HELD = 1024;

/**
 * The SIP side of a node: a UAS on UDP and TCP that answers every INVITE it may take with
 * 100 Trying and 200 OK (one session per call), and otherwise 503 Maximum Calls In Progress
 * with Retry-After, as mod_sofia does; with `challenge` on, an INVITE without credentials for a
 * nonce the node issued first gets 401 and a digest challenge (as sofia's `auth-calls`); ACK,
 * BYE, CANCEL (487), OPTIONS, re-INVITE; responses routed by the top Via (RFC 3261 §18.2.2,
 * rport RFC 3581). No media is sent or received.
 */
export class SipServer {
  private readonly transport = new SipTransport((bytes, peer) => this.receive(bytes, peer));
  private readonly calls = new Map<string, SipCall>();
  private readonly dialogs = new Map<string, SipCall>();
  private readonly inviteTxs = new Map<string, InviteTx>();
  private readonly completed = new Map<string, CompletedTx>();
  private readonly byes = new Map<string, SipCall>();
  private readonly nonces = new DigestNonces();
  private held: [Buffer, Peer][] = [];
  private deferred: (() => void)[] = [];
  private lastSweep = 0;
  private boundPort = 0;
  callsIn = 0;
  failedCallsIn = 0;
  /** INVITEs answered 401 with a challenge. */
  challengesSent = 0;

  constructor(
    private readonly host: SipServerHost,
    readonly address: string,
  ) {}

  get port(): number {
    return this.boundPort;
  }

  get callCount(): number {
    return this.calls.size;
  }

  async listen(port: number): Promise<number> {
    this.boundPort = await this.transport.listen(this.address, port);
    return this.boundPort;
  }

  callInfos(): CallInfo[] {
    return [...this.calls.values()].map((c) => c.info());
  }

  /** A channel's data as FreeSWITCH puts it in an event (its variables included), for `eval`. */
  channelData(uuid: string): FsEvent | undefined {
    const call = this.calls.get(uuid);
    if (!call) return undefined;
    const core = this.host.core();
    return channelEvent(core, 'CHANNEL_CREATE', call, { address: this.address, port: this.boundPort });
  }

  /** The rows of `show channels`: one per channel, each inbound (fs-sim answers calls only). */
  channelRows(): ChannelRow[] {
    return [...this.calls.values()].map((c) => {
      const info = c.info();
      return {
        uuid: c.uuid,
        direction: 'inbound',
        created_epoch: String(Math.floor(c.createdAtUs / 1_000_000)),
        name: `sofia/${this.host.core().profile}/${info.from.replace(/^sips?:/, '')}`,
        state: c.answeredAtUs > 0 ? 'CS_EXECUTE' : 'CS_INIT',
        callstate: c.answeredAtUs > 0 ? 'ACTIVE' : 'RINGING',
        dest: c.invite.ruri?.user ?? '',
        call_uuid: c.uuid,
      };
    });
  }

  /** Hangs up every call: BYE for answered ones, 480 for ringing ones. */
  hangupAll(cause: string): number {
    const all = [...this.calls.values()];
    for (const call of all) this.hangup(call, cause, 'bye');
    return all.length;
  }

  kill(uuid: string, cause: string): boolean {
    const call = this.calls.get(uuid);
    if (!call) return false;
    this.hangup(call, cause, 'bye');
    return true;
  }

  /** The stall is over: handle what arrived meanwhile, then what timers wanted to do. */
  unstall(): void {
    const held = this.held;
    const deferred = this.deferred;
    this.held = [];
    this.deferred = [];
    for (const [bytes, peer] of held) this.receive(bytes, peer);
    for (const fn of deferred) fn();
  }

  async close(): Promise<void> {
    this.forgetEverything();
    await this.transport.close();
  }

  crash(): void {
    this.forgetEverything();
    this.transport.crash();
  }

  private forgetEverything(): void {
    for (const call of this.calls.values()) call.stopTimers();
    for (const tx of this.inviteTxs.values()) tx.resender?.stop();
    for (const call of this.byes.values()) call.byeResender?.stop();
    this.calls.clear();
    this.dialogs.clear();
    this.inviteTxs.clear();
    this.completed.clear();
    this.byes.clear();
    this.held = [];
    this.deferred = [];
  }

  /** Runs `fn` now, or when a stall ends (a stalled node does nothing). */
  private gated(fn: () => void): void {
    if (this.host.stalled()) this.deferred.push(fn);
    else fn();
  }

  private receive(bytes: Buffer, peer: Peer): void {
    if (this.host.stalled()) {
      if (this.held.length < MAX_HELD) this.held.push([bytes, peer]);
      return;
    }
    const message = parseMessage(bytes);
    if (!message) return;
    this.sweep();
    try {
      if (message instanceof SipResponse) this.onResponse(message);
      else this.onRequest(message, peer);
    } catch (err) {
      // A message the builders cannot answer (an unparsable To, say) is dropped, as a datagram
      // a real stack cannot make sense of would be; the node keeps running.
      this.host.messageDropped(err);
    }
  }

  private onRequest(req: SipRequest, peer: Peer): void {
    const vias = viaValues(req);
    const topRaw = vias[0];
    const top = topRaw === undefined ? undefined : parseVia(topRaw);
    if (topRaw === undefined || !top || lacksDialogHeaders(req)) return;
    this.host.request(req.method, req.callId);
    setVias(req, [withReceived(topRaw, top, peer), ...vias.slice(1)]);
    const replyTo = responsePeer(top, peer);
    const key = transactionKey(req, top);
    switch (req.method) {
      case 'INVITE':
        this.onInvite(req, replyTo, key);
        return;
      case 'ACK':
        this.onAck(req, key);
        return;
    }
    const done = this.completed.get(`${key}|${req.method}`);
    if (done) {
      this.transport.send(done.response, done.peer);
      return;
    }
    switch (req.method) {
      case 'CANCEL':
        this.onCancel(req, replyTo, key);
        return;
      case 'BYE':
        this.onBye(req, replyTo, key);
        return;
      case 'OPTIONS':
        this.onOptions(req, replyTo, key);
        return;
      case 'INFO':
      case 'UPDATE':
      case 'NOTIFY':
        if (this.dialogOf(req)) this.respond(req, replyTo, key, { status: 200, reason: 'OK' });
        else this.respond(req, replyTo, key, { status: 481, reason: 'Call/Transaction Does Not Exist' });
        return;
      default:
        this.respond(req, replyTo, key, {
          status: 405,
          reason: 'Method Not Allowed',
          headers: [`Allow: ${ALLOW}`],
        });
    }
  }

  private onInvite(req: SipRequest, replyTo: Peer, key: string): void {
    const tx = this.inviteTxs.get(key);
    if (tx) {
      if (tx.lastResponse) this.transport.send(tx.lastResponse, tx.peer);
      return;
    }
    if (req.toTag) {
      this.onReInvite(req, replyTo, key);
      return;
    }
    const core = this.host.core();
    const refusal = core.refusal();
    if (refusal !== undefined) {
      this.failedCallsIn++;
      this.host.inviteRefused(refusal, req.callId);
      this.finalToNewInvite(req, replyTo, key, {
        status: 503,
        reason: 'Maximum Calls In Progress',
        headers: [`Retry-After: ${BUSY_RETRY_AFTER_S}`],
      });
      return;
    }
    if (this.host.challenge()) {
      const nonce = digestNonce(req.getHeader('authorization'));
      if (nonce === undefined || !this.nonces.knows(nonce)) {
        this.challengeInvite(req, replyTo, key);
        return;
      }
    }
    const body = req.body;
    const offer = body === '' ? undefined : parseAudioOffer(body);
    const codec = offer === undefined ? undefined : chooseCodec(offer);
    if (body !== '' && codec === undefined) {
      this.failedCallsIn++;
      this.host.inviteRefused('no-common-codec', req.callId);
      this.finalToNewInvite(req, replyTo, key, { status: 488, reason: 'Not Acceptable Here' });
      return;
    }

    core.sessionStarted();
    this.callsIn++;
    const call = new SipCall({
      uuid: randomUUID(),
      callId: req.callId,
      localTag: randomToken(),
      remoteTag: req.fromTag,
      invite: req,
      inviteBranch: key,
      peer: replyTo,
      routeSet: req.getHeaders('record-route'),
      remoteTarget: contacts(req)[0]?.uri,
      sessionNumber: core.sessionsSinceStartup,
    });
    call.answerSdp = buildSdp({
      ip: this.address,
      port: 16384 + ((call.sessionNumber * 2) % 16000),
      sessionId: Math.floor(Date.now() / 1000),
      payloads: codec === undefined ? SUPPORTED_PAYLOADS : [codec],
      telephoneEvent: offer === undefined ? 101 : offer.telephoneEvent,
    });
    this.calls.set(call.uuid, call);
    this.dialogs.set(dialogKey(call.callId, call.localTag), call);
    const newTx: InviteTx = {
      peer: replyTo,
      call,
      lastResponse: undefined,
      resender: undefined,
      expiresAt: Infinity,
    };
    this.inviteTxs.set(key, newTx);
    this.fireChannel('CHANNEL_CREATE', call);
    this.host.callStarted(call.info());

    newTx.lastResponse = buildResponse(req, {
      status: 100,
      reason: 'Trying',
      userAgent: this.host.userAgent(),
    });
    this.transport.send(newTx.lastResponse, replyTo);
    const delay = this.host.answerDelayMs();
    if (delay > 0) {
      newTx.lastResponse = buildResponse(req, this.dialogResponse(call, 180, 'Ringing'));
      this.transport.send(newTx.lastResponse, replyTo);
      call.ringTimer = setTimeout(() => this.gated(() => this.answer(call)), delay);
    } else {
      this.answer(call);
    }
  }

  /**
   * 401 with a fresh nonce (RFC 3261 §22.1, RFC 2617 §3.2.1), in the form sofia writes. No
   * session is made and no channel event fired: FreeSWITCH challenges before the channel runs.
   */
  private challengeInvite(req: SipRequest, replyTo: Peer, key: string): void {
    const nonce = this.nonces.issue();
    this.challengesSent++;
    this.host.challenged(req.callId, nonce);
    this.finalToNewInvite(req, replyTo, key, {
      status: 401,
      reason: 'Unauthorized',
      toTag: randomToken(),
      headers: [
        `WWW-Authenticate: Digest realm="${this.address}", nonce="${nonce}", algorithm=MD5, qop="auth"`,
      ],
    });
  }

  private answer(call: SipCall): void {
    if (call.state !== CallState.Ringing) return;
    call.transition(CallState.Answered);
    call.answeredAtUs = Date.now() * 1000;
    const spec = this.dialogResponse(call, 200, 'OK');
    spec.body = { contentType: 'application/sdp', content: call.answerSdp };
    const ok = buildResponse(call.invite, spec);
    call.finalResponse = ok;
    const tx = this.inviteTxs.get(call.inviteBranch);
    if (tx) {
      tx.lastResponse = ok;
      tx.expiresAt = Date.now() + SIP_TIMERS.KEEP_COMPLETED;
    }
    this.transport.send(ok, call.peer);
    this.fireChannel('CHANNEL_ANSWER', call);
    if (call.peer.transport === 'udp') {
      call.okResender = new Retransmitter(
        () => this.transport.send(ok, call.peer),
        () => this.hangup(call, 'RECOVERY_ON_TIMER_EXPIRE', 'bye'),
        () => this.host.stalled(),
      );
      call.okResender.start();
    }
    const hold = this.host.holdMs();
    if (hold > 0) {
      call.holdTimer = setTimeout(() => this.gated(() => this.hangup(call, 'NORMAL_CLEARING', 'bye')), hold);
    }
  }

  private onReInvite(req: SipRequest, replyTo: Peer, key: string): void {
    const call = this.dialogOf(req);
    if (!call || call.state === CallState.Ended) {
      this.finalToNewInvite(req, replyTo, key, { status: 481, reason: 'Call/Transaction Does Not Exist' });
      return;
    }
    const spec = this.dialogResponse(call, 200, 'OK');
    spec.body = { contentType: 'application/sdp', content: call.answerSdp };
    this.finalToNewInvite(req, replyTo, key, spec);
  }

  /** A final response to an INVITE that made no call; resent over UDP until the ACK. */
  private finalToNewInvite(req: SipRequest, replyTo: Peer, key: string, spec: ResponseSpec): void {
    spec.userAgent = this.host.userAgent();
    const response = buildResponse(req, spec);
    const tx: InviteTx = {
      peer: replyTo,
      call: undefined,
      lastResponse: response,
      resender: undefined,
      expiresAt: Date.now() + SIP_TIMERS.KEEP_COMPLETED,
    };
    this.inviteTxs.set(key, tx);
    this.transport.send(response, replyTo);
    if (replyTo.transport === 'udp' && spec.status >= 300) this.resendUntilAck(tx, response);
  }

  private resendUntilAck(tx: InviteTx, response: Buffer): void {
    tx.resender = new Retransmitter(
      () => this.transport.send(response, tx.peer),
      () => undefined,
      () => this.host.stalled(),
    );
    tx.resender.start();
  }

  private onAck(req: SipRequest, key: string): void {
    const tx = this.inviteTxs.get(key);
    if (tx && (!tx.call || tx.call.state === CallState.Ended)) {
      tx.resender?.stop();
      return;
    }
    const call = this.dialogOf(req);
    if (!call) return;
    call.okResender?.stop();
    if (call.state === CallState.Answered) call.transition(CallState.Confirmed);
  }

  private onCancel(req: SipRequest, replyTo: Peer, key: string): void {
    const tx = this.inviteTxs.get(key);
    if (!tx) {
      this.respond(req, replyTo, key, { status: 481, reason: 'Call/Transaction Does Not Exist' });
      return;
    }
    const call = tx.call;
    const spec: ResponseSpec = { status: 200, reason: 'OK' };
    if (call) spec.toTag = call.localTag;
    this.respond(req, replyTo, key, spec);
    if (call && call.state === CallState.Ringing) {
      this.hangup(call, 'ORIGINATOR_CANCEL', { status: 487, reason: 'Request Terminated' });
    }
  }

  private onBye(req: SipRequest, replyTo: Peer, key: string): void {
    const call = this.dialogOf(req);
    if (!call || call.state === CallState.Ended) {
      this.respond(req, replyTo, key, { status: 481, reason: 'Call/Transaction Does Not Exist' });
      return;
    }
    this.respond(req, replyTo, key, { status: 200, reason: 'OK' });
    this.hangup(call, 'NORMAL_CLEARING', 'none');
  }

  private onOptions(req: SipRequest, replyTo: Peer, key: string): void {
    if (this.host.options503OnBusy() && this.host.core().refusal() !== undefined) {
      this.respond(req, replyTo, key, {
        status: 503,
        reason: 'Maximum Calls In Progress',
        headers: [`Retry-After: ${BUSY_RETRY_AFTER_S}`],
      });
      return;
    }
    this.respond(req, replyTo, key, {
      status: 200,
      reason: 'OK',
      headers: [`Allow: ${ALLOW}`, 'Accept: application/sdp', `Supported: ${SUPPORTED.join(', ')}`],
    });
  }

  /** A final response to a non-INVITE request, kept to answer its retransmissions. */
  private respond(req: SipRequest, replyTo: Peer, key: string, spec: ResponseSpec): void {
    spec.userAgent = this.host.userAgent();
    const response = buildResponse(req, spec);
    this.completed.set(`${key}|${req.method}`, {
      response,
      peer: replyTo,
      expiresAt: Date.now() + SIP_TIMERS.KEEP_COMPLETED,
    });
    this.transport.send(response, replyTo);
  }

  private onResponse(res: SipResponse): void {
    const call = this.byes.get(res.viaBranch);
    if (!call || (res.statusCode ?? 0) < 200) return;
    call.byeResender?.stop();
    this.byes.delete(res.viaBranch);
  }

  /**
   * Ends a call: `how` = 'bye' sends BYE if answered (a final error if still ringing), 'none'
   * sends nothing (the caller hung up), or a given final response for a ringing call.
   */
  private hangup(
    call: SipCall,
    cause: string,
    how: 'bye' | 'none' | { status: number; reason: string },
  ): void {
    if (call.state === CallState.Ended) return;
    const wasRinging = call.state === CallState.Ringing;
    call.stopTimers();
    call.transition(CallState.Ended);
    call.hangupCause = cause;
    this.calls.delete(call.uuid);
    this.dialogs.delete(dialogKey(call.callId, call.localTag));
    if (wasRinging && how !== 'none') {
      const final = how === 'bye' ? { status: 480, reason: 'Temporarily Unavailable' } : how;
      const response = buildResponse(call.invite, this.dialogResponse(call, final.status, final.reason));
      const tx = this.inviteTxs.get(call.inviteBranch);
      if (tx) {
        tx.lastResponse = response;
        tx.expiresAt = Date.now() + SIP_TIMERS.KEEP_COMPLETED;
        if (call.peer.transport === 'udp') this.resendUntilAck(tx, response);
      }
      this.transport.send(response, call.peer);
    } else if (!wasRinging && how === 'bye') {
      this.sendBye(call);
    }
    this.host.core().sessionEnded();
    this.fireChannel('CHANNEL_HANGUP', call);
    this.fireChannel('CHANNEL_HANGUP_COMPLETE', call);
    this.fireChannel('CHANNEL_DESTROY', call);
    this.host.callEnded(call.info(), cause);
  }

  /** BYE within the call's dialog (RFC 3261 §12.2.1.1), via its route set if it has one. */
  private sendBye(call: SipCall): void {
    const invite = call.invite;
    const target = call.remoteTarget ?? invite.from.uri;
    const firstRoute = call.routeSet[0] === undefined ? undefined : parseNameAddr(call.routeSet[0])?.uri;
    const next: URI = firstRoute ?? target;
    const transportParam = next.getParam('transport');
    const transport =
      typeof transportParam === 'string'
        ? transportParam.toLowerCase() === 'tcp'
          ? 'tcp'
          : 'udp'
        : call.peer.transport;
    const peer: Peer = {
      transport,
      address: next.host,
      port: next.port ?? 5060,
    };
    if (transport === 'tcp' && call.peer.socket) peer.socket = call.peer.socket;
    const branch = `z9hG4bK${randomToken()}`;
    call.localCSeq++;
    const bytes = buildRequest({
      method: 'BYE',
      requestUri: target,
      from: invite.to.uri,
      fromTag: call.localTag,
      to: invite.from.uri,
      toTag: call.remoteTag,
      callId: call.callId,
      cseq: call.localCSeq,
      routeSet: call.routeSet,
      via: { transport: transport.toUpperCase(), sentBy: `${this.address}:${this.boundPort}`, branch },
      userAgent: this.host.userAgent(),
    });
    this.transport.send(bytes, peer);
    if (transport === 'udp') {
      this.byes.set(branch, call);
      call.byeResender = new Retransmitter(
        () => this.transport.send(bytes, peer),
        () => this.byes.delete(branch),
        () => this.host.stalled(),
      );
      call.byeResender.start();
    }
  }

  /** Headers of a response that creates or continues the dialog: To-tag, Contact, Record-Route. */
  private dialogResponse(call: SipCall, status: number, reason: string): ResponseSpec {
    const user = call.invite.ruri?.user ?? 'mod_sofia';
    return {
      status,
      reason,
      toTag: call.localTag,
      userAgent: this.host.userAgent(),
      headers: [
        `Contact: <sip:${user}@${this.address}:${this.boundPort};transport=${call.peer.transport}>`,
        ...call.routeSet.map((r) => `Record-Route: ${r}`),
        `Allow: ${ALLOW}`,
        `Supported: ${SUPPORTED.join(', ')}`,
        'Allow-Events: talk, hold, conference, refer',
      ],
    };
  }

  private dialogOf(req: SipRequest): SipCall | undefined {
    return req.toTag ? this.dialogs.get(dialogKey(req.callId, req.toTag)) : undefined;
  }

  private fireChannel(name: ChannelEventName, call: SipCall): void {
    const core = this.host.core();
    core.fire(channelEvent(core, name, call, { address: this.address, port: this.boundPort }));
  }

  /** Forgets finished transactions (at most once a second). */
  private sweep(): void {
    const now = Date.now();
    if (now - this.lastSweep < 1000) return;
    this.lastSweep = now;
    for (const [key, tx] of this.inviteTxs) {
      if (tx.expiresAt <= now) {
        tx.resender?.stop();
        this.inviteTxs.delete(key);
      }
    }
    for (const [key, tx] of this.completed) if (tx.expiresAt <= now) this.completed.delete(key);
  }
}

/** A request without Call-ID, CSeq, From or To cannot be answered (the parser lets it through). */
function lacksDialogHeaders(req: SipRequest): boolean {
  const r = req as Partial<Pick<SipRequest, 'callId' | 'cseq' | 'from' | 'to'>>;
  return !r.callId || !r.cseq || r.from === undefined || r.to === undefined;
}

function dialogKey(callId: string, localTag: string): string {
  return `${callId}\n${localTag}`;
}

/** RFC 3261 §17.2.3: the branch when it is RFC 3261 style; otherwise Call-ID, CSeq and From tag. */
function transactionKey(req: SipRequest, top: ViaValue): string {
  if (top.branch?.startsWith('z9hG4bK')) return `${top.branch}|${top.host}:${top.port ?? ''}`;
  return `${req.callId}|${req.cseq}|${req.fromTag}`;
}

/** Adds `received` (and fills `rport`) to the top Via as the server that received it (§18.2.1). */
function withReceived(raw: string, via: ViaValue, peer: Peer): string {
  let out = raw;
  if (via.rport === '') out = out.replace(/;\s*rport(?=\s*(;|$))/i, `;rport=${peer.port}`);
  if (via.received === undefined && (via.rport !== undefined || via.host !== peer.address)) {
    out += `;received=${peer.address}`;
  }
  return out;
}

/** Where a response goes (RFC 3261 §18.2.2, RFC 3581 §4). */
function responsePeer(via: ViaValue, peer: Peer): Peer {
  if (peer.transport === 'tcp') return peer;
  if (via.rport !== undefined) return { transport: 'udp', address: peer.address, port: peer.port };
  if (via.maddr !== undefined) return { transport: 'udp', address: via.maddr, port: via.port ?? 5060 };
  return { transport: 'udp', address: via.received ?? peer.address, port: via.port ?? 5060 };
}
