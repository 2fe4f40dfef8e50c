import { z } from 'zod';
import { nodeIdRe } from './cluster-keys.js';
import { decodeNodeRecord, encodeNodeRecord, type DecodeResult, type NodeRecord } from './node-record.js';

/**
 * Messages on `fslb:events`. Keys hold the truth; an event says what changed and carries the
 * whole new record so that a proxy need not read it back. `version` comes from the cluster-wide
 * `fslb:version` counter: a reader applies an event only when it is newer than what it holds
 * for that node, and reloads from the keys whenever it may have missed one.
 *
 *   {"v":1,"type":"node","id":"fs1","version":42,"record":{...hash fields...}}
 *   {"v":1,"type":"removed","id":"fs1","version":43}
 */
export type ClusterEvent =
  | { type: 'node'; id: string; version: number; record: NodeRecord }
  | { type: 'removed'; id: string; version: number };

const envelope = z.discriminatedUnion('type', [
  z.object({
    v: z.literal(1),
    type: z.literal('node'),
    id: z.string().regex(nodeIdRe),
    version: z.number().int().positive(),
    record: z.record(z.string(), z.string()),
  }),
  z.object({
    v: z.literal(1),
    type: z.literal('removed'),
    id: z.string().regex(nodeIdRe),
    version: z.number().int().positive(),
  }),
]);

/** Reads one message; garbage (bad JSON, unknown shape, a bad record) is a problem, never a throw. */
export function decodeClusterEvent(message: string): DecodeResult<ClusterEvent> {
  let raw: unknown;
  try {
    raw = JSON.parse(message);
  } catch {
    return { ok: false, problems: ['not JSON'] };
  }
  const e = envelope.safeParse(raw);
  if (!e.success) {
    return {
      ok: false,
      problems: e.error.issues.map((i) => `${i.path.join('.') || 'message'}: ${i.message}`),
    };
  }
  const m = e.data;
  if (m.type === 'removed') return { ok: true, value: { type: 'removed', id: m.id, version: m.version } };
  const rec = decodeNodeRecord(m.record);
  if (!rec.ok) return { ok: false, problems: rec.problems.map((p) => `record.${p}`) };
  if (rec.value.id !== m.id) return { ok: false, problems: ['record.id differs from id'] };
  return { ok: true, value: { type: 'node', id: m.id, version: m.version, record: rec.value } };
}

/** Writes one message as the Lua scripts do (used by tests and by writers outside Lua). */
export function encodeClusterEvent(e: ClusterEvent): string {
  if (e.type === 'removed') return JSON.stringify({ v: 1, type: 'removed', id: e.id, version: e.version });
  return JSON.stringify({
    v: 1,
    type: 'node',
    id: e.id,
    version: e.version,
    record: encodeNodeRecord(e.record),
  });
}
