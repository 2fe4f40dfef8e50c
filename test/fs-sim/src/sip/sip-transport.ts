import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, type Server, type Socket } from 'node:net';

import { SipStreamFramer } from './sip-codec.js';

/** Where a message came from, or where one goes. */
export interface Peer {
  transport: 'udp' | 'tcp';
  address: string;
  port: number;
  /** The TCP connection a request arrived on; responses go back on it. */
  socket?: Socket;
}

/**
 * UDP and TCP on one port (RFC 3261 §18): datagrams are whole messages; TCP streams are cut by
 * Content-Length. Outgoing TCP reuses the connection a peer opened, or opens one.
 */
export class SipTransport {
  private udp: UdpSocket | undefined;
  private tcp: Server | undefined;
  private readonly connections = new Set<Socket>();
  private readonly outbound = new Map<string, Socket>();

  constructor(private readonly onMessage: (bytes: Buffer, peer: Peer) => void) {}

  /** Binds UDP, then TCP on the same port; with port 0 both share the one UDP picked. */
  async listen(host: string, port: number): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      const udp = createSocket('udp4');
      udp.on('message', (bytes, rinfo) =>
        this.onMessage(bytes, { transport: 'udp', address: rinfo.address, port: rinfo.port }),
      );
      udp.on('error', () => undefined);
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind({ port, address: host, exclusive: true }, () => {
          udp.off('error', reject);
          resolve();
        });
      });
      const bound = udp.address().port;
      const tcp = createServer((socket) => this.accept(socket));
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen({ port: bound, host }, () => {
            tcp.off('error', reject);
            resolve();
          });
        });
      } catch (err) {
        udp.close();
        if (port === 0 && attempt < 10) continue;
        throw err;
      }
      this.udp = udp;
      this.tcp = tcp;
      return bound;
    }
  }

  send(bytes: Buffer, peer: Peer): void {
    if (peer.transport === 'udp') {
      this.udp?.send(bytes, peer.port, peer.address);
      return;
    }
    let socket = peer.socket && !peer.socket.destroyed ? peer.socket : undefined;
    const key = `${peer.address}:${peer.port}`;
    if (!socket) {
      const known = this.outbound.get(key);
      socket = known && !known.destroyed ? known : undefined;
    }
    if (!socket) {
      if (!this.tcp) return;
      socket = connect({ host: peer.address, port: peer.port });
      this.outbound.set(key, socket);
      this.accept(socket);
    }
    socket.write(bytes);
  }

  async close(): Promise<void> {
    const udp = this.udp;
    const tcp = this.tcp;
    this.udp = undefined;
    this.tcp = undefined;
    for (const s of this.connections) s.destroy();
    this.connections.clear();
    this.outbound.clear();
    if (udp) await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (tcp) await new Promise<void>((resolve) => tcp.close(() => resolve()));
  }

  /** Everything at once, TCP connections reset. */
  crash(): void {
    for (const s of this.connections) s.resetAndDestroy();
    this.connections.clear();
    this.outbound.clear();
    this.udp?.close();
    this.tcp?.close();
    this.udp = undefined;
    this.tcp = undefined;
  }

  private accept(socket: Socket): void {
    this.connections.add(socket);
    const framer = new SipStreamFramer();
    socket.on('error', () => undefined);
    socket.on('close', () => this.connections.delete(socket));
    socket.on('data', (chunk: Buffer) => {
      const messages = framer.push(chunk);
      if (messages === 'overflow') {
        socket.destroy();
        return;
      }
      for (const m of messages) {
        this.onMessage(m, {
          transport: 'tcp',
          address: socket.remoteAddress ?? '',
          port: socket.remotePort ?? 0,
          socket,
        });
      }
    });
  }
}
