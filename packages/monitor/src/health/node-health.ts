import type { NodeState } from '@fslb/shared';

/** What a monitor knows of one node's core at a moment. */
export interface CoreFacts {
  connected: boolean;
  /** Why the connection is not up (set when `connected` is false). */
  downReason?: string;
  ready: boolean;
  paused: boolean;
  shutdownRequested: boolean;
  /** The configured Sofia profile's name and whether it runs; undefined when none is configured. */
  profile?: { name: string; running: boolean };
}

/**
 * The health rule: one place decides a node's state and reason. Down when the monitor cannot
 * talk to it; draining when it talks but should take no new calls; up otherwise. (A full node
 * stays `up`: capacity is the proxies' business, from sessions and maxSessions.)
 */
export function assessNode(f: CoreFacts): { state: NodeState; reason: string } {
  if (!f.connected) return { state: 'down', reason: f.downReason ?? 'not connected' };
  if (f.shutdownRequested) return { state: 'draining', reason: 'shutdown requested' };
  if (f.paused) return { state: 'draining', reason: 'paused' };
  if (!f.ready) return { state: 'draining', reason: 'core not ready' };
  if (f.profile && !f.profile.running)
    return { state: 'draining', reason: `profile ${f.profile.name} not RUNNING` };
  return { state: 'up', reason: '' };
}

/**
 * The session cap published for a node: the lower of what FreeSWITCH will take and the
 * configured cap. FreeSWITCH with Max-Sessions N answers at most N - 1 inbound calls: sofia
 * creates the new call's session before comparing the session count with the limit
 * (mod_sofia/sofia.c, `sess_count >= sess_max`; checked against FreeSWITCH 1.11.1). Publishing
 * N - 1 lets a proxy stop exactly where the node would start answering 503.
 */
export function effectiveMaxSessions(fsMax: number | undefined, cap: number | undefined): number {
  const inbound = fsMax === undefined || fsMax <= 0 ? undefined : Math.max(1, fsMax - 1);
  const known = [inbound, cap].filter((v): v is number => v !== undefined && v > 0);
  return known.length === 0 ? 0 : Math.min(...known);
}

/**
 * Reconnect delay: exponential from `baseMs`, capped, with full jitter over the upper half
 * so that many monitors reconnecting to one node do not arrive together.
 */
export function backoffDelay(
  attempt: number,
  baseMs: number,
  capMs: number,
  random: () => number = Math.random,
): number {
  const exp = Math.min(capMs, baseMs * 2 ** Math.min(Math.max(attempt - 1, 0), 20));
  return Math.round(exp / 2 + (random() * exp) / 2);
}
