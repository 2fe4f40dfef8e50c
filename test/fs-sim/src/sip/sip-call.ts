import type { Retransmitter } from './retransmitter.js';
import type { SipRequest, URI } from './sip-codec.js';
import type { Peer } from './sip-transport.js';

/** Where an inbound call is; changed only through `SipCall.transition`. */
export enum CallState {
  /** INVITE accepted, session counted, no final response yet. */
  Ringing = 'ringing',
  /** 200 OK sent, no ACK yet. */
  Answered = 'answered',
  /** ACK received. */
  Confirmed = 'confirmed',
  /** Hung up by either side, cancelled, or refused after creation. */
  Ended = 'ended',
}

const ALLOWED: Record<CallState, readonly CallState[]> = {
  [CallState.Ringing]: [CallState.Answered, CallState.Ended],
  [CallState.Answered]: [CallState.Confirmed, CallState.Ended],
  [CallState.Confirmed]: [CallState.Ended],
  [CallState.Ended]: [],
};

/** What tests and the node's events see of a call. */
export interface CallInfo {
  uuid: string;
  callId: string;
  state: CallState;
  from: string;
  to: string;
}

export interface SipCallInit {
  uuid: string;
  callId: string;
  localTag: string;
  remoteTag: string;
  invite: SipRequest;
  inviteBranch: string;
  peer: Peer;
  routeSet: string[];
  remoteTarget: URI | undefined;
  sessionNumber: number;
}

/** One inbound call: a dialog and the one FreeSWITCH session (leg) it makes. */
export class SipCall {
  readonly uuid: string;
  readonly callId: string;
  readonly localTag: string;
  readonly remoteTag: string;
  readonly invite: SipRequest;
  readonly inviteBranch: string;
  /** Where responses to the INVITE go (its source, or its TCP connection). */
  readonly peer: Peer;
  /** Record-Route values of the INVITE, in order: the route set of in-dialog requests. */
  readonly routeSet: string[];
  /** The caller's Contact. */
  readonly remoteTarget: URI | undefined;
  readonly sessionNumber: number;
  readonly createdAtUs: number;
  answeredAtUs = 0;
  localCSeq = 0;
  answerSdp = '';
  hangupCause = '';
  /** The last final response to the INVITE, resent when the INVITE is. */
  finalResponse: Buffer | undefined;
  ringTimer: NodeJS.Timeout | undefined;
  holdTimer: NodeJS.Timeout | undefined;
  okResender: Retransmitter | undefined;
  byeResender: Retransmitter | undefined;
  private current = CallState.Ringing;

  constructor(init: SipCallInit) {
    this.uuid = init.uuid;
    this.callId = init.callId;
    this.localTag = init.localTag;
    this.remoteTag = init.remoteTag;
    this.invite = init.invite;
    this.inviteBranch = init.inviteBranch;
    this.peer = init.peer;
    this.routeSet = init.routeSet;
    this.remoteTarget = init.remoteTarget;
    this.sessionNumber = init.sessionNumber;
    this.createdAtUs = Date.now() * 1000;
  }

  get state(): CallState {
    return this.current;
  }

  /** Moves to `next`; a move the call's life does not allow is a programmer error. */
  transition(next: CallState): void {
    if (!ALLOWED[this.current].includes(next)) {
      throw new Error(`call ${this.uuid}: illegal transition ${this.current} -> ${next}`);
    }
    this.current = next;
  }

  /** Stops every timer the call owns. */
  stopTimers(): void {
    if (this.ringTimer) clearTimeout(this.ringTimer);
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.ringTimer = undefined;
    this.holdTimer = undefined;
    this.okResender?.stop();
    this.byeResender?.stop();
  }

  info(): CallInfo {
    return {
      uuid: this.uuid,
      callId: this.callId,
      state: this.current,
      from: this.invite.from.uri.toString(),
      to: this.invite.to.uri.toString(),
    };
  }
}
