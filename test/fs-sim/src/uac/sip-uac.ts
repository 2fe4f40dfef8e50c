import { randomUUID } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';

import { digestCredentials } from '../sip/digest.js';
import {
  buildRequest,
  buildResponse,
  contacts,
  parseMessage,
  parseNameAddr,
  parseUri,
  randomToken,
  SipRequest,
  SipResponse,
  SipStreamFramer,
  type URI,
} from '../sip/sip-codec.js';

/** Where a UAC sends: a SIP host and port. */
export interface SipTarget {
  host: string;
  port: number;
}

/** A response as a test sees it. */
export interface UacResponse {
  status: number;
  reason: string;
  toTag: string | undefined;
  header(name: string): string | undefined;
  /** The raw message text. */
  raw: string;
}

export interface InviteOptions {
  /** Request-URI user (the dialled number); `1000` by default. */
  user?: string;
  /** SDP offer; a PCMU offer by default; false sends none. */
  sdp?: string | false;
  /** Extra header lines. */
  headers?: string[];
  /**
   * Answer one 401 (or 407) challenge: ACK it and send the INVITE again with the same Call-ID
   * and From tag, CSeq + 1, a new branch and digest credentials (Authorization, or
   * Proxy-Authorization for a 407). Without credentials the challenge is the final response.
   */
  credentials?: { username: string; password: string };
}

export interface SipUacOptions {
  /** Local address; 127.0.0.1 by default. */
  host?: string;
  transport?: 'udp' | 'tcp';
  /** How long each step waits for an answer; 5000 ms by default. */
  timeoutMs?: number;
}

interface Pending {
  resolve: (r: UacResponse) => void;
  onProvisional?: (r: UacResponse) => void;
  timer: NodeJS.Timeout;
}

/**
 * A small SIP user agent client for tests: sends INVITE, ACK, BYE, CANCEL and OPTIONS, and
 * answers the BYE a node sends. One UDP socket (or one TCP connection per target). Every wait
 * has a time limit.
 */
export class SipUac {
  private udp: UdpSocket | undefined;
  private readonly tcp = new Map<string, Socket>();
  private readonly pending = new Map<string, Pending>();
  private readonly calls = new Map<string, UacCall>();
  private localPort = 0;
  readonly host: string;
  readonly transport: 'udp' | 'tcp';
  readonly timeoutMs: number;

  private constructor(options: SipUacOptions) {
    this.host = options.host ?? '127.0.0.1';
    this.transport = options.transport ?? 'udp';
    this.timeoutMs = options.timeoutMs ?? 5000;
  }

  static async start(options: SipUacOptions = {}): Promise<SipUac> {
    const uac = new SipUac(options);
    const udp = createSocket('udp4');
    udp.on('message', (bytes, rinfo) => uac.receive(bytes, { host: rinfo.address, port: rinfo.port }));
    await new Promise<void>((resolve) => udp.bind({ port: 0, address: uac.host }, resolve));
    uac.udp = udp;
    uac.localPort = udp.address().port;
    return uac;
  }

  get port(): number {
    return this.localPort;
  }

  /** Starts a call; `final()` gives its first final response (ACK is sent automatically). */
  invite(target: SipTarget, options: InviteOptions = {}): UacCall {
    const call = new UacCall(this, target, options);
    this.calls.set(call.callId, call);
    return call;
  }

  async options(target: SipTarget): Promise<UacResponse> {
    const callId = randomUUID();
    return this.request(target, {
      method: 'OPTIONS',
      requestUri: uri(`sip:${target.host}:${target.port}`),
      from: uri(`sip:uac@${this.host}:${this.localPort}`),
      fromTag: randomToken(),
      to: uri(`sip:${target.host}:${target.port}`),
      callId,
      cseq: 1,
      branch: newBranch(),
    });
  }

  async close(): Promise<void> {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    for (const s of this.tcp.values()) s.destroy();
    this.tcp.clear();
    const udp = this.udp;
    this.udp = undefined;
    if (udp) await new Promise<void>((resolve) => udp.close(() => resolve()));
  }

