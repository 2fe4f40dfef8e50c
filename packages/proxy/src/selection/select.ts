import { combine, hashString, unitInterval } from './hash.js';

/**
 * Choosing where a request goes: pure functions over plain values, no I/O, no clock. The view
 * keeps one `SelectNode` per node and updates it in place; selection only reads.
 */
export interface SelectNode {
  readonly id: string;
  /** The node can take calls at all: up, not drained, its liveness key present, capacity known. */
  readonly eligible: boolean;
  readonly sessions: number;
  /** Live reservations, this proxy's in-flight ones included. */
  readonly reservations: number;
  /** Calls the node takes; sessions + reservations must stay below it. */
  readonly maxSessions: number;
  /** Relative share of traffic: a node of weight 2 is filled to the same score with twice the load. */
  readonly weight: number;
  /** Preference order (lower first): a node of a later tier is chosen only when earlier ones are full. */
  readonly tier: number;
  /** `hashString(id)`, computed once when the node enters the view. */
  readonly idHash: number;
}

export interface SelectOptions {
  /** Targets to return at most (the first, then failovers in order). */
  maxTargets: number;
  /** Uniform random numbers in [0, 1): `Math.random` in production, a seeded source in tests. */
  random: () => number;
}

/** True when a node can take one more call now. */
export function hasRoom(n: SelectNode): boolean {
  return n.eligible && n.maxSessions > 0 && n.sessions + n.reservations < n.maxSessions;
}

/** (sessions + reservations) / (maxSessions x weight): how full a node is for its share. */
export function loadScore(n: SelectNode): number {
  return (n.sessions + n.reservations) / (n.maxSessions * n.weight);
}

/**
 * Least loaded first, spread among near-equals. Each node with room gets the key
 * `score + u x 2 x unit` (u uniform in [0, 1), unit = what one more call adds to its score) and
 * the lowest keys win, lowest tier first. So equally loaded nodes are picked uniformly at
 * random, a node one call above the least loaded is picked now and then, a node two or more
 * calls above it never first, and N proxies holding the same view scatter their next calls
 * instead of herding onto one node.
 *
 * Returns up to `maxTargets` distinct nodes in order; empty when no node has room.
 */
export function selectLeastLoaded<T extends SelectNode>(
  nodes: readonly T[],
  opts: SelectOptions,
  exclude?: T,
): T[] {
  const k = Math.max(0, opts.maxTargets);
  const best: T[] = [];
  const keys: number[] = [];
  for (const n of nodes) {
    if (n === exclude || !hasRoom(n)) continue;
    const unit = 1 / (n.maxSessions * n.weight);
    const key = n.tier * TIER_SPAN + loadScore(n) + opts.random() * 2 * unit;
    insertTopK(best, keys, n, key, k);
  }
  return best;
}

/**
 * Round robin over the nodes with room, from position `turn` (the caller advances it per call),
 * load ignored beyond room: the classic dispatcher, kept for comparison and for operators who want it.
 */
export function selectRoundRobin<T extends SelectNode>(
  nodes: readonly T[],
  turn: number,
  maxTargets: number,
): T[] {
  const out: T[] = [];
  const n = nodes.length;
  for (let i = 0; i < n && out.length < maxTargets; i++) {
    const node = nodes[(turn + i) % n];
    if (node && hasRoom(node)) out.push(node);
  }
  return out;
}

/**
 * Affinity: the first target is the rendezvous (highest random weight) winner for `key` among
 * the nodes with room, weighted, so every proxy sends the same key to the same node and, when a
 * node leaves, only the keys it held move. Failover targets follow by load.
 */
export function selectWithAffinity<T extends SelectNode>(
  nodes: readonly T[],
  key: string,
  opts: SelectOptions,
): T[] {
  const keyHash = hashString(key);
  let winner: T | undefined;
  let top = -Infinity;
  for (const n of nodes) {
    if (!hasRoom(n)) continue;
    const s = rendezvousScore(keyHash, n);
    if (s > top) {
      top = s;
      winner = n;
    }
  }
  if (!winner) return [];
  if (opts.maxTargets <= 1) return [winner];
  const rest = selectLeastLoaded(nodes, { maxTargets: opts.maxTargets - 1, random: opts.random }, winner);
  rest.unshift(winner);
  return rest;
}

/**
 * Address-of-record routing (REGISTER, SUBSCRIBE): every target in rendezvous order for the
 * AOR, so a user's registrations and subscriptions stay on one node, failover included, and only
 * a departing node's users move. Load is not considered beyond eligibility (a registration is
 * not a session).
 */
export function selectByAor<T extends SelectNode>(nodes: readonly T[], aor: string, maxTargets: number): T[] {
  const keyHash = hashString(aor);
  const best: T[] = [];
  const keys: number[] = [];
  for (const n of nodes) {
    if (!n.eligible) continue;
    // insertTopK keeps the lowest keys: negate the score to keep the highest.
    insertTopK(best, keys, n, n.tier * TIER_SPAN - rendezvousScore(keyHash, n), maxTargets);
  }
  return best;
}

/** Weighted rendezvous score: weight / -ln(u), u uniform in (0, 1) from the key and node hashes. */
export function rendezvousScore(keyHash: number, n: SelectNode): number {
  return n.weight / -Math.log(unitInterval(combine(keyHash, n.idHash)));
}

/** Larger than any score within a tier, so tiers order strictly. */
const TIER_SPAN = 1e9;

/** Keeps `out` as the k entries with the lowest keys, in ascending order (k is small). */
function insertTopK<T>(out: T[], keys: number[], n: T, key: number, k: number): void {
  if (k <= 0) return;
  if (out.length === k && key >= (keys[k - 1] ?? Infinity)) return;
  let i = Math.min(out.length, k - 1);
  if (out.length < k) {
    out.push(n);
    keys.push(key);
    i = out.length - 1;
  }
  while (i > 0 && (keys[i - 1] ?? -Infinity) > key) {
    out[i] = out[i - 1] as T;
    keys[i] = keys[i - 1] as number;
    i--;
  }
  out[i] = n;
  keys[i] = key;
}
