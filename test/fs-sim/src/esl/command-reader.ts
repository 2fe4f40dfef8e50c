/** One command a client sent: its first line, the header lines after it, and an optional body. */
export interface EslCommand {
  /** The first line, without its line end (`api status`). */
  line: string;
  /** Header lines after the first (`Job-UUID: ...`), names as sent. */
  headers: [name: string, value: string][];
  body?: string;
}

const LF = 0x0a;
const CR = 0x0d;
/** FreeSWITCH's limit on one command's header block. */
const MAX_HEADER_BYTES = 10 * 1024 * 1024;
/** FreeSWITCH's MAX_CONTENT_LENGTH for a command body. */
const MAX_CONTENT_LENGTH = 10 * 1024 * 1024;

/**
 * Cuts a client's byte stream into commands the way mod_event_socket's `read_packet` does: line
 * ends before a command are skipped; a command ends at two LFs (CRs between them do not count);
 * the first line is the command; later `Name: value` lines are headers; a `Content-Length`
 * header makes that many bytes after the blank line the body.
 * (src/mod/event_handlers/mod_event_socket/mod_event_socket.c, https://github.com/signalwire/freeswitch)
 */
export class CommandReader {
  private buffer: Buffer = Buffer.alloc(0);
  private pending: EslCommand | undefined;
  private bodyBytes = 0;
  private scanFrom = 0;

  /** Adds received bytes; returns the commands completed by them, or 'overflow' on abuse. */
  push(chunk: Buffer): EslCommand[] | 'overflow' {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const out: EslCommand[] = [];
    for (;;) {
      if (this.pending) {
        if (this.buffer.length < this.bodyBytes) return out;
        this.pending.body = this.buffer.subarray(0, this.bodyBytes).toString('utf8');
        this.buffer = this.buffer.subarray(this.bodyBytes);
        out.push(this.pending);
        this.pending = undefined;
        continue;
      }
      let start = 0;
      while (start < this.buffer.length && (this.buffer[start] === LF || this.buffer[start] === CR)) start++;
      if (start > 0) {
        this.buffer = this.buffer.subarray(start);
        this.scanFrom = 0;
      }
      const { end, resume } = findEnd(this.buffer, this.scanFrom);
      if (end < 0) {
        this.scanFrom = resume;
        if (this.buffer.length > MAX_HEADER_BYTES) return 'overflow';
        return out;
      }
      this.scanFrom = 0;
      const text = this.buffer.subarray(0, end).toString('utf8');
      this.buffer = this.buffer.subarray(end);
      const command = parseBlock(text);
      const length = contentLength(command);
      if (length === 'invalid') return 'overflow';
      if (length > 0) {
        this.pending = command;
        this.bodyBytes = length;
        continue;
      }
      out.push(command);
    }
  }
}

/**
 * Looks for the end of a command (`\n[\r]*\n`) from `from`. Returns the index just past it, or
 * -1 and the position to resume from when more bytes arrive (so a long command is scanned once).
 */
function findEnd(buf: Buffer, from: number): { end: number; resume: number } {
  let i = buf.indexOf(LF, from);
  while (i >= 0) {
    let j = i + 1;
    while (j < buf.length && buf[j] === CR) j++;
    if (j >= buf.length) return { end: -1, resume: i };
    if (buf[j] === LF) return { end: j + 1, resume: 0 };
    i = buf.indexOf(LF, j);
  }
  return { end: -1, resume: buf.length };
}

function parseBlock(text: string): EslCommand {
  const lines = text.split(/\r?\n/);
  const first = lines.shift() ?? '';
  const line = first.split('\r')[0] ?? '';
  const headers: [string, string][] = [];
  for (const raw of lines) {
    const l = raw.replace(/\r/g, '');
    const colon = l.indexOf(':');
    if (l === '' || colon < 0) continue;
    headers.push([l.slice(0, colon), l.slice(colon + 1).replace(/^ +/, '')]);
  }
  return { line, headers };
}

function contentLength(command: EslCommand): number | 'invalid' {
  const header = command.headers.find(([n]) => n.toLowerCase() === 'content-length');
  if (!header) return 0;
  const n = parseInt(header[1], 10);
  if (Number.isNaN(n)) return 0;
  if (n < 0 || n > MAX_CONTENT_LENGTH) return 'invalid';
  return n;
}

/** The value of a command header, matched case-insensitively. */
export function commandHeader(command: EslCommand, name: string): string | undefined {
  const lower = name.toLowerCase();
  return command.headers.find(([n]) => n.toLowerCase() === lower)?.[1];
}
