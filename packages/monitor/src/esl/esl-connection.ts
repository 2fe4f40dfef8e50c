import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import esl, { type Connection, type EslEvent } from 'modesl';
import { FslbError, type Logger } from '@fslb/shared';

/**
 * The one adapter around modesl. One `EslConnection` is one TCP connection to one FreeSWITCH:
 * it is never reused after a fault. modesl keeps its command callbacks in id-less FIFO queues
 * with no timeout, so a lost socket would leave them pending forever; here every command has
 * its own timeout, and any timeout or socket fault ends the connection ("died") and fails every
 * pending command. `close()` is ours ("closed") and does not emit `died`.
 */

export const EslErrorCode = {
  /** TCP connect failed (refused, unreachable, reset during connect). */
  Connect: 'ESL_CONNECT',
  /** The password was refused. */
  Auth: 'ESL_AUTH',
  /** The server's ACL turned us away (text/rude-rejection). */
  Rejected: 'ESL_REJECTED',
  /** No answer in time: the connect/auth handshake or a command. */
  Timeout: 'ESL_TIMEOUT',
  /** The server closed or reset the connection, or said goodbye (disconnect notice). */
  Closed: 'ESL_CLOSED',
  /** The server sent something the client cannot parse. */
  Protocol: 'ESL_PROTOCOL',
} as const;
export type EslErrorCode = (typeof EslErrorCode)[keyof typeof EslErrorCode];

export class EslError extends FslbError {
  declare readonly code: EslErrorCode;

  constructor(code: EslErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'EslError';
  }
}

/** One event from FreeSWITCH, headers already decoded. */
export interface EslEventMessage {
  name: string;
  header: (name: string) => string | undefined;
}

export interface EslTarget {
  host: string;
  port: number;
  password: string;
}

export interface EslOpenOptions {
  /** Connect + greeting + auth must finish within this. */
  timeoutMs: number;
  log: Logger;
}

type Events = {
  event: [EslEventMessage];
  died: [EslError];
};

/**
 * Calls `expire` once `ms` have passed and the loop has then read its sockets; returns a cancel.
 * A timer that fires late, because this process was held (a long collection, a starved host),
 * runs before the loop reads what arrived meanwhile: an answer would still sit unread in the
 * socket and every command waiting on it would time out at once (all of a monitor's nodes "down"
 * after one stall of its own). `setImmediate` runs after that read.
 */
function deadline(ms: number, expire: () => void): () => void {
  let after: NodeJS.Immediate | undefined;
  const timer = setTimeout(() => {
    after = setImmediate(expire);
  }, ms);
  return () => {
    clearTimeout(timer);
    if (after) clearImmediate(after);
  };
}

export class EslConnection extends EventEmitter<Events> {
  readonly #conn: Connection;
  readonly #socket: Socket;
  readonly #log: Logger;
  readonly #pending = new Set<(err: EslError) => void>();
  #ended = false;

  private constructor(conn: Connection, socket: Socket, log: Logger) {
    super();
    this.#conn = conn;
    this.#socket = socket;
    this.#log = log;
  }

