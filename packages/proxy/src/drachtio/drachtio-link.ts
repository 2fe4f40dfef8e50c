import { EventEmitter } from 'node:events';
import type { Writable } from 'node:stream';
import Srf from 'drachtio-srf';
import type { Logger } from '@fslb/shared';
import type { DigestKey } from '../challenges.js';

/**
 * The only module that touches drachtio-srf. It connects to drachtio-server in inbound mode,
 * reconnecting for ever with capped backoff, registers the methods the proxy serves, and hands
 * each request on as an `InboundRequest`: a small typed surface the router can be tested with.
 *
 * drachtio-srf's bundled types lack `req.proxy`, `srf.options` and the reconnect options; the
 * structural types below describe exactly what fslb uses of it.
 */

/** One response a proxied target sent, as drachtio-server reported it. */
export interface TargetResponse {
  address: string;
  port: number;
  status: number;
}

export interface ProxyResult {
  /** A 2xx reached the caller. */
  connected: boolean;
  /** The last final status drachtio-server saw (undefined when no target answered). */
  finalStatus: number | undefined;
  /**
   * Every final response from a target, in order. Silent targets leave no entry. srf groups
   * them by address only, so the port of one from a second target on the same host is wrong.
   */
  responses: TargetResponse[];
  /** The URI in the final response's Contact (the answering node, for a 2xx). */
  readonly contact: string | undefined;
  /**
   * The realm and nonce of a final 401/407's challenge (WWW-Authenticate / Proxy-Authenticate):
   * drachtio-server stopped at it and will send the retry that answers it to that target only.
   */
  challenge: DigestKey | undefined;
}

export interface ProxyRequest {
  destinations: readonly string[];
  recordRoute: boolean;
  provisionalTimeout: string;
  finalTimeout: string;
  /** Headers added to the proxied request. */
  headers?: Record<string, string> | undefined;
}

/** A SIP request as the router needs it. */
export interface InboundRequest {
  readonly method: string;
  readonly callId: string;
  readonly sourceAddress: string;
  readonly sourcePort: number;
  readonly protocol: string;
  /** srf saw the caller's CANCEL (drachtio-server has answered it, and the INVITE with 487). */
  readonly canceled: boolean;
  header(name: string): string | undefined;
  /** The From header's tag ('' when it has none). */
  fromTag(): string;
  /** The To header's tag: present on a request sent inside a dialog. */
  toTag(): string | undefined;
  /** The realm and nonce of the request's Authorization (else Proxy-Authorization) credentials. */
  credentials(): DigestKey | undefined;
  /** The To header's URI (the address of record of a REGISTER or SUBSCRIBE). */
  toUri(): string;
  /** The Request-URI. */
  requestUri(): string;
  /** The From header's URI ('' when unreadable). */
  fromUri(): string;
  respond(status: number, reason: string, headers?: Record<string, string>): void;
  proxy(req: ProxyRequest): Promise<ProxyResult>;
}

/**
 * Makes `process.env` a plain object holding the same variables. drachtio-srf reads
 * `process.env.DRACHTIO_PRESERVE_HEADER_NAMES` once for every header of every SIP message it
 * parses, and a read of the real `process.env` is a call into the C++ runtime and libc's
 * `getenv`, a scan of the whole environment: about 5 µs of a 10 µs INVITE parse measured here,
 * more in a container whose environment holds a variable per service. From a plain object the
 * same read is a property look-up.
 *
 * For the proxy's process alone, at its start, before it connects: nothing in fslb-proxy sets
 * environment variables at run time, and a child process started with the default options
 * still gets these variables (it takes `process.env` whatever it is).
 */
export function plainEnvironment(): void {
  if (Object.getPrototypeOf(process.env) === Object.prototype) return;
  process.env = { ...process.env };
}

export interface DrachtioSettings {
  host: string;
  port: number;
  secret: string;
  /** Longest wait between reconnect attempts. */
  retryMaxDelayMs: number;
}

type Events = {
  connected: [hostports: string];
  disconnected: [];
  request: [InboundRequest];
};

