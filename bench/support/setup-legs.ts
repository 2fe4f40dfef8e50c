/**
 * Where a call's setup time goes, from a packet capture of the loopback interface taken while
 * SIPp calls through drachtio-server and an app (fslb-proxy or the bare srf app), e.g.
 *
 *   tcpdump -i lo -s 0 -w /tmp/run.pcap 'udp or tcp'   (beside a proxy-real-cps run)
 *   node --import tsx bench/support/setup-legs.ts /tmp/run.pcap [--last 4]
 *
 * Each call's INVITE -> 200 (as the caller sees it) is split by the packets' own timestamps into:
 * - `inbound`: the caller's INVITE reaching drachtio-server -> drachtio-server's message to the app;
 * - `app`: that message -> the app's proxy command (the app's socket, event loop and own work);
 * - `outbound`: the command -> the INVITE to the callee;
 * - `callee`: that INVITE -> the callee's 200;
 * - `back`: the callee's 200 -> the 200 to the caller.
 * - `total`: the caller's INVITE -> the 200 to it, all of the above.
 * Calls are matched by Call-ID on the SIP side and by drachtio-server's transaction id on the app
 * connection. Each app connection's calls are cut into runs at gaps of over a second; of a run
 * longer than `last` + 1.5 s only its last `last` seconds count (a comparison step's ramp is left
 * out). Only the first copy of each message counts (retransmissions are not).
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { FrameDecoder, WireError } from '../../test/drachtio-double/wire.js';
import { quantile, round } from './results.js';

export const LEGS = ['inbound', 'app', 'outbound', 'callee', 'back', 'total'] as const;
export type Leg = (typeof LEGS)[number];

export interface LegRun {
  /** `fslb` when the app's proxy commands carry fslb's own headers, else `other`. */
  app: 'fslb' | 'other';
  /** The app's local port on its connection to drachtio-server. */
  appPort: number;
  calls: number;
  /** Calls per second over the run (as counted). */
  rate: number;
  /** Per leg, ms: the median and the 99th percentile. */
  legs: Record<Leg, { p50: number; p99: number }>;
}

interface Packet {
  /** Seconds. */
  t: number;
  proto: 'udp' | 'tcp';
  src: string;
  sport: number;
  dst: string;
  dport: number;
  payload: Buffer;
}

/** The packets of a pcap file (Ethernet, Linux cooked v1/v2; IPv4 and IPv6; UDP and TCP). */
export function* readPcap(file: Buffer): Generator<Packet> {
  if (file.length < 24) throw new Error('not a pcap file: too short');
  const magicLe = file.readUInt32LE(0);
  const le = magicLe === 0xa1b2c3d4 || magicLe === 0xa1b23c4d;
  const magic = le ? magicLe : file.readUInt32BE(0);
  if (magic !== 0xa1b2c3d4 && magic !== 0xa1b23c4d) {
    throw new Error('not a pcap file (pcapng is not read: capture with tcpdump -w)');
  }
  const u32 = (o: number): number => (le ? file.readUInt32LE(o) : file.readUInt32BE(o));
  const fraction = magic === 0xa1b23c4d ? 1e9 : 1e6;
  const link = u32(20);
  const linkHeader = link === 1 ? 14 : link === 113 ? 16 : link === 276 ? 20 : -1;
  if (linkHeader < 0) throw new Error(`link type ${link} is not read (Ethernet or Linux cooked only)`);
  for (let o = 24; o + 16 <= file.length;) {
    const t = u32(o) + u32(o + 4) / fraction;
    const len = u32(o + 8);
    const frame = file.subarray(o + 16, o + 16 + len);
    o += 16 + len;
    const etherType =
      link === 1 ? frame.readUInt16BE(12) : link === 113 ? frame.readUInt16BE(14) : frame.readUInt16BE(0);
    const p = parseIp(frame.subarray(linkHeader), etherType, t);
    if (p) yield p;
  }
}

