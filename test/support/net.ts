import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';

/**
 * The first port of the kernel's ephemeral range (32768 unless set otherwise): ports below it
 * are never handed to outgoing connections, so one found free there stays free until something
 * binds it on purpose. A port from the ephemeral range itself (what binding port 0 gives) can be
 * taken by any connection opened meanwhile, and a process told to listen on it fails with
 * EADDRINUSE (seen once in a benchmark's fleet of proxies).
 */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 21_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}
const LOW = 20_000;
const HIGH = ephemeralLow();

function tryListen(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(undefined));
    srv.listen(port, '127.0.0.1', () => {
      const addr = srv.address();
      const got = typeof addr === 'object' && addr ? addr.port : undefined;
      srv.close(() => resolve(got));
    });
  });
}

/**
 * A TCP port free on loopback at the moment of asking, below the ephemeral range (a random one
 * of 20000 up to it, so that tests running at once rarely pick the same); a kernel-chosen one if
 * none of a few tries is free.
 */
export async function freeTcpPort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await tryListen(LOW + Math.floor(Math.random() * (HIGH - LOW)));
    if (port !== undefined) return port;
  }
  return (await tryListen(0)) ?? 0;
}

/** Whether something accepts TCP connections on a loopback port. */
export function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** A UDP port free on loopback at the moment of asking. */
export async function freeUdpPort(): Promise<number> {
  const { createSocket } = await import('node:dgram');
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
