/**
 * drachtio's TCP wire protocol between drachtio-server and an srf app, as drachtio-server v0.9.4
 * speaks it (src/client.cpp, client-controller.cpp, sip-proxy-controller.cpp,
 * sip-dialog-controller.cpp) and drachtio-srf 5.0.29 reads it (lib/wire-protocol.js,
 * lib/drachtio-agent.js).
 *
 * Every message is `<len>#<msgId>|<type>|...`, `<len>` being the UTF-8 byte count of what follows
 * `#`. The text up to the first CRLF is a `|`-separated leader; a SIP message may follow the CRLF.
 * This file frames and unframes messages and spells every message the double sends, so that no
 * other file writes a `|`: srf throws on a message type it does not know, so only `sip` and
 * `response` ever leave here.
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';

const CRLF = '\r\n';

/** drachtio-server reads at most 5 length digits; a 6th (a message of 100,000 bytes or more) drops the app. */
export const MAX_LENGTH_DIGITS = 5;

export class WireError extends Error {
  readonly code = 'DRACHTIO_WIRE';
}

/** `<len>#<body>` with the UTF-8 byte length. */
export function frame(body: string): Buffer {
  const bytes = Buffer.from(body, 'utf8');
  return Buffer.concat([Buffer.from(`${bytes.length}#`, 'latin1'), bytes]);
}

/**
 * Cuts a byte stream into message bodies however it was split or merged, as drachtio-server's
 * `Client::read_handler` does: digits, `#`, then exactly that many bytes. Throws WireError on a
 * length that is not 1-5 digits, as drachtio-server drops such a client.
 */
export class FrameDecoder {
  private buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): string[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const out: string[] = [];
    for (;;) {
      const hash = this.buffer.indexOf(0x23);
      const digits = hash < 0 ? this.buffer.length : hash;
      for (let i = 0; i < Math.min(digits, MAX_LENGTH_DIGITS + 1); i++) {
        const c = this.buffer[i] ?? 0;
        if (c < 0x30 || c > 0x39) throw new WireError(`invalid message length specifier (byte ${c})`);
      }
      if (digits > MAX_LENGTH_DIGITS) throw new WireError('message length has more than 5 digits');
      if (hash < 0) return out;
      if (hash === 0) throw new WireError('missing message length');
      const length = Number(this.buffer.toString('latin1', 0, hash));
      if (length === 0) throw new WireError('zero message length');
      const total = hash + 1 + length;
      if (this.buffer.length < total) return out;
      out.push(this.buffer.toString('utf8', hash + 1, total));
      this.buffer = this.buffer.subarray(total);
    }
  }

  /** Bytes received but not yet a whole message. */
  get pending(): number {
    return this.buffer.length;
  }
}

/**
 * How the double cuts what it writes to srf. `split`: 'none' writes each chunk whole, 'byte' one
 * byte per write, 'random' at random points (2-5 pieces); every piece is its own write, a turn of
 * the event loop apart, so that srf's reader sees a message span several 'data' events.
 * `merge`: every message queued in the same turn goes out in one write, so that one 'data'
 * event holds several messages (and, with a split, message boundaries fall inside pieces).
 */
export interface FramingOptions {
  split?: 'none' | 'byte' | 'random';
  merge?: boolean;
}

/** Writes frames to one socket in order, split and merged as `FramingOptions` say. */
export class FrameWriter {
  private queue: Buffer[] = [];
  private pumping = false;
  private closed = false;
  private ending = false;
  /** Socket writes made so far (a test can check that a split really happened). */
  writes = 0;

  constructor(
    private readonly socket: Socket,
    public framing: FramingOptions = {},
  ) {}

  send(body: string): void {
    if (this.closed) return;
    this.queue.push(frame(body));
    if (!this.pumping) {
      this.pumping = true;
      setImmediate(() => void this.pump());
    }
  }

  /** Ends the socket (FIN) once everything queued has been written. */
  end(): void {
    this.ending = true;
    if (!this.pumping) this.socket.end();
  }

  /** Drops whatever is queued; nothing more is written. */
  close(): void {
    this.closed = true;
    this.queue = [];
  }

  /** Read through a call, so that the awaits in `pump` are not narrowed away. */
  private stopped(): boolean {
    return this.closed || this.socket.destroyed;
  }

