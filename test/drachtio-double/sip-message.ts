/**
 * A small SIP message model (RFC 3261 §7): start line, ordered headers, body. It parses what the
 * double receives (from srf inside frames, from simulators over UDP) and builds what it sends.
 * It knows compact header names (§7.3.3) and unfolds continuation lines (§7.3.1); it does not
 * validate header grammar beyond what routing needs (Via branch, tags, URIs).
 */

/** RFC 3261 §7.3.3 compact forms, plus the RFC 3265/3515/4028 ones. */
const COMPACT: Readonly<Record<string, string>> = {
  i: 'call-id',
  m: 'contact',
  e: 'content-encoding',
  l: 'content-length',
  c: 'content-type',
  f: 'from',
  s: 'subject',
  k: 'supported',
  t: 'to',
  v: 'via',
  o: 'event',
  r: 'refer-to',
  b: 'referred-by',
  u: 'allow-events',
  x: 'session-expires',
};

/** Headers whose comma-separated values are separate entries (Via, Route, Record-Route...). */
const LIST_HEADERS = new Set(['via', 'route', 'record-route', 'path', 'contact']);

export class SipParseError extends Error {
  readonly code = 'SIP_PARSE';
}

export interface SipHeader {
  name: string;
  value: string;
}

/** The canonical lower-case name of a header (compact forms expanded). */
export function canonicalName(name: string): string {
  const lower = name.trim().toLowerCase();
  return COMPACT[lower] ?? lower;
}

export class SipMessage {
  /** 'request' when the start line is `METHOD uri SIP/2.0`, else 'response'. */
  readonly kind: 'request' | 'response';
  method: string;
  uri: string;
  status: number;
  reason: string;
  headers: SipHeader[];
  body: string;

  private constructor(
    kind: 'request' | 'response',
    fields: { method?: string; uri?: string; status?: number; reason?: string },
    headers: SipHeader[],
    body: string,
  ) {
    this.kind = kind;
    this.method = fields.method ?? '';
    this.uri = fields.uri ?? '';
    this.status = fields.status ?? 0;
    this.reason = fields.reason ?? '';
    this.headers = headers;
    this.body = body;
  }

  static request(method: string, uri: string, headers: SipHeader[] = [], body = ''): SipMessage {
    return new SipMessage('request', { method: method.toUpperCase(), uri }, headers, body);
  }

  static response(status: number, reason: string, headers: SipHeader[] = [], body = ''): SipMessage {
    return new SipMessage('response', { status, reason }, headers, body);
  }

  /**
   * Parses one message. Leading CRLFs (keep-alives) are skipped; the body is what follows the
   * blank line, cut to Content-Length bytes when that header is present and shorter.
   */
  static parse(input: string | Buffer): SipMessage {
    const text = (typeof input === 'string' ? input : input.toString('utf8')).replace(/^(\r\n)+/, '');
    const end = text.indexOf('\r\n\r\n');
    const head = end < 0 ? text.replace(/\r\n$/, '') : text.slice(0, end);
    let body = end < 0 ? '' : text.slice(end + 4);
    const lines = head.replace(/\r\n[ \t]+/g, ' ').split('\r\n');
    const start = lines.shift() ?? '';
    const headers: SipHeader[] = [];
    for (const line of lines) {
      if (line === '') continue;
      const colon = line.indexOf(':');
      if (colon <= 0) throw new SipParseError(`malformed header line: ${JSON.stringify(line)}`);
      headers.push({ name: line.slice(0, colon).trim(), value: line.slice(colon + 1).trim() });
    }
    const lengthHeader = headers.find((h) => canonicalName(h.name) === 'content-length');
    if (lengthHeader) {
      const length = Number(lengthHeader.value);
      const bytes = Buffer.from(body, 'utf8');
      if (Number.isInteger(length) && length >= 0 && length < bytes.length) {
        body = bytes.subarray(0, length).toString('utf8');
      }
    }
    const response = /^SIP\/2\.0\s+(\d{3})\s*(.*)$/.exec(start);
    if (response) {
      return new SipMessage(
        'response',
        { status: Number(response[1]), reason: response[2] ?? '' },
        headers,
        body,
      );
    }
    const request = /^([A-Za-z]+)\s+(\S+)\s+SIP\/2\.0$/.exec(start);
    if (request) {
      return new SipMessage(
        'request',
        { method: (request[1] ?? '').toUpperCase(), uri: request[2] ?? '' },
        headers,
        body,
      );
    }
    throw new SipParseError(`not a SIP start line: ${JSON.stringify(start)}`);
  }

