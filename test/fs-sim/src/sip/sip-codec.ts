// The one adapter over sip.js (onsip's SIP library): SIP message parsing with its RFC 3261
// grammar, and message building with its response and request builders. Nothing else in fs-sim
// imports sip.js, so a change of library touches this file only.
import { randomBytes } from 'node:crypto';

import { LoggerFactory } from 'sip.js/lib/core/log/index.js';
import {
  constructOutgoingResponse,
  IncomingRequestMessage,
  IncomingResponseMessage,
  OutgoingRequestMessage,
  Parser,
} from 'sip.js/lib/core/messages/index.js';
import { Grammar, type NameAddrHeader, type URI } from 'sip.js/lib/grammar/index.js';

export type { NameAddrHeader, URI } from 'sip.js/lib/grammar/index.js';
export { IncomingRequestMessage as SipRequest, IncomingResponseMessage as SipResponse };

/** A parsed Via header value (one hop). */
export interface ViaValue {
  transport: string;
  host: string;
  port?: number;
  branch?: string;
  received?: string;
  /** '' when the flag `;rport` has no value. */
  rport?: string;
  maddr?: string;
}

interface GrammarVia {
  transport?: unknown;
  host?: unknown;
  port?: unknown;
  branch?: unknown;
  received?: unknown;
  rport?: unknown;
  maddr?: unknown;
  params?: Record<string, unknown>;
}

const HEADER_END = Buffer.from('\r\n\r\n');

const loggers = new LoggerFactory();
loggers.builtinEnabled = false;
const logger = loggers.getLogger('fs-sim');

/**
 * Parses one SIP message from a datagram or a framed stream chunk, with compact header names and
 * folded lines (RFC 3261 §7.3.1: a line end followed by whitespace continues a header; the fold
 * is replaced by one space first). Bytes are read as latin1 so that Content-Length counts bytes.
 * Returns undefined when the bytes are not a well-formed SIP message.
 */
export function parseMessage(bytes: Buffer): IncomingRequestMessage | IncomingResponseMessage | undefined {
  const end = bytes.indexOf(HEADER_END);
  if (end < 0) return undefined;
  const head = bytes
    .subarray(0, end)
    .toString('latin1')
    .replace(/\r\n[ \t]+/g, ' ');
  const text = head + bytes.subarray(end).toString('latin1');
  try {
    return Parser.parseMessage(text, logger);
  } catch {
    return undefined;
  }
}

/** Every Via value of a message, top first (comma-joined values are split). */
export function viaValues(message: IncomingRequestMessage | IncomingResponseMessage): string[] {
  return message.getHeaders('via').flatMap(splitVia);
}

