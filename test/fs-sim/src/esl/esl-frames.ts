import type { FsEvent } from '../event/fs-event.js';

/**
 * Every frame the simulated mod_event_socket writes, byte for byte as FreeSWITCH writes them
 * (LF line ends, Content-Length in bytes). Texts from
 * src/mod/event_handlers/mod_event_socket/mod_event_socket.c (https://github.com/signalwire/freeswitch).
 */
export const AUTH_REQUEST = 'Content-Type: auth/request\n\n';

/** Body of the notice after `exit`, a failed auth or an ACL refusal. */
export const GOODBYE = 'Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n';
/** Body of the notice every client gets when the system shuts down. */
export const SHUTTING_DOWN = 'The system is being shut down.\n';
const ACCESS_DENIED = 'Access Denied, go away.\n';

export type EventFormat = 'plain' | 'json' | 'xml';

/** `command/reply` with one Reply-Text line. */
export function commandReply(text: string): string {
  return `Content-Type: command/reply\nReply-Text: ${text}\n\n`;
}

/** `command/reply` with extra headers after Reply-Text (FreeSWITCH's `~` replies). */
export function commandReplyWith(text: string, headers: [string, string][]): string {
  return `Content-Type: command/reply\nReply-Text: ${text}\n${headers.map(([n, v]) => `${n}: ${v}\n`).join('')}\n`;
}

export function apiResponse(body: string): string {
  return `Content-Type: api/response\nContent-Length: ${Buffer.byteLength(body)}\n\n${body}`;
}

export function disconnectNotice(message: string): string {
  return `Content-Type: text/disconnect-notice\nContent-Length: ${Buffer.byteLength(message)}\n\n${message}`;
}

export function rudeRejection(): string {
  return `Content-Type: text/rude-rejection\nContent-Length: ${Buffer.byteLength(ACCESS_DENIED)}\n\n${ACCESS_DENIED}`;
}

export function eventFrame(event: FsEvent, format: EventFormat): string {
  const body = format === 'json' ? event.toJson() : format === 'xml' ? event.toXml() : event.toPlain();
  return `Content-Length: ${Buffer.byteLength(body)}\nContent-Type: text/event-${format}\n\n${body}`;
}

/** The kinds of broken frame `sendMalformed` can write. */
export type MalformedKind = 'bad-json' | 'bad-percent' | 'bad-values' | 'short-body' | 'garbage';

/**
 * A frame FreeSWITCH would never send, for testing a client's defences:
 * - `bad-json`: a text/event-json frame whose body is not JSON;
 * - `bad-percent`: a text/event-plain HEARTBEAT with a `%` that is not URL encoding (modesl's
 *   decodeURIComponent throws on it);
 * - `bad-values`: a well-framed HEARTBEAT whose numbers are not numbers;
 * - `short-body`: a Content-Length larger than the body, so the next real frames are swallowed;
 * - `garbage`: bytes that are no frame at all, ended by a blank line.
 */
export function malformedFrame(kind: MalformedKind, coreUuid: string): string {
  switch (kind) {
    case 'bad-json': {
      const body = '{"Event-Name":"HEARTBEAT","Core-UUID":';
      return `Content-Length: ${Buffer.byteLength(body)}\nContent-Type: text/event-json\n\n${body}`;
    }
    case 'bad-percent': {
      const body = `Event-Name: HEARTBEAT\nCore-UUID: ${coreUuid}\nSession-Count: 100%zz\n\n`;
      return `Content-Length: ${Buffer.byteLength(body)}\nContent-Type: text/event-plain\n\n${body}`;
    }
    case 'bad-values': {
      const body = `Event-Name: HEARTBEAT\nCore-UUID: ${coreUuid}\nSession-Count: many\nMax-Sessions: -1\nIdle-CPU: NaN\nUptime-msec: soon\n\n`;
      return `Content-Length: ${Buffer.byteLength(body)}\nContent-Type: text/event-plain\n\n${body}`;
    }
    case 'short-body':
      return 'Content-Type: api/response\nContent-Length: 4096\n\n-ERR truncated';
    case 'garbage':
      return '\u0000\u0001\u00ff}{ not a frame \u0007\n\n';
  }
}