  /** First value of a header (by any name form), or undefined. */
  get(name: string): string | undefined {
    return this.getAll(name)[0];
  }

  /** Every value of a header, top first; list headers are split at their commas. */
  getAll(name: string): string[] {
    const want = canonicalName(name);
    const out: string[] = [];
    for (const h of this.headers) {
      if (canonicalName(h.name) !== want) continue;
      if (LIST_HEADERS.has(want)) out.push(...splitList(h.value));
      else out.push(h.value);
    }
    return out;
  }

  has(name: string): boolean {
    const want = canonicalName(name);
    return this.headers.some((h) => canonicalName(h.name) === want);
  }

  /** Replaces every occurrence of the header with one value (appended when absent). */
  set(name: string, value: string): this {
    const want = canonicalName(name);
    const at = this.headers.findIndex((h) => canonicalName(h.name) === want);
    if (at < 0) {
      this.headers.push({ name, value });
      return this;
    }
    this.headers = this.headers.filter((h, i) => i === at || canonicalName(h.name) !== want);
    this.headers[at] = { name, value };
    return this;
  }

  add(name: string, value: string): this {
    this.headers.push({ name, value });
    return this;
  }

  /** Adds a header value above every existing one of that name (a new top Via, say). */
  prepend(name: string, value: string): this {
    const want = canonicalName(name);
    const at = this.headers.findIndex((h) => canonicalName(h.name) === want);
    this.headers.splice(at < 0 ? this.headers.length : at, 0, { name, value });
    return this;
  }

  remove(name: string): this {
    const want = canonicalName(name);
    this.headers = this.headers.filter((h) => canonicalName(h.name) !== want);
    return this;
  }

  /** Removes the first value of a list header (the top Via, say). */
  removeFirst(name: string): this {
    const want = canonicalName(name);
    const at = this.headers.findIndex((h) => canonicalName(h.name) === want);
    const header = at < 0 ? undefined : this.headers[at];
    if (!header) return this;
    const rest = splitList(header.value).slice(1);
    if (rest.length === 0) this.headers.splice(at, 1);
    else this.headers[at] = { name: header.name, value: rest.join(', ') };
    return this;
  }

  clone(): SipMessage {
    return new SipMessage(
      this.kind,
      { method: this.method, uri: this.uri, status: this.status, reason: this.reason },
      this.headers.map((h) => ({ ...h })),
      this.body,
    );
  }

  get callId(): string {
    return this.get('call-id') ?? '';
  }

  /** CSeq number and method. */
  get cseq(): { seq: number; method: string } {
    const [seq, method] = (this.get('cseq') ?? '').split(/\s+/);
    return { seq: Number(seq), method: (method ?? '').toUpperCase() };
  }

  get startLine(): string {
    return this.kind === 'request'
      ? `${this.method} ${this.uri} SIP/2.0`
      : `SIP/2.0 ${this.status} ${this.reason}`.trimEnd();
  }

  /** The wire form, with Content-Length set to the body's byte count. */
  toString(): string {
    const lines = [this.startLine];
    for (const h of this.headers)
      if (canonicalName(h.name) !== 'content-length') lines.push(`${h.name}: ${h.value}`);
    lines.push(`Content-Length: ${Buffer.byteLength(this.body, 'utf8')}`);
    return `${lines.join('\r\n')}\r\n\r\n${this.body}`;
  }
}

/** Splits a list header value at commas outside quotes and angle brackets. */
export function splitList(value: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '"' && value[i - 1] !== '\\') quoted = !quoted;
    else if (!quoted && c === '<') depth++;
    else if (!quoted && c === '>') depth = Math.max(0, depth - 1);
    else if (!quoted && depth === 0 && c === ',') {
      out.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(value.slice(start).trim());
  return out.filter((v) => v !== '');
}

