/**
 * Just enough SDP (RFC 4566, offer/answer RFC 3264) for a UAS that answers audio calls with
 * G.711 and sends no media: reads the offer's audio formats and writes a one-stream answer.
 */
export interface AudioOffer {
  /** Payload types of the first `m=audio` line, in the offer's order. */
  payloads: number[];
  /** The payload type offered for telephone-event, if any. */
  telephoneEvent?: number;
}

/** Payload types the simulated node accepts: PCMU and PCMA (static, RFC 3551). */
const SUPPORTED: Record<number, string> = { 0: 'PCMU/8000', 8: 'PCMA/8000' };

export function parseAudioOffer(sdp: string): AudioOffer | undefined {
  const lines = sdp.split(/\r?\n/);
  const m = lines.find((l) => l.startsWith('m=audio '));
  if (m === undefined) return undefined;
  const payloads = m
    .split(' ')
    .slice(3)
    .map((p) => Number(p))
    .filter((p) => Number.isInteger(p));
  let telephoneEvent: number | undefined;
  for (const l of lines) {
    const r = /^a=rtpmap:(\d+) telephone-event\//i.exec(l);
    if (r && payloads.includes(Number(r[1]))) telephoneEvent = Number(r[1]);
  }
  return telephoneEvent === undefined ? { payloads } : { payloads, telephoneEvent };
}

/** The codec the node picks: the first offered one it supports (offerer's preference). */
export function chooseCodec(offer: AudioOffer): number | undefined {
  return offer.payloads.find((p) => SUPPORTED[p] !== undefined);
}

export interface SdpAnswerOptions {
  ip: string;
  port: number;
  sessionId: number;
  /** Payload types to list; all supported ones when making an offer. */
  payloads: number[];
  telephoneEvent?: number;
}

export function buildSdp(o: SdpAnswerOptions): string {
  const formats = [...o.payloads, ...(o.telephoneEvent === undefined ? [] : [o.telephoneEvent])];
  const lines = [
    'v=0',
    `o=FreeSWITCH ${o.sessionId} ${o.sessionId + 1} IN IP4 ${o.ip}`,
    's=FreeSWITCH',
    `c=IN IP4 ${o.ip}`,
    't=0 0',
    `m=audio ${o.port} RTP/AVP ${formats.join(' ')}`,
    ...o.payloads.map((p) => `a=rtpmap:${p} ${SUPPORTED[p] ?? 'unknown/8000'}`),
    ...(o.telephoneEvent === undefined
      ? []
      : [`a=rtpmap:${o.telephoneEvent} telephone-event/8000`, `a=fmtp:${o.telephoneEvent} 0-16`]),
    'a=ptime:20',
    'a=sendrecv',
  ];
  return `${lines.join('\r\n')}\r\n`;
}

/** Every payload type the node supports, for an offer in a 200 to an INVITE without SDP. */
export const SUPPORTED_PAYLOADS = [0, 8];
