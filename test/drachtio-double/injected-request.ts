/**
 * What a test holds for each injected request: the app's responses and proxy commands, what
 * the caller received, and, in forward mode, the requests sent to targets and the call set up.
 * Also the scripts a test's proxy handler returns.
 */
import { EventEmitter } from 'node:events';

import type { AppConnection } from './app-connection.js';
import type { ForwardedCall, ForwardRun, Peer } from './sip-forwarder.js';
import { SipMessage, type SipHeader } from './sip-message.js';
import { randomTag, type SipSource } from './sip-request.js';
import { parseTimeout, type ProxyFields } from './wire.js';

/** How the double answers one `proxy` command. */
export type ProxyScript =
  /** One final response per target, in destination order, each sent as `continue`; then `done`. */
  | { kind: 'respond'; responses: readonly ScriptedResponse[] }
  /** `response|<id>|NOK|<reason>`: srf rejects req.proxy() with the reason string. */
  | { kind: 'nok'; reason?: string }
  /** Destroy the app's socket: srf's req.proxy() promise never settles. */
  | { kind: 'drop' }
  /** Say nothing until the test calls `cmd.answer(...)`. */
  | { kind: 'hold' }
  /** Proxy for real over UDP (serial or simultaneous forking, as drachtio-server does). */
  | { kind: 'forward' };

/** One target's answer in a scripted proxy; 'silent' is a target that never answered (no entry). */
export type ScriptedResponse =
  | 'silent'
  | {
      status: number;
      reason?: string;
      headers?: Record<string, string>;
      /** A body (SDP, say) with its Content-Type. */
      body?: { contentType: string; content: string };
      /** Wait this long before sending this one. */
      delayMs?: number;
    };

export type ProxyHandler = (cmd: ProxyCommand) => ProxyScript | Promise<ProxyScript>;

/** A response an app sent for an injected request. */
export interface CapturedResponse {
  msgId: string;
  txnId: string;
  status: number;
  reason: string;
  /** The response as the app sent it. */
  message: SipMessage;
  /** The raw SIP text as the app sent it. */
  raw: string;
  connection: AppConnection;
}

/** What a request handle needs from the double (DrachtioDouble implements it). */
export interface RequestHost {
  until<T>(
    source: EventEmitter<{ changed: [] }>,
    what: string | (() => string),
    probe: () => T | undefined,
  ): Promise<T>;
  runScript(cmd: ProxyCommand, script: ProxyScript): void;
  cancelRequest(req: InjectedRequest): number;
}

/**
 * 'pending': out to the app for disposition; 'answered': the app sent a final response;
 * 'proxying': the app sent `proxy`; 'unrouted': no app routes its method; 'removed': the app
 * responded after a CANCEL and drachtio dropped the request (NOK).
 */
type RequestState = 'pending' | 'answered' | 'proxying' | 'unrouted' | 'removed';

export interface InjectedRequestEvents {
  changed: [];
}

/** A request the test injected, and everything that happened to it. */
export class InjectedRequest extends EventEmitter<InjectedRequestEvents> {
  state: RequestState = 'pending';
  /** The responses the app sent (`res.send`), provisional ones included. */
  readonly responses: CapturedResponse[] = [];
  /** The proxy commands the app sent (a second one gets NOK). */
  readonly proxyCommands: ProxyCommand[] = [];
  /** What the caller received, in order (100 Trying from the server, app or proxied responses). */
  readonly callerResponses: SipMessage[] = [];
  /** What the caller received for each CANCEL it sent (`cancel()`): 200, or 481 when nothing matched. */
  readonly cancelResponses: SipMessage[] = [];
  /**
   * The caller sent CANCEL while the request was still out to the app (drachtio's
   * `PendingRequest_t::cancel()`): the app got the CANCEL, and a response from it now gets NOK.
   */
  canceled = false;
  /** In forward mode, each request sent to a target (first transmission), in order. */
  readonly forwarded: { destination: string; message: SipMessage; to: Peer }[] = [];
  /** The call set up by a forward, once the 2xx was ACKed. */
  call: ForwardedCall | undefined;
  /** The To tag drachtio adds to the app's responses when they lack one. */
  readonly localTag = randomTag();

  constructor(
    private readonly host: RequestHost,
    readonly txnId: string,
    /** The request as the caller sent it. */
    readonly message: SipMessage,
    /** The raw text handed to the app. */
    readonly raw: string,
    readonly source: Required<SipSource>,
    /** The app connection it went to (undefined when no app routes its method). */
    readonly connection: AppConnection | undefined,
  ) {
    super();
  }

  get method(): string {
    return this.message.method;
  }

  get callId(): string {
    return this.message.callId;
  }

  /** The final response the caller received, if any. */
  get finalResponse(): SipMessage | undefined {
    return this.callerResponses.find((r) => r.status >= 200);
  }

  /** Waits for the first response the app sends with a status in [min, max]. */
  response(min = 100, max = 699): Promise<CapturedResponse> {
    return this.host.until(
      this,
      `a ${min}-${max} response from the app to ${this.method} ${this.callId}`,
      () => this.responses.find((r) => r.status >= min && r.status <= max),
    );
  }

