import { parseArgs } from 'node:util';

import type { FsClusterOptions } from './fs-cluster.js';

export const USAGE = `Usage: npm run fs-sim -- [options]

Starts simulated FreeSWITCH nodes (Event Socket + SIP UAS) in one process.

  --esl-port N            first ESL port (default 8021; 0 = any free port)
  --sip-port N            first SIP port, UDP and TCP (default 5080; 0 = any free port)
  --count N               nodes to start; ports count up from the given ones (default 1)
  --host ADDR             address to bind (default 127.0.0.1)
  --password PW           ESL password (default ClueCon)
  --max-sessions N        Max-Sessions of each node (default 100)
  --heartbeat-ms N        HEARTBEAT interval (default 1000)
  --hold-ms N             answered calls end with a BYE from the node after N ms; 0 = wait
                          for the caller's BYE (default 0)
  --answer-delay-ms N     ring for N ms (180 Ringing) before the 200 OK (default 0)
  --sessions-per-second N sessions-per-second limit (default 1000)
  --idle-cpu PCT          Idle-CPU reported (default 98.5)
  --hostname-prefix P     hostnames P1, P2, ... (default fs-sim-<esl port>)
  --paused                start paused (fsctl pause)
  --challenge             answer INVITEs without credentials 401 with a digest challenge
                          (WWW-Authenticate, realm = the host); a retry naming the nonce is
                          taken (the digest is not checked)
  --refuse-auth           answer every ESL auth with -ERR invalid
  --acl-reject            refuse every ESL connection with text/rude-rejection
  --control-stdin         read commands from stdin, one a line: \`malformed <kind>\` writes a broken
                          ESL frame to every client (bad-json, bad-percent, bad-values,
                          short-body, garbage); \`lose <EVENT_NAME> [n]\` loses the next n
                          events of that name (never sent to any client)
  --help                  this text

Signals: SIGTERM shuts every node down as FreeSWITCH does (SHUTDOWN, disconnect notice) and
exits 0; SIGINT closes at once; SIGUSR1 toggles a stall; SIGUSR2 drops every ESL connection;
SIGHUP toggles pause.`;

export interface CliOptions {
  cluster: FsClusterOptions;
  paused: boolean;
  refuseAuth: boolean;
  aclReject: boolean;
  controlStdin: boolean;
}

export type CliParse =
  { help: true } | { help: false; options: CliOptions } | { help: false; problems: string[] };

/** Parses the command line; every problem found is listed, by flag. */
export function parseCli(argv: string[]): CliParse {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        'esl-port': { type: 'string' },
        'sip-port': { type: 'string' },
        count: { type: 'string' },
        host: { type: 'string' },
        password: { type: 'string' },
        'max-sessions': { type: 'string' },
        'heartbeat-ms': { type: 'string' },
        'hold-ms': { type: 'string' },
        'answer-delay-ms': { type: 'string' },
        'sessions-per-second': { type: 'string' },
        'idle-cpu': { type: 'string' },
        'hostname-prefix': { type: 'string' },
        paused: { type: 'boolean' },
        challenge: { type: 'boolean' },
        'refuse-auth': { type: 'boolean' },
        'acl-reject': { type: 'boolean' },
        'control-stdin': { type: 'boolean' },
        help: { type: 'boolean' },
      },
    }).values;
  } catch (err) {
    return { help: false, problems: [err instanceof Error ? err.message : String(err)] };
  }
  if (values.help === true) return { help: true };

  const problems: string[] = [];
  const int = (flag: string, fallback: number, min: number, max: number): number => {
    const raw = values[flag];
    if (raw === undefined) return fallback;
    const n = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`--${flag}: expected an integer from ${min} to ${max}, got '${String(raw)}'`);
      return fallback;
    }
    return n;
  };
  const count = int('count', 1, 1, 1000);
  const eslPort = int('esl-port', 8021, 0, 65535);
  const sipPort = int('sip-port', 5080, 0, 65535);
  if (eslPort !== 0 && eslPort + count - 1 > 65535)
    problems.push('--esl-port: the last node would need a port above 65535');
  if (sipPort !== 0 && sipPort + count - 1 > 65535)
    problems.push('--sip-port: the last node would need a port above 65535');
  if (eslPort !== 0 && sipPort !== 0 && eslPort < sipPort + count && sipPort < eslPort + count) {
    problems.push('--esl-port/--sip-port: the two port ranges overlap');
  }
  const idleRaw = values['idle-cpu'];
  let idleCpu = 98.5;
  if (idleRaw !== undefined) {
    idleCpu = typeof idleRaw === 'string' ? Number(idleRaw) : NaN;
    if (!Number.isFinite(idleCpu) || idleCpu < 0 || idleCpu > 100) {
      problems.push(`--idle-cpu: expected a number from 0 to 100, got '${String(idleRaw)}'`);
    }
  }
  const str = (flag: string): string | undefined => {
    const v = values[flag];
    return typeof v === 'string' ? v : undefined;
  };
  const password = str('password') ?? 'ClueCon';
  if (password === '' || /[\r\n]/.test(password)) problems.push('--password: must be one non-empty line');

  const cluster: FsClusterOptions = {
    count,
    eslPort,
    sipPort,
    host: str('host') ?? '127.0.0.1',
    password,
    maxSessions: int('max-sessions', 100, 1, 10_000_000),
    heartbeatMs: int('heartbeat-ms', 1000, 1, 86_400_000),
    holdMs: int('hold-ms', 0, 0, 86_400_000),
    answerDelayMs: int('answer-delay-ms', 0, 0, 600_000),
    sessionsPerSecond: int('sessions-per-second', 1000, 1, 10_000_000),
    idleCpu,
  };
  const prefix = str('hostname-prefix');
  if (prefix !== undefined) cluster.hostnamePrefix = prefix;
  if (values.challenge === true) cluster.challenge = true;
  if (problems.length > 0) return { help: false, problems };
  return {
    help: false,
    options: {
      cluster,
      paused: values.paused === true,
      refuseAuth: values['refuse-auth'] === true,
      aclReject: values['acl-reject'] === true,
      controlStdin: values['control-stdin'] === true,
    },
  };
}
