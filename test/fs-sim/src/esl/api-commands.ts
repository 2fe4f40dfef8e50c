import type { SwitchCore } from '../core/switch-core.js';
import type { FsEvent } from '../event/fs-event.js';
import type { ChannelRow } from '../sip/sip-server.js';

/** How `fsctl shutdown` was asked to stop the node. */
export type ShutdownMode = 'elegant' | 'asap' | 'plain' | 'now' | 'cancel';

/** What the API commands need from the node beyond the core's state. */
export interface ApiHost {
  core(): SwitchCore;
  /** The profile's URL, `sip:mod_sofia@127.0.0.1:5080`. */
  profileUrl(): string;
  /** Calls the profile has taken, and those it refused. */
  profileCounters(): { callsIn: number; failedCallsIn: number };
  /** Hangs up every call; returns how many. */
  hangupAll(cause: string): number;
  /** Hangs up one call by its Unique-ID; false when there is no such channel. */
  kill(uuid: string, cause: string): boolean;
  /** Starts or cancels a shutdown; resolves when FreeSWITCH's command would return. */
  shutdown(mode: ShutdownMode, restart: boolean): Promise<void>;
  /** The rows of `show channels`. */
  channels(): ChannelRow[];
  /** A channel's data as an event carries it (variables included); undefined for no such channel. */
  channelData(uuid: string): FsEvent | undefined;
}

/** The reply of an API command: text now, text later, or undefined for an unknown command. */
export type ApiResult = string | Promise<string> | undefined;

const SEPARATOR = '='.repeat(97);

const FSCTL_SYNTAX =
  '[api_expansion [on|off]|recover|send_sighup|hupall|pause [inbound|outbound]|resume [inbound|outbound]|shutdown [cancel|elegant|asap|now|restart]|uuid_version [4|7]|sps|sps_peak_reset|sync_clock|sync_clock_when_idle|reclaim_mem|max_sessions|min_dtmf_duration [num]|max_dtmf_duration [num]|default_dtmf_duration [num]|min_idle_cpu|loglevel [level]|debug_level [level]|mdns_resolve [enable|disable]]';

/**
 * The subset of FreeSWITCH's API (mod_commands, mod_sofia) that fslb relies on, with
 * FreeSWITCH's output text. Facts from src/mod/applications/mod_commands/mod_commands.c and
 * src/mod/endpoints/mod_sofia/mod_sofia.c (https://github.com/signalwire/freeswitch).
 * `command` is the first word of `api <command> <arg>`; `arg` the rest, if any.
 */
export function executeApi(host: ApiHost, command: string, arg: string | undefined): ApiResult {
  const args = arg === undefined ? [] : arg.split(' ').filter((a) => a !== '');
  const core = host.core();
  switch (command.toLowerCase()) {
    case 'status':
      return status(core);
    case 'uptime':
      return uptime(core, args[0]);
    case 'version':
      return args[0]?.toLowerCase().includes('short')
        ? `${core.version.split('-')[0] ?? ''}\n`
        : `FreeSWITCH Version ${core.version} (${humanVersion(core)})\n`;
    case 'hostname':
      return core.hostname;
    case 'switchname':
      return core.switchname;
    case 'show':
      return show(host, args);
    case 'eval':
      return evaluate(host, arg ?? '');
    case 'fsctl':
      return fsctl(host, args);
    case 'sofia':
      return sofia(host, args);
    case 'hupall': {
      const cause = (args[0] ?? 'MANAGER_REQUEST').toUpperCase();
      host.hangupAll(cause);
      return `+OK hangup all channels with cause ${cause}\n`;
    }
    case 'uuid_kill': {
      const uuid = args[0];
      if (uuid === undefined) return '-USAGE: <uuid> [cause]\n';
      return host.kill(uuid, (args[1] ?? 'NORMAL_CLEARING').toUpperCase())
        ? '+OK\n'
        : '-ERR No such channel!\n';
    }
    default:
      return undefined;
  }
}

function humanVersion(core: SwitchCore): string {
  return core.version.replace('~', ' ');
}

