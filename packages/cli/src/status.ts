import { AdminState, NodeState, type ClusterStore, type NodeRecord } from '@fslb/shared';
import { formatAge, loadBar, table, type Colour, type Paint } from './render.js';
import { shardStores } from './shards.js';

/** One node as `fslb status` shows it. */
export type NodeRow =
  | {
      id: string;
      ok: true;
      sip: string;
      state: NodeRecord['state'];
      reason: string;
      sessions: number;
      maxSessions: number;
      reservations: number;
      idleCpu: number;
      weight: number;
      owner: string;
      /** The node's pool ('' before its owner wrote one). */
      pool: string;
      /** The owning monitor's liveness key is present. */
      alive: boolean;
      /** Since the node's last sign of life, by Redis' clock; null when never seen. */
      heartbeatAgeMs: number | null;
      admin: AdminState;
      /** Whether a proxy would send it a new call now (the proxy's own rule). */
      eligible: boolean;
      version: number;
    }
  | { id: string; ok: false; problems: string[] };

export interface ClusterStatus {
  prefix: string;
  /** Redis time of the snapshot, epoch ms. */
  at: number;
  version: number;
  nodes: NodeRow[];
}

/** One consistent snapshot of every node, as the proxies would judge it. */
export async function readStatus(store: ClusterStore): Promise<ClusterStatus> {
  // One snapshot per shard (each is consistent in itself), merged in id order.
  const views = await Promise.all((await shardStores(store)).map((s) => s.readView()));
  const view = {
    at: Math.max(...views.map((v) => v.at)),
    version: Math.max(...views.map((v) => v.version)),
    nodes: views.flatMap((v) => v.nodes).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
  };
  const at = Math.floor(view.at / 1000);
  const nodes = view.nodes.map((e): NodeRow => {
    if (!e.ok) return { id: e.id, ok: false, problems: e.problems };
    const r = e.record;
    const eligible =
      r.state === NodeState.Up &&
      r.admin !== AdminState.Drain &&
      e.alive &&
      r.maxSessions > 0 &&
      r.sessions + e.reservations < r.maxSessions;
    return {
      id: r.id,
      ok: true,
      sip: r.sip,
      state: r.state,
      reason: r.reason,
      sessions: r.sessions,
      maxSessions: r.maxSessions,
      reservations: e.reservations,
      idleCpu: r.idleCpu,
      weight: r.weight,
      owner: r.owner,
      pool: r.pool,
      alive: e.alive,
      heartbeatAgeMs: r.heartbeatAt > 0 ? Math.max(0, at - r.heartbeatAt) : null,
      admin: r.admin,
      eligible,
      version: r.version,
    };
  });
  return { prefix: store.keys.prefix, at, version: view.version, nodes };
}

const stateColour: Record<string, Colour> = { up: 'green', down: 'red', draining: 'yellow', unknown: 'grey' };

/** The state as an operator reads it: a node whose monitor stopped refreshing it is `stale`. */
function stateText(n: Extract<NodeRow, { ok: true }>): [string, Colour | undefined] {
  if (!n.alive && n.state === NodeState.Up) return ['stale', 'yellow'];
  return [n.state, stateColour[n.state]];
}

export function renderStatus(s: ClusterStatus, paint: Paint): string {
  // The pool column (and a line per pool) only when the nodes are split into pools.
  const pooled = new Set(s.nodes.flatMap((n) => (n.ok ? [n.pool] : []))).size > 1;
  const rows = s.nodes.map((n) => {
    if (!n.ok)
      return [paint(n.id, 'red'), ...(pooled ? [''] : []), paint('invalid', 'red'), n.problems.join('; ')];
    const [state, colour] = stateText(n);
    const used = n.sessions + n.reservations;
    const full = n.maxSessions > 0 && used >= n.maxSessions;
    return [
      n.id,
      ...(pooled ? [n.pool === '' ? '-' : n.pool] : []),
      paint(state, colour),
      n.reason === '' ? '' : n.reason,
      `${n.sessions}/${n.maxSessions > 0 ? n.maxSessions : '?'}`,
      paint(
        loadBar(used, n.maxSessions),
        full ? 'red' : used / Math.max(1, n.maxSessions) > 0.8 ? 'yellow' : 'cyan',
      ),
      String(n.reservations),
      `${Math.round(n.idleCpu)}%`,
      n.owner === '' ? '-' : n.owner,
      formatAge(n.heartbeatAgeMs),
      n.admin === AdminState.Drain ? paint('drain', 'yellow') : '',
    ];
  });
  const grid = table(
    [
      { title: 'NODE' },
      ...(pooled ? [{ title: 'POOL' }] : []),
      { title: 'STATE' },
      { title: 'REASON' },
      { title: 'SESSIONS', align: 'right' },
      { title: 'LOAD' },
      { title: 'RESV', align: 'right' },
      { title: 'IDLE', align: 'right' },
      { title: 'OWNER' },
      { title: 'HEARTBEAT', align: 'right' },
      { title: 'ADMIN' },
    ],
    rows,
    paint,
  );
  return `${summary(s, paint)}\n${pooled ? pools(s, paint) : ''}${grid}`;
}

/** One line per pool. */
function pools(s: ClusterStatus, paint: Paint): string {
  const ok = s.nodes.filter((n): n is Extract<NodeRow, { ok: true }> => n.ok);
  const ids = [...new Set(ok.map((n) => n.pool))];
  return (
    ids
      .map((id) => {
        const members = ok.filter((n) => n.pool === id);
        const taking = members.filter((n) => n.eligible).length;
        const used = members.reduce((a, n) => a + n.sessions + n.reservations, 0);
        const cap = members.reduce((a, n) => a + n.maxSessions, 0);
        return `pool ${id === '' ? '-' : id}: ${members.length} node${members.length === 1 ? '' : 's'}, ${paint(
          `${taking} taking calls`,
          taking === 0 ? 'red' : 'green',
        )}, ${used}/${cap} in use`;
      })
      .join('\n') + '\n'
  );
}

function summary(s: ClusterStatus, paint: Paint): string {
  const ok = s.nodes.filter((n): n is Extract<NodeRow, { ok: true }> => n.ok);
  const eligible = ok.filter((n) => n.eligible).length;
  const sessions = ok.reduce((a, n) => a + n.sessions, 0);
  const capacity = ok.reduce((a, n) => a + n.maxSessions, 0);
  const reserved = ok.reduce((a, n) => a + n.reservations, 0);
  const bad = s.nodes.length - ok.length;
  const parts = [
    `${s.nodes.length} node${s.nodes.length === 1 ? '' : 's'}`,
    paint(`${eligible} taking calls`, eligible === 0 && s.nodes.length > 0 ? 'red' : 'green'),
    `${sessions}/${capacity} sessions`,
    `${reserved} reserved`,
  ];
  if (bad > 0) parts.push(paint(`${bad} unreadable`, 'red'));
  return `${paint(`fslb (${s.prefix})`, 'bold')}  ${parts.join(' · ')}  ${paint(
    `${new Date(s.at).toISOString().slice(0, 19)}Z v${s.version}`,
    'grey',
  )}`;
}

/** `fslb status --json`: the rows as they are, with the snapshot's time and version. */
export function statusJson(s: ClusterStatus): string {
  return JSON.stringify(
    { prefix: s.prefix, at: new Date(s.at).toISOString(), version: s.version, nodes: s.nodes },
    null,
    2,
  );
}
