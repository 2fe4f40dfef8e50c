/**
 * Learns how fast drachtio-server works through its UDP SIP queue, so that a backlog in bytes
 * reads as the wait it means. The same backlog is a short wait on a fast host with a busy chain and
 * a long one on a slow host: measured on one 2-core VM with record-routing, 1.7 MB queued behind a
 * bare app that completed every call, where a fixed mark of 1-2 MiB cut half of a step that the
 * chain carried.
 *
 * While the backlog is past the low mark, the probe sends drachtio-server an OPTIONS from a UDP
 * socket of its own, one at a time and at most four a second, noting the bytes queued ahead of it. drachtio-server hands the
 * OPTIONS to this proxy, whose router answers it at once (`isProbe`), and the 200 comes back here:
 * the bytes ahead over the round trip is the rate the queue drains at (bytes per ms). The round
 * trip holds drachtio-server's and this proxy's own turns too, so a rate can only err low: the
 * probe keeps the recent high.
 *
 * A probe that gets no answer (drachtio-server not routing OPTIONS here, an address it does not
 * listen on, a datagram dropped) teaches nothing: the shedder keeps to its byte marks until one is
 * answered.
 */
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import type { Logger } from '@fslb/shared';
import { udpHostports } from './udp-backlog.js';

export interface ProbeTarget {
  address: string;
  port: number;
  family: 4 | 6;
}

/**
 * Where to send probes: the first UDP entry of the hostports drachtio-server sends when an app
 * connects (`udp/10.0.0.1:5060`, IPv6 as `udp/[::1]:5060`); an unspecified address as loopback.
 */
export function probeTarget(hostports: string): ProbeTarget | undefined {
  const first = udpHostports(hostports)[0];
  if (!first) return undefined;
  let address = first.address;
  if (address === '0.0.0.0') address = '127.0.0.1';
  if (address === '::') address = '::1';
  return { address, port: first.port, family: address.includes(':') ? 6 : 4 };
}

/** A probe unanswered this long is taken as lost, and another may go. */
export const PROBE_LOST_MS = 2000;
/**
 * At most one probe leaves in this long. Each is a request drachtio-server's SIP thread handles
 * while it is busiest (the backlog past the low mark), and the rate kept is the recent high over
 * many seconds, which a few probes a second keep up to date.
 */
export const PROBE_GAP_MS = 250;
/**
 * How the highest rate measured forgets, ms. Every error of a probe is a longer round trip (its
 * own turns, a pause of this process), so the rate is the recent high, not an average.
 */
const RATE_TAU_MS = 10_000;

export class QueueProbe {
  /** The Call-ID every probe of this process starts with; secret, so no caller can pass as one. */
  readonly callIdPrefix: string;
  readonly #target: ProbeTarget;
  readonly #log: Logger;
  readonly #now: () => number;
  #socket: Socket | undefined;
  #seq = 0;
  #inFlight: { callId: string; sentAt: number; bytesAhead: number } | undefined;
  #lastSentAt = -Infinity;
  #rate: number | undefined;
  #rateAt = 0;
  #answered = 0;
  #closed = false;

  constructor(opts: { target: ProbeTarget; log: Logger; now?: () => number }) {
    this.#target = opts.target;
    this.#log = opts.log;
    this.#now = opts.now ?? (() => performance.now());
    this.callIdPrefix = `fslb-probe-${randomBytes(8).toString('hex')}-`;
  }

  /** Bytes per ms drachtio-server drains its queue at, learnt from answered probes. */
  get drainBytesPerMs(): number | undefined {
    return this.#rate;
  }

  /** Probes sent so far (metrics, tests). */
  get sent(): number {
    return this.#seq;
  }

  /** Probes answered so far (metrics, tests). */
  get answered(): number {
    return this.#answered;
  }

  /** Whether an OPTIONS is one of this process's probes (the router answers it at once). */
  isProbe(callId: string): boolean {
    return callId.startsWith(this.callIdPrefix);
  }

  /** Opens the probe's socket on loopback (or any address, for a target elsewhere on this host). */
  async open(): Promise<void> {
    const t = this.#target;
    const socket = createSocket(t.family === 6 ? 'udp6' : 'udp4');
    socket.on('message', (msg) => this.#answer(msg));
    // Unconnected: ICMP errors do not reach it, and nothing else should end it.
    socket.on('error', (err) => this.#log.debug({ err }, 'queue probe socket error'));
    const loopback = t.address === '127.0.0.1' || t.address === '::1' || t.address.startsWith('127.');
    const bindTo = loopback ? (t.family === 6 ? '::1' : '127.0.0.1') : t.family === 6 ? '::' : '0.0.0.0';
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, bindTo, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.unref();
    if (this.#closed) socket.close();
    else this.#socket = socket;
  }

  /**
   * Sends a probe behind `bytesAhead` queued bytes (the backlog just read), unless one is still
   * on its way or one left less than PROBE_GAP_MS ago.
   */
  send(bytesAhead: number): void {
    const socket = this.#socket;
    if (!socket) return;
    const now = this.#now();
    if (this.#inFlight && now - this.#inFlight.sentAt < PROBE_LOST_MS) return;
    if (now - this.#lastSentAt < PROBE_GAP_MS) return;
    this.#lastSentAt = now;
    const seq = ++this.#seq;
    const callId = `${this.callIdPrefix}${seq}`;
    this.#inFlight = { callId, sentAt: now, bytesAhead };
    const t = this.#target;
    const local = socket.address();
    const host = (a: string): string => (a.includes(':') ? `[${a}]` : a);
    const text =
      `OPTIONS sip:${host(t.address)}:${t.port} SIP/2.0\r\n` +
      `Via: SIP/2.0/UDP ${host(local.address)}:${local.port};branch=z9hG4bK${callId.slice(5)};rport\r\n` +
      'Max-Forwards: 70\r\n' +
      `From: <sip:fslb-probe@${host(local.address)}>;tag=${seq}\r\n` +
      `To: <sip:${host(t.address)}:${t.port}>\r\n` +
      `Call-ID: ${callId}\r\n` +
      `CSeq: ${seq} OPTIONS\r\n` +
      'Content-Length: 0\r\n\r\n';
    socket.send(text, t.port, t.address, (err) => {
      if (err) this.#log.debug({ err }, 'queue probe not sent');
    });
  }

  /** A response: the one to the probe on its way gives the rate its bytes ahead drained at. */
  #answer(msg: Buffer): void {
    const p = this.#inFlight;
    // The Call-ID ends its line: probe 1's does not match in probe 12's answer.
    if (!p || msg.indexOf(`${p.callId}\r\n`) < 0) return;
    this.#inFlight = undefined;
    this.#answered++;
    const now = this.#now();
    const ms = Math.max(0.1, now - p.sentAt);
    if (p.bytesAhead <= 0) return;
    const rate = p.bytesAhead / ms;
    const first = this.#rate === undefined;
    const kept = first ? 0 : (this.#rate ?? 0) * Math.exp(-(now - this.#rateAt) / RATE_TAU_MS);
    this.#rate = Math.max(rate, kept);
    this.#rateAt = now;
    if (first) {
      this.#log.info(
        { drainMBps: Math.round(rate) / 1000, bytesAhead: p.bytesAhead, roundTripMs: Math.round(ms) },
        'learnt how fast drachtio-server works through its SIP socket: the backlog marks now rise with the wait they mean',
      );
    }
  }

  close(): void {
    this.#closed = true;
    this.#inFlight = undefined;
    this.#socket?.close();
    this.#socket = undefined;
  }
}
