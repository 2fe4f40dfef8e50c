/**
 * Builds the raw SIP requests a test injects as if a caller had sent them to drachtio-server:
 * RFC 3261 §8.1.1's mandatory headers (Via with a z9hG4bK branch and rport, Max-Forwards, From
 * with a tag, To, Call-ID, CSeq, Contact), Content-Length, an optional SDP offer, extra headers.
 */
import { randomBytes, randomUUID } from 'node:crypto';

import { SipMessage } from './sip-message.js';

export type Transport = 'udp' | 'tcp' | 'tls' | 'ws' | 'wss';

/** Who sent the request (the caller), as drachtio-server reports it to srf. */
export interface SipSource {
  address: string;
  port: number;
  transport?: Transport;
}

export interface SipRequestSpec {
  /** INVITE, OPTIONS, REGISTER, SUBSCRIBE... */
  method: string;
  /** Request-URI; by default `sip:<toUser>@<the double's SIP address>`. */
  uri?: string;
  /** From URI (default `sip:<fromUser>@<source address>`); its tag is made up unless given. */
  from?: string;
  fromUser?: string;
  fromTag?: string;
  fromDisplayName?: string;
  /** To URI (default the Request-URI without parameters); a tag only when given. */
  to?: string;
  toUser?: string;
  toTag?: string;
  callId?: string;
  cseq?: number;
  /** Via branch (default a fresh `z9hG4bK...`). The Via's sent-by is the source. */
  branch?: string;
  /** Contact URI (default `sip:<fromUser>@<source address:port>`); null for none. */
  contact?: string | null;
  maxForwards?: number;
  /** An SDP body: a string, or true for a G.711 audio offer from the source address. */
  sdp?: string | true;
  /** Any other body. */
  body?: { contentType: string; content: string };
  /** Extra header lines, in order. */
  headers?: Record<string, string> | readonly (readonly [string, string])[];
  /** REGISTER: Expires (default 3600). SUBSCRIBE: Expires (default 3600). */
  expires?: number;
  /** SUBSCRIBE: Event (default 'presence'). */
  event?: string;
}

/** Where the request is going: the host:port of drachtio-server's SIP side. */
export interface SipTargetAddress {
  host: string;
  port: number;
}

export function randomTag(): string {
  return randomBytes(6).toString('hex');
}

export function newBranch(): string {
  return `z9hG4bK${randomBytes(10).toString('hex')}`;
}

/** A G.711 audio offer (PCMU, PCMA, telephone-event) from `address`. */
export function g711Offer(address: string, port = 4000): string {
  const id = Math.floor(Date.now() / 1000);
  return [
    'v=0',
    `o=caller ${id} ${id} IN IP4 ${address}`,
    's=-',
    `c=IN IP4 ${address}`,
    't=0 0',
    `m=audio ${port} RTP/AVP 0 8 101`,
    'a=rtpmap:0 PCMU/8000',
    'a=rtpmap:8 PCMA/8000',
    'a=rtpmap:101 telephone-event/8000',
    'a=fmtp:101 0-16',
    'a=sendrecv',
    '',
  ].join('\r\n');
}

function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** A request as a SipMessage (see `buildSipRequest` for the text). */
export function sipRequest(spec: SipRequestSpec, source: SipSource, target: SipTargetAddress): SipMessage {
  const method = spec.method.toUpperCase();
  const transport = (source.transport ?? 'udp').toUpperCase();
  const fromUser = spec.fromUser ?? 'caller';
  const toUser = spec.toUser ?? (method === 'REGISTER' ? fromUser : 'service');
  const uri =
    spec.uri ??
    (method === 'REGISTER' ? `sip:${target.host}` : `sip:${toUser}@${hostPort(target.host, target.port)}`);
  const from = spec.from ?? `sip:${fromUser}@${source.address}`;
  const to = spec.to ?? (method === 'REGISTER' ? from : (uri.split(';')[0] ?? uri));
  const display = spec.fromDisplayName === undefined ? '' : `"${spec.fromDisplayName}" `;
  const msg = SipMessage.request(method, uri);
  msg.add(
    'Via',
    `SIP/2.0/${transport} ${hostPort(source.address, source.port)};branch=${spec.branch ?? newBranch()};rport`,
  );
  msg.add('Max-Forwards', String(spec.maxForwards ?? 70));
  msg.add('From', `${display}<${from}>;tag=${spec.fromTag ?? randomTag()}`);
  msg.add('To', `<${to}>${spec.toTag === undefined ? '' : `;tag=${spec.toTag}`}`);
  msg.add('Call-ID', spec.callId ?? `${randomUUID()}@${source.address}`);
  msg.add('CSeq', `${spec.cseq ?? 1} ${method}`);
  const contact =
    spec.contact === undefined
      ? `sip:${fromUser}@${hostPort(source.address, source.port)}${transport === 'UDP' ? '' : `;transport=${transport.toLowerCase()}`}`
      : spec.contact;
  if (contact !== null) msg.add('Contact', `<${contact}>`);
  if (method === 'REGISTER' || method === 'SUBSCRIBE') msg.add('Expires', String(spec.expires ?? 3600));
  if (method === 'SUBSCRIBE') msg.add('Event', spec.event ?? 'presence');
  const extra =
    spec.headers === undefined
      ? []
      : Array.isArray(spec.headers)
        ? spec.headers
        : Object.entries(spec.headers);
  for (const [name, value] of extra as [string, string][]) msg.add(name, value);
  if (spec.sdp !== undefined) {
    msg.add('Content-Type', 'application/sdp');
    msg.body = spec.sdp === true ? g711Offer(source.address) : spec.sdp;
  } else if (spec.body !== undefined) {
    msg.add('Content-Type', spec.body.contentType);
    msg.body = spec.body.content;
  }
  return msg;
}

/** The raw text of a request from `source` to `target` (Content-Length counts body bytes). */
export function buildSipRequest(spec: SipRequestSpec, source: SipSource, target: SipTargetAddress): string {
  return sipRequest(spec, source, target).toString();
}

/**
 * The CANCEL for a request (RFC 3261 §9.1): the same Request-URI, Call-ID, From, To and CSeq
 * number, one Via equal to the request's top Via (so the same branch), its Route headers, no body.
 */
export function cancelFor(request: SipMessage): SipMessage {
  const msg = SipMessage.request('CANCEL', request.uri);
  const via = request.get('via');
  if (via !== undefined) msg.add('Via', via);
  msg.add('Max-Forwards', '70');
  msg.add('From', request.get('from') ?? '');
  msg.add('To', request.get('to') ?? '');
  msg.add('Call-ID', request.callId);
  msg.add('CSeq', `${request.cseq.seq} CANCEL`);
  for (const route of request.getAll('route')) msg.add('Route', route);
  return msg;
}
