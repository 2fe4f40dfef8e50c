import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';

import type { SwitchCore } from '../core/switch-core.js';
import { EVENT_NAMES, eventNameOf } from '../event/event-names.js';
import type { FsEvent } from '../event/fs-event.js';
import type { ApiResult } from './api-commands.js';
import { CommandReader, commandHeader, type EslCommand } from './command-reader.js';
import {
  apiResponse,
  AUTH_REQUEST,
  commandReply,
  commandReplyWith,
  disconnectNotice,
  eventFrame,
  GOODBYE,
  rudeRejection,
  type EventFormat,
} from './esl-frames.js';

/** What one ESL connection needs from the server that accepted it. */
export interface EslHost {
  core(): SwitchCore;
  password(): string;
  /** Every `auth` is answered `-ERR invalid`. */
  refusingAuth(): boolean;
  /** Nothing is read, answered or sent while true. */
  stalled(): boolean;
  whenUnstalled(): Promise<void>;
  api(command: string, arg: string | undefined): ApiResult;
  /** Reports each command received (the password of `auth` masked). */
  commandSeen(line: string): void;
  /** The connection is gone. */
  closed(client: EslClient): void;
}

interface Filter {
  header: string;
  value: string;
}

const LOG_LEVELS: Record<string, number> = {
  console: 0,
  alert: 1,
  crit: 2,
  err: 3,
  error: 3,
  warning: 4,
  notice: 5,
  info: 6,
  debug: 7,
};

/**
 * One inbound Event Socket connection, answering as mod_event_socket's listener does: the
 * `auth/request` greeting, authentication, `event`/`nixevent`/`noevents`/`filter`, `api`,
 * `bgapi`, `log`/`nolog`, `exit`, and delivery of the events it subscribed to. Commands run one
 * at a time in arrival order; `api` blocks the next command until it has answered, as in
 * FreeSWITCH. Reference: src/mod/event_handlers/mod_event_socket/mod_event_socket.c
 * (`parse_command`, `listener_run`, `event_handler`), https://github.com/signalwire/freeswitch.
 */
export class EslClient {
  private readonly reader = new CommandReader();
  private readonly queue: EslCommand[] = [];
  private processing = false;
  private greeted = false;
  private authed = false;
  private running = true;
  private listening = false;
  private allEvents = false;
  private readonly events = new Set<string>();
  private readonly customSubclasses = new Set<string>();
  private format: EventFormat = 'plain';
  private readonly filters: Filter[] = [];
  private logging = false;
  /** Frames produced while stalled, written when the stall ends. */
  private held: string[] = [];

