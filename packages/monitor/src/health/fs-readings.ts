/**
 * Readers for what FreeSWITCH answers over ESL. Pure functions over strings: no I/O, so they
 * are tested with plain values. Formats as FreeSWITCH's mod_commands writes them, e.g.
 * `api status`:
 *
 *   UP 0 years, 0 days, 2 hours, 9 minutes, 54 seconds, 455 milliseconds, 408 microseconds
 *   FreeSWITCH (Version 1.10.12 ... 64bit) is ready
 *   11773 session(s) since startup
 *   4759 session(s) - peak 5159, last 5min 4759
 *   72 session(s) per Sec out of max 1000, peak 107, last 5min 97
 *   10000 session(s) max
 *   min idle cpu 0.00/3.07
 */

export interface StatusReading {
  /** The core says "is ready" (false: "is not ready", e.g. while shutting down). */
  ready: boolean;
  sessions: number | undefined;
  maxSessions: number | undefined;
  /** Sessions created per second right now. */
  cps: number | undefined;
  /** Current idle CPU, percent. */
  idleCpu: number | undefined;
}

export function readStatus(body: string): StatusReading | undefined {
  if (!/^UP /m.test(body)) return undefined;
  const num = (re: RegExp): number | undefined => {
    const m = re.exec(body);
    return m?.[1] === undefined ? undefined : Number(m[1]);
  };
  return {
    ready: /\bis ready\b/.test(body),
    sessions: num(/^(\d+) session\(s\) - /m),
    maxSessions: num(/^(\d+) session\(s\) max/m),
    cps: num(/^(\d+) session\(s\) per Sec/m),
    idleCpu: num(/^min idle cpu [\d.]+\/([\d.]+)/m),
  };
}

/** `fsctl pause_check [inbound]`, `fsctl ready_check`, `fsctl shutdown_check`: "true" / "false". */
export function readFlag(body: string): boolean | undefined {
  const t = body.trim();
  if (t === 'true') return true;
  if (t === 'false') return false;
  return undefined;
}

/**
 * `sofia status profile <name>`: the profile's details while it runs; `Invalid Profile!` when
 * it is not loaded (never started, stopped, or being restarted).
 */
export function readProfileRunning(body: string): boolean {
  if (/Invalid Profile/i.test(body) || body.startsWith('-ERR')) return false;
  return /\bRUNNING\b/.test(body) || /^Name\s+\S+/m.test(body);
}

export interface HeartbeatReading {
  sessions: number | undefined;
  maxSessions: number | undefined;
  cps: number | undefined;
  idleCpu: number | undefined;
}

/** A HEARTBEAT event's headers. */
export function readHeartbeat(header: (name: string) => string | undefined): HeartbeatReading {
  const num = (h: string): number | undefined => {
    const v = header(h);
    if (v === undefined || v.trim() === '') return undefined;
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  };
  return {
    sessions: num('Session-Count'),
    maxSessions: num('Max-Sessions'),
    cps: num('Session-Per-Sec'),
    idleCpu: num('Idle-CPU'),
  };
}
