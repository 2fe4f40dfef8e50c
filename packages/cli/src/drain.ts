import { AdminState, UnknownNodeError, type ClusterStore } from '@fslb/shared';
import { CliError } from './connect.js';
import { shardStores, storeOfNode } from './shards.js';
import { readStatus, type NodeRow } from './status.js';

type OkRow = Extract<NodeRow, { ok: true }>;

/** Sets or clears a node's drain flag; an unknown id is a `CliError`. */
export async function setDrain(
  store: ClusterStore,
  id: string,
  drain: boolean,
): Promise<{ changed: boolean; node: OkRow }> {
  try {
    const r = await (await storeOfNode(store, id)).setAdmin(id, drain ? AdminState.Drain : AdminState.None);
    return { changed: r.changed, node: await nodeRow(store, id) };
  } catch (err) {
    if (err instanceof UnknownNodeError) throw new CliError(`${err.message}${await known(store)}`);
    throw err;
  }
}

async function known(store: ClusterStore): Promise<string> {
  const ids: string[] = [];
  for (const s of await shardStores(store).catch(() => [store]))
    ids.push(...(await s.nodeIds().catch(() => [])));
  return ids.length === 0 ? ' (no nodes are configured)' : ` (known: ${ids.sort().join(', ')})`;
}

async function nodeRow(store: ClusterStore, id: string): Promise<OkRow> {
  const s = await readStatus(store);
  const n = s.nodes.find((x) => x.id === id);
  if (n === undefined) throw new CliError(`node ${JSON.stringify(id)} vanished from Redis`);
  if (!n.ok)
    throw new CliError(`node ${JSON.stringify(id)} has an unreadable record: ${n.problems.join('; ')}`);
  return n;
}

export interface WaitOptions {
  timeoutMs: number;
  /** How often to read the node (events also wake the wait). */
  pollMs?: number;
  /** Called when the count left changes. */
  progress?: (n: OkRow) => void;
  /** Resolves early when a change to the node is announced (`fslb:events`). */
  changed?: () => Promise<void>;
  signal?: AbortSignal;
}

/**
 * Waits until a drained node carries no calls: no sessions and no reservations in flight.
 * Throws a `CliError` with the count left when the time is up, or when the drain is lifted
 * meanwhile (someone ran `undrain`: waiting on would never mean what the caller asked).
 */
export async function waitDrained(store: ClusterStore, id: string, o: WaitOptions): Promise<OkRow> {
  const deadline = Date.now() + o.timeoutMs;
  let last = -1;
  for (;;) {
    const n = await nodeRow(store, id);
    const left = n.sessions + n.reservations;
    if (left !== last) {
      last = left;
      o.progress?.(n);
    }
    if (n.admin !== AdminState.Drain)
      throw new CliError(`${id} was undrained while waiting (${describeLeft(n)} left)`);
    if (left === 0) return n;
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      throw new CliError(
        `timed out after ${Math.round(o.timeoutMs / 1000)}s: ${id} still has ${describeLeft(n)}`,
      );
    }
    if (o.signal?.aborted) throw new CliError(`interrupted: ${id} still has ${describeLeft(n)}`);
    await pause(Math.min(remaining, o.pollMs ?? 500), o.changed, o.signal);
  }
}

export function describeLeft(n: OkRow): string {
  const s = `${n.sessions} session${n.sessions === 1 ? '' : 's'}`;
  return n.reservations > 0
    ? `${s} and ${n.reservations} reserved call${n.reservations === 1 ? '' : 's'}`
    : s;
}

function pause(
  ms: number,
  changed: (() => Promise<void>) | undefined,
  signal: AbortSignal | undefined,
): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    changed?.().then(done, done);
  });
}