  constructor(
    readonly socket: Socket,
    private readonly host: EslHost,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.running = false;
      host.closed(this);
    });
  }

  /** Sends the greeting, or the ACL refusal; held back while stalled. */
  start(rejectByAcl: boolean): void {
    if (rejectByAcl) {
      this.running = false;
      this.write(rudeRejection());
      this.goodbye(GOODBYE);
      return;
    }
    if (this.host.stalled()) {
      this.socket.pause();
      return;
    }
    this.greet();
  }

  /** The stall is over: greet if not done yet, flush what was held, read again. */
  unstall(): void {
    if (this.socket.destroyed) return;
    if (!this.greeted && this.running) this.greet();
    const held = this.held;
    this.held = [];
    for (const frame of held) this.socket.write(frame);
    this.socket.resume();
    void this.drain();
  }

  stall(): void {
    this.socket.pause();
  }

  /** Writes the event if this connection subscribed to it and its filters let it through. */
  deliver(event: FsEvent): void {
    if (!this.running || !this.authed || !this.listening) return;
    if (!this.subscribedTo(event) || !this.passesFilters(event)) return;
    this.write(eventFrame(event, this.format));
  }

  /** Writes raw bytes (faults, notices). */
  write(frame: string): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    if (this.host.stalled()) {
      this.held.push(frame);
      return;
    }
    this.socket.write(frame);
  }

  /** The disconnect notice with `message`, then a clean close (FIN). */
  goodbye(message: string): void {
    this.running = false;
    this.write(disconnectNotice(message));
    this.socket.end();
  }

  /** Read through calls, so that awaits in between are not narrowed away. */
  private isRunning(): boolean {
    return this.running;
  }

  private isOpen(): boolean {
    return !this.socket.destroyed;
  }

  private greet(): void {
    this.greeted = true;
    this.write(AUTH_REQUEST);
  }

  private onData(chunk: Buffer): void {
    if (!this.running) return;
    const commands = this.reader.push(chunk);
    if (commands === 'overflow') {
      this.running = false;
      this.socket.destroy();
      return;
    }
    this.queue.push(...commands);
    void this.drain();
  }

  private async drain(): Promise<void> {
    if (this.processing) return;
    this.processing = true;
    try {
      for (;;) {
        if (this.host.stalled()) await this.host.whenUnstalled();
        const command = this.queue.shift();
        if (command === undefined || !this.running || this.socket.destroyed) break;
        try {
          await this.handle(command);
        } catch {
          // A command the simulator cannot handle ends the connection rather than the process.
          this.socket.destroy();
          break;
        }
        if (!this.isRunning() && this.isOpen()) {
          this.goodbye(GOODBYE);
          break;
        }
      }
    } finally {
      this.processing = false;
    }
  }

  /** One command, in mod_event_socket's order of prefix checks. */
  private async handle(command: EslCommand): Promise<void> {
    const line = command.line;
    this.host.commandSeen(/^auth /i.test(line) ? 'auth ********' : line);
    const is = (prefix: string): boolean => line.slice(0, prefix.length).toLowerCase() === prefix;

    if (is('exit') || is('...')) {
      this.running = false;
      this.reply('+OK bye');
      return;
    }
    if (!this.authed) {
      if (is('auth ')) {
        if (!this.host.refusingAuth() && line.slice(5) === this.host.password()) {
          this.authed = true;
          this.reply('+OK accepted');
        } else {
          this.running = false;
          this.reply('-ERR invalid');
        }
        return;
      }
      if (is('userauth ')) {
        this.running = false;
        this.reply('-ERR invalid');
        return;
      }
      this.reply('-ERR command not found');
      return;
    }
    if (is('filter ')) {
      this.filter(line.slice(7));
      return;
    }
    if (is('api ')) {
      await this.api(line.slice(4));
      return;
    }
    if (is('bgapi ')) {
      this.bgapi(line.slice(6), commandHeader(command, 'job-uuid'));
      return;
    }
    if (is('log')) {
      const level = line.slice(3).replace(/^ +/, '').split(' ')[0] ?? '';
      const n = level === '' ? 7 : /^[0-7]$/.test(level) ? Number(level) : LOG_LEVELS[level.toLowerCase()];
      if (n === undefined) {
        this.reply('-ERR invalid log level');
      } else {
        this.logging = true;
        this.reply(`+OK log level ${level} [${n}]`);
      }
      return;
    }
    if (is('myevents') || is('divert_events') || is('sendmsg') || is('sendevent')) {
      this.reply(`-ERR fs-sim does not model ${line.split(' ')[0] ?? ''}`);
      return;
    }
    if (is('linger') || is('nolinger')) {
      this.reply('-ERR not controlling a session');
      return;
    }
    if (is('nolog')) {
      this.reply(this.logging ? '+OK no longer logging' : '-ERR not loging');
      this.logging = false;
      return;
    }
    if (is('event')) {
      this.subscribe(line.slice(5));
      return;
    }
    if (is('nixevent')) {
      this.unsubscribe(line.slice(8));
      return;
    }
    if (is('noevents')) {
      if (this.listening) {
        this.listening = false;
        this.allEvents = false;
        this.events.clear();
        this.customSubclasses.clear();
        this.reply('+OK no longer listening for events');
      } else {
        this.reply('-ERR not listening for events');
      }
      return;
    }
    this.reply('-ERR command not found');
  }

  private reply(text: string): void {
    this.write(commandReply(text));
  }

  private async api(rest: string): Promise<void> {
    const [command, arg] = splitCommand(rest);
    let result = this.host.api(command, arg);
    if (result instanceof Promise) result = await result.catch((err: unknown) => `-ERR ${String(err)}\n`);
    let body = result ?? `-ERR ${command} Command not found!\n`;
    if (body === '') body = '-ERR no reply\n';
    this.write(apiResponse(body));
  }

  private bgapi(rest: string, jobUuid: string | undefined): void {
    const [command, arg] = splitCommand(rest);
    const uuid = jobUuid ?? randomUUID();
    this.write(commandReplyWith(`+OK Job-UUID: ${uuid}`, [['Job-UUID', uuid]]));
    const core = this.host.core();
    setImmediate(() => {
      void (async () => {
        let result = this.host.api(command, arg);
        if (result instanceof Promise) result = await result.catch((err: unknown) => `-ERR ${String(err)}\n`);
        const event = core
          .newEvent('BACKGROUND_JOB')
          .addHeader('Job-UUID', uuid)
          .addHeader('Job-Owner-UUID', '')
          .addHeader('Job-Command', command);
        if (arg !== undefined) event.addHeader('Job-Command-Arg', arg);
        event.body = result === undefined || result === '' ? `-ERR ${command} Command not found!\n` : result;
        core.fire(event);
      })();
    });
  }

  /** `event [plain|json|xml] NAME...`: adds to the subscription; the format word sets the format. */
  private subscribe(rest: string): void {
    const words = wordsAfterCommand(rest);
    let keys = 0;
    let custom = false;
    words.forEach((word, i) => {
      if (i === 0 && ['plain', 'json', 'xml'].includes(word.toLowerCase())) {
        this.format = word.toLowerCase() as EventFormat;
        return;
      }
      if (custom) {
        this.customSubclasses.add(word);
        return;
      }
      const name = eventNameOf(word);
      if (name === undefined) return;
      keys++;
      if (name === 'ALL') this.allEvents = true;
      this.events.add(name);
      if (name === 'CUSTOM') custom = true;
    });
    if (keys === 0) {
      this.reply('-ERR no keywords supplied');
      return;
    }
    this.listening = true;
    this.reply(`+OK event listener enabled ${this.format}`);
  }

  private unsubscribe(rest: string): void {
    const words = wordsAfterCommand(rest);
    let keys = 0;
    let custom = false;
    for (const word of words) {
      if (custom) {
        this.customSubclasses.delete(word);
        continue;
      }
      const name = eventNameOf(word);
      if (name === undefined) continue;
      keys++;
      if (name === 'CUSTOM') {
        custom = true;
      } else if (name === 'ALL') {
        this.allEvents = false;
        this.events.clear();
      } else {
        if (this.allEvents) {
          this.allEvents = false;
          for (const n of EVENT_NAMES) if (n !== 'ALL') this.events.add(n);
        }
        this.events.delete(name);
      }
    }
    if (keys === 0) {
      this.reply('-ERR no keywords supplied');
      return;
    }
    this.listening = true;
    this.reply('+OK events nixed');
  }

  /** `filter <header> <value>`, `filter delete <header> [<value>]`, `filter delete all`. */
  private filter(rest: string): void {
    const trimmed = rest.replace(/^ +/, '');
    const space = trimmed.indexOf(' ');
    const header = space < 0 ? trimmed : trimmed.slice(0, space);
    let value = space < 0 ? undefined : trimmed.slice(space + 1);
    if (header.toLowerCase() === 'delete' && value !== undefined) {
      const s = value.indexOf(' ');
      const name = s < 0 ? value : value.slice(0, s);
      const v = s < 0 ? undefined : value.slice(s + 1);
      if (name.toLowerCase() === 'all') {
        this.filters.length = 0;
      } else {
        for (let i = this.filters.length - 1; i >= 0; i--) {
          const f = this.filters[i];
          if (f && f.header.toLowerCase() === name.toLowerCase() && (v === undefined || f.value === v)) {
            this.filters.splice(i, 1);
          }
        }
      }
      this.reply(`+OK filter deleted. [${name}][${v ?? ''}]`);
      return;
    }
    if (value === undefined) {
      this.reply('-ERR invalid syntax');
      return;
    }
    let name = header;
    if (header.toLowerCase() === 'add') {
      const s = value.indexOf(' ');
      name = s < 0 ? value : value.slice(0, s);
      value = s < 0 ? '' : value.slice(s + 1);
    }
    this.filters.push({ header: name, value });
    this.reply(`+OK filter added. [${name}]=[${value}]`);
  }

  private subscribedTo(event: FsEvent): boolean {
    if (this.allEvents) return true;
    if (!this.events.has(event.name)) return false;
    if (event.name !== 'CUSTOM') return true;
    const subclass = event.getHeader('Event-Subclass');
    return subclass === undefined || this.customSubclasses.has(subclass);
  }

  /** mod_event_socket's filter rule: with filters set, an event must match one (`-` excludes). */
  private passesFilters(event: FsEvent): boolean {
    if (this.filters.length === 0) return true;
    let send = false;
    for (const f of this.filters) {
      const actual = event.getHeader(f.header);
      if (actual === undefined) continue;
      let compareTo = f.value;
      let positive = true;
      while (compareTo.length > 0 && '+- '.includes(compareTo[0] ?? '')) {
        if (compareTo[0] === '+') positive = true;
        else if (compareTo[0] === '-') positive = false;
        compareTo = compareTo.slice(1);
      }
      if (send && positive) continue;
      const match = f.value.startsWith('/')
        ? safeRegex(compareTo.replace(/^\/|\/$/g, ''))?.test(actual) === true
        : actual.toLowerCase() === compareTo.toLowerCase();
      if (match) {
        if (positive) send = true;
        else return false;
      }
    }
    return send;
  }
}

/** The words after the command word (`event plain A B` → plain, A, B), as FreeSWITCH splits them. */
function wordsAfterCommand(rest: string): string[] {
  const space = rest.indexOf(' ');
  return space < 0 ? [] : rest.slice(space + 1).split(' ');
}

function splitCommand(rest: string): [string, string | undefined] {
  const space = rest.indexOf(' ');
  return space < 0 ? [rest, undefined] : [rest.slice(0, space), rest.slice(space + 1)];
}

function safeRegex(source: string): RegExp | undefined {
  try {
    return new RegExp(source);
  } catch {
    return undefined;
  }
}