function parseIp(ip: Buffer, etherType: number, t: number): Packet | undefined {
  let proto: number;
  let l4: Buffer;
  let src: string;
  let dst: string;
  if (etherType === 0x0800 && ip.length >= 20) {
    proto = ip[9] ?? 0;
    l4 = ip.subarray(((ip[0] ?? 0) & 0x0f) * 4, ip.readUInt16BE(2));
    src = ip.subarray(12, 16).join('.');
    dst = ip.subarray(16, 20).join('.');
  } else if (etherType === 0x86dd && ip.length >= 40) {
    proto = ip[6] ?? 0;
    l4 = ip.subarray(40, 40 + ip.readUInt16BE(4));
    src = ip.subarray(8, 24).toString('hex');
    dst = ip.subarray(24, 40).toString('hex');
  } else return undefined;
  if (proto === 17 && l4.length >= 8) {
    return {
      t,
      proto: 'udp',
      src,
      dst,
      sport: l4.readUInt16BE(0),
      dport: l4.readUInt16BE(2),
      payload: l4.subarray(8),
    };
  }
  if (proto === 6 && l4.length >= 20) {
    const off = ((l4[12] ?? 0) >> 4) * 4;
    return {
      t,
      proto: 'tcp',
      src,
      dst,
      sport: l4.readUInt16BE(0),
      dport: l4.readUInt16BE(2),
      payload: l4.subarray(off),
    };
  }
  return undefined;
}

interface CallTimes {
  invite?: { t: number; from: number; to: number };
  forwarded?: number;
  calleeOk?: number;
  callerOk?: number;
  atApp?: number;
  conn?: string;
}

const CALL_ID = /\r\n(?:Call-ID|i)[ \t]*:[ \t]*([^\r\n]+)/i;
const CSEQ = /\r\nCSeq[ \t]*:[ \t]*\d+[ \t]+(\w+)/i;

