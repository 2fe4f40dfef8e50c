/**
 * SIPp as a benchmark load: callee processes (UAS) that live for one step, and one caller run
 * (UAC) per step, with the figures SIPp writes to its -trace_stat file and the CPU it used.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive, exitOf, type Children } from './children.js';
import { processTicks, udpBound } from '../../test/support/proc-stat.js';

/** SIPp's -buff_size: its own sockets ignore net.core.rmem_default (it sets 64 KiB by default). */
const BUFFER_BYTES = 8 * 1024 * 1024;

/** The last line of a SIPp -trace_stat file (`;`-separated, with a header line), by column name. */
export function readSippStats(file: string): Record<string, string> | undefined {
  if (!existsSync(file)) return undefined;
  const lines = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '');
  const header = lines[0]?.split(';');
  const last = lines.length > 1 ? lines[lines.length - 1]?.split(';') : undefined;
  if (!header || !last) return undefined;
  return Object.fromEntries(header.map((h, i) => [h, last[i] ?? '']));
}

function count(stats: Record<string, string> | undefined, name: string): number {
  const v = Number(stats?.[name]);
  return Number.isFinite(v) ? v : 0;
}

export interface Uas {
  readonly port: number;
  readonly child: ChildProcess;
  readonly statFile: string;
  readonly errorFile: string;
}

/** What every SIPp here is given: no keyboard, big UDP buffers, statistics, errors and screen in files. */
function commonArgs(o: {
  statFile: string;
  errorFile: string;
  screenFile: string;
  statEverySec: number;
}): string[] {
  return [
    '-nostdin',
    '-buff_size',
    String(BUFFER_BYTES),
    '-trace_stat',
    '-stf',
    o.statFile,
    '-fd',
    String(o.statEverySec),
    '-trace_err',
    '-error_file',
    o.errorFile,
    '-max_log_size',
    '1000000',
    '-trace_screen',
    '-screen_file',
    o.screenFile,
  ];
}

