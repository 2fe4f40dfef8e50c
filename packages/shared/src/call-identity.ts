/**
 * One call attempt as fslb counts it: its Call-ID and the caller's From tag, joined by `;`.
 *
 * The Call-ID alone is not enough. Upstream forking, spirals and user agents that reuse Call-IDs
 * send several INVITEs with one Call-ID; keyed by it alone they would share a slot, and the
 * release of one would end another's. The From tag tells them apart (RFC 3261 §19.3: the pair
 * with the To tag names a dialog), while an INVITE resent with credentials after a 401/407 keeps
 * both (§22.2), so the slot follows the call through a digest challenge.
 *
 * `;` cannot appear in a Call-ID (RFC 3261 §25.1, `word`) nor in a tag (`token`), so the joined
 * form is unambiguous. A request without a From tag (RFC 2543) gets an empty tag; the monitor
 * does the same with a channel that has none, so the two still meet.
 */
export function callIdentity(callId: string, fromTag: string | undefined): string {
  return `${callId};${fromTag ?? ''}`;
}
