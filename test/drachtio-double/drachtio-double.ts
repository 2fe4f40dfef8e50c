/**
 * A drachtio-server double: it listens for srf apps over TCP (inbound mode) and speaks
 * drachtio-server v0.9.4's protocol to them, so that the real drachtio-srf can be tested without
 * drachtio-server. A test authenticates apps, sees their routes, injects SIP requests as if a
 * caller had sent them, captures the app's responses and `proxy` commands, and answers each
 * proxy command as the test's handler says: scripted per-target responses, NOK, a dropped
 * socket, silence, or a real forward over UDP (`SipForwarder`). It remembers the digest
 * challenges targets send (`ChallengeCache`) and takes a caller's CANCEL as drachtio does.
 * See README.md.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';

import { AppConnection } from './app-connection.js';
import {
  CHALLENGE_TTL_MS,
  ChallengeCache,
  isChallenge,
  type RememberedChallenge,
} from './challenge-cache.js';
import {
  InjectedRequest,
  ProxyCommand,
  type CapturedResponse,
  type ProxyHandler,
  type ProxyScript,
  type RequestHost,
  type ScriptedResponse,
} from './injected-request.js';
import { assertLoopback } from './loopback.js';
import { SipForwarder, type Peer, type SipTimers } from './sip-forwarder.js';
import { failureRank, parseSipUri, reasonPhrase, SipMessage, tagOf } from './sip-message.js';
import { cancelFor, randomTag, sipRequest, type SipRequestSpec, type SipSource } from './sip-request.js';
import {
  authOkMessage,
  FrameDecoder,
  nokMessage,
  parseAppMessage,
  parseProxyFields,
  pongMessage,
  proxyContinueMessage,
  proxyDoneMessage,
  responseSentMessage,
  simpleResponse,
  sipRequestMessage,
  type AppMessage,
  type FramingOptions,
} from './wire.js';

export interface DrachtioDoubleOptions {
  /** Address to listen on for apps; 127.0.0.1 by default. */
  host?: string;
  /** Port for apps; 0 (the default) picks a free one. */
  port?: number;
  /** The shared secret; 'cymru' (drachtio's example secret) by default. */
  secret?: string;
  /**
   * The SIP address the double claims to listen on (what srf is told at authentication, and what
   * a default Request-URI names); 127.0.0.1:5060 by default. Nothing listens there.
   */
  sipAddress?: { host: string; port: number };
  /** `proto/host:port` list sent at authentication; by default udp and tcp on `sipAddress`. */
  hostports?: string[];
  /** The local hostports sent at authentication; by default the same as `hostports`. */
  localHostports?: string[];
  /** Version string sent at authentication; 'v0.9.4' by default. */
  version?: string;
  /** How frames to apps are split and merged (changeable later with `framing`). */
  framing?: FramingOptions;
  /** The UDP socket of forward mode: address (127.0.0.1), port (0), SIP timers. */
  forward?: { host?: string; port?: number; timers?: Partial<SipTimers> };
  /** How long the `wait`-style methods wait before rejecting; 10 s by default. */
  waitTimeoutMs?: number;
  /** How long a target's digest challenge is remembered; 2000 ms by default, as in drachtio. */
  challengeTtlMs?: number;
}

export interface DrachtioDoubleEvents {
  /** An app connected (not yet authenticated). */
  connection: [conn: AppConnection];
  /** An app sent `authenticate`; ok is false for a wrong secret (then the double closes it). */
  authenticated: [conn: AppConnection, ok: boolean];
  /** An app sent `route|<verb>`. */
  routed: [conn: AppConnection, verb: string];
  /** A request was handed to an app. */
  request: [req: InjectedRequest];
  /** An app answered a request (`sip|<txnId>|` with a response). */
  response: [res: CapturedResponse, req: InjectedRequest];
  /** An app sent `proxy` for a request. */
  proxy: [cmd: ProxyCommand];
  /** Every message from an app, as parsed. */
  message: [conn: AppConnection, msg: AppMessage];
  /** An app's connection closed (its end, ours, or a drop). */
  disconnect: [conn: AppConnection];
  /** Something a test may want to know went wrong (a handler threw, a bad frame...). */
  warning: [message: string];
}

