import esl, { type Connection, type EslEvent } from 'modesl';

import { within } from '../../support/wait.js';

/**
 * Promise helpers over the real modesl client, each with a time limit (modesl has none and
 * leaves callbacks pending forever on a lost socket).
 */
export interface ModeslClient {
  conn: Connection;
  /** Every event received, in order. */
  events: EslEvent[];
  api(command: string, timeoutMs?: number): Promise<string>;
  bgapi(command: string, timeoutMs?: number): Promise<EslEvent>;
  send(command: string, timeoutMs?: number): Promise<EslEvent>;
  /** The next event named `name` (after those already seen) matching `predicate`. */
  nextEvent(name: string, predicate?: (e: EslEvent) => boolean, timeoutMs?: number): Promise<EslEvent>;
  /** Resolves when modesl reports the end of the connection (FIN). */
  ended: Promise<void>;
  close(): void;
}

/** Connects and authenticates; rejects on auth failure, error or timeout. */
export async function connectModesl(
  port: number,
  password = 'ClueCon',
  host = '127.0.0.1',
): Promise<ModeslClient> {
  let conn: Connection | undefined;
  const events: EslEvent[] = [];
  const watchers = new Set<(e: EslEvent) => void>();
  let onEnd: () => void = () => undefined;
  const ended = new Promise<void>((resolve) => (onEnd = resolve));
  await within(
    'modesl ready',
    3000,
    new Promise<void>((resolve, reject) => {
      conn = new esl.Connection(host, port, password, () => resolve());
      conn.on('error', (err: Error) => reject(err));
      conn.on('esl::event::auth::fail', () => reject(new Error('auth failed')));
      conn.on('esl::end', () => onEnd());
      conn.on('esl::event::**', (event: EslEvent) => {
        const type = event.getHeader('Content-Type');
        if (type !== null && !type.startsWith('text/event-')) return;
        events.push(event);
        for (const w of watchers) w(event);
      });
    }),
  );
  const c = conn;
  if (!c) throw new Error('no connection');
  const client: ModeslClient = {
    conn: c,
    events,
    ended,
    api: (command, timeoutMs = 3000) =>
      within(
        `api ${command}`,
        timeoutMs,
        new Promise<string>((resolve) => c.api(command, (e) => resolve(e.getBody()))),
      ),
    bgapi: (command, timeoutMs = 3000) =>
      within(
        `bgapi ${command}`,
        timeoutMs,
        new Promise<EslEvent>((resolve) => c.bgapi(command, (e) => resolve(e))),
      ),
    send: (command, timeoutMs = 3000) =>
      within(command, timeoutMs, new Promise<EslEvent>((resolve) => c.sendRecv(command, (e) => resolve(e)))),
    nextEvent: (name, predicate = () => true, timeoutMs = 3000) => {
      const start = events.length;
      return within(
        `event ${name}`,
        timeoutMs,
        new Promise<EslEvent>((resolve) => {
          const seen = events.slice(start).find((e) => e.getHeader('Event-Name') === name && predicate(e));
          if (seen) {
            resolve(seen);
            return;
          }
          const w = (e: EslEvent): void => {
            if (e.getHeader('Event-Name') === name && predicate(e)) {
              watchers.delete(w);
              resolve(e);
            }
          };
          watchers.add(w);
        }),
      );
    },
    close: () => {
      c.removeAllListeners();
      c.on('error', () => undefined);
      c.socket?.destroy();
    },
  };
  return client;
}