/** A `;name=value` parameter of a header value, outside its `<...>` part. */
export function headerParam(value: string, name: string): string | undefined {
  const close = value.lastIndexOf('>');
  const tail = close < 0 ? value : value.slice(close + 1);
  for (const part of tail.split(';').slice(close < 0 ? 1 : 0)) {
    const [k, v] = part.split('=');
    if (k?.trim().toLowerCase() === name.toLowerCase()) return (v ?? '').trim();
  }
  return undefined;
}

/** The tag of a From or To value. */
export function tagOf(value: string | undefined): string | undefined {
  return value === undefined ? undefined : headerParam(value, 'tag');
}

/** The URI inside a name-addr (`"Bob" <sip:bob@h>;tag=1`) or an addr-spec (`sip:bob@h;tag=1`). */
export function uriOf(value: string): string {
  const open = value.indexOf('<');
  const close = value.indexOf('>', open);
  if (open >= 0 && close > open) return value.slice(open + 1, close).trim();
  return (value.split(';')[0] ?? '').trim();
}

export interface Via {
  transport: string;
  host: string;
  port: number | undefined;
  branch: string | undefined;
}

export function parseVia(value: string): Via | undefined {
  const m = /^SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z]+)\s+([^;\s]+)/i.exec(value.trim());
  if (!m) return undefined;
  const hostPort = parseHostPort(m[2] ?? '');
  return {
    transport: (m[1] ?? '').toUpperCase(),
    host: hostPort.host,
    port: hostPort.port,
    branch: headerParam(value, 'branch'),
  };
}

export function parseHostPort(value: string): { host: string; port: number | undefined } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(value);
  if (v6) return { host: v6[1] ?? '', port: v6[2] === undefined ? undefined : Number(v6[2]) };
  const [host, port] = value.split(':');
  return { host: host ?? '', port: port === undefined || port === '' ? undefined : Number(port) };
}

export interface SipUri {
  scheme: string;
  user: string | undefined;
  host: string;
  port: number | undefined;
  params: Map<string, string>;
}

/** Parses `sip:user@host:port;params` (headers after `?` ignored); undefined when not sip/sips. */
export function parseSipUri(uri: string): SipUri | undefined {
  const m = /^(sips?):(?:([^@]*)@)?(\[[^\]]+\]|[^:;?>]+)(?::(\d+))?([^?>]*)/i.exec(uri.trim());
  if (!m) return undefined;
  const params = new Map<string, string>();
  for (const part of (m[5] ?? '').split(';').slice(1)) {
    const [k, v] = part.split('=');
    if (k) params.set(k.toLowerCase(), v ?? '');
  }
  return {
    scheme: (m[1] ?? '').toLowerCase(),
    user: m[2],
    host: (m[3] ?? '').replace(/^\[|\]$/g, ''),
    port: m[4] === undefined ? undefined : Number(m[4]),
    params,
  };
}

const REASONS: Readonly<Record<number, string>> = {
  100: 'Trying',
  180: 'Ringing',
  181: 'Call Is Being Forwarded',
  183: 'Session Progress',
  200: 'OK',
  202: 'Accepted',
  301: 'Moved Permanently',
  302: 'Moved Temporarily',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  407: 'Proxy Authentication Required',
  408: 'Request Timeout',
  480: 'Temporarily Unavailable',
  481: 'Call/Transaction Does Not Exist',
  483: 'Too Many Hops',
  486: 'Busy Here',
  487: 'Request Terminated',
  488: 'Not Acceptable Here',
  500: 'Server Internal Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Server Time-out',
  600: 'Busy Everywhere',
  603: 'Decline',
};

/** RFC 3261 §21's reason phrase for a status (or a generic one by class). */
export function reasonPhrase(status: number): string {
  return REASONS[status] ?? (status < 200 ? 'Session Progress' : status < 300 ? 'OK' : 'Failure');
}

/**
 * RFC 3261 §16.7.6 preference among final failures, as drachtio-server's `bestResponseOrder`
 * ranks them: 6xx, then 401/407/415/420/484, other 4xx, 5xx, anything else (lower is better).
 */
export function failureRank(status: number): number {
  if (status >= 600) return 0;
  if ([401, 407, 415, 420, 484].includes(status)) return 1;
  if (status >= 400 && status < 500) return 2;
  if (status >= 500 && status < 600) return 3;
  return 4;
}
