/**
 * Sheds new INVITEs while drachtio-server's SIP thread is behind, before its UDP socket overflows.
 *
 * Past the rate its SIP thread can carry, drachtio-server's receive buffer grows by the excess
 * every second. Once the buffer is full the kernel drops datagrams, the callers and callees
 * retransmit them, and the retransmissions take the room of new calls: throughput falls to a
 * fraction of what the chain carries (measured: 232 of 2500 calls/s completed, 63 % failed).
 * Before that, every call waits in the queue, and a wait near SIP's T1 makes callers retransmit.
 *
 * Near its limit, though, drachtio-server's backlog rises past a mark and drains again many times
 * a second without any call suffering: measured at 1500 calls/s with shedding off, it stayed past
 * 1 MiB for up to 450 ms at a time, with no call failed or retransmitted. Shedding on such a burst
 * costs calls a bare app completes. So admission falls only on a backlog that does not drain:
 * - by a quarter when it has stayed past `highBytes` for `holdMs` and is not shrinking: a standing
 *   queue. The hold then starts again, so a queue between the marks costs at most a quarter every
 *   `holdMs`;
 * - by half when it is past `hardBytes` for a second reading in a row and not shrinking, or a
 *   datagram was dropped since the last reading: a surge, where what is queued keeps it growing for
 *   a while after the cut.
 * A call answered 503 costs drachtio-server's SIP thread about half of a proxied one; below 1 %
 * nothing is admitted.
 *
 * Once a `QueueProbe` has learnt how fast drachtio-server drains its queue, the marks are also a
 * wait, `delayMs` (twice it for the hard one): the bytes drained in that long, at most half the
 * socket's buffer, never under the byte marks. Until then, or with `highBytes` set, they are the
 * byte marks alone. The share grows back by 5 points at each reading at or under `highBytes`,
 * 10 at or under `lowBytes`. Only new INVITEs are shed: CANCEL, ACK, BYE and requests inside
 * dialogs finish calls in progress and are cheap.
 */
import type { Logger } from '@fslb/shared';
import { probeTarget, QueueProbe } from './queue-probe.js';
import { PROC_NET_UDP, readUdpBacklog, udpPorts, type UdpBacklog } from './udp-backlog.js';

export interface ShedSettings {
  enabled: boolean;
  /** How often the backlog is read, ms. */
  sampleMs: number;
  /** Backlog (bytes) past which, held for `holdMs`, admission falls. */
  highBytes: number;
  /** How long the backlog must stay past `highBytes` before admission falls, ms. */
  holdMs: number;
  /** Backlog (bytes) past which admission falls without the hold (from its second reading in a row). */
  hardBytes: number;
  /** Backlog (bytes) at or under which admission grows back twice as fast. */
  lowBytes: number;
  /**
   * The wait in drachtio-server's queue (ms) that stands for the high mark once the rate it drains
   * at is known (half of it for the low mark, twice it for the hard one); undefined: bytes only.
   */
  delayMs?: number | undefined;
  /** The socket's receive buffer (bytes): the marks in bytes a wait stands for stay within it. */
  bufferBytes?: number | undefined;
}

/** The marks one reading is judged by, in bytes. */
interface Marks {
  high: number;
  hard: number;
  low: number;
}

/**
 * Admission falls to this share of itself at each cut on a standing queue. Measured: at 0.9 (and a
 * 4 MiB mark) the backlog outran it, reached the 8 MB buffer and the chain collapsed; at 0.75 (and
 * 1 MiB) no datagram was dropped in any run.
 */
const DECREASE = 0.75;
/**
 * Past the hard mark (or on a drop) admission falls faster: what is queued was sent before the
 * cut, so the backlog goes on growing for a while after it, and a wait past SIP's T1 brings
 * every caller's retransmissions on top.
 */
const SURGE_DECREASE = 0.5;
/**
 * Readings in a row past the hard mark before it counts: on a busy host one reading there can be
 * a pause of drachtio-server's thread that drains the next moment (measured: a 2.8 MB peak at 90 %
 * of the rate the bare app carried, where cutting at once shed 37 % of the step).
 */
const HARD_READINGS = 2;
/** Below this share nothing is admitted: a deterministic full stop, and a cheaper one. */
const MIN_ADMIT = 0.01;
/**
 * Admission grows back by this much at each reading at or under the high mark, twice as much at
 * or under the low one: from none to all in 1-2 s. A share held while the backlog sat between the
 * marks shed up to a third of a step the bare app passed (the backlog there is no sign of overload).
 */