interface SrfMessage {
  method: string;
  /** The connection to drachtio-server the request came in on (srf sets it). */
  socket?: Writable;
  uri: string;
  /** srf emits `cancel` on an INVITE when drachtio-server passes on the caller's CANCEL. */
  on(event: 'cancel', fn: () => void): void;
  source_address: string;
  source_port: string | number;
  protocol: string;
  get(name: string): string | undefined;
  has(name: string): boolean;
  /** The message's headers by the names srf stored them under (lower case, `X-` ones as sent). */
  headers: Record<string, string>;
  getParsedHeader(name: 'To' | 'From'): { uri: string; params?: Record<string, string | undefined> };
  getParsedHeader(
    name: 'Authorization' | 'Proxy-Authorization' | 'WWW-Authenticate' | 'Proxy-Authenticate',
  ): Record<string, string | undefined>[];
  proxy(opts: Record<string, unknown>): Promise<SrfProxyResult>;
}
interface SrfResponse {
  send(status: number, reason: string, opts: { headers: Record<string, string> }): void;
}
interface SrfProxyResult {
  connected: boolean;
  finalStatus?: number;
  finalResponse?: {
    msg?: {
      has(name: string): boolean;
      getParsedHeader(name: 'Contact'): { uri: string }[] | undefined;
      getParsedHeader(name: 'WWW-Authenticate' | 'Proxy-Authenticate'): Record<string, string | undefined>[];
    };
  };
  responses: { address: string; port: number | string; msgs: { status: number }[] }[];
}
type Handler = (req: SrfMessage, res: SrfResponse) => void;
/** srf's internal wire protocol object, reached only to stop its reconnect loop on close. */
interface SrfWireProtocol {
  closing?: boolean;
  reconnectVars?: { retryTimer?: NodeJS.Timeout | null };
}
/** srf's agent: its connections to drachtio-server are the keys of `mapServer`. */
interface SrfAgent {
  mapServer?: Map<{ setNoDelay?: (on: boolean) => unknown }, unknown>;
}
interface SrfApp {
  connect(opts: Record<string, unknown>): void;
  disconnect(): void;
  on(event: 'connect', fn: (err: Error | null, hostports: string) => void): void;
  on(event: 'close' | 'reconnecting', fn: () => void): void;
  on(event: 'error', fn: (err: Error) => void): void;
  invite(fn: Handler): void;
  options(fn: Handler): void;
  register(fn: Handler): void;
  subscribe(fn: Handler): void;
}

export class DrachtioLink extends EventEmitter<Events> {
  readonly #settings: DrachtioSettings;
  readonly #log: Logger;
  readonly #srf: SrfApp;
  #connected = false;
  #closed = false;
  #failing = false;

