import { createHash } from 'node:crypto';

/**
 * Who should own what, as pure functions. Every monitor ranks every node with rendezvous
 * (highest-random-weight) hashing on (monitor id, node id): monitors prefer different nodes, a
 * monitor keeps the nodes it ranks highest, and a monitor joining or leaving moves few nodes.
 */

/** The most nodes one monitor may hold: ceil(nodes / live monitors). */
export function fairShare(nodeCount: number, liveMonitors: number): number {
  if (nodeCount === 0) return 0;
  return Math.ceil(nodeCount / Math.max(1, liveMonitors));
}

function weight(monitorId: string, nodeId: string): number {
  return createHash('sha1').update(monitorId).update('\0').update(nodeId).digest().readUInt32BE(0);
}

/** Node ids in this monitor's order of preference, best first. */
export function rankNodes(monitorId: string, nodeIds: Iterable<string>): string[] {
  return [...nodeIds]
    .map((id) => ({ id, w: weight(monitorId, id) }))
    .sort((a, b) => b.w - a.w || (a.id < b.id ? -1 : 1))
    .map((x) => x.id);
}

export interface ClaimInput {
  monitorId: string;
  /** Every configured node. */
  nodes: readonly string[];
  /** Nodes this monitor owns. */
  owned: ReadonlySet<string>;
  /** Nodes nobody owns (no lease key), with the time each was first seen free. */
  freeSince: ReadonlyMap<string, number>;
  liveMonitors: number;
  now: number;
  /** A node free this long is claimed even past the fair share (its would-be owner is gone). */
  starvingAfterMs: number;
}

export interface ClaimPlan {
  share: number;
  /** Nodes to try to claim, in order. */
  claim: string[];
  /** Node to hand back (over the fair share), if any: one per round, to move load gently. */
  release: string | undefined;
}

export function planClaims(i: ClaimInput): ClaimPlan {
  const share = fairShare(i.nodes.length, i.liveMonitors);
  const ranked = rankNodes(i.monitorId, i.nodes);
  if (i.owned.size > share) {
    const worst = ranked.filter((id) => i.owned.has(id)).at(-1);
    return { share, claim: [], release: worst };
  }
  const claim: string[] = [];
  let room = share - i.owned.size;
  for (const id of ranked) {
    const since = i.freeSince.get(id);
    if (i.owned.has(id) || since === undefined) continue;
    if (room > 0) {
      claim.push(id);
      room--;
    } else if (i.now - since >= i.starvingAfterMs) {
      claim.push(id);
    }
  }
  return { share, claim, release: undefined };
}
