import { z } from 'zod';
import { nodeIdRe } from './cluster-keys.js';
import { decodeNodeRecord, encodeNodeRecord, type DecodeResult, type NodeRecord } from './node-record.js';

/**
 * Messages on `fslb:events`. Keys hold the truth; an event says what changed and carries the
 * whole new record so that a proxy need not read it back. `version` comes from the cluster-wide
 * `fslb:version` counter: a reader applies an event only when it is newer than what it holds
 * for that node, and reloads from the keys whenever it may have missed one.
 *
 *   {"v":1,"type":"node","id":"fs1","version":42,"at":"1764490000123456","resv":2,"record":{...}}
 *   {"v":1,"type":"node","id":"fs1","version":43,"cause":"drained","at":"...","record":{...}}
 *   {"v":1,"type":"removed","id":"fs1","version":43}
 *   {"v":1,"type":"load","from":"proxy-a","nodes":{"fs1":{"s":10,"r":3,"at":"1764490000123999"}}}
 *
 * `at` is Redis time in microseconds (a string: JSON numbers lose digits in Lua's encoder) and
 * orders load figures (sessions, reservations) from every writer, monitors and proxies alike.
 * `resv` is the node's live reservations at that time. `load` messages are published by proxies,
 * coalesced, with the figures their reservation scripts returned; they bump no version. `cause`
 * marks a node event written by an operator's `fslb drain` or `fslb undrain`.
 */
export type ClusterEvent =
  | {
      type: 'node';
      id: string;
      version: number;
      record: NodeRecord;
      at?: number;
      reservations?: number;
      /** Set when an operator changed the admin flag (`fslb drain` / `fslb undrain`). */
      cause?: NodeCause;
    }
  | { type: 'removed'; id: string; version: number }
  | { type: 'load'; from: string; nodes: LoadFigure[] };

export type NodeCause = 'drained' | 'undrained';

/** One node's sessions and live reservations as Redis had them at `at` (µs since the epoch). */
export interface LoadFigure {
  id: string;
  sessions: number;
  reservations: number;
  at: number;
}

const micros = z
  .string()
  .regex(/^\d{1,16}$/)
  .transform(Number);
const count = z.number().int().min(0);

const envelope = z.discriminatedUnion('type', [
  z.object({
    v: z.literal(1),
    type: z.literal('node'),
    id: z.string().regex(nodeIdRe),
    version: z.number().int().positive(),
    record: z.record(z.string(), z.string()),
    at: micros.optional(),
    resv: count.optional(),
    cause: z.enum(['drained', 'undrained']).optional(),
  }),
  z.object({
    v: z.literal(1),
    type: z.literal('removed'),
    id: z.string().regex(nodeIdRe),
    version: z.number().int().positive(),
  }),
  z.object({
    v: z.literal(1),
    type: z.literal('load'),
    from: z.string().max(128),
    nodes: z.record(z.string().regex(nodeIdRe), z.object({ s: count, r: count, at: micros })),
  }),
]);

const microsRe = /^\d{1,16}$/;

/**
 * A well-formed node event, read without the schema (every proxy reads every one); undefined for
 * any other message, which the schema then reads. Accepts exactly what the schema accepts.
 */
function quickNodeEvent(raw: unknown): DecodeResult<ClusterEvent> | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const m = raw as Record<string, unknown>;
  const { id, version, record, at, resv, cause } = m;
  if (m.v !== 1 || m.type !== 'node' || typeof id !== 'string' || !nodeIdRe.test(id)) return undefined;
  if (typeof version !== 'number' || !Number.isInteger(version) || version <= 0) return undefined;
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return undefined;
  for (const v of Object.values(record)) if (typeof v !== 'string') return undefined;
  if (at !== undefined && (typeof at !== 'string' || !microsRe.test(at))) return undefined;
  if (resv !== undefined && (typeof resv !== 'number' || !Number.isInteger(resv) || resv < 0))
    return undefined;
  if (cause !== undefined && cause !== 'drained' && cause !== 'undrained') return undefined;
  const rec = decodeNodeRecord(record as Record<string, string>);
  if (!rec.ok) return undefined;
  if (rec.value.id !== id) return { ok: false, problems: ['record.id differs from id'] };
  return {
    ok: true,
    value: {
      type: 'node',
      id,
      version,
      record: rec.value,
      ...(at === undefined ? {} : { at: Number(at) }),
      ...(resv === undefined ? {} : { reservations: resv }),
      ...(cause === undefined ? {} : { cause }),
    },
  };
}

/** Reads one message; garbage (bad JSON, unknown shape, a bad record) is a problem, never a throw. */
export function decodeClusterEvent(message: string): DecodeResult<ClusterEvent> {
  let raw: unknown;
  try {
    raw = JSON.parse(message);
  } catch {
    return { ok: false, problems: ['not JSON'] };
  }
  const quick = quickNodeEvent(raw);
  if (quick) return quick;
  const e = envelope.safeParse(raw);
  if (!e.success) {
    return {
      ok: false,
      problems: e.error.issues.map((i) => `${i.path.join('.') || 'message'}: ${i.message}`),
    };
  }
  const m = e.data;
  if (m.type === 'removed') return { ok: true, value: { type: 'removed', id: m.id, version: m.version } };
  if (m.type === 'load') {
    const nodes = Object.entries(m.nodes).map(([id, f]) => ({
      id,
      sessions: f.s,
      reservations: f.r,
      at: f.at,
    }));
    return { ok: true, value: { type: 'load', from: m.from, nodes } };
  }
  const rec = decodeNodeRecord(m.record);
  if (!rec.ok) return { ok: false, problems: rec.problems.map((p) => `record.${p}`) };
  if (rec.value.id !== m.id) return { ok: false, problems: ['record.id differs from id'] };
  return {
    ok: true,
    value: {
      type: 'node',
      id: m.id,
      version: m.version,
      record: rec.value,
      ...(m.at === undefined ? {} : { at: m.at }),
      ...(m.resv === undefined ? {} : { reservations: m.resv }),
      ...(m.cause === undefined ? {} : { cause: m.cause }),
    },
  };
}

/** Writes one message as the Lua scripts do (used by tests and by writers outside Lua). */
export function encodeClusterEvent(e: ClusterEvent): string {
  if (e.type === 'removed') return JSON.stringify({ v: 1, type: 'removed', id: e.id, version: e.version });
  if (e.type === 'load') {
    const nodes: Record<string, { s: number; r: number; at: string }> = {};
    for (const f of e.nodes) nodes[f.id] = { s: f.sessions, r: f.reservations, at: String(f.at) };
    return JSON.stringify({ v: 1, type: 'load', from: e.from, nodes });
  }
  return JSON.stringify({
    v: 1,
    type: 'node',
    id: e.id,
    version: e.version,
    ...(e.at === undefined ? {} : { at: String(e.at) }),
    ...(e.reservations === undefined ? {} : { resv: e.reservations }),
    ...(e.cause === undefined ? {} : { cause: e.cause }),
    record: encodeNodeRecord(e.record),
  });
}