  constructor(settings: DrachtioSettings, log: Logger) {
    super();
    this.#settings = settings;
    this.#log = log;
    this.#srf = new Srf() as unknown as SrfApp;
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** Registers handlers for `methods` (upper case) and OPTIONS, then connects. */
  start(methods: readonly string[]): void {
    const srf = this.#srf;
    const handler: Handler = (req, res) => this.emit('request', new SrfRequest(req, res));
    srf.options(handler);
    for (const m of methods) {
      if (m === 'INVITE') srf.invite(handler);
      else if (m === 'REGISTER') srf.register(handler);
      else if (m === 'SUBSCRIBE') srf.subscribe(handler);
    }
    srf.on('connect', (err, hostports) => {
      if (this.#closed) {
        // A reconnect that was under way when we closed: end it too.
        this.#disconnect();
        return;
      }
      if (err) {
        this.#log.error(
          { err: err.message },
          'drachtio-server refused the connection: check proxy.drachtio.secret',
        );
        return;
      }
      this.#connected = true;
      this.#failing = false;
      this.#noDelay();
      this.#log.info({ hostports }, 'connected to drachtio-server');
      this.emit('connected', hostports);
    });
    srf.on('close', () => {
      if (this.#closed) return;
      if (this.#connected) this.#log.warn('drachtio-server connection lost; reconnecting');
      this.#connected = false;
      this.emit('disconnected');
    });
    srf.on('error', (err) => {
      // Without a listener srf's errors kill the process; a refused connect lands here on every retry.
      if (!this.#failing && !this.#closed)
        this.#log.warn({ err: err.message }, 'drachtio-server connection error; retrying');
      this.#failing = true;
    });
    srf.connect({
      host: this.#settings.host,
      port: this.#settings.port,
      secret: this.#settings.secret,
      reconnect: { retryMaxDelay: this.#settings.retryMaxDelayMs },
    });
  }

  /**
   * Turns Nagle's algorithm off on every connection to drachtio-server. srf does so only on its
   * first attempt: a connection it makes again (after drachtio-server restarted, or when the
   * proxy started before it) would otherwise hold each small command back until the one before
   * it was acknowledged, up to the peer's delayed-ACK time (tens of ms) per call setup.
   */
  #noDelay(): void {
    const agent = (this.#srf as unknown as { app?: { client?: SrfAgent } }).app?.client;
    for (const socket of agent?.mapServer?.keys() ?? []) socket.setNoDelay?.(true);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#connected = false;
    // srf has no way to stop reconnecting while it is between attempts (disconnect() throws
    // then): mark its wire protocol closing and cancel the pending retry, then disconnect.
    const wp = (this.#srf as unknown as { app?: { client?: { wp?: SrfWireProtocol } } }).app?.client?.wp;
    if (wp) {
      wp.closing = true;
      if (wp.reconnectVars?.retryTimer) {
        clearTimeout(wp.reconnectVars.retryTimer);
        wp.reconnectVars.retryTimer = null;
      }
    }
    this.#disconnect();
  }

  #disconnect(): void {
    try {
      this.#srf.disconnect();
    } catch {
      // Not connected: nothing to close.
    }
  }
}

/**
 * A request as the router sees it: one object per request whose methods live on the prototype
 * (a closure per accessor would be a dozen allocations on every INVITE).
 */
class SrfRequest implements InboundRequest {
  readonly method: string;
  readonly callId: string;
  readonly sourceAddress: string;
  readonly sourcePort: number;
  readonly protocol: string;
  /**
   * drachtio-server has answered the CANCEL (and the INVITE with 487) by itself; it would still
   * proxy the INVITE if asked, to a node whose answer no caller waits for.
   */
  canceled = false;
  readonly #req: SrfMessage;
  readonly #res: SrfResponse;
  #headerNames: Map<string, string> | undefined;

  constructor(req: SrfMessage, res: SrfResponse) {
    this.#req = req;
    this.#res = res;
    this.method = req.method;
    this.callId = this.header('Call-ID') ?? '';
    this.sourceAddress = req.source_address;
    this.sourcePort = Number(req.source_port);
    this.protocol = req.protocol;
    if (req.method === 'INVITE') req.on('cancel', () => (this.canceled = true));
  }

  header(name: string): string | undefined {
    const stored = this.#names().get(name.toLowerCase());
    return stored === undefined ? undefined : this.#req.headers[stored];
  }

  /**
   * The request's header names, lower case, each to the name srf stored it under: made once, on
   * the first look-up. (srf's own `has`/`get` lower-case every header name on every look-up.)
   */
  #names(): Map<string, string> {
    if (this.#headerNames) return this.#headerNames;
    const names = new Map<string, string>();
    for (const stored of Object.keys(this.#req.headers)) {
      const lower = stored.toLowerCase();
      if (!names.has(lower)) names.set(lower, stored);
    }
    this.#headerNames = names;
    return names;
  }

  fromTag(): string {
    return tagOf(this.#req, 'From') ?? '';
  }

  toTag(): string | undefined {
    // A new call's To has no tag: a header without the text "tag=" anywhere has no tag
    // parameter, and is not parsed. Any other goes through srf's parser.
    const to = this.header('To');
    if (to === undefined || !TAG_TEXT.test(to)) return undefined;
    return tagOf(this.#req, 'To');
  }

  credentials(): DigestKey | undefined {
    const names = this.#names();
    if (!names.has('authorization') && !names.has('proxy-authorization')) return undefined;
    const req = this.#req;
    return (
      digestOf(req, 'Authorization') ??
      (req.has('Authorization') ? undefined : digestOf(req, 'Proxy-Authorization'))
    );
  }

  toUri(): string {
    return this.#req.getParsedHeader('To').uri;
  }

  requestUri(): string {
    return this.#req.uri;
  }

  fromUri(): string {
    try {
      return this.#req.getParsedHeader('From').uri;
    } catch {
      return '';
    }
  }

  respond(status: number, reason: string, headers: Record<string, string> = {}): void {
    batchWrites(this.#req.socket);
    this.#res.send(status, reason, { headers });
  }

  async proxy(p: ProxyRequest): Promise<ProxyResult> {
    const opts: Record<string, unknown> = {
      destination: p.destinations.slice(),
      remainInDialog: p.recordRoute,
      forking: 'sequential',
      provisionalTimeout: p.provisionalTimeout,
      finalTimeout: p.finalTimeout,
      followRedirects: false,
    };
    if (p.headers) opts.headers = p.headers;
    batchWrites(this.#req.socket);
    const r = await this.#req.proxy(opts);
    const responses: TargetResponse[] = [];
    for (const group of r.responses) {
      for (const m of group.msgs) {
        responses.push({ address: group.address, port: Number(group.port), status: m.status });
      }
    }
    const msg = r.finalResponse?.msg;
    let challenge: DigestKey | undefined;
    if (msg && (r.finalStatus === 401 || r.finalStatus === 407)) {
      // As drachtio-server reads it: WWW-Authenticate when there is one, else Proxy-Authenticate.
      challenge =
        digestOf(msg, 'WWW-Authenticate') ??
        (msg.has('WWW-Authenticate') ? undefined : digestOf(msg, 'Proxy-Authenticate'));
    }
    return new ProxyOutcome(r.connected, r.finalStatus, responses, challenge, msg);
  }
}

/**
 * Holds what srf writes to drachtio-server's socket for a few commands, then sends them in one
 * system call: under load one read from drachtio-server brings several requests (and one from
 * Redis several reservations), and a write per proxy command was the costliest thing the proxy
 * did per call, on both sides of the socket. A batch is sent when it holds BATCH_MAX commands,
 * or once the read that brought them is handled (process.nextTick: after the requests of one
 * read, and the continuations they set off, have run), whichever comes first.
 * - Held for a whole turn of the event loop, a burst after a stall (a garbage collection, a busy
 *   host) reached drachtio-server as dozens of commands at once, which its SIP thread then worked
 *   through while every message behind them waited; sent a few at a time, drachtio-server starts
 *   on them while the proxy makes the rest.
 * - Held until the turn's end (setImmediate), a command also waited for whatever else the turn
 *   read (Redis replies, other sockets): measured at 1050 calls/s through real peers, the time
 *   from an INVITE reaching the proxy to its command's write had a p99 of 1.75 ms (p99.9 6.7);
 *   sent after its own read, 0.91 ms (2.95), in as many writes a call (0.68).
 * The commands keep their order.
 */
function batchWrites(socket: Writable | undefined): void {
  if (socket === undefined) return;
  const held = batches.get(socket);
  if (held === undefined) {
    batches.set(socket, 1);
    socket.cork();
    process.nextTick(uncork, socket);
  } else if (held >= BATCH_MAX) {
    // Send the full batch; this command starts the next one.
    socket.uncork();
    socket.cork();
    batches.set(socket, 1);
  } else {
    batches.set(socket, held + 1);
  }
}

/** Commands sent to drachtio-server in one write at most. */
export const BATCH_MAX = 4;

/** Sockets corked in this turn, and the commands their open batch holds. */
const batches = new WeakMap<Writable, number>();

function uncork(socket: Writable): void {
  batches.delete(socket);
  socket.uncork();
}

/** The text of a tag parameter, in any case (SIP parameter names are case-insensitive). */
const TAG_TEXT = /tag=/i;

type FinalMessage = NonNullable<NonNullable<SrfProxyResult['finalResponse']>['msg']>;

/**
 * What drachtio-server reported of a proxied request. The final response's Contact is read only
 * when asked for (the outcome line of a connected call, which is not written by default).
 */
class ProxyOutcome implements ProxyResult {
  #msg: FinalMessage | undefined;
  #contact: string | undefined;

  constructor(
    readonly connected: boolean,
    readonly finalStatus: number | undefined,
    readonly responses: TargetResponse[],
    readonly challenge: DigestKey | undefined,
    msg: FinalMessage | undefined,
  ) {
    this.#msg = msg;
  }

  get contact(): string | undefined {
    const msg = this.#msg;
    if (msg === undefined) return this.#contact;
    this.#msg = undefined;
    try {
      this.#contact = msg.getParsedHeader('Contact')?.[0]?.uri;
    } catch {
      this.#contact = undefined;
    }
    return this.#contact;
  }
}

/** A tag parameter of From or To through srf's parser; undefined when absent or unreadable. */
function tagOf(req: SrfMessage, name: 'From' | 'To'): string | undefined {
  try {
    return req.getParsedHeader(name).params?.tag ?? undefined;
  } catch {
    return undefined;
  }
}

/**
 * The realm and nonce of the first Digest challenge or credentials in a header, through srf's
 * parser (which keeps the quotes); undefined when absent, incomplete or unreadable.
 */
function digestOf(
  msg: {
    has(name: string): boolean;
    getParsedHeader(name: 'WWW-Authenticate'): Record<string, string | undefined>[];
  },
  name: 'Authorization' | 'Proxy-Authorization' | 'WWW-Authenticate' | 'Proxy-Authenticate',
): DigestKey | undefined {
  if (!msg.has(name)) return undefined;
  try {
    const h = msg.getParsedHeader(name as 'WWW-Authenticate')[0];
    const realm = unquote(h?.realm);
    const nonce = unquote(h?.nonce);
    return realm !== undefined && nonce !== undefined ? { realm, nonce } : undefined;
  } catch {
    return undefined;
  }
}

function unquote(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
}
