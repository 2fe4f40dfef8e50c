import { createSocket, type Socket } from 'node:dgram';

/** A datagram as received: its text and where it came from. */
export interface Datagram {
  text: string;
  from: { address: string; port: number };
}

/** A bare UDP socket for SIP wire tests: sends text as given, queues what arrives. */
export class RawSip {
  private readonly queue: Datagram[] = [];
  private waiters: (() => void)[] = [];

  private constructor(private readonly socket: Socket) {
    socket.on('message', (bytes, rinfo) => {
      this.queue.push({ text: bytes.toString('latin1'), from: { address: rinfo.address, port: rinfo.port } });
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
  }

  static async open(): Promise<RawSip> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind({ port: 0, address: '127.0.0.1' }, resolve));
    return new RawSip(socket);
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(text: string, port: number, host = '127.0.0.1'): void {
    this.socket.send(Buffer.from(text, 'latin1'), port, host);
  }

  /** The next datagram (optionally the next one matching `match`); rejects after `timeoutMs`. */
  async next(timeoutMs = 3000, match: (d: Datagram) => boolean = () => true): Promise<Datagram> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.queue.findIndex(match);
      if (i >= 0) return this.queue.splice(i, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no datagram within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Datagrams received and not yet taken. */
  get waiting(): number {
    return this.queue.length;
  }

  close(): void {
    this.socket.close();
  }
}

/** The status code of a response text, or 0 for a request. */
export function statusOf(text: string): number {
  const m = /^SIP\/2\.0 (\d{3}) /.exec(text);
  return m ? Number(m[1]) : 0;
}

/** The first value of a header (long name, case-insensitive) in a message text. */
export function headerOf(text: string, name: string): string | undefined {
  const head = text.split('\r\n\r\n')[0] ?? '';
  const re = new RegExp(`^${name}[ \\t]*:[ \\t]*(.*)$`, 'im');
  return re.exec(head)?.[1]?.trim();
}

/** Every value of a header in a message text. */
export function headersOf(text: string, name: string): string[] {
  const head = text.split('\r\n\r\n')[0] ?? '';
  const re = new RegExp(`^${name}[ \\t]*:[ \\t]*(.*)$`, 'gim');
  return [...head.matchAll(re)].map((m) => (m[1] ?? '').trim());
}
