import { z } from 'zod';
import { nodeIdRe } from './cluster-keys.js';

/**
 * A node's record as stored in the `fslb:node:<id>` hash. Redis hashes hold strings; this
 * module is the one place that turns them into typed values and back, and the one that decides
 * what a readable record is. A record edited by hand into nonsense (`sessions` = `banana`) is
 * reported and skipped by readers, never trusted and never fatal.
 */

export const NodeState = {
  Up: 'up',
  Down: 'down',
  Draining: 'draining',
  Unknown: 'unknown',
} as const;
export type NodeState = (typeof NodeState)[keyof typeof NodeState];

export const AdminState = { None: '', Drain: 'drain' } as const;
export type AdminState = (typeof AdminState)[keyof typeof AdminState];

export interface NodeRecord {
  id: string;
  /** Where proxies send INVITEs: host:port or a sip: URI. */
  sip: string;
  state: NodeState;
  /** Why the state is what it is (`probe timeout`, `paused`, `auth`), empty when up. */
  reason: string;
  /** Live sessions on the node. */
  sessions: number;
  /** Sessions the node will take: the lower of FreeSWITCH's Max-Sessions and `cap`; 0 = unknown. */
  maxSessions: number;
  /** The configured cap (`nodes[].maxSessions`), 0 when none. */
  cap: number;
  idleCpu: number;
  cps: number;
  weight: number;
  /** Set by the CLI; a drained node takes no new calls whatever its state. */
  admin: AdminState;
  /** Id of the monitor that owns the node, empty when none has yet. */
  owner: string;
  /** The pool the node belongs to, as its owner's configuration says; empty before it wrote one. */
  pool: string;
  /** Epoch ms of the node's last sign of life (probe answered or HEARTBEAT), 0 = never. */
  heartbeatAt: number;
  /** Epoch ms of the last change. */
  updatedAt: number;
  version: number;
}

const num = (min = 0) =>
  z
    .string()
    .regex(/^-?\d+(\.\d+)?$/, 'expected a number')
    .transform(Number)
    .pipe(z.number().min(min));
const int = () =>
  z
    .string()
    .regex(/^\d+$/, 'expected a whole number')
    .transform(Number)
    .pipe(z.number().int().min(0).max(Number.MAX_SAFE_INTEGER));

const recordSchema = z.object({
  id: z.string().regex(nodeIdRe),
  sip: z.string().min(1),
  state: z.enum(['up', 'down', 'draining', 'unknown']),
  reason: z.string().default(''),
  sessions: int(),
  maxSessions: int(),
  cap: int().default(0),
  idleCpu: num().default(0),
  cps: num().default(0),
  weight: num().pipe(z.number().positive()),
  admin: z.enum(['', 'drain']).default(''),
  owner: z.string().default(''),
  pool: z.string().default(''),
  heartbeatAt: int().default(0),
  updatedAt: int(),
  version: int(),
});

export type DecodeResult<T> = { ok: true; value: T } | { ok: false; problems: string[] };

const wholeRe = /^\d+$/;
const numberRe = /^-?\d+(\.\d+)?$/;
const states: ReadonlySet<string> = new Set(Object.values(NodeState));

/** A whole number field as the schema reads it, or undefined when it would refuse it. */
function whole(v: string | undefined, fallback?: number): number | undefined {
  if (v === undefined) return fallback;
  if (!wholeRe.test(v)) return undefined;
  const n = Number(v);
  return n <= Number.MAX_SAFE_INTEGER ? n : undefined;
}

/** A number field (at least 0) as the schema reads it, or undefined when it would refuse it. */
function decimal(v: string | undefined, fallback?: number): number | undefined {
  if (v === undefined) return fallback;
  if (!numberRe.test(v)) return undefined;
  const n = Number(v);
  return n >= 0 ? n : undefined;
}

/**
 * The record of a well-formed hash, read without the schema: every proxy reads one per node
 * event, and the schema costs several times this. Accepts exactly what the schema accepts;
 * undefined for anything else, which the schema then reads to say what is wrong.
 */
function quickRecord(h: Readonly<Record<string, string>>): NodeRecord | undefined {
  const { id, sip, state } = h;
  if (id === undefined || !nodeIdRe.test(id) || !sip || state === undefined || !states.has(state))
    return undefined;
  const admin = h.admin ?? '';
  if (admin !== AdminState.None && admin !== AdminState.Drain) return undefined;
  const sessions = whole(h.sessions);
  const maxSessions = whole(h.maxSessions);
  const cap = whole(h.cap, 0);
  const idleCpu = decimal(h.idleCpu, 0);
  const cps = decimal(h.cps, 0);
  const weight = decimal(h.weight);
  const heartbeatAt = whole(h.heartbeatAt, 0);
  const updatedAt = whole(h.updatedAt);
  const version = whole(h.version);
  if (
    sessions === undefined ||
    maxSessions === undefined ||
    cap === undefined ||
    idleCpu === undefined ||
    cps === undefined ||
    weight === undefined ||
    weight <= 0 ||
    heartbeatAt === undefined ||
    updatedAt === undefined ||
    version === undefined
  ) {
    return undefined;
  }
  return {
    id,
    sip,
    state: state as NodeState,
    reason: h.reason ?? '',
    sessions,
    maxSessions,
    cap,
    idleCpu,
    cps,
    weight,
    admin,
    owner: h.owner ?? '',
    pool: h.pool ?? '',
    heartbeatAt,
    updatedAt,
    version,
  };
}

/** Reads a node hash (as HGETALL returns it). Missing hash (empty object) is a problem too. */
export function decodeNodeRecord(hash: Readonly<Record<string, string>>): DecodeResult<NodeRecord> {
  const quick = quickRecord(hash);
  if (quick) return { ok: true, value: quick };
  return decodeNodeRecordBySchema(hash);
}

/** `decodeNodeRecord` through the schema alone (the quick path is held to it in the tests). */
export function decodeNodeRecordBySchema(hash: Readonly<Record<string, string>>): DecodeResult<NodeRecord> {
  if (Object.keys(hash).length === 0) return { ok: false, problems: ['record is missing'] };
  const r = recordSchema.safeParse(hash);
  if (r.success) return { ok: true, value: r.data };
  return { ok: false, problems: r.error.issues.map((i) => `${i.path.join('.') || 'record'}: ${i.message}`) };
}

/** A record as the flat field/value strings of its hash. */
export function encodeNodeRecord(r: NodeRecord): Record<string, string> {
  return {
    id: r.id,
    sip: r.sip,
    state: r.state,
    reason: r.reason,
    sessions: String(r.sessions),
    maxSessions: String(r.maxSessions),
    cap: String(r.cap),
    idleCpu: String(r.idleCpu),
    cps: String(r.cps),
    weight: String(r.weight),
    admin: r.admin,
    owner: r.owner,
    pool: r.pool,
    heartbeatAt: String(r.heartbeatAt),
    updatedAt: String(r.updatedAt),
    version: String(r.version),
  };
}
