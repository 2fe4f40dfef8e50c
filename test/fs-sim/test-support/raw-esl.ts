import { connect, type Socket } from 'node:net';

/** One frame as FreeSWITCH wrote it: its headers (values raw) and its body. */
export interface RawFrame {
  headers: Map<string, string>;
  body: string;
  /** The exact bytes of the frame. */
  raw: Buffer;
}

/**
 * A byte-level Event Socket client for wire tests: sends command text as given and cuts what
 * comes back into frames (headers to the blank line, then Content-Length bytes).
 */
export class RawEsl {
  private buffer: Buffer = Buffer.alloc(0);
  private readonly frames: RawFrame[] = [];
  private waiters: (() => void)[] = [];
  private ended = false;
  private errored: NodeJS.ErrnoException | undefined;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.cut();
      this.wake();
    });
    socket.on('error', (err) => {
      this.errored = err;
    });
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        this.ended = true;
        this.wake();
        resolve();
      }),
    );
  }

  static async connect(port: number, host = '127.0.0.1'): Promise<RawEsl> {
    const socket = connect({ port, host });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawEsl(socket);
  }

  /** Connects, reads the greeting and authenticates. */
  static async authed(port: number, password = 'ClueCon'): Promise<RawEsl> {
    const c = await RawEsl.connect(port);
    await c.next();
    c.send(`auth ${password}`);
    const reply = await c.next();
    if (reply.headers.get('Reply-Text') !== '+OK accepted') throw new Error('auth failed');
    return c;
  }

  /** Writes `command` followed by a blank line. */
  send(command: string): void {
    this.socket.write(`${command}\n\n`);
  }

  write(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  /** The next frame; rejects after `timeoutMs` or when the connection ends first. */
  async next(timeoutMs = 3000): Promise<RawFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = this.frames.shift();
      if (frame) return frame;
      if (this.ended)
        throw new Error(
          `connection closed while waiting for a frame${this.errored ? ` (${this.errored.message})` : ''}`,
        );
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The next frame whose Content-Type is `type`, skipping others (events, for instance). */
  async nextOfType(type: string, timeoutMs = 3000): Promise<RawFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = await this.next(Math.max(1, deadline - Date.now()));
      if (frame.headers.get('Content-Type') === type) return frame;
    }
  }

  /** Bytes received that do not yet make a whole frame. */
  get pendingBytes(): number {
    return this.buffer.length;
  }

  get isClosed(): boolean {
    return this.ended;
  }

  /** Whether the connection ended with a reset rather than a close. */
  get wasReset(): boolean {
    return this.errored?.code === 'ECONNRESET';
  }

  close(): void {
    this.socket.destroy();
  }

  private cut(): void {
    for (;;) {
      const end = this.buffer.indexOf('\n\n');
      if (end < 0) return;
      const head = this.buffer.subarray(0, end).toString('utf8');
      const headers = new Map<string, string>();
      for (const line of head.split('\n')) {
        const i = line.indexOf(': ');
        if (i > 0) headers.set(line.slice(0, i), line.slice(i + 2));
      }
      const length = Number(headers.get('Content-Length') ?? 0);
      const total = end + 2 + length;
      if (this.buffer.length < total) return;
      const raw = this.buffer.subarray(0, total);
      this.frames.push({ headers, body: raw.subarray(end + 2).toString('utf8'), raw });
      this.buffer = this.buffer.subarray(total);
    }
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** Parses a text/event-plain body into decoded headers, as a client would. */
export function parsePlainEvent(body: string): Map<string, string> {
  const end = body.indexOf('\n\n');
  const head = end < 0 ? body : body.slice(0, end);
  const headers = new Map<string, string>();
  for (const line of head.split('\n')) {
    const i = line.indexOf(': ');
    if (i > 0) headers.set(line.slice(0, i), decodeURIComponent(line.slice(i + 2)));
  }
  return headers;
}