/** Splits every call's setup time in `file` (a pcap) into its legs, per app connection and run. */
export function setupLegs(file: Buffer, lastS = 4): LegRun[] {
  const calls = new Map<string, CallTimes>();
  const streams = new Map<string, FrameDecoder>();
  const txnCall = new Map<string, string>();
  const commands = new Map<string, { t: number; fslb: boolean }>();
  const call = (id: string): CallTimes => {
    let c = calls.get(id);
    if (!c) calls.set(id, (c = {}));
    return c;
  };

  const onAppMessage = (conn: string, appPort: number, t: number, msg: string): void => {
    const eol = msg.indexOf('\r\n');
    const head = (eol < 0 ? msg : msg.slice(0, eol)).split('|');
    const body = eol < 0 ? '' : msg.slice(eol);
    if (head[1] === 'sip' && head[2] === 'network' && body.startsWith('\r\nINVITE ')) {
      const id = CALL_ID.exec(body)?.[1]?.trim();
      const txn = head[8];
      if (id === undefined || txn === undefined) return;
      txnCall.set(txn, id);
      const c = call(id);
      c.atApp ??= t;
      c.conn ??= `${conn}:${appPort}`;
    } else if (head[1] === 'proxy' && head[2] !== undefined && !commands.has(head[2])) {
      commands.set(head[2], { t, fslb: msg.includes('X-Fslb-') });
    }
  };

  for (const p of readPcap(file)) {
    if (p.proto === 'udp') {
      const text = p.payload.toString('latin1');
      const isInvite = text.startsWith('INVITE ');
      const isOk = text.startsWith('SIP/2.0 200');
      if (!isInvite && !isOk) continue;
      const id = CALL_ID.exec(text)?.[1]?.trim();
      if (id === undefined || CSEQ.exec(text)?.[1] !== 'INVITE') continue;
      const c = call(id);
      if (isInvite) {
        if (!c.invite) c.invite = { t: p.t, from: p.sport, to: p.dport };
        else if (c.forwarded === undefined && p.sport === c.invite.to) c.forwarded = p.t;
      } else if (c.invite) {
        if (p.dport === c.invite.to) c.calleeOk ??= p.t;
        else if (p.sport === c.invite.to && p.dport === c.invite.from) c.callerOk ??= p.t;
      }
      continue;
    }
    if (p.payload.length === 0) continue;
    // drachtio-server's framing, several messages to a segment or one over several. A stream
    // caught mid-message (the capture began there) starts again at its next segment.
    const key = `${p.src}:${p.sport}>${p.dst}:${p.dport}`;
    let decoder = streams.get(key);
    if (!decoder) streams.set(key, (decoder = new FrameDecoder()));
    let messages: string[];
    try {
      messages = decoder.push(p.payload);
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      streams.delete(key);
      continue;
    }
    for (const msg of messages) {
      // The app's end of the connection is the port that is not drachtio-server's (the one
      // that sends `sip|network` messages is drachtio-server).
      const fromServer = msg.includes('|sip|network|');
      onAppMessage(fromServer ? p.dst : p.src, fromServer ? p.dport : p.sport, p.t, msg);
    }
  }

  // Each call's legs, grouped by the app connection that carried it.
  type Row = { t0: number; legs: number[]; fslb: boolean };
  const byConn = new Map<string, Row[]>();
  for (const [txn, id] of txnCall) {
    const c = calls.get(id);
    const cmd = commands.get(txn);
    if (!c?.invite || !cmd || c.atApp === undefined || c.conn === undefined) continue;
    if (c.forwarded === undefined || c.calleeOk === undefined || c.callerOk === undefined) continue;
    const t0 = c.invite.t;
    const legs = [
      c.atApp - t0,
      cmd.t - c.atApp,
      c.forwarded - cmd.t,
      c.calleeOk - c.forwarded,
      c.callerOk - c.calleeOk,
      c.callerOk - t0,
    ];
    const list = byConn.get(c.conn) ?? [];
    list.push({ t0, legs: legs.map((s) => s * 1000), fslb: cmd.fslb });
    byConn.set(c.conn, list);
  }

  const runs: LegRun[] = [];
  for (const [conn, rows] of byConn) {
    rows.sort((a, b) => a.t0 - b.t0);
    let run: Row[] = [];
    const flush = (): void => {
      if (run.length === 0) return;
      const end = run[run.length - 1]?.t0 ?? 0;
      const start = run[0]?.t0 ?? 0;
      const kept = end - start > lastS + 1.5 ? run.filter((r) => r.t0 >= end - lastS) : run;
      const span = Math.max(1e-3, (kept[kept.length - 1]?.t0 ?? 0) - (kept[0]?.t0 ?? 0));
      const legs = Object.fromEntries(
        LEGS.map((name, i) => {
          const v = kept.map((r) => r.legs[i] ?? 0).sort((a, b) => a - b);
          return [name, { p50: round(quantile(v, 0.5), 2), p99: round(quantile(v, 0.99), 2) }];
        }),
      ) as LegRun['legs'];
      runs.push({
        app: kept.some((r) => r.fslb) ? 'fslb' : 'other',
        appPort: Number(conn.slice(conn.lastIndexOf(':') + 1)),
        calls: kept.length,
        rate: Math.round(kept.length / span),
        legs,
      });
      run = [];
    };
    for (const r of rows) {
      const prev = run[run.length - 1];
      if (prev && r.t0 - prev.t0 > 1) flush();
      run.push(r);
    }
    flush();
  }
  return runs;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.argv[2];
  if (file === undefined) {
    console.error('usage: setup-legs.ts <capture.pcap> [--last seconds]');
    process.exit(2);
  }
  const i = process.argv.indexOf('--last');
  const last = i > 0 ? Number(process.argv[i + 1]) : 4;
  for (const r of setupLegs(readFileSync(file), last)) {
    if (r.calls < 200) continue;
    const legs = LEGS.map((l) => `${l} ${r.legs[l].p50}/${r.legs[l].p99}`).join('  ');
    console.log(`${r.app.padEnd(5)} port ${r.appPort}  ${r.calls} calls at ${r.rate}/s  p50/p99 ms: ${legs}`);
  }
}
