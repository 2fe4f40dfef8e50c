import type { ClusterStore } from '@fslb/shared';
import { formatAge, table, type Paint } from './render.js';

export type InstanceKind = 'proxies' | 'monitors';

/** One live proxy or monitor, from its presence key. */
export interface Instance {
  id: string;
  /** When its presence lapses unless refreshed, epoch ms. */
  expiresAt: number;
  /** The JSON it published, or null when the key is unreadable. */
  summary: Record<string, unknown> | null;
  problem?: string;
}

/**
 * The live instances of one kind: members of `fslb:proxies` / `fslb:monitors` not yet expired,
 * with their presence keys. A member whose key has already gone is left out (it is leaving).
 */
export async function readInstances(
  store: ClusterStore,
  kind: InstanceKind,
): Promise<{ at: number; list: Instance[] }> {
  const k = store.keys;
  const zset = kind === 'proxies' ? k.proxies : k.monitors;
  const [sec, usec] = await store.redis.time();
  const at = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
  const flat = await store.redis.zrangebyscore(zset, at, '+inf', 'WITHSCORES');
  const members: { id: string; expiresAt: number }[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2)
    members.push({ id: flat[i] ?? '', expiresAt: Number(flat[i + 1]) });
  if (members.length === 0) return { at, list: [] };
  const values = await store.redis.mget(
    members.map((m) => (kind === 'proxies' ? k.proxy(m.id) : k.monitor(m.id))),
  );
  const list: Instance[] = [];
  members.forEach((m, i) => {
    const raw = values[i];
    if (raw === null || raw === undefined) return;
    try {
      const v: unknown = JSON.parse(raw);
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TypeError('not an object');
      list.push({ ...m, summary: v as Record<string, unknown> });
    } catch {
      list.push({ ...m, summary: null, problem: 'unreadable presence key' });
    }
  });
  list.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { at, list };
}

const str = (v: unknown): string => (typeof v === 'string' || typeof v === 'number' ? String(v) : '-');
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

export function renderInstances(
  kind: InstanceKind,
  at: number,
  list: readonly Instance[],
  paint: Paint,
): string {
  if (list.length === 0) return paint(`no live ${kind}`, 'yellow');
  const uptime = (s: Record<string, unknown>): string => {
    const started = num(s.startedAt);
    return started === null ? '-' : formatAge(at - started);
  };
  if (kind === 'proxies') {
    const rows = list.map((i) => {
      const s = i.summary;
      if (s === null) return [i.id, paint(i.problem ?? '?', 'red')];
      const age = num(s.viewAgeMs);
      const source = str(s.viewSource);
      return [
        i.id,
        str(s.host),
        str(s.pid),
        str(s.version),
        uptime(s),
        paint(source, source === 'live' ? 'green' : 'yellow'),
        formatAge(age),
        str(s.nodes),
        s.drachtio === true ? paint('connected', 'green') : paint('down', 'red'),
      ];
    });
    return table(
      [
        { title: 'PROXY' },
        { title: 'HOST' },
        { title: 'PID', align: 'right' },
        { title: 'VERSION' },
        { title: 'UPTIME', align: 'right' },
        { title: 'VIEW' },
        { title: 'VIEW AGE', align: 'right' },
        { title: 'NODES', align: 'right' },
        { title: 'DRACHTIO' },
      ],
      rows,
      paint,
    );
  }
  const rows = list.map((i) => {
    const s = i.summary;
    if (s === null) return [i.id, paint(i.problem ?? '?', 'red')];
    const owned = Array.isArray(s.owned) ? s.owned.map(str) : [];
    return [i.id, str(s.host), str(s.pid), str(s.version), uptime(s), String(owned.length), owned.join(' ')];
  });
  return table(
    [
      { title: 'MONITOR' },
      { title: 'HOST' },
      { title: 'PID', align: 'right' },
      { title: 'VERSION' },
      { title: 'UPTIME', align: 'right' },
      { title: 'OWNS', align: 'right' },
      { title: 'NODES' },
    ],
    rows,
    paint,
  );
}

export function instancesJson(kind: InstanceKind, list: readonly Instance[]): string {
  return JSON.stringify(
    {
      [kind]: list.map((i) => ({
        id: i.id,
        expiresAt: new Date(i.expiresAt).toISOString(),
        ...(i.summary ?? { problem: i.problem }),
      })),
    },
    null,
    2,
  );
}
