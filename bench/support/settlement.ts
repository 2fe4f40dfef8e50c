/**
 * The CPU benches' callees are SIPp or a scripted double, not FreeSWITCH: no CHANNEL_CREATE ever
 * reaches a monitor, so no reservation is settled. In production each slot of a connected call
 * is settled by its node's monitor within a probe or two; left to lapse by their TTL instead
 * (provisionalTimeout + reservationMarginMs, 3 s), they leave in bursts, and each time a proxy
 * learns a node's count from Redis that node looks emptier than the others by the calls that
 * lapsed since, so least-loaded selection sends every call there until its slots run out, and
 * the calls that find none take a round trip (measured with `proxy-own`, 100 nodes at 2000/s:
 * 5-7 % of INVITEs, and 10-25 µs more of fslb's CPU per INVITE, than with no lapse). That is
 * the bench's missing monitor, not the proxy's production path: the CPU benches give slots a
 * margin that outlasts the run, so that the counts only rise, for every node alike, as settled
 * calls raise sessions. Nodes have capacity to spare for it.
 */
export const NO_LAPSE_MARGIN_MS = 30 * 60_000;