const INCREASE = 0.05;
/**
 * While the socket holds next to nothing (a sixteenth of the low mark at most) and nothing is
 * shed, readings are this many intervals apart: reading the UDP table was most of an idle proxy's
 * CPU (9 of 14 ms over 4.5 s in a profile), and a backlog that rises from there to the hard mark
 * within one such wait drops datagrams, which the next reading cuts on.
 */
const QUIET_INTERVALS = 4;
/** One reading taking more than this share of the interval doubles the interval (up to 1 s). */
const READ_COST_SHARE = 0.05;
const MAX_SAMPLE_MS = 1000;
/** At most one "shedding" line per this long; the next "stopped" line adds up what was not logged. */
const LOG_EVERY_MS = 10_000;

export interface ShedderOptions {
  settings: ShedSettings;
  log: Logger;
  /** Reads the backlog of these ports (tests give their own); /proc by default. */
  read?: (ports: ReadonlySet<number>) => UdpBacklog;
  random?: () => number;
  /** Called after each reading (metrics). */
  onSample?: (b: UdpBacklog, newDrops: number) => void;
  now?: () => number;
  /**
   * How fast drachtio-server drains its queue, bytes per ms (tests give their own); by default a
   * `QueueProbe` to the UDP address drachtio-server announces learns it.
   */
  drainRate?: () => number | undefined;
}

export class BacklogShedder {
  readonly #s: ShedSettings;
  readonly #log: Logger;
  readonly #read: (ports: ReadonlySet<number>) => UdpBacklog;
  readonly #random: () => number;
  readonly #onSample: ((b: UdpBacklog, newDrops: number) => void) | undefined;
  readonly #now: () => number;
  /** Share of new INVITEs admitted: 1 while drachtio-server keeps up. */
  #admit = 1;
  #ports: ReadonlySet<number> = new Set();
  #timer: NodeJS.Timeout | undefined;
  #intervalMs: number;
  #lastDrops: number | undefined;
  #queued = 0;
  /** How long the backlog has been past the high mark (ms, by readings), since it passed it or the last cut. */
  #overMs = 0;
  /** Readings in a row past the hard mark. */
  #hard = 0;
  /** The episode of shedding under way: when it began, what it shed, the deepest backlog seen. */
  #episode: { since: number; shed: number; peakBytes: number; drops: number; logged: boolean } | undefined;
  /** Episodes not logged (within LOG_EVERY_MS of a logged one), added to the next line. */
  #quiet = { episodes: 0, shed: 0 };
  #lastLogAt = -Infinity;
  readonly #byteMarks: Marks;
  /**
   * The /proc files the sockets are in: the kernel walks its whole UDP table for each file read
   * (150-300 µs on a busy 2-core host), so the other one is not read at every sample.
   */
  #files: readonly string[] = PROC_NET_UDP;
  readonly #ownRead: boolean;
  readonly #drainRate: (() => number | undefined) | undefined;
  #probe: QueueProbe | undefined;
  /** The wait the last reading's backlog means (ms), once the drain rate is known. */
  #waitMs: number | undefined;

