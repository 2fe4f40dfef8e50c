import { globEscape, limitIdOf, scanKeys, type ClusterStore } from '@fslb/shared';
import type { LimitDefinition } from './connect.js';
import { table, type Paint } from './render.js';
import { shardStores } from './shards.js';

/** One counter of a limit: the calls counted on one key value. */
export interface CounterRow {
  /** The key value as stored (percent-encoded where it had to be). */
  key: string;
  /** Calls counted now: live ones and those in setup. */
  calls: number;
  /** Calls FreeSWITCH has a channel for. */
  live: number;
  /** Calls admitted in the last second (the figure `maxCps` caps). */
  lastSecond: number;
}

export interface LimitUse {
  id: string;
  maxCalls?: number;
  maxCps?: number;
  /** Counters with at least one call now or one admission in the last second. */
  keys: number;
  calls: number;
  /** The busiest counters, most calls first. */
  busiest: CounterRow[];
}

export interface LimitsReport {
  prefix: string;
  /** Redis time of the reading, epoch ms. */
  at: number;
  limits: LimitUse[];
}

/** The counters of one shard with a call or an admission now, by limit id, into `rows`. */
async function readCounters(store: ClusterStore, at: number, rows: Map<string, CounterRow[]>): Promise<void> {
  const redis = store.redis;
  const limitPrefix = store.keys.limit('');
  const ratePrefix = store.keys.rate('');
  const entries = new Set<string>();
  for (const prefix of [limitPrefix, ratePrefix]) {
    for (const k of await scanKeys(redis, `${globEscape(prefix)}*`)) entries.add(k.slice(prefix.length));
  }
  const list = [...entries];
  if (list.length === 0) return;
  const pipe = redis.pipeline();
  for (const e of list) {
    pipe.zcount(store.keys.limit(e), `(${at}`, '+inf');
    pipe.zcount(store.keys.limit(e), '+inf', '+inf');
    pipe.zcount(store.keys.rate(e), at - 1000, '+inf');
  }
  const replies = (await pipe.exec()) ?? [];
  list.forEach((e, i) => {
    // A key of another type (damaged by hand) reads as nothing.
    const n = (j: number): number => {
      const [err, v] = replies[i * 3 + j] ?? [];
      return err ? 0 : Number(v);
    };
    const row: CounterRow = { key: e.slice(e.indexOf(':') + 1), calls: n(0), live: n(1), lastSecond: n(2) };
    if (row.calls === 0 && row.lastSecond === 0) return;
    const id = limitIdOf(e);
    const held = rows.get(id) ?? [];
    held.push(row);
    rows.set(id, held);
  });
}

/**
 * Every limit's use, read with SCAN over `<prefix>:limit:*` and `<prefix>:rate:*` (reads only).
 * Limits the config defines appear even when nothing counts against them.
 */
export async function readLimits(
  store: ClusterStore,
  defs: readonly LimitDefinition[] = [],
  top = 10,
): Promise<LimitsReport> {
  const [sec, usec] = await store.redis.time();
  const at = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
  const rows = new Map<string, CounterRow[]>();
  // Each pool shard keeps the counters of its routes' limits (one shard per limit).
  for (const s of await shardStores(store)) await readCounters(s, at, rows);
  const ids = [...new Set([...defs.map((d) => d.id), ...rows.keys()])];
  const limits = ids.map((id): LimitUse => {
    const def = defs.find((d) => d.id === id);
    const counters = (rows.get(id) ?? []).sort((a, b) => b.calls - a.calls || b.lastSecond - a.lastSecond);
    return {
      id,
      ...(def?.maxCalls !== undefined ? { maxCalls: def.maxCalls } : {}),
      ...(def?.maxCps !== undefined ? { maxCps: def.maxCps } : {}),
      keys: counters.length,
      calls: counters.reduce((s, c) => s + c.calls, 0),
      busiest: counters.slice(0, top),
    };
  });
  return { prefix: store.keys.prefix, at, limits };
}

export function renderLimits(r: LimitsReport, paint: Paint): string {
  if (r.limits.length === 0) return `fslb (${r.prefix}): no limit has counted a call`;
  const rows: string[][] = [];
  for (const l of r.limits) {
    if (l.busiest.length === 0) {
      rows.push([l.id, paint('(none)', 'grey'), '0', capOf(l.maxCalls), '0', capOf(l.maxCps)]);
      continue;
    }
    for (const c of l.busiest) {
      const full = l.maxCalls !== undefined && c.calls >= l.maxCalls;
      rows.push([
        l.id,
        c.key,
        paint(`${c.calls} (${c.live} live)`, full ? 'red' : undefined),
        capOf(l.maxCalls),
        String(c.lastSecond),
        capOf(l.maxCps),
      ]);
    }
    if (l.keys > l.busiest.length)
      rows.push([l.id, paint(`... ${l.keys - l.busiest.length} more keys`, 'grey'), '', '', '', '']);
  }
  const grid = table(
    [
      { title: 'LIMIT' },
      { title: 'KEY' },
      { title: 'CALLS', align: 'right' },
      { title: 'MAX', align: 'right' },
      { title: 'LAST 1S', align: 'right' },
      { title: 'MAX CPS', align: 'right' },
    ],
    rows,
    paint,
  );
  return `${paint(`fslb (${r.prefix}) limits`, 'bold')}  ${paint(new Date(r.at).toISOString().slice(0, 19) + 'Z', 'grey')}\n${grid}`;
}

export function limitsJson(r: LimitsReport): string {
  return JSON.stringify({ prefix: r.prefix, at: new Date(r.at).toISOString(), limits: r.limits }, null, 2);
}

function capOf(n: number | undefined): string {
  return n === undefined ? '-' : String(n);
}