function status(core: SwitchCore): string {
  const sps = core.spsFigures();
  return [
    `UP ${core.uptimeText()}\n`,
    `FreeSWITCH (Version ${humanVersion(core)}) is ${core.ready() ? 'ready' : 'not ready'}\n`,
    `${core.sessionsSinceStartup} session(s) since startup\n`,
    `${core.sessions} session(s) - peak ${core.peak}, last 5min ${core.peakFiveMin} \n`,
    `${sps.last} session(s) per Sec out of max ${sps.total}, peak ${sps.peak}, last 5min ${sps.peakFiveMin} \n`,
    `${core.maxSessions} session(s) max\n`,
    `min idle cpu ${core.minIdleCpu.toFixed(2)}/${core.idleCpu.toFixed(2)}\n`,
    'Current Stack Size/Max 240K/8192K\n',
  ].join('');
}

function uptime(core: SwitchCore, unit: string | undefined): string {
  const scales: Record<string, bigint> = {
    us: 1n,
    microseconds: 1n,
    ms: 1000n,
    milliseconds: 1000n,
    s: 1_000_000n,
    seconds: 1_000_000n,
    m: 60_000_000n,
    minutes: 60_000_000n,
    h: 3_600_000_000n,
    hours: 3_600_000_000n,
    d: 86_400_000_000n,
    days: 86_400_000_000n,
  };
  const scale = unit === undefined ? 1_000_000n : scales[unit.toLowerCase()];
  if (scale === undefined) {
    return '-USAGE: [us|ms|s|m|h|d|microseconds|milliseconds|seconds|minutes|hours|days]\n';
  }
  return `${core.uptimeMicros() / scale}\n`;
}

/** `show calls|channels count [as json|xml|delim]`; calls and channels agree (one leg per call). */
function show(host: ApiHost, args: string[]): string {
  const what = args[0]?.toLowerCase();
  if (what === 'status') return status(host.core());
  if ((what === 'calls' || what === 'channels') && args[1]?.toLowerCase() === 'count') {
    const count = host.core().sessions;
    const as = args[2]?.toLowerCase() === 'as' ? args[3]?.toLowerCase() : undefined;
    if (as === undefined || as === 'delim' || as === 'csv') return `\n${count} total.\n`;
    if (as === 'json') return `{"row_count":${count},"rows":[]}`;
    if (as === 'xml') return `<result row_count="${count}"/>\n`;
    return `-ERR Cannot find format ${args[3] ?? ''}\n`;
  }
  if (what === 'channels' && args[1]?.toLowerCase() === 'as' && args[2]?.toLowerCase() === 'json') {
    const rows = host.channels();
    // FreeSWITCH leaves `rows` out when there is none.
    return rows.length === 0 ? '{"row_count":0}' : JSON.stringify({ row_count: rows.length, rows });
  }
  return `-ERR fs-sim models only 'show calls count', 'show channels count' [as json|xml] and 'show channels as json'\n`;
}

/**
 * `eval [uuid:<uuid> ]<text>`: `${name}` expanded from the headers of the channel's data (its
 * `variable_*` among them); an unknown name, or an unknown channel, expands to nothing.
 * (mod_commands.c `eval_function`: `switch_channel_event_set_data` then `switch_event_expand_headers`.)
 */
function evaluate(host: ApiHost, arg: string): string {
  let input = arg;
  let data: FsEvent | undefined;
  if (/^uuid:/i.test(arg)) {
    const space = arg.indexOf(' ');
    if (space < 0) return '';
    data = host.channelData(arg.slice(5, space));
    input = arg.slice(space + 1);
  }
  return input.replace(/\$\{([^}]*)\}/g, (_m, name: string) => data?.getHeader(name) ?? '');
}