  constructor(opts: ShedderOptions) {
    this.#s = opts.settings;
    this.#log = opts.log;
    this.#read = opts.read ?? ((ports) => readUdpBacklog(ports, this.#files));
    this.#ownRead = opts.read === undefined;
    this.#random = opts.random ?? Math.random;
    this.#onSample = opts.onSample;
    this.#now = opts.now ?? (() => performance.now());
    this.#intervalMs = opts.settings.sampleMs;
    this.#byteMarks = {
      high: opts.settings.highBytes,
      hard: opts.settings.hardBytes,
      low: opts.settings.lowBytes,
    };
    this.#drainRate = opts.drainRate;
  }

  /** The wait in drachtio-server's queue at the last reading (ms), once its drain rate is known. */
  get waitMs(): number | undefined {
    return this.#waitMs;
  }

  /** Whether an OPTIONS is this proxy's own probe of drachtio-server's queue (answered at once). */
  isProbe(callId: string): boolean {
    return this.#probe?.isProbe(callId) ?? false;
  }

  /**
   * The marks for a backlog of `q` bytes: once the drain rate (bytes per ms) is known, what drains
   * in `delayMs`, within the buffer; the byte marks until then. Notes the wait `q` means.
   */
  #marks(q: number): Marks {
    const delay = this.#s.delayMs;
    const rate =
      delay === undefined ? undefined : this.#drainRate ? this.#drainRate() : this.#probe?.drainBytesPerMs;
    if (delay === undefined || rate === undefined || !(rate > 0)) {
      this.#waitMs = undefined;
      return this.#byteMarks;
    }
    this.#waitMs = q / rate;
    // Never under the byte marks: a probe's round trip holds more than its wait in the queue, so
    // the rate it gives can only err low, and a wait judged too long sheds calls the chain carries.
    // Where drachtio-server drains faster than the byte marks assume, the marks move up.
    const buffer = this.#s.bufferBytes ?? Infinity;
    const b = this.#byteMarks;
    const high = Math.max(b.high, Math.min(rate * delay, buffer / 2));
    return {
      high,
      hard: Math.max(b.hard, Math.min(2 * rate * delay, Math.max(high, (high + buffer) / 2))),
      low: Math.max(b.low, Math.min(rate * delay * 0.5, high / 2)),
    };
  }

  /** Share of new INVITEs admitted now (1: none shed). */
  get admitRatio(): number {
    return this.#admit;
  }

  /** Bytes waiting in drachtio-server's SIP sockets at the last reading. */
  get queuedBytes(): number {
    return this.#queued;
  }

  /** Whether a reading is running (drachtio-server's socket is visible from here). */
  get watching(): boolean {
    return this.#timer !== undefined;
  }

  /**
   * Whether to refuse this new INVITE. On the INVITE path: one comparison while drachtio-server
   * keeps up.
   */
  shed(): boolean {
    if (this.#admit >= 1 || (this.#admit > 0 && this.#random() < this.#admit)) return false;
    if (this.#episode) this.#episode.shed++;
    return true;
  }

  /**
   * Watches drachtio-server's UDP SIP sockets, from the hostports it sent on connecting. If none is
   * visible from here (another network namespace, or TCP only), says so once and sheds nothing.
   */
  watch(hostports: string): void {
    this.stop();
    if (!this.#s.enabled) return;
    const ports = udpPorts(hostports);
    if (ports.length === 0) {
      this.#log.info(
        { hostports },
        'overload shedding off: drachtio-server has no UDP SIP port (proxy.overload watches UDP only)',
      );
      return;
    }
    this.#ports = new Set(ports);
    this.#files = PROC_NET_UDP;
    const first = this.#read(this.#ports);
    if (this.#ownRead && first.sockets > 0) {
      this.#files = PROC_NET_UDP.filter((f) => readUdpBacklog(this.#ports, [f]).sockets > 0);
    }
    if (first.sockets === 0) {
      this.#log.warn(
        { ports },
        "overload shedding off: drachtio-server's UDP SIP socket is not visible from this proxy " +
          "(run the proxy in drachtio-server's network namespace, or set proxy.overload.enabled: false)",
      );
      return;
    }
    this.#lastDrops = first.drops;
    this.#queued = first.queuedBytes;
    const target = this.#s.delayMs === undefined || this.#drainRate ? undefined : probeTarget(hostports);
    if (target) {
      const probe = new QueueProbe({ target, log: this.#log });
      this.#probe = probe;
      probe.open().catch((err: unknown) => {
        this.#log.warn({ err }, 'cannot open the queue probe socket: shedding on the byte marks');
        if (this.#probe === probe) this.#probe = undefined;
      });
    }
    this.#log.info(
      {
        ports,
        highBytes: this.#s.highBytes,
        holdMs: this.#s.holdMs,
        hardBytes: this.#s.hardBytes,
        lowBytes: this.#s.lowBytes,
        delayMs: this.#s.delayMs,
        sampleMs: this.#intervalMs,
      },
      "watching drachtio-server's SIP socket backlog",
    );
    this.#schedule();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#lastDrops = undefined;
    this.#probe?.close();
    this.#probe = undefined;
    this.#waitMs = undefined;
    this.#admit = 1;
    this.#queued = 0;
    this.#overMs = 0;
    this.#hard = 0;
    if (this.#episode) this.#endEpisode('drachtio-server disconnected: shedding stopped');
  }

  #schedule(): void {
    this.#timer = setTimeout(() => {
      const t0 = performance.now();
      const b = this.#read(this.#ports);
      const cost = performance.now() - t0;
      this.sample(b);
      if (cost > this.#intervalMs * READ_COST_SHARE && this.#intervalMs < MAX_SAMPLE_MS) {
        this.#intervalMs = Math.min(MAX_SAMPLE_MS, this.#intervalMs * 2);
        this.#log.warn(
          { readMs: Math.round(cost * 100) / 100, sampleMs: this.#intervalMs },
          'reading the UDP socket table is slow on this host (many sockets): reading it less often',
        );
      }
      if (this.#timer !== undefined) this.#schedule();
    }, this.nextReadingMs);
    this.#timer.unref();
  }

  /** How long until the next reading: the interval, or a few of them while all is quiet. */
  get nextReadingMs(): number {
    const quiet = this.#admit >= 1 && this.#episode === undefined && this.#queued <= this.#s.lowBytes / 16;
    return quiet ? Math.min(MAX_SAMPLE_MS, QUIET_INTERVALS * this.#intervalMs) : this.#intervalMs;
  }

  /** One reading: admission falls, holds or grows back (public for tests). */
  sample(b: UdpBacklog): void {
    const newDrops = this.#lastDrops === undefined ? 0 : Math.max(0, b.drops - this.#lastDrops);
    this.#lastDrops = b.drops;
    this.#onSample?.(b, newDrops);
    const q = b.queuedBytes;
    const shrinking = q < this.#queued;
    this.#queued = q;
    const m = this.#marks(q);
    this.#overMs = q > m.high ? this.#overMs + this.#intervalMs : 0;
    this.#hard = q > m.hard ? this.#hard + 1 : 0;
    const surge = newDrops > 0 || (this.#hard >= HARD_READINGS && !shrinking);
    const standing = this.#overMs > this.#s.holdMs && !shrinking;
    if (surge || standing) {
      if (!this.#episode) this.#startEpisode(q, newDrops);
      const next = this.#admit * (surge ? SURGE_DECREASE : DECREASE);
      this.#admit = next < MIN_ADMIT ? 0 : next;
      // The cut needs time to show in the backlog: a queue still between the marks waits a whole
      // hold again before the next one.
      this.#overMs = 0;
    } else if (this.#admit < 1 && q <= m.high) {
      this.#admit = Math.min(1, this.#admit + (q <= m.low ? 2 * INCREASE : INCREASE));
    }
    // Past the low byte mark the queue is deep enough to time: a probe goes behind it.
    if (q >= this.#s.lowBytes) this.#probe?.send(q);
    const e = this.#episode;
    if (!e) return;
    e.peakBytes = Math.max(e.peakBytes, b.queuedBytes);
    e.drops += newDrops;
    if (this.#admit >= 1) this.#endEpisode('drachtio-server caught up: shedding stopped');
  }

  #startEpisode(queuedBytes: number, drops: number): void {
    const now = this.#now();
    const logged = now - this.#lastLogAt >= LOG_EVERY_MS;
    this.#episode = { since: now, shed: 0, peakBytes: queuedBytes, drops: 0, logged };
    if (!logged) return;
    this.#lastLogAt = now;
    const waitMs = this.#waitMs === undefined ? undefined : Math.round(this.#waitMs);
    this.#log.warn(
      { queuedBytes, highBytes: this.#s.highBytes, drops, ...(waitMs === undefined ? {} : { waitMs }) },
      'drachtio-server is falling behind (its SIP socket is backing up): answering a share of new INVITEs 503 until it catches up',
    );
  }

  #endEpisode(why: string): void {
    const e = this.#episode;
    this.#episode = undefined;
    if (!e) return;
    if (!e.logged) {
      this.#quiet.episodes++;
      this.#quiet.shed += e.shed;
      return;
    }
    const quiet = this.#quiet;
    this.#quiet = { episodes: 0, shed: 0 };
    this.#log.info(
      {
        shed: e.shed,
        forMs: Math.round(this.#now() - e.since),
        peakBytes: e.peakBytes,
        drops: e.drops,
        ...(quiet.episodes > 0 ? { earlierEpisodes: quiet.episodes, earlierShed: quiet.shed } : {}),
      },
      why,
    );
  }
}