/** The drachtio-server double. Start with `DrachtioDouble.start`, end with `close()`. */
export class DrachtioDouble extends EventEmitter<DrachtioDoubleEvents> implements RequestHost {
  private readonly connectionSet = new Set<AppConnection>();
  private readonly requests = new Map<string, InjectedRequest>();
  private readonly rrOffset = new Map<string, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly state = new EventEmitter<{ changed: [] }>();
  private readonly challengeCache: ChallengeCache;
  private handler: ProxyHandler = () => ({ kind: 'forward' });
  private nextId = 1;
  private closing: Promise<void> | undefined;
  private defaultFraming: FramingOptions;
  readonly secret: string;
  readonly sipAddress: { host: string; port: number };
  readonly hostports: string[];
  readonly localHostports: string[];
  readonly version: string;
  private readonly waitTimeoutMs: number;

  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
    /** The UDP side (forward mode, and the caller's ACK and BYE). */
    readonly forwarder: SipForwarder,
    options: DrachtioDoubleOptions,
  ) {
    super();
    this.state.setMaxListeners(0);
    this.secret = options.secret ?? 'cymru';
    this.sipAddress = options.sipAddress ?? { host: '127.0.0.1', port: 5060 };
    const sip = `${this.sipAddress.host}:${this.sipAddress.port}`;
    this.hostports = options.hostports ?? [`udp/${sip}`, `tcp/${sip}`];
    this.localHostports = options.localHostports ?? this.hostports;
    this.version = options.version ?? 'v0.9.4';
    this.defaultFraming = { ...options.framing };
    this.waitTimeoutMs = options.waitTimeoutMs ?? 10_000;
    this.challengeCache = new ChallengeCache(options.challengeTtlMs ?? CHALLENGE_TTL_MS);
    server.on('connection', (socket) => this.accept(socket));
    forwarder.on('warning', (m) => this.safeEmit('warning', m));
  }

  static async start(options: DrachtioDoubleOptions = {}): Promise<DrachtioDouble> {
    const host = options.host ?? '127.0.0.1';
    assertLoopback(host, 'app listener');
    const forwarder = await SipForwarder.start(options.forward);
    const server = createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port ?? 0, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      await forwarder.close();
      throw err;
    }
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    return new DrachtioDouble(server, host, port, forwarder, options);
  }

  /** Live app connections. */
  get connections(): AppConnection[] {
    return [...this.connectionSet];
  }

  /** The digest challenges remembered now, by nonce (quotes included): realm and target. A copy. */
  get challenges(): Map<string, RememberedChallenge> {
    return this.challengeCache.entries;
  }

  /** The framing of every connection, present and future. */
  get framing(): FramingOptions {
    return this.defaultFraming;
  }

  set framing(f: FramingOptions) {
    this.defaultFraming = { ...f };
    for (const c of this.connectionSet) c.framing = f;
  }

  /** Installs the proxy handler (the default forwards, as drachtio-server does). */
  onProxy(handler: ProxyHandler): void {
    this.handler = handler;
  }

  /** Resolves once every verb is routed by at least one authenticated, live connection. */
  routed(verbs: readonly string[], timeoutMs = this.waitTimeoutMs): Promise<void> {
    const want = verbs.map((v) => v.toLowerCase());
    return this.until(
      this.state,
      () => `routes ${want.join(', ')} (routed: ${this.routedVerbs().join(', ') || 'none'})`,
      () => want.every((v) => this.connections.some((c) => c.authenticated && c.verbs.has(v))) || undefined,
      timeoutMs,
    ).then(() => undefined);
  }

  /** Resolves with the first authenticated connection once there are `count` of them. */
  authenticatedConnections(count = 1, timeoutMs = this.waitTimeoutMs): Promise<AppConnection[]> {
    return this.until(
      this.state,
      `${count} authenticated app connection(s)`,
      () => {
        const auth = this.connections.filter((c) => c.authenticated);
        return auth.length >= count ? auth : undefined;
      },
      timeoutMs,
    );
  }

  private routedVerbs(): string[] {
    return [...new Set(this.connections.flatMap((c) => [...c.verbs]))];
  }

  /**
   * Hands a request to the app that routed its method (round robin among several, as
   * drachtio-server does), as if `source` had sent it. With no such app, the double answers the
   * caller 503 itself. `request` is a raw SIP request or a spec for `sipRequest`.
   */
  inject(
    request: string | SipRequestSpec,
    options: {
      source?: SipSource;
      connection?: AppConnection;
      receivedOn?: { address: string; port: number };
    } = {},
  ): InjectedRequest {
    if (this.closing) throw new Error('DrachtioDouble is closed');
    const source: Required<SipSource> = {
      address: options.source?.address ?? this.forwarder.address,
      port: options.source?.port ?? this.forwarder.port,
      transport: options.source?.transport ?? 'udp',
    };
    const message =
      typeof request === 'string'
        ? SipMessage.parse(request)
        : sipRequest(request, source, { host: this.sipAddress.host, port: this.sipAddress.port });
    if (message.kind !== 'request') throw new Error('inject: not a SIP request');
    const raw = typeof request === 'string' ? request : message.toString();
    const verb = message.method.toLowerCase();
    const conn = options.connection ?? this.pickConnection(verb);
    const txnId = randomUUID();
    const req = new InjectedRequest(this, txnId, message, raw, source, conn);
    this.requests.set(txnId, req);
    if (!conn) {
      req.state = 'unrouted';
      this.toCaller(req, this.serverResponse(req, 503, 'Service Unavailable'));
      return req;
    }
    if (message.method === 'INVITE') this.toCaller(req, this.serverResponse(req, 100, 'Trying'));
    const received = options.receivedOn ?? { address: this.sipAddress.host, port: this.sipAddress.port };
    conn.writer.send(sipRequestMessage({ source: 'network', ...source }, txnId, received, raw));
    this.safeEmit('request', req);
    return req;
  }

  /**
   * Lets go of a request that is over (its final sent, its call ended or never set up), so that a
   * long run (the demo) does not keep every request it ever injected. Its handle stays usable.
   */
  forget(req: InjectedRequest): void {
    this.requests.delete(req.txnId);
    if (req.call?.state === 'ended') this.forwarder.forgetCall(req.call);
  }

  /** Destroys every app connection (srf reconnects by itself); resolves when they are closed. */
  async dropConnections(): Promise<void> {
    const conns = this.connections;
    await Promise.all(conns.map((c) => this.drop(c)));
  }

  /** Destroys one app connection; resolves when it is closed. */
  drop(conn: AppConnection): Promise<void> {
    if (conn.closed) return Promise.resolve();
    const closed = new Promise<void>((resolve) => conn.socket.once('close', () => resolve()));
    conn.writer.close();
    conn.socket.destroy();
    return closed;
  }

  /** Closes the listener, every connection, the UDP socket and every timer. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const t of this.timers) clearTimeout(t);
      this.timers.clear();
      this.challengeCache.clear();
      const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      await this.dropConnections();
      await serverClosed;
      await this.forwarder.close();
      this.state.emit('changed');
      for (const req of this.requests.values()) req.changed();
    })();
    return this.closing;
  }

  /**
   * Resolves with `probe()`'s first defined value, checked now and after every change of
   * `source`; rejects after `timeoutMs`, or when the double closes.
   * @internal
   */
  until<T>(
    source: EventEmitter<{ changed: [] }>,
    what: string | (() => string),
    probe: () => T | undefined,
    timeoutMs = this.waitTimeoutMs,
  ): Promise<T> {
    const describe = (): string => (typeof what === 'string' ? what : what());
    return new Promise<T>((resolve, reject) => {
      const check = (): void => {
        let value: T | undefined;
        try {
          value = probe();
        } catch (err) {
          finish();
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        if (value !== undefined) {
          finish();
          resolve(value);
        } else if (this.closing) {
          finish();
          reject(new Error(`DrachtioDouble closed while waiting for ${describe()}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${describe()}`));
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        source.off('changed', check);
      };
      source.on('changed', check);
      check();
    });
  }

  private pickConnection(verb: string): AppConnection | undefined {
    const candidates = this.connections.filter((c) => !c.closed && c.verbs.has(verb));
    if (candidates.length === 0) return undefined;
    const offset = (this.rrOffset.get(verb) ?? 0) % candidates.length;
    this.rrOffset.set(verb, offset + 1);
    return candidates[offset];
  }

  private accept(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const conn = new AppConnection(this.nextId++, socket, this.defaultFraming);
    this.connectionSet.add(conn);
    const decoder = new FrameDecoder();
    socket.on('data', (chunk) => {
      let texts: string[];
      try {
        texts = decoder.push(chunk);
      } catch (err) {
        this.safeEmit('warning', `app ${conn.id}: ${String(err)}; closing, as drachtio-server does`);
        void this.drop(conn);
        return;
      }
      for (const text of texts) {
        if (conn.closed) return;
        this.onMessage(conn, parseAppMessage(text));
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      conn.closed = true;
      conn.writer.close();
      this.connectionSet.delete(conn);
      this.safeEmit('disconnect', conn);
      this.state.emit('changed');
    });
    this.safeEmit('connection', conn);
    this.state.emit('changed');
  }

  /** `BaseClient::processClientMessage`. */
  private onMessage(conn: AppConnection, msg: AppMessage): void {
    conn.messages.push(msg);
    this.safeEmit('message', conn, msg);
    switch (msg.type) {
      case 'authenticate':
        this.onAuthenticate(conn, msg);
        return;
      case 'route': {
        const verb = (msg.tokens[2] ?? '').toLowerCase();
        conn.verbs.add(verb);
        conn.writer.send(simpleResponse(msg.id, true));
        this.safeEmit('routed', conn, verb);
        this.state.emit('changed');
        return;
      }
      case 'remove_route':
        conn.verbs.delete((msg.tokens[2] ?? '').toLowerCase());
        conn.writer.send(simpleResponse(msg.id, true));
        this.state.emit('changed');
        return;
      case 'ping':
        conn.writer.send(pongMessage(msg.id));
        return;
      case 'sip':
        this.onSip(conn, msg);
        return;
      case 'proxy':
        this.onProxyMessage(conn, msg);
        return;
      default:
        conn.writer.send(simpleResponse(msg.id, false, 'Unknown message type'));
        conn.writer.end();
    }
  }

  private onAuthenticate(conn: AppConnection, msg: AppMessage): void {
    const secret = msg.tokens[2] ?? '';
    if (msg.tokens.length > 3) conn.tags = (msg.tokens[3] ?? '').split(',').filter((t) => t !== '');
    if (secret !== this.secret) {
      conn.writer.send(simpleResponse(msg.id, false, 'incorrect secret'));
      conn.writer.end();
      this.safeEmit('authenticated', conn, false);
      return;
    }
    conn.authenticated = true;
    conn.writer.send(authOkMessage(msg.id, this.hostports, this.version, this.localHostports));
    this.safeEmit('authenticated', conn, true);
    this.state.emit('changed');
  }

  /** `sip|<txnId>|<dialogId>`: a response to an injected request (requests from apps are not modelled). */
  private onSip(conn: AppConnection, msg: AppMessage): void {
    const txnId = msg.tokens[2] ?? '';
    const dialogId = msg.tokens[3] ?? '';
    let sip: SipMessage;
    try {
      sip = SipMessage.parse(msg.sip ?? '');
    } catch (err) {
      conn.writer.send(nokMessage(msg.id, `unparsable SIP message: ${String(err)}`));
      return;
    }
    if (sip.kind === 'request') {
      conn.writer.send(nokMessage(msg.id, 'the drachtio double does not send requests for apps'));
      this.safeEmit('warning', `app ${conn.id} sent a ${sip.method} request: not modelled, answered NOK`);
      return;
    }
    if (txnId === '') {
      conn.writer.send(simpleResponse(msg.id, false, 'transaction id missing'));
      conn.writer.end();
      return;
    }
    const req = this.requests.get(txnId);
    if (!req || req.state !== 'pending' || req.canceled) {
      // After a CANCEL, drachtio drops the pending request when the app responds
      // (`setupLegForIncomingRequest`): a later proxy of it is an unknown transaction too.
      if (req?.canceled && req.state === 'pending') {
        req.state = 'removed';
        req.changed();
      }
      conn.writer.send(nokMessage(msg.id, 'Response not sent due to unknown transaction'));
      return;
    }
    const captured: CapturedResponse = {
      msgId: msg.id,
      txnId,
      status: sip.status,
      reason: sip.reason,
      message: sip,
      raw: msg.sip ?? '',
      connection: conn,
    };
    if (sip.status >= 200) req.state = 'answered';
    req.responses.push(captured);
    const sent = this.asSent(req, sip);
    const dialog =
      sip.status >= 200 && sip.status < 300 && (req.method === 'INVITE' || req.method === 'SUBSCRIBE')
        ? dialogId || `${req.callId};from-tag=${tagOf(req.message.get('from')) ?? ''}`
        : dialogId;
    conn.writer.send(
      responseSentMessage(
        msg.id,
        {
          source: 'application',
          transport: req.source.transport,
          address: req.source.address,
          port: req.source.port,
        },
        txnId,
        dialog,
        sent.toString(),
      ),
    );
    this.toCaller(req, sent);
    this.safeEmit('response', captured, req);
  }

  /** The app's response as drachtio-server sends it: the request's Vias, a To tag, a Contact on 2xx. */
  private asSent(req: InjectedRequest, res: SipMessage): SipMessage {
    const out = res.clone();
    if (!out.has('via'))
      out.headers = [...req.message.getAll('via').map((value) => ({ name: 'Via', value })), ...out.headers];
    const to = out.get('to') ?? req.message.get('to') ?? '';
    if (out.status > 100 && tagOf(to) === undefined) out.set('To', `${to};tag=${req.localTag}`);
    if (out.status >= 200 && out.status < 300 && !out.has('contact') && req.method === 'INVITE') {
      out.add('Contact', `<sip:${this.sipAddress.host}:${this.sipAddress.port}>`);
    }
    return out;
  }

  private onProxyMessage(conn: AppConnection, msg: AppMessage): void {
    const fields = parseProxyFields(msg.tokens);
    if (!fields || msg.sip === undefined) {
      conn.writer.send(
        simpleResponse(msg.id, false, 'Invalid proxy request: not enough information provided'),
      );
      conn.writer.end();
      return;
    }
    const req = this.requests.get(fields.txnId);
    if (!req || req.state !== 'pending') {
      conn.writer.send(nokMessage(msg.id, `Unknown transaction id: ${fields.txnId}`));
      return;
    }
    let cmd: ProxyCommand;
    try {
      // `doProxy`: credentials answering a challenge remembered here send the request to the
      // target that challenged, whatever the app chose.
      const challengeTarget = this.challengeCache.take(req.message);
      cmd = new ProxyCommand(this, msg.id, fields, req, conn, msg.text, challengeTarget);
    } catch (err) {
      conn.writer.send(nokMessage(msg.id, `unparsable proxy request: ${String(err)}`));
      return;
    }
    req.state = 'proxying';
    req.proxyCommands.push(cmd);
    req.changed();
    this.safeEmit('proxy', cmd);
    void (async () => {
      let script: ProxyScript;
      try {
        script = await this.handler(cmd);
      } catch (err) {
        this.safeEmit('warning', `proxy handler threw: ${String(err)}`);
        script = { kind: 'nok', reason: `drachtio double: proxy handler threw: ${String(err)}` };
      }
      this.runScript(cmd, script);
    })();
  }

  /** @internal */
  runScript(cmd: ProxyCommand, script: ProxyScript): void {
    if (this.closing) return;
    switch (script.kind) {
      case 'hold':
        cmd.held = true;
        return;
      case 'nok':
        cmd.reply.nok = script.reason ?? 'error proxying request';
        cmd.connection.writer.send(nokMessage(cmd.msgId, cmd.reply.nok));
        cmd.request.changed();
        return;
      case 'drop':
        cmd.reply.dropped = true;
        void this.drop(cmd.connection);
        cmd.request.changed();
        return;
      case 'respond':
        void this.respondScripted(cmd, script.responses);
        return;
      case 'forward':
        this.forward(cmd).catch((err: unknown) => this.safeEmit('warning', `forward failed: ${String(err)}`));
        return;
    }
  }

  private async respondScripted(cmd: ProxyCommand, responses: readonly ScriptedResponse[]): Promise<void> {
    const req = cmd.request;
    const targets = cmd.targets;
    const finals: SipMessage[] = [];
    for (const [i, entry] of responses.entries()) {
      if (entry === 'silent') continue;
      if (entry.delayMs !== undefined && entry.delayMs > 0) await this.sleep(entry.delayMs);
      if (this.closing) return;
      const destination = targets[Math.min(i, targets.length - 1)] ?? '';
      const res = this.targetResponse(req, destination, entry);
      const uri = parseSipUri(destination);
      this.sendContinue(cmd, res, { address: uri?.host ?? '', port: uri?.port ?? 5060 });
      if (res.status >= 200 && res.status < 300) {
        this.toCaller(req, withoutTopVia(res));
        this.sendDone(cmd);
        return;
      }
      finals.push(res);
      if (isChallenge(res) && this.challengeCache.add(res, destination)) break;
    }
    const ranked = [...finals].sort((a, b) => failureRank(a.status) - failureRank(b.status));
    const best = ranked[0];
    this.toCaller(req, best ? withoutTopVia(best) : this.serverResponse(req, 408, 'Request Timeout'));
    this.sendDone(cmd);
  }

  private async forward(cmd: ProxyCommand): Promise<void> {
    const req = cmd.request;
    const { run, started } = this.forwarder.forward(
      {
        request: req.message,
        destinations: cmd.targets,
        recordRoute: cmd.remainInDialog,
        followRedirects: cmd.followRedirects,
        simultaneous: cmd.forking === 'simultaneous',
        fullResponse: cmd.fullResponse,
        provisionalTimeoutMs: cmd.provisionalTimeoutMs,
        stubHeaders: cmd.headers,
        isLocalUri: (uri) => this.isLocalUri(uri),
      },
      {
        targetFinal: (res, raw, from) => this.sendContinue(cmd, res, from, raw),
        done: () => this.sendDone(cmd),
        failed: (reason) => {
          cmd.reply.nok = reason;
          cmd.connection.writer.send(nokMessage(cmd.msgId, reason));
          req.changed();
        },
        toCaller: (res) => this.toCaller(req, res),
        connected: (call) => {
          req.call = call;
          req.changed();
        },
        requestSent: (destination, message, to) => {
          req.forwarded.push({ destination, message, to });
          req.changed();
        },
        challenged: (res, destination) => this.challengeCache.add(res, destination),
      },
    );
    cmd.run = run;
    if (cmd.callerCanceled) run.cancel();
    await started;
  }

  /**
   * The caller's CANCEL for an injected INVITE, answered as drachtio-server v0.9.4 does; returns
   * the CANCEL's status. Still out to the app (src/controller.cpp, `sip_method_cancel`): the
   * CANCEL goes to the app with the INVITE's transaction id, 200 to the CANCEL, 487 to the
   * INVITE, and the pending request is marked canceled (not removed: a later proxy still goes
   * ahead; a later response gets NOK). Proxied (`processRequestWithoutRouteHeader`): 200, 487
   * to the INVITE, CANCEL to the targets; the app hears nothing. Answered by the app (sofia's
   * `incoming_cancel`): 481 after a 2xx, 200 with no effect after a failure. Otherwise 481.
   * @internal
   */
  cancelRequest(req: InjectedRequest): number {
    if (req.method !== 'INVITE') throw new Error(`cancel(): ${req.method} ${req.callId} is not an INVITE`);
    if (this.closing) throw new Error('DrachtioDouble is closed');
    const cancel = cancelFor(req.message);
    const final = req.finalResponse;
    const proxy = req.proxyCommands.at(-1);
    let status = 481;
    if (req.state === 'pending') {
      status = 200;
      const conn = req.connection;
      if (conn && !conn.closed) {
        conn.writer.send(
          sipRequestMessage({ source: 'network', ...req.source }, req.txnId, undefined, cancel.toString()),
        );
      }
      req.canceled = true;
      this.toCaller(req, this.serverResponse(req, 487, 'Request Terminated'));
    } else if (
      req.state === 'proxying' &&
      proxy !== undefined &&
      proxy.reply.nok === undefined &&
      !(final !== undefined && final.status < 300)
    ) {
      // The proxy core is still there; drachtio sends 487 statelessly even after a failure final.
      status = 200;
      this.toCaller(req, this.serverResponse(req, 487, 'Request Terminated'));
      proxy.callerCanceled = true;
      proxy.run?.cancel();
    } else if (req.state === 'answered' && final !== undefined && final.status >= 300) {
      status = 200;
    }
    req.cancelResponses.push(responseFor(cancel, status, reasonPhrase(status), req.localTag));
    req.changed();
    return status;
  }

  private sendContinue(cmd: ProxyCommand, res: SipMessage, from: Peer, raw?: string): void {
    if (cmd.reply.done || cmd.reply.nok !== undefined) return;
    const sip = raw ?? res.toString();
    cmd.reply.continues.push(res);
    cmd.connection.writer.send(
      proxyContinueMessage(
        cmd.msgId,
        { source: 'network', transport: 'udp', address: from.address, port: from.port },
        sip,
      ),
    );
    cmd.request.changed();
  }

  private sendDone(cmd: ProxyCommand): void {
    if (cmd.reply.done) return;
    cmd.reply.done = true;
    cmd.connection.writer.send(proxyDoneMessage(cmd.msgId));
    cmd.request.changed();
  }

  /** A target's response for a scripted proxy: our Via on top of the caller's, a To tag, Contact on 2xx. */
  private targetResponse(
    req: InjectedRequest,
    destination: string,
    entry: Exclude<ScriptedResponse, 'silent'>,
  ): SipMessage {
    const res = SipMessage.response(entry.status, entry.reason ?? reasonPhrase(entry.status));
    res.add('Via', this.forwarder.viaValue(`z9hG4bK${randomTag()}`));
    for (const via of req.message.getAll('via')) res.add('Via', via);
    res.add('From', req.message.get('from') ?? '');
    const to = req.message.get('to') ?? '';
    res.add('To', tagOf(to) === undefined ? `${to};tag=${randomTag()}` : to);
    res.add('Call-ID', req.callId);
    res.add('CSeq', req.message.get('cseq') ?? '');
    if (entry.status >= 200 && entry.status < 300 && req.method === 'INVITE')
      res.add('Contact', `<${destination}>`);
    for (const [name, value] of Object.entries(entry.headers ?? {})) res.add(name, value);
    if (entry.body) {
      res.add('Content-Type', entry.body.contentType);
      res.body = entry.body.content;
    }
    return res;
  }

  /** A response drachtio-server makes by itself (100 Trying, 503 with no app, 408, 487). */
  private serverResponse(req: InjectedRequest, status: number, reason: string): SipMessage {
    return responseFor(req.message, status, reason, req.localTag);
  }

  private toCaller(req: InjectedRequest, res: SipMessage): void {
    if (res.status >= 200 && req.finalResponse) return;
    req.callerResponses.push(res);
    req.changed();
  }

  private isLocalUri(uri: string): boolean {
    const u = parseSipUri(uri);
    if (!u) return false;
    const port = u.port ?? 5060;
    const local = [...this.hostports, ...this.localHostports].map((hp) => hp.replace(/^[a-z]+\//i, ''));
    local.push(`${this.forwarder.address}:${this.forwarder.port}`);
    return local.includes(`${u.host}:${port}`);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        resolve();
      }, ms);
      this.timers.add(t);
    });
  }

  /** Emits to listeners; a listener that throws is reported as a process warning, not fatal. */
  private safeEmit<K extends keyof DrachtioDoubleEvents>(name: K, ...args: DrachtioDoubleEvents[K]): void {
    try {
      (this.emit as (n: K, ...a: DrachtioDoubleEvents[K]) => boolean)(name, ...args);
    } catch (err) {
      process.emitWarning(`drachtio double: a '${name}' listener threw: ${String(err)}`);
    }
  }
}

function withoutTopVia(res: SipMessage): SipMessage {
  return res.clone().removeFirst('via');
}

/** A response to `request` with its Vias, From, To (with `toTag` unless 100 or tagged), Call-ID, CSeq. */
function responseFor(request: SipMessage, status: number, reason: string, toTag: string): SipMessage {
  const res = SipMessage.response(status, reason);
  for (const via of request.getAll('via')) res.add('Via', via);
  res.add('From', request.get('from') ?? '');
  const to = request.get('to') ?? '';
  res.add('To', status === 100 || tagOf(to) !== undefined ? to : `${to};tag=${toTag}`);
  res.add('Call-ID', request.callId);
  res.add('CSeq', request.get('cseq') ?? '');
  return res;
}
