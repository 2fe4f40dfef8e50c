/**
 * Readings from Linux's /proc for tests and benchmarks that watch other processes: CPU time (utime + stime,
 * in clock ticks, all threads), per-thread CPU, memory, whole-machine CPU, and which children of
 * this process run a given program. Every reading of a process that is gone returns undefined.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second (`getconf CLK_TCK`), 100 if it cannot be asked. */
export function clockTicksPerSecond(): number {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
}

/** The fields of a /proc/<pid>/stat line after the command name, so that [0] is field 3 (state). */
function statFields(path: string): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const close = text.lastIndexOf(')');
  return close < 0 ? undefined : text.slice(close + 2).split(' ');
}

function ticksOf(fields: string[] | undefined): number | undefined {
  if (!fields) return undefined;
  return Number(fields[11]) + Number(fields[12]);
}

/** utime + stime of a whole process (every thread), in clock ticks. */
export function processTicks(pid: number): number | undefined {
  return ticksOf(statFields(`/proc/${pid}/stat`));
}

const ticksPerSecond = clockTicksPerSecond();

/** utime + stime of a whole process (every thread), in µs; NaN when it is gone. */
export function processCpuMicros(pid: number): number {
  const ticks = processTicks(pid);
  return ticks === undefined ? NaN : (ticks * 1e6) / ticksPerSecond;
}

/** utime + stime of each thread of a process, by thread id. */
export function threadTicks(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    const t = ticksOf(statFields(`/proc/${pid}/task/${tid}/stat`));
    if (t !== undefined) out.set(Number(tid), t);
  }
  return out;
}

/** The most any one thread gained between two readings, in ticks (a single-threaded bottleneck shows here). */
export function busiestThreadDelta(before: Map<number, number>, after: Map<number, number>): number {
  let max = 0;
  for (const [tid, t] of after) max = Math.max(max, t - (before.get(tid) ?? 0));
  return max;
}

/** The number after `name:` at the start of a line of a /proc text (status, io); `missing` if there is none. */
function procField(text: string, name: string, missing = NaN): number {
  return Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? missing);
}

/** Resident set size now and its peak (VmRSS, VmHWM), in MiB. */
export function memoryMiB(pid: number): { rss: number; peak: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  return { rss: procField(text, 'VmRSS') / 1024, peak: procField(text, 'VmHWM') / 1024 };
}

/** Whole-machine CPU time from /proc/stat, in ticks: busy (not idle or iowait) and total. */
export function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already counted in user).
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

/** Children of `parent` whose command line (argv joined by spaces, as the process shows it) matches. */
export function childPids(parent: number, match: (cmdline: string) => boolean): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const fields = statFields(`/proc/${name}/stat`);
    if (Number(fields?.[1]) !== parent) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ').trim();
    } catch {
      continue;
    }
    if (match(cmdline)) out.push(Number(name));
  }
  return out;
}

/** Whether a process still runs as a child of `parent` (guards against a recycled pid). */
export function isChildOf(pid: number, parent: number): boolean {
  const fields = statFields(`/proc/${pid}/stat`);
  return fields !== undefined && fields[0] !== 'Z' && Number(fields[1]) === parent;
}

/** Whether a UDP socket is bound to the port on IPv4 (from /proc/net/udp). */
export function udpBound(port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  try {
    return readFileSync('/proc/net/udp', 'utf8')
      .split('\n')
      .some((l) => l.trim().split(/\s+/)[1]?.endsWith(hex) === true);
  } catch {
    return false;
  }
}

/** Datagrams the machine dropped for a full receive buffer, every socket (Udp RcvbufErrors in /proc/net/snmp). */
export function udpReceiveBufferErrors(): number {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('Udp:'));
    const names = lines[0]?.split(/\s+/) ?? [];
    const values = lines[1]?.split(/\s+/) ?? [];
    return Number(values[names.indexOf('RcvbufErrors')] ?? NaN);
  } catch {
    return NaN;
  }
}

/**
 * A process's read- and write-family system calls (syscr, syscw of /proc/<pid>/io: read, readv,
 * write, writev and the like; socket calls such as recvmsg and sendto are not counted there, so a
 * program that uses only those reads 0) and its threads' context switches, given up (voluntary:
 * it waited) and taken (involuntary: preempted), summed. Undefined when it is gone or
 * /proc/<pid>/io is not readable.
 */
export function processSwitches(
  pid: number,
): { reads: number; writes: number; voluntary: number; involuntary: number } | undefined {
  let io: string;
  let tids: string[];
  try {
    io = readFileSync(`/proc/${pid}/io`, 'utf8');
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  let voluntary = 0;
  let involuntary = 0;
  for (const tid of tids) {
    let status: string;
    try {
      status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    } catch {
      continue; // the thread ended between the listing and the reading
    }
    voluntary += procField(status, 'voluntary_ctxt_switches', 0);
    involuntary += procField(status, 'nonvoluntary_ctxt_switches', 0);
  }
  return { reads: procField(io, 'syscr', 0), writes: procField(io, 'syscw', 0), voluntary, involuntary };
}
