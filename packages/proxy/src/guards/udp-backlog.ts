/**
 * What the kernel holds for drachtio-server's UDP SIP sockets: the bytes waiting to be read and
 * the datagrams dropped because the receive buffer was full, from Linux's /proc/net/udp and
 * /proc/net/udp6 (readable by any process in the same network namespace, no privilege).
 *
 * drachtio-server reads its SIP sockets on one thread. When that thread falls behind, requests
 * and responses wait in the socket's receive buffer, where no app can see them: this is the only
 * place their wait shows before the buffer fills and the kernel starts dropping them.
 */
import { readFileSync } from 'node:fs';

export interface UdpBacklog {
  /** Sockets found bound to the ports asked for. */
  sockets: number;
  /** Bytes waiting in their receive buffers, as the kernel counts them (each datagram's whole buffer). */
  queuedBytes: number;
  /** Datagrams the kernel has dropped at them since each was opened. */
  drops: number;
}

export const PROC_NET_UDP = ['/proc/net/udp', '/proc/net/udp6'] as const;

/**
 * The UDP ports in the hostports drachtio-server sends when an app connects
 * (`udp/10.0.0.1:5060,tcp/10.0.0.1:5060`, IPv6 as `udp/[::1]:5060`).
 */
export function udpPorts(hostports: string): number[] {
  return [...new Set(udpHostports(hostports).map((h) => h.port))];
}

/** The UDP entries of those hostports, in order: the address as written (IPv6 unbracketed) and the port. */
export function udpHostports(hostports: string): { address: string; port: number }[] {
  const out: { address: string; port: number }[] = [];
  for (const hp of hostports.split(',')) {
    const slash = hp.indexOf('/');
    if (slash < 0 || hp.slice(0, slash).trim().toLowerCase() !== 'udp') continue;
    const rest = hp.slice(slash + 1).trim();
    const colon = rest.lastIndexOf(':');
    const port = Number(rest.slice(colon + 1));
    if (colon < 0 || !Number.isInteger(port) || port <= 0 || port >= 65536) continue;
    const address = rest.slice(0, colon);
    out.push({ address: address.startsWith('[') ? address.slice(1, -1) : address, port });
  }
  return out;
}

/**
 * Adds up the sockets of one /proc/net/udp{,6} text bound to any of `ports`, whatever their
 * address (drachtio-server may advertise an address other than the one it binds). Columns:
 * `sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ref pointer drops`,
 * numbers in hex except the last ones.
 */
export function addUdpBacklog(text: string, ports: ReadonlySet<number>, into: UdpBacklog): void {
  // Only lines naming one of the ports are split: a host with many sockets (media on the same
  // machine) has thousands of lines.
  const marks = [...ports].map((p) => `:${p.toString(16).toUpperCase().padStart(4, '0')} `);
  for (const line of text.split('\n')) {
    if (!marks.some((m) => line.includes(m))) continue;
    const f = line.trim().split(/\s+/);
    const local = f[1];
    const queues = f[4];
    if (local === undefined || queues === undefined || f.length < 13) continue;
    const port = Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16);
    if (!ports.has(port)) continue;
    const queued = Number.parseInt(queues.slice(queues.indexOf(':') + 1), 16);
    const drops = Number(f[12]);
    into.sockets++;
    if (Number.isFinite(queued)) into.queuedBytes += queued;
    if (Number.isFinite(drops)) into.drops += drops;
  }
}

/** The backlog of every UDP socket bound to `ports` in this network namespace. */
export function readUdpBacklog(
  ports: ReadonlySet<number>,
  files: readonly string[] = PROC_NET_UDP,
): UdpBacklog {
  const out: UdpBacklog = { sockets: 0, queuedBytes: 0, drops: 0 };
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'latin1');
    } catch {
      continue; // no IPv6 in this kernel or namespace
    }
    addUdpBacklog(text, ports, out);
  }
  return out;
}

/** The receive buffer a UDP socket gets unless its program asks for another (net.core.rmem_default). */
export function defaultReceiveBuffer(file = '/proc/sys/net/core/rmem_default'): number | undefined {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}