  private async pump(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.stopped()) {
        const batch = this.framing.merge ? [Buffer.concat(this.queue.splice(0))] : this.queue.splice(0, 1);
        for (const chunk of batch) {
          for (const piece of cut(chunk, this.framing.split ?? 'none')) {
            if (this.stopped()) return;
            this.socket.write(piece);
            this.writes++;
            if (piece !== chunk) await new Promise((r) => setImmediate(r));
          }
        }
      }
    } finally {
      this.pumping = false;
      if (this.ending) this.socket.end();
    }
  }
}

function cut(chunk: Buffer, split: 'none' | 'byte' | 'random'): Buffer[] {
  if (split === 'none' || chunk.length < 2) return [chunk];
  if (split === 'byte') return [...chunk].map((b) => Buffer.from([b]));
  const points = new Set<number>();
  const wanted = Math.min(chunk.length - 1, 1 + Math.floor(Math.random() * 4));
  while (points.size < wanted) points.add(1 + Math.floor(Math.random() * (chunk.length - 1)));
  const sorted = [...points].sort((a, b) => a - b);
  return [0, ...sorted].map((start, i) => chunk.subarray(start, sorted[i] ?? chunk.length));
}

/** A message from the app, its leader split into tokens. */
export interface AppMessage {
  /** The app's message id (token 0), echoed in our `response|<id>|...`. */
  id: string;
  /** Token 1: authenticate, route, remove_route, sip, proxy, ping... */
  type: string;
  /** Every leader token (token 0 is the id). */
  tokens: string[];
  /** What follows the first CRLF (a SIP message), or undefined. */
  sip: string | undefined;
  /** The message body as received (without `<len>#`). */
  text: string;
}

export function parseAppMessage(text: string): AppMessage {
  const crlf = text.indexOf(CRLF);
  const leader = crlf < 0 ? text : text.slice(0, crlf);
  const tokens = leader.split('|');
  return {
    id: tokens[0] ?? '',
    type: tokens[1] ?? '',
    tokens,
    sip: crlf < 0 ? undefined : text.slice(crlf + 2),
    text,
  };
}

/** Where a SIP message came from or went to, as `SipMsgData_t::toMessageFormat` spells it. */
export interface SipMeta {
  source: 'network' | 'application';
  transport: string;
  address: string;
  port: number;
  /** `HH:MM:SS.uuuuuu`, UTC, as drachtio stamps messages. */
  time?: string;
}

/** drachtio's message time: `%02u:%02u:%02u.%06lu` of the UTC clock. */
export function stackTime(now = Date.now()): string {
  const d = new Date(now);
  const two = (n: number): string => String(n).padStart(2, '0');
  const micros = String(d.getUTCMilliseconds() * 1000).padStart(6, '0');
  return `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}.${micros}`;
}

function metaFields(meta: SipMeta, sip: string): string {
  const bytes = Buffer.byteLength(sip, 'utf8');
  return `${meta.source}|${bytes}|${meta.transport}|${meta.address}|${meta.port}|${meta.time ?? stackTime()}`;
}

/** A new message id (drachtio-server uses a UUID per message it sends). */
export function newMessageId(): string {
  return randomUUID();
}

/**
 * A request for the app (`BaseClient::sendSipMessageToClient(transactionId, msg, meta)`):
 * `<uuid>|sip|network|<bytes>|<transport>|<srcAddr>|<srcPort>|<time>|<txnId>||<dstAddr>|<dstPort>|`
 * CRLF, the SIP request. srf reads token 8 as the transaction id and 10:11 as `receivedOn`.
 * Without `received` (drachtio's meta for a caller's CANCEL has no destination) the message ends
 * at `|<txnId>||`; srf then matches the CANCEL to its INVITE by Call-ID.
 */
export function sipRequestMessage(
  meta: SipMeta,
  txnId: string,
  received: { address: string; port: number } | undefined,
  sip: string,
): string {
  const destination = received === undefined ? '' : `${received.address}|${received.port}|`;
  return `${newMessageId()}|sip|${metaFields(meta, sip)}|${txnId}||${destination}${CRLF}${sip}`;
}

/** `<uuid>|response|<msgId>|OK|pong`, the answer to `ping`. */
export function pongMessage(msgId: string): string {
  return apiResponse(msgId, 'OK', 'pong');
}