/** Starts a callee on 127.0.0.1:`port` and resolves once its UDP socket is bound. */
export async function startUas(
  children: Children,
  sipp: string,
  scenario: string,
  port: number,
  dir: string,
): Promise<Uas> {
  const statFile = join(dir, `uas-${port}.csv`);
  const errorFile = join(dir, `uas-${port}.err`);
  const child = children.spawn(
    sipp,
    [
      '-sf',
      scenario,
      '-i',
      '127.0.0.1',
      '-p',
      String(port),
      ...commonArgs({ statFile, errorFile, screenFile: join(dir, `uas-${port}.screen`), statEverySec: 60 }),
    ],
    { stdio: 'ignore' },
  );
  const deadline = Date.now() + 5000;
  while (!udpBound(port)) {
    if (!alive(child)) throw new Error(`sipp callee on ${port} exited: ${tail(errorFile)}`);
    if (Date.now() > deadline) throw new Error(`sipp callee on ${port} did not bind within 5 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { port, child, statFile, errorFile };
}

export interface UasResult {
  calls: number;
  failed: number;
  firstError: string;
  messages: MessageRow[];
}

/** Stops a callee (SIGUSR1 makes SIPp write its final statistics and screen) and says what it saw. */
export async function stopUas(children: Children, uas: Uas): Promise<UasResult> {
  await children.stop(uas.child, 'SIGUSR1', 3000);
  const s = readSippStats(uas.statFile);
  return {
    calls: count(s, 'TotalCallCreated'),
    failed: count(s, 'FailedCall(C)'),
    firstError: firstEvent(uas.errorFile),
    messages: readMessageTable(uas.statFile.replace(/\.csv$/, '.screen')),
  };
}

export interface UacRun {
  exitCode: number | null;
  attempted: number;
  successful: number;
  failed: number;
  retransmissions: number;
  /** The non-zero Failed*(C) counters: why calls failed. */
  failures: Record<string, number>;
  wallMs: number;
  /** CPU of the caller itself (sampled every 100 ms while it ran; the last moments are missed). */
  cpuTicks: number;
  firstError: string;
  /** SIPp's per-message table (from its final screen): where calls stalled. */
  messages: MessageRow[];
  /**
   * Setup times (INVITE sent to 200 received, ms) of the calls that were answered, from SIPp's
   * -trace_rtt file, when the scenario marks them (start_rtd / rtd).
   */
  setupMs: number[];
}

export interface MessageRow {
  msg: string;
  count: number;
  retrans: number;
  timeout: number;
  unexpected: number;
}

/** The message table of a SIPp screen file (-trace_screen), in scenario order. */
export function readMessageTable(file: string): MessageRow[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  const end = text.indexOf('Statistics Screen');
  const rows: MessageRow[] = [];
  for (const line of (end < 0 ? text : text.slice(0, end)).split('\n')) {
    // `  200 <----------  E-RTD1 10  0 ...`: SIPp 3.7 puts the row's index first (`4 :`), and a
    // message that starts or ends a timed span carries its mark (B-RTD1, E-RTD1) before the count.
    const m =
      /^\s*(?:\d+\s*:\s*)?(\S+)\s+(-+>|<-+)\s+(?:[BE]-RTD\d+\s+)?(\d+)\s+(\d+)(?:\s+(\d+))?(?:\s+(\d+))?/.exec(
        line,
      );
    if (!m) continue;
    const dir = (m[2] ?? '').startsWith('<') ? '<-' : '->';
    rows.push({
      msg: `${m[1] ?? ''} ${dir}`,
      count: Number(m[3]),
      retrans: Number(m[4]),
      timeout: Number(m[5] ?? 0),
      unexpected: Number(m[6] ?? 0),
    });
  }
  return rows;
}

/**
 * One caller run: `calls` calls at `rate` per second, each held `holdMs` (0 by default) before
 * its BYE, to `target` (host:port), from the scenario `scenario`. Resolves when SIPp exits; a run
 * that outlives its budget is killed.
 */
export async function runUac(
  children: Children,
  o: {
    sipp: string;
    scenario: string;
    target: string;
    port: number;
    rate: number;
    calls: number;
    dir: string;
    holdMs?: number;
  },
): Promise<UacRun> {
  const holdMs = o.holdMs ?? 0;
  const statFile = join(o.dir, `uac-${o.rate}.csv`);
  const errorFile = join(o.dir, `uac-${o.rate}.err`);
  const screenFile = join(o.dir, `uac-${o.rate}.screen`);
  const budgetS = Math.ceil(o.calls / o.rate + holdMs / 1000) + 20;
  const t0 = performance.now();
  const child = children.spawn(
    o.sipp,
    [
      o.target,
      '-sf',
      o.scenario,
      '-s',
      'fslb',
      '-i',
      '127.0.0.1',
      '-p',
      String(o.port),
      '-m',
      String(o.calls),
      '-r',
      String(o.rate),
      '-rp',
      '1000',
      '-l',
      String(Math.min(10_000, Math.ceil(o.rate * (5 + holdMs / 1000)))),
      '-d',
      String(holdMs),
      // A call waiting 5 s for an answer has failed; so does the whole run past its budget.
      '-recv_timeout',
      '5000',
      '-timeout',
      `${budgetS}s`,
      '-timeout_error',
      '-trace_rtt',
      '-rtt_freq',
      '1',
      ...commonArgs({ statFile, errorFile, screenFile, statEverySec: 1 }),
    ],
    // The -trace_rtt file is written in the working directory.
    { stdio: 'ignore', cwd: o.dir },
  );
  let cpuTicks = 0;
  const pid = child.pid;
  const poll = setInterval(() => {
    const t = pid === undefined ? undefined : processTicks(pid);
    if (t !== undefined) cpuTicks = t;
  }, 100);
  const hardStop = setTimeout(() => void children.stop(child), (budgetS + 10) * 1000);
  const { code } = await exitOf(child);
  clearInterval(poll);
  clearTimeout(hardStop);
  const wallMs = performance.now() - t0;
  const s = readSippStats(statFile);
  const attempted = s ? count(s, 'TotalCallCreated') : o.calls;
  const completed = count(s, 'SuccessfulCall(C)');
  const failures: Record<string, number> = {};
  for (const [k, v] of Object.entries(s ?? {})) {
    if (/^Failed.+\(C\)$/.test(k) && Number(v) > 0) failures[k.slice(6, -3)] = Number(v);
  }
  const setupMs = pid === undefined ? [] : readRtt(o.dir, pid);
  const messages = readMessageTable(screenFile);
  // A scenario that acknowledges a 503 and ends the call (bench/sipp/uac.xml) ends it where SIPp
  // counts a success: it is a refused call.
  const refused = messages.filter((m) => m.msg === '503 <-').reduce((n, m) => n + m.count, 0);
  if (refused > 0) failures.Refused503 = refused;
  const successful = completed - refused;
  return {
    setupMs,
    exitCode: code,
    attempted,
    successful,
    // Calls still unfinished when SIPp stopped count as failed too.
    failed: attempted - successful,
    retransmissions: count(s, 'Retransmissions(C)'),
    failures,
    wallMs,
    cpuTicks,
    firstError: firstEvent(errorFile),
    messages,
  };
}

/** The first event of a SIPp error file, shortened (the file holds whole SIP messages). */
function firstEvent(file: string): string {
  const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n') : [];
  const first = lines.find((l) => /^\d{4}-\d\d-\d\d\t/.test(l));
  return (first ?? '').replace(/^\S+\t\S+\t\S+:\s*/, '').slice(0, 200);
}

function tail(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8').slice(-500) : '';
}

/** The response times (ms) of a SIPp -trace_rtt file (`<scenario>_<pid>_rtt.csv`) in `dir`. */
function readRtt(dir: string, pid: number): number[] {
  const file = readdirSync(dir).find((f) => f.endsWith(`_${pid}_rtt.csv`));
  if (file === undefined) return [];
  const out: number[] = [];
  for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
    // Date_ms;response_time_ms;rtd_no
    const v = Number(line.split(';')[1]);
    if (line !== '' && Number.isFinite(v) && !line.startsWith('Date')) out.push(v);
  }
  return out;
}