function fsctl(host: ApiHost, args: string[]): ApiResult {
  const core = host.core();
  const sub = args[0]?.toLowerCase();
  const which = args[1]?.toLowerCase();
  if (sub === undefined) return `-USAGE: ${FSCTL_SYNTAX}\n`;
  switch (sub) {
    case 'pause':
    case 'resume': {
      const on = sub === 'pause';
      if (which !== 'outbound') core.pausedInbound = on;
      if (which !== 'inbound') core.pausedOutbound = on;
      return '+OK\n';
    }
    case 'pause_check': {
      if (which === 'inbound') return String(core.pausedInbound);
      if (which === 'outbound') return String(core.pausedOutbound);
      return String(core.pausedInbound && core.pausedOutbound);
    }
    case 'ready_check':
      return String(core.ready());
    case 'shutdown_check':
      return String(core.shutdownRequested);
    case 'shutdown': {
      let mode: ShutdownMode = 'plain';
      let restart = false;
      for (const word of args.slice(1, 5).map((a) => a.toLowerCase())) {
        if (word === 'cancel') {
          mode = 'cancel';
          break;
        }
        if (word === 'elegant' || word === 'asap' || word === 'now') mode = word;
        else if (word === 'restart') restart = true;
      }
      return host.shutdown(mode, restart).then(() => '+OK\n');
    }
    case 'hupall':
      host.hangupAll('MANAGER_REQUEST');
      return '+OK\n';
    case 'max_sessions': {
      const n = parseInt(args[1] ?? '', 10);
      if (args[1] !== undefined && !Number.isNaN(n) && n > 0) core.maxSessions = n;
      return `+OK max sessions: ${core.maxSessions}\n`;
    }
    case 'sps': {
      const n = parseInt(args[1] ?? '', 10);
      if (args[1] !== undefined && !Number.isNaN(n) && n > 0) core.sessionsPerSecond = n;
      return `+OK sessions per second: ${core.sessionsPerSecond}\n`;
    }
    case 'min_idle_cpu': {
      const d = parseFloat(args[1] ?? '');
      if (args[1] !== undefined && !Number.isNaN(d)) core.minIdleCpu = d;
      return core.minIdleCpu
        ? `+OK min idle cpu: ${core.minIdleCpu.toFixed(2)}%\n`
        : '+OK min idle cpu: DISABLED\n';
    }
    default:
      return `-ERR Invalid command\nUSAGE: fsctl ${FSCTL_SYNTAX}\n`;
  }
}

/** `sofia status` and `sofia status profile <name>`; a profile that is not running is invalid. */
function sofia(host: ApiHost, args: string[]): string {
  const core = host.core();
  if (args[0]?.toLowerCase() !== 'status') {
    return `-ERR fs-sim models only 'sofia status' and 'sofia status profile <name>'\n`;
  }
  if (args.length === 1) {
    const running = core.profileRunning;
    let out = `${'Name'.padStart(25)}\t   Type\t  ${'Data'.padStart(40)}\tState\n${SEPARATOR}\n`;
    if (running) {
      out += `${core.profile.padStart(25)}\tprofile\t  ${host.profileUrl().padStart(40)}\tRUNNING (${core.realSessionCount})\n`;
    }
    out += `${SEPARATOR}\n${running ? 1 : 0} profile${running ? '' : 's'} 0 aliases\n`;
    return out;
  }
  if (args[1]?.toLowerCase() === 'profile') {
    const name = args[2];
    if (name === undefined || name !== core.profile || !core.profileRunning) return 'Invalid Profile!\n';
    const counters = host.profileCounters();
    const rows: [string, string | number][] = [
      ['Name', name],
      ['Domain Name', 'N/A'],
      ['Auto-NAT', 'false'],
      ['DBName', `sofia_reg_${name}`],
      ['Pres Hosts', ''],
      ['Dialplan', 'XML'],
      ['Context', 'public'],
      ['Challenge Realm', 'auto_to'],
      ['RTP-IP', core.ipv4],
      ['SIP-IP', core.ipv4],
      ['URL', host.profileUrl()],
      ['BIND-URL', `${host.profileUrl()};maddr=${core.ipv4}`],
      ['HOLD-MUSIC', 'N/A'],
      ['OUTBOUND-PROXY', 'N/A'],
      ['CODECS IN', 'PCMU,PCMA'],
      ['CODECS OUT', 'PCMU,PCMA'],
      ['TEL-EVENT', 101],
      ['DTMF-MODE', 'rfc2833'],
      ['CNG', 13],
      ['SESSION-TO', 0],
      ['MAX-DIALOG', 1000],
      ['MAX-RECV-RPS', 0],
      ['NOMEDIA', 'false'],
      ['LATE-NEG', 'false'],
      ['PROXY-MEDIA', 'false'],
      ['AGGRESSIVENAT', 'false'],
      ['CALLS-IN', counters.callsIn],
      ['FAILED-CALLS-IN', counters.failedCallsIn],
      ['CALLS-OUT', 0],
      ['FAILED-CALLS-OUT', 0],
      ['REGISTRATIONS', 0],
    ];
    return `${SEPARATOR}\n${rows.map(([k, v]) => `${k.padEnd(17)}\t${v}\n`).join('')}`;
  }
  return 'Invalid Syntax!\n';
}