  /** Connects and authenticates; rejects with an `EslError` saying why not. */
  static open(target: EslTarget, opts: EslOpenOptions): Promise<EslConnection> {
    return new Promise<EslConnection>((resolve, reject) => {
      const conn = new esl.Connection(target.host, target.port, target.password);
      const socket = conn.socket;
      if (!socket) {
        reject(new EslError(EslErrorCode.Connect, 'modesl made no socket'));
        return;
      }
      const self = new EslConnection(conn, socket, opts.log);
      let settled = false;
      const fail = (err: EslError): void => {
        if (settled) {
          self.#die(err);
          return;
        }
        settled = true;
        cancel();
        self.#teardown();
        reject(err);
      };
      const cancel = deadline(opts.timeoutMs, () =>
        fail(new EslError(EslErrorCode.Timeout, `no ESL greeting and auth within ${opts.timeoutMs} ms`)),
      );

      // modesl re-emits socket errors on the connection; without a listener they would throw.
      conn.on('error', (err: Error) => {
        const code = (err as NodeJS.ErrnoException).code;
        if (err instanceof URIError || err instanceof SyntaxError) {
          fail(new EslError(EslErrorCode.Protocol, `malformed frame: ${err.message}`, { cause: err }));
        } else if (!settled) {
          fail(new EslError(EslErrorCode.Connect, `connect failed: ${code ?? err.message}`, { cause: err }));
        } else
          fail(new EslError(EslErrorCode.Closed, `socket error: ${code ?? err.message}`, { cause: err }));
      });
      // The parser is made on connect; its exceptions (a bad %-escape throws URIError inside the
      // socket's data handler) must end this connection, not the process.
      conn.on('esl::connect', () => guardDataListeners(socket, (err) => conn.socket?.emit('error', err)));
      socket.on('close', () => fail(new EslError(EslErrorCode.Closed, 'connection closed by FreeSWITCH')));
      conn.on('esl::event::auth::fail', () => fail(new EslError(EslErrorCode.Auth, 'ESL password refused')));
      conn.on('esl::event::raw::text/rude-rejection', () =>
        fail(new EslError(EslErrorCode.Rejected, 'refused by the ESL access list (rude rejection)')),
      );
      conn.on('esl::event::disconnect::notice', (ev: EslEvent) =>
        fail(new EslError(EslErrorCode.Closed, `disconnect notice: ${firstLine(ev.getBody()) || 'goodbye'}`)),
      );
      // Some of modesl's own emits under this namespace carry no headers (auth::success).
      conn.on('esl::event::**', (ev: EslEvent, headers: Record<string, string> | undefined) => {
        const type = headers?.['Content-Type'];
        if (type !== 'text/event-json' && type !== 'text/event-plain') return;
        self.#dispatch(ev);
      });
      conn.on('esl::ready', () => {
        if (settled) return;
        settled = true;
        cancel();
        resolve(self);
      });
    });
  }

  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Runs `api <command>` and resolves with the response body. `onReply` runs the moment the
   * reply is read, before any event that follows it on the socket (the promise settles later).
   */
  api(command: string, timeoutMs: number, onReply?: () => void): Promise<string> {
    return this.#call(`api ${command}`, timeoutMs, (done) =>
      this.#conn.api(command, (ev) => {
        onReply?.();
        done(ev.getBody());
      }),
    );
  }

  /** Subscribes to events (JSON framing). */
  async subscribe(events: readonly string[], timeoutMs: number): Promise<void> {
    const reply = await this.#call(`event json ${events.join(' ')}`, timeoutMs, (done) =>
      this.#conn.events('json', [...events], (ev) => done(ev.getHeader('Reply-Text') ?? '')),
    );
    if (!reply.startsWith('+OK')) {
      throw new EslError(EslErrorCode.Protocol, `event subscription refused: ${reply}`);
    }
  }

  /** Ends the connection from our side (no `died`); idempotent. */
  close(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#failPending(new EslError(EslErrorCode.Closed, 'connection closed by fslb'));
    this.#teardown();
  }

  #call(what: string, timeoutMs: number, send: (done: (value: string) => void) => void): Promise<string> {
    if (this.#ended)
      return Promise.reject(new EslError(EslErrorCode.Closed, `${what}: connection already ended`));
    return new Promise<string>((resolve, reject) => {
      const settle = (err: EslError | undefined, value = ''): void => {
        if (!this.#pending.delete(onDeath)) return;
        cancel();
        if (err) reject(err);
        else resolve(value);
      };
      const onDeath = (err: EslError): void => settle(err);
      this.#pending.add(onDeath);
      const cancel = deadline(timeoutMs, () => {
        const err = new EslError(EslErrorCode.Timeout, `${what}: no answer within ${timeoutMs} ms`);
        settle(err);
        this.#die(err);
      });
      send((value) => settle(undefined, value));
    });
  }

  #dispatch(ev: EslEvent): void {
    const name = ev.getHeader('Event-Name');
    if (!name) return;
    const message: EslEventMessage = { name, header: (h) => ev.getHeader(h) ?? undefined };
    try {
      this.emit('event', message);
    } catch (err) {
      this.#log.error({ err, event: name }, 'ESL event listener threw');
    }
  }

  #die(err: EslError): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#failPending(err);
    this.#teardown();
    try {
      this.emit('died', err);
    } catch (listenerErr) {
      this.#log.error({ err: listenerErr }, 'ESL died listener threw');
    }
  }

  #failPending(err: EslError): void {
    // Each one takes itself out of the set as it settles (a command already out of it has
    // settled): clearing the set first left every pending command unsettled, and whatever
    // awaited one (a channel reconcile) waited for ever.
    for (const p of [...this.#pending]) p(err);
  }

  #teardown(): void {
    this.#socket.destroy();
    this.#conn.removeAllListeners();
    // Late socket errors after teardown have nowhere useful to go.
    this.#conn.on('error', () => undefined);
  }
}

/** Wraps the socket's data listeners so that a throw inside one becomes an 'error' event. */
function guardDataListeners(socket: Socket, onThrow: (err: Error) => void): void {
  const listeners = socket.listeners('data') as ((chunk: Buffer) => void)[];
  socket.removeAllListeners('data');
  for (const l of listeners) {
    socket.on('data', (chunk: Buffer) => {
      try {
        l(chunk);
      } catch (err) {
        onThrow(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }
}

function firstLine(s: string | undefined): string {
  return (s ?? '').split('\n').find((l) => l.trim() !== '') ?? '';
}
