import { randomBytes } from 'node:crypto';

/**
 * The header a proxy adds to an INVITE it proxies on an advance slot, naming that slot; the
 * node's monitor reads it back from FreeSWITCH (channel variable `sip_h_X-Fslb-Slot`) and
 * settles the slot when the call is counted. Set by fslb only: an INVITE from outside carrying
 * it is refused.
 */
export const SLOT_HEADER = 'X-Fslb-Slot';

/** `#<proxy tag>:<n>`: a member no call identity can be (a Call-ID never holds '#'). */
const slotRe = /^#[\w.-]{1,64}:\d{1,15}$/;

/** The advance slot a header value names, or undefined when it names none that can be. */
export function advanceSlotOf(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  return slotRe.test(v) ? v : undefined;
}

/**
 * The member prefix of one proxy process's advance slots: its id (characters a member may hold)
 * and a random tag, so that a proxy restarted within a slot's TTL, or two proxies given the same
 * id, never name the same member.
 */
export function advanceSlotPrefix(proxyId: string): string {
  const safe = proxyId.replace(/[^\w.-]/g, '_').slice(0, 48) || 'proxy';
  return `#${safe}.${randomBytes(4).toString('hex')}:`;
}