  /** Waits for the app's first `proxy` command for this request. */
  proxied(): Promise<ProxyCommand> {
    return this.host.until(
      this,
      `a proxy command for ${this.method} ${this.callId}`,
      () => this.proxyCommands[0],
    );
  }

  /** Waits for the final response the caller receives (from the app, a proxy, or the server). */
  final(): Promise<SipMessage> {
    return this.host.until(
      this,
      `a final response to ${this.method} ${this.callId}`,
      () => this.finalResponse,
    );
  }

  /** Waits for the call a forward sets up (the 2xx ACKed by the double). */
  connected(): Promise<ForwardedCall> {
    return this.host.until(this, `a call for ${this.callId}`, () => this.call);
  }

  /**
   * The caller sends CANCEL for this INVITE (same Call-ID, branch, From, To and CSeq number);
   * returns the status it gets back, 200 or 481. What follows depends on where the INVITE is, as
   * in drachtio-server: out to the app, the app gets the CANCEL (srf emits `cancel` on its req)
   * and the caller 487; proxied with no final yet, the caller gets 487 and each target that sent
   * a provisional a CANCEL; already answered 2xx, or not known, 481. See README.md.
   */
  cancel(): number {
    return this.host.cancelRequest(this);
  }

  /** Sends BYE for the call a forward set up; resolves with the BYE's final status. */
  async hangup(): Promise<number> {
    if (!this.call) throw new Error(`no call for ${this.callId}: hangup() needs a forward that connected`);
    return this.call.hangup();
  }

  /** @internal */
  changed(): void {
    this.emit('changed');
  }
}

/** What the double has sent back for one proxy command. */
export interface ProxyReply {
  /** Each `continue` response, in order. */
  continues: SipMessage[];
  done: boolean;
  nok: string | undefined;
  dropped: boolean;
}

/** A `proxy` command from an app, parsed, with what the double answered. */
export class ProxyCommand implements ProxyFields {
  readonly txnId: string;
  readonly remainInDialog: boolean;
  readonly fullResponse: boolean;
  readonly followRedirects: boolean;
  readonly forking: 'serial' | 'simultaneous';
  readonly provisionalTimeout: string;
  readonly finalTimeout: string;
  readonly destinations: string[];
  /** The timeouts as drachtio-server reads them (`^\d+(ms|s)$`), in ms. */
  readonly provisionalTimeoutMs: number | undefined;
  readonly finalTimeoutMs: number | undefined;
  /** srf's request stub: `<METHOD> <first destination>` plus the app's extra headers. */
  readonly stub: SipMessage;
  /** The stub's header lines other than Content-Length (the app's `headers` option). */
  readonly headers: SipHeader[];
  readonly reply: ProxyReply = { continues: [], done: false, nok: undefined, dropped: false };
  /** @internal */
  held = false;
  /** @internal The forward under way, in forward mode (a caller's CANCEL reaches it). */
  run: ForwardRun | undefined;
  /** @internal The caller sent CANCEL after this command came (a forward started later is canceled). */
  callerCanceled = false;

  constructor(
    private readonly host: RequestHost,
    readonly msgId: string,
    fields: ProxyFields,
    readonly request: InjectedRequest,
    readonly connection: AppConnection,
    /** The whole message as received (leader, CRLF, stub). */
    readonly raw: string,
    /**
     * The target drachtio used instead of `destinations`: the request carried credentials for a
     * challenge that target sent within the last 2 s (`isResponseToChallenge`); else undefined.
     */
    readonly challengeTarget?: string,
  ) {
    this.txnId = fields.txnId;
    this.remainInDialog = fields.remainInDialog;
    this.fullResponse = fields.fullResponse;
    this.followRedirects = fields.followRedirects;
    this.forking = fields.forking;
    this.provisionalTimeout = fields.provisionalTimeout;
    this.finalTimeout = fields.finalTimeout;
    this.destinations = fields.destinations;
    this.provisionalTimeoutMs = parseTimeout(fields.provisionalTimeout);
    this.finalTimeoutMs = parseTimeout(fields.finalTimeout);
    const sip = raw.slice(raw.indexOf('\r\n') + 2);
    this.stub = SipMessage.parse(sip);
    this.headers = this.stub.headers.filter((h) => h.name.toLowerCase() !== 'content-length');
  }

  /** Where the request goes: `[challengeTarget]` when there is one, else the app's `destinations`. */
  get targets(): string[] {
    return this.challengeTarget === undefined ? this.destinations : [this.challengeTarget];
  }

  /** An extra header the app set, by name (case-insensitive). */
  header(name: string): string | undefined {
    return this.stub.get(name);
  }

  /** Answers a command held by `{ kind: 'hold' }`. */
  answer(script: ProxyScript): void {
    if (!this.held) throw new Error('ProxyCommand.answer: this command was not held');
    this.held = false;
    this.host.runScript(this, script);
  }

  /** Waits until the double sent `done` or NOK for this command. */
  settled(): Promise<ProxyReply> {
    return this.host.until(this.request, `done or NOK for the proxy of ${this.request.callId}`, () =>
      this.reply.done || this.reply.nok !== undefined ? this.reply : undefined,
    );
  }
}