/** `response|<id>|OK|<hostports>|<version>|<localHostports>` after a good secret. */
export function authOkMessage(
  msgId: string,
  hostports: readonly string[],
  version: string,
  localHostports: readonly string[],
): string {
  return apiResponse(msgId, 'OK', `${hostports.join(',')}|${version}|${localHostports.join(',')}`);
}

/**
 * `createResponseMsg`: `<uuid>|response|<msgId>|OK` or `|NO|<reason>` (authenticate, route,
 * remove_route, an unknown type). drachtio-server closes the connection after a NO.
 */
export function simpleResponse(msgId: string, ok: boolean, reason?: string): string {
  return `${newMessageId()}|response|${msgId}|${ok ? 'OK' : 'NO'}${reason === undefined ? '' : `|${reason}`}`;
}

/** `sendApiResponseToClient`: `<uuid>|response|<msgId>|<OK|NOK>[|<data>]`. */
export function apiResponse(msgId: string, status: 'OK' | 'NOK', data: string): string {
  return `${newMessageId()}|response|${msgId}|${status}${data === '' ? '' : `|${data}`}`;
}

/**
 * The echo of a response the app sent (`SipDialogController::doRespondToSipRequest`):
 * `response|<id>|OK|application|<bytes>|<transport>|<dstAddr>|<dstPort>|<time>|<txnId>|<dialogId>||Msg sent:|`
 * CRLF, the response as it went out.
 */
export function responseSentMessage(
  msgId: string,
  meta: SipMeta,
  txnId: string,
  dialogId: string,
  sip: string,
): string {
  return apiResponse(msgId, 'OK', `${metaFields(meta, sip)}|${txnId}|${dialogId}||Msg sent:|${CRLF}${sip}`);
}

/**
 * One final response from one proxy target (`ClientTransaction::processResponse` with
 * fullResponse): `response|<id>|OK|network|<bytes>|<transport>|<addr>|<port>|<time>|||continue`
 * CRLF, the response. Token 12 must be `continue`, or srf forgets the request and the later
 * `done` is lost.
 */
export function proxyContinueMessage(msgId: string, meta: SipMeta, sip: string): string {
  return apiResponse(msgId, 'OK', `${metaFields(meta, sip)}|||continue${CRLF}${sip}`);
}

/** The end of a proxy operation: `response|<id>|OK|done`. */
export function proxyDoneMessage(msgId: string): string {
  return apiResponse(msgId, 'OK', 'done');
}

/** A failed operation: `response|<id>|NOK|<reason>` (srf hands the reason string to the caller). */
export function nokMessage(msgId: string, reason: string): string {
  return apiResponse(msgId, 'NOK', reason);
}

/** The options of a `proxy` message, in the order srf writes them. */
export interface ProxyFields {
  txnId: string;
  remainInDialog: boolean;
  fullResponse: boolean;
  followRedirects: boolean;
  forking: 'serial' | 'simultaneous';
  /** As sent ('2s', '1500ms' or ''). */
  provisionalTimeout: string;
  finalTimeout: string;
  destinations: string[];
}

/**
 * `<id>|proxy|<txnId>|remainInDialog|fullResponse|followRedirects|serial|<prov>|<final>|<dest>...`
 * as `Client::processClientMessage` reads it (each flag is its word or empty).
 */
export function parseProxyFields(tokens: readonly string[]): ProxyFields | undefined {
  if (tokens.length < 10) return undefined;
  return {
    txnId: tokens[2] ?? '',
    remainInDialog: tokens[3] === 'remainInDialog',
    fullResponse: tokens[4] === 'fullResponse',
    followRedirects: tokens[5] === 'followRedirects',
    forking: tokens[6] === 'simultaneous' ? 'simultaneous' : 'serial',
    provisionalTimeout: tokens[7] ?? '',
    finalTimeout: tokens[8] ?? '',
    destinations: tokens.slice(9).filter((d) => d !== ''),
  };
}

/**
 * drachtio-server's timeout syntax (`ProxyCore::setProvisionalTimeout`): `^(\d+)(ms|s)$`;
 * anything else (or '') means no timeout.
 */
export function parseTimeout(value: string): number | undefined {
  const m = /^(\d+)(ms|s)$/.exec(value);
  if (!m) return undefined;
  const n = Number(m[1]);
  return m[2] === 's' ? n * 1000 : n;
}
