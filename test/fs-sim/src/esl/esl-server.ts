import { createServer, type Server, type Socket } from 'node:net';

import type { SwitchCore } from '../core/switch-core.js';
import type { FsEvent } from '../event/fs-event.js';
import type { ApiResult } from './api-commands.js';
import { EslClient, type EslHost } from './esl-client.js';
import { malformedFrame, type MalformedKind } from './esl-frames.js';

/** How long `close()` waits for a client to close its side before destroying the socket. */
const CLOSE_LINGER_MS = 200;

/** What the ESL listener needs from its node. */
export interface EslServerHost {
  core(): SwitchCore;
  password(): string;
  api(command: string, arg: string | undefined): ApiResult;
  commandSeen(line: string): void;
  clientsChanged(count: number): void;
}

/**
 * The inbound Event Socket listener (mod_event_socket's TCP side): accepts clients, fans events
 * out to them, and carries the faults a test can inject.
 */
export class EslServer {
  private server: Server | undefined;
  private readonly clients = new Set<EslClient>();
  private stallWaiters: (() => void)[] = [];
  private isStalled = false;
  /** Answer every `auth` with `-ERR invalid`. */
  refuseAuth = false;
  /** Refuse each new connection with `text/rude-rejection`, as an ACL would. */
  aclReject = false;

  constructor(
    private readonly host: EslServerHost,
    private readonly bindHost: string,
  ) {}

  get clientCount(): number {
    return this.clients.size;
  }

  get stalled(): boolean {
    return this.isStalled;
  }

  /** Listens on `port` (0 = ephemeral); resolves with the bound port. */
  async listen(port: number): Promise<number> {
    const server = createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host: this.bindHost }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('ESL listener has no port');
    return address.port;
  }

  deliver(event: FsEvent): void {
    for (const client of this.clients) client.deliver(event);
  }

  stall(): void {
    this.isStalled = true;
    for (const client of this.clients) client.stall();
  }

  unstall(): void {
    if (!this.isStalled) return;
    this.isStalled = false;
    const waiters = this.stallWaiters;
    this.stallWaiters = [];
    for (const w of waiters) w();
    for (const client of this.clients) client.unstall();
  }

  /** Destroys every client socket; the listener stays open. */
  drop(): void {
    for (const client of this.clients) client.socket.destroy();
  }

  sendMalformed(kind: MalformedKind): void {
    const frame = malformedFrame(kind, this.host.core().coreUuid);
    for (const client of this.clients) client.write(frame);
  }

  /** Sends each client the disconnect notice and closes it; resolves when all are gone. */
  async goodbyeAll(message: string): Promise<void> {
    const clients = [...this.clients];
    for (const client of clients) client.goodbye(message);
    await closedOrDestroyed(clients.map((c) => c.socket));
  }

  /** Stops listening and ends every client (FIN, no notice; destroyed if it lingers). */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    const sockets = [...this.clients].map((c) => c.socket);
    for (const socket of sockets) socket.end();
    await closedOrDestroyed(sockets);
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    this.unstall();
  }

  /** Everything at once: resets every client (RST) and drops the listener. */
  crash(): void {
    for (const client of this.clients) client.socket.resetAndDestroy();
    this.clients.clear();
    this.host.clientsChanged(0);
    this.server?.close();
    this.server = undefined;
    this.isStalled = false;
    const waiters = this.stallWaiters;
    this.stallWaiters = [];
    for (const w of waiters) w();
  }

  private accept(socket: Socket): void {
    const host: EslHost = {
      core: () => this.host.core(),
      password: () => this.host.password(),
      refusingAuth: () => this.refuseAuth,
      stalled: () => this.isStalled,
      whenUnstalled: () =>
        this.isStalled ? new Promise<void>((resolve) => this.stallWaiters.push(resolve)) : Promise.resolve(),
      api: (command, arg) => this.host.api(command, arg),
      commandSeen: (line) => this.host.commandSeen(line),
      closed: (client) => {
        if (this.clients.delete(client)) this.host.clientsChanged(this.clients.size);
      },
    };
    const client = new EslClient(socket, host);
    this.clients.add(client);
    this.host.clientsChanged(this.clients.size);
    client.start(this.aclReject);
  }
}

/** Waits for the sockets to close; any still open after CLOSE_LINGER_MS is destroyed. */
async function closedOrDestroyed(sockets: Socket[]): Promise<void> {
  const linger = setTimeout(() => {
    for (const socket of sockets) socket.destroy();
  }, CLOSE_LINGER_MS);
  await Promise.all(
    sockets.map((socket) =>
      socket.closed
        ? Promise.resolve()
        : new Promise<void>((resolve) => socket.once('close', () => resolve())),
    ),
  );
  clearTimeout(linger);
}