  /** @internal Sends a request and resolves with its final response. */
  request(
    target: SipTarget,
    spec: {
      method: string;
      requestUri: URI;
      from: URI;
      fromTag: string;
      to: URI;
      toTag?: string;
      callId: string;
      cseq: number;
      branch: string;
      routeSet?: string[];
      headers?: string[];
      body?: { contentType: string; content: string };
    },
    onProvisional?: (r: UacResponse) => void,
  ): Promise<UacResponse> {
    const bytes = buildRequest({
      ...spec,
      via: {
        transport: this.transport.toUpperCase(),
        sentBy: `${this.host}:${this.localPort}`,
        branch: spec.branch,
      },
      userAgent: 'fs-sim-uac',
    });
    return new Promise<UacResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(spec.branch + spec.method);
        reject(new Error(`no final response to ${spec.method} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      const entry: Pending = { resolve, timer };
      if (onProvisional) entry.onProvisional = onProvisional;
      this.pending.set(spec.branch + spec.method, entry);
      this.send(bytes, target);
    });
  }

  /** @internal Sends bytes with no answer expected (ACK). */
  send(bytes: Buffer, target: SipTarget): void {
    if (this.transport === 'udp') {
      this.udp?.send(bytes, target.port, target.host);
      return;
    }
    const key = `${target.host}:${target.port}`;
    let socket = this.tcp.get(key);
    if (!socket || socket.destroyed) {
      const s = connect({ host: target.host, port: target.port, localAddress: this.host });
      const framer = new SipStreamFramer();
      s.on('error', () => undefined);
      s.on('data', (chunk: Buffer) => {
        const messages = framer.push(chunk);
        if (messages === 'overflow') return;
        for (const m of messages) this.receive(m, target);
      });
      this.tcp.set(key, s);
      socket = s;
    }
    socket.write(bytes);
  }

  private receive(bytes: Buffer, from: SipTarget): void {
    const message = parseMessage(bytes);
    if (!message) return;
    if (message instanceof SipResponse) {
      const key = message.viaBranch + message.method;
      const p = this.pending.get(key);
      if (!p) return;
      const response = toUacResponse(message);
      if (response.status < 200) {
        p.onProvisional?.(response);
        return;
      }
      clearTimeout(p.timer);
      this.pending.delete(key);
      p.resolve(response);
      return;
    }
    if (message instanceof SipRequest) this.calls.get(message.callId)?.incoming(message, from);
  }
}

/** One call placed by a `SipUac`. */
export class UacCall {
  readonly callId = randomUUID();
  readonly fromTag = randomToken();
  readonly provisional: UacResponse[] = [];
  /** The 401/407 challenges answered with `credentials`. */
  readonly challenges: UacResponse[] = [];
  private inviteBranch = newBranch();
  private inviteCseq = 1;
  private readonly finalResponse: Promise<UacResponse>;
  private readonly localUri: URI;
  private readonly requestUri: URI;
  private remoteTag: string | undefined;
  private remoteTarget: URI | undefined;
  private routeSet: string[] = [];
  private cseq = 1;
  private readonly provisionalWaiters = new Set<(r: UacResponse) => void>();
  private byeFromNode: (() => void) | undefined;
  /** Resolves when the node sends BYE (answered 200 by the UAC). */
  readonly ended: Promise<void>;

  constructor(
    private readonly uac: SipUac,
    private readonly target: SipTarget,
    options: InviteOptions,
  ) {
    this.localUri = uri(`sip:uac@${uac.host}:${uac.port}`);
    this.requestUri = uri(`sip:${options.user ?? '1000'}@${target.host}:${target.port}`);
    this.ended = new Promise<void>((resolve) => (this.byeFromNode = resolve));
    this.finalResponse = this.place(options);
  }

  /** INVITE, and once more with credentials after a challenge when told to. */
  private async place(options: InviteOptions): Promise<UacResponse> {
    const sdp = options.sdp === undefined ? defaultOffer(this.uac.host) : options.sdp;
    const send = (extra: string[]): Promise<UacResponse> =>
      this.uac.request(
        this.target,
        {
          ...this.inviteTransaction('INVITE'),
          headers: [
            `Contact: <sip:uac@${this.uac.host}:${this.uac.port};transport=${this.uac.transport}>`,
            ...(options.headers ?? []),
            ...extra,
          ],
          ...(sdp === false ? {} : { body: { contentType: 'application/sdp', content: sdp } }),
        },
        (r) => {
          this.provisional.push(r);
          for (const w of [...this.provisionalWaiters]) w(r);
        },
      );
    let final = await send([]);
    const challenge =
      final.status === 401
        ? final.header('WWW-Authenticate')
        : final.status === 407
          ? final.header('Proxy-Authenticate')
          : undefined;
    if (options.credentials && challenge !== undefined) {
      this.challenges.push(final);
      this.onFinal(final);
      this.remoteTag = undefined;
      this.inviteCseq++;
      this.cseq = this.inviteCseq;
      this.inviteBranch = newBranch();
      const credentials = digestCredentials(challenge, {
        ...options.credentials,
        method: 'INVITE',
        uri: this.requestUri.toString(),
      });
      final = await send([
        `${final.status === 401 ? 'Authorization' : 'Proxy-Authorization'}: ${credentials}`,
      ]);
    }
    this.onFinal(final);
    return final;
  }

  /** The first final response to the INVITE. */
  final(): Promise<UacResponse> {
    return this.finalResponse;
  }

  /** Resolves once a provisional response with `status` has arrived. */
  waitForProvisional(status: number): Promise<UacResponse> {
    const found = this.provisional.find((r) => r.status === status);
    if (found) return Promise.resolve(found);
    return new Promise<UacResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.provisionalWaiters.delete(waiter);
        reject(new Error(`no ${status} within ${this.uac.timeoutMs} ms`));
      }, this.uac.timeoutMs);
      const waiter = (r: UacResponse): void => {
        if (r.status !== status) return;
        clearTimeout(timer);
        this.provisionalWaiters.delete(waiter);
        resolve(r);
      };
      this.provisionalWaiters.add(waiter);
    });
  }

  /** CANCEL (same branch as the INVITE); resolves with the response to the CANCEL. */
  cancel(): Promise<UacResponse> {
    return this.uac.request(this.target, this.inviteTransaction('CANCEL'));
  }

  /** What the INVITE and its CANCEL share (RFC 3261 9.1: same Request-URI, tags, Call-ID, CSeq number and branch). */
  private inviteTransaction(method: 'INVITE' | 'CANCEL') {
    return {
      method,
      requestUri: this.requestUri,
      from: this.localUri,
      fromTag: this.fromTag,
      to: this.requestUri,
      callId: this.callId,
      cseq: this.inviteCseq,
      branch: this.inviteBranch,
    };
  }

  /** BYE in the dialog; resolves with its final response. */
  bye(): Promise<UacResponse> {
    this.cseq++;
    const { requestUri, nextHop } = this.inDialogRoute();
    const request = {
      method: 'BYE',
      requestUri,
      from: this.localUri,
      fromTag: this.fromTag,
      to: this.requestUri,
      callId: this.callId,
      cseq: this.cseq,
      branch: newBranch(),
      routeSet: this.routeSet,
      ...(this.remoteTag === undefined ? {} : { toTag: this.remoteTag }),
    };
    return this.uac.request(nextHop, request);
  }

  /**
   * Where an in-dialog request goes (RFC 3261 12.2.1.1): its Request-URI is the remote target,
   * and it is sent to the first route of the route set, or to the remote target when none.
   */
  private inDialogRoute(): { requestUri: URI; nextHop: SipTarget } {
    const requestUri = this.remoteTarget ?? this.requestUri;
    const firstRoute = this.routeSet[0] === undefined ? undefined : parseNameAddr(this.routeSet[0])?.uri;
    const next = firstRoute ?? requestUri;
    return { requestUri, nextHop: { host: next.host, port: next.port ?? 5060 } };
  }

  /** An ACK: for a 2xx a new transaction in the dialog, otherwise part of the INVITE transaction. */
  private ack(requestUri: URI, branch: string, routeSet?: string[]): Buffer {
    return buildRequest({
      method: 'ACK',
      requestUri,
      from: this.localUri,
      fromTag: this.fromTag,
      to: this.requestUri,
      ...(this.remoteTag === undefined ? {} : { toTag: this.remoteTag }),
      callId: this.callId,
      cseq: this.inviteCseq,
      ...(routeSet === undefined ? {} : { routeSet }),
      via: {
        transport: this.uac.transport.toUpperCase(),
        sentBy: `${this.uac.host}:${this.uac.port}`,
        branch,
      },
      userAgent: 'fs-sim-uac',
    });
  }

  /** @internal A request from the node within this call. */
  incoming(req: SipRequest, from: SipTarget): void {
    if (req.method !== 'BYE') return;
    this.uac.send(buildResponse(req, { status: 200, reason: 'OK', userAgent: 'fs-sim-uac' }), from);
    this.byeFromNode?.();
  }

  private onFinal(r: UacResponse): void {
    this.remoteTag = r.toTag;
    if (r.status >= 200 && r.status < 300) {
      const message = parseMessage(Buffer.from(r.raw, 'latin1'));
      if (message) {
        this.remoteTarget = contacts(message)[0]?.uri;
        this.routeSet = message.getHeaders('record-route').reverse();
      }
      const { requestUri, nextHop } = this.inDialogRoute();
      this.uac.send(this.ack(requestUri, newBranch(), this.routeSet), nextHop);
      return;
    }
    this.uac.send(this.ack(this.requestUri, this.inviteBranch), this.target);
  }
}

function toUacResponse(m: SipResponse): UacResponse {
  return {
    status: m.statusCode ?? 0,
    reason: m.reasonPhrase ?? '',
    toTag: m.toTag || undefined,
    header: (name) => m.getHeader(name),
    raw: m.data,
  };
}

function uri(text: string): URI {
  const parsed = parseUri(text);
  if (!parsed) throw new Error(`not a SIP URI: ${text}`);
  return parsed;
}

function newBranch(): string {
  return `z9hG4bK${randomToken()}`;
}

function defaultOffer(ip: string): string {
  return [
    'v=0',
    `o=uac 1 1 IN IP4 ${ip}`,
    's=fs-sim-uac',
    `c=IN IP4 ${ip}`,
    't=0 0',
    'm=audio 40000 RTP/AVP 0 101',
    'a=rtpmap:0 PCMU/8000',
    'a=rtpmap:101 telephone-event/8000',
    'a=fmtp:101 0-16',
    'a=sendrecv',
    '',
  ].join('\r\n');
}