/** Splits one Via header line into its hops (commas before `SIP/`). */
export function splitVia(raw: string): string[] {
  return raw
    .split(/,(?=\s*SIP\s*\/)/i)
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

export function parseVia(raw: string): ViaValue | undefined {
  const parsed = Grammar.parse(raw, 'Via') as GrammarVia | -1;
  if (parsed === -1 || typeof parsed.host !== 'string') return undefined;
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  const via: ViaValue = { transport: str(parsed.transport)?.toUpperCase() ?? 'UDP', host: parsed.host };
  if (typeof parsed.port === 'number') via.port = parsed.port;
  const branch = str(parsed.branch);
  if (branch !== undefined) via.branch = branch;
  const received = str(parsed.received);
  if (received !== undefined) via.received = received;
  const maddr = str(parsed.maddr);
  if (maddr !== undefined) via.maddr = maddr;
  if (typeof parsed.rport === 'string' || typeof parsed.rport === 'number') via.rport = String(parsed.rport);
  else if (parsed.params && 'rport' in parsed.params) via.rport = '';
  return via;
}

/** The Contact values of a message, parsed. */
export function contacts(message: IncomingRequestMessage | IncomingResponseMessage): NameAddrHeader[] {
  return (message.headers.Contact ?? [])
    .map((h) => h.parsed as unknown)
    .filter((p): p is NameAddrHeader => typeof p === 'object' && p !== null && 'uri' in p);
}

export function parseUri(uri: string): URI | undefined {
  return Grammar.URIParse(uri);
}

export function parseNameAddr(value: string): NameAddrHeader | undefined {
  return Grammar.nameAddrHeaderParse(value);
}

export interface ResponseSpec {
  status: number;
  reason: string;
  /** Added to To when the request had no tag (not on 100 Trying). */
  toTag?: string;
  /** Whole header lines, `Name: value`, after the mandatory ones. */
  headers?: string[];
  userAgent?: string;
  body?: { contentType: string; content: string };
}

/**
 * A response to `request` (RFC 3261 §8.2.6): Via, From, Call-ID, CSeq and To copied from the
 * request (so the caller sets received/rport on the top Via first, with `setVias`).
 */
export function buildResponse(request: IncomingRequestMessage, spec: ResponseSpec): Buffer {
  const options: Parameters<typeof constructOutgoingResponse>[1] = {
    statusCode: spec.status,
    reasonPhrase: spec.reason,
  };
  if (spec.toTag !== undefined) options.toTag = spec.toTag;
  if (spec.userAgent !== undefined) options.userAgent = spec.userAgent;
  if (spec.headers !== undefined) options.extraHeaders = spec.headers;
  if (spec.body !== undefined) {
    options.body = {
      contentDisposition: 'session',
      contentType: spec.body.contentType,
      content: spec.body.content,
    };
  }
  return Buffer.from(constructOutgoingResponse(request, options).message, 'latin1');
}

/** Replaces a message's Via headers (one value per line). */
export function setVias(message: IncomingRequestMessage, vias: string[]): void {
  const [top, ...rest] = vias;
  if (top === undefined) return;
  message.setHeader('via', top);
  for (const v of rest) message.addHeader('via', v);
}

export interface RequestSpec {
  method: string;
  requestUri: URI;
  from: URI;
  fromTag: string;
  fromDisplayName?: string;
  to: URI;
  toTag?: string;
  callId: string;
  cseq: number;
  /** Route values, in order. */
  routeSet?: string[];
  /** The Via value, `SIP/2.0/UDP host:port;branch=...;rport`, is built from these. */
  via: { transport: string; sentBy: string; branch: string };
  userAgent: string;
  headers?: string[];
  body?: { contentType: string; content: string };
}

/** A request built with sip.js's request builder (Max-Forwards 70, Content-Length set). */
export function buildRequest(spec: RequestSpec): Buffer {
  const options: NonNullable<ConstructorParameters<typeof OutgoingRequestMessage>[4]> = {
    callId: spec.callId,
    cseq: spec.cseq,
    fromTag: spec.fromTag,
    routeSet: spec.routeSet ?? [],
    userAgentString: spec.userAgent,
    optionTags: ['timer'],
    viaHost: spec.via.sentBy,
    forceRport: true,
  };
  if (spec.toTag !== undefined) options.toTag = spec.toTag;
  if (spec.fromDisplayName !== undefined) options.fromDisplayName = spec.fromDisplayName;
  const body =
    spec.body === undefined
      ? undefined
      : { contentDisposition: 'session', contentType: spec.body.contentType, content: spec.body.content };
  const request = new OutgoingRequestMessage(
    spec.method,
    spec.requestUri,
    spec.from,
    spec.to,
    options,
    spec.headers ?? [],
    body,
  );
  request.setViaHeader(spec.via.branch, spec.via.transport);
  return Buffer.from(request.toString(), 'latin1');
}

/** A random token for tags and branches (RFC 3261 §19.3: at least 32 bits of randomness). */
export function randomToken(bytes = 8): string {
  return randomBytes(bytes).toString('hex');
}

/** Cuts a TCP byte stream into SIP messages by Content-Length (RFC 3261 §18.3). */
export class SipStreamFramer {
  private buffer: Buffer = Buffer.alloc(0);

  /** Adds bytes; returns the complete messages, or 'overflow' when the stream is abusive. */
  push(chunk: Buffer, maxBytes = 1024 * 1024): Buffer[] | 'overflow' {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const out: Buffer[] = [];
    for (;;) {
      let start = 0;
      while (start < this.buffer.length && (this.buffer[start] === 0x0d || this.buffer[start] === 0x0a))
        start++;
      if (start > 0) this.buffer = this.buffer.subarray(start);
      const end = this.buffer.indexOf(HEADER_END);
      if (end < 0) return this.buffer.length > maxBytes ? 'overflow' : out;
      const message = parseMessage(this.buffer.subarray(0, end + HEADER_END.length));
      const length = Number(message?.getHeader('content-length') ?? 0) || 0;
      if (length > maxBytes) return 'overflow';
      const total = end + HEADER_END.length + length;
      if (this.buffer.length < total) return out;
      out.push(this.buffer.subarray(0, total));
      this.buffer = this.buffer.subarray(total);
    }
  }
}
