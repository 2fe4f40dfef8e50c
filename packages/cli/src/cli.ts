import { parseArgs, type ParseArgsConfig } from 'node:util';
import {
  duplicateSubscriber,
  FSLB_VERSION,
  onMessage,
  parseDuration,
  subscribe,
  type ClusterStore,
  type Redis,
} from '@fslb/shared';
import {
  CliError,
  connect,
  describeTarget,
  ExitCode,
  reasonOf,
  resolveTarget,
  type Target,
} from './connect.js';
import { describeLeft, setDrain, waitDrained } from './drain.js';
import { shardStores } from './shards.js';
import { instancesJson, readInstances, renderInstances } from './instances.js';
import { limitsJson, readLimits, renderLimits } from './limits.js';
import { painter, wantsColour } from './render.js';
import { readStatus, renderStatus, statusJson } from './status.js';
import { watch } from './watch.js';

export interface CliIo {
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown };
  env: Readonly<Record<string, string | undefined>>;
  /** Ends `watch` and `drain --wait` (SIGINT / SIGTERM in the real command). */
  signal?: AbortSignal;
}

type Options = NonNullable<ParseArgsConfig['options']>;

const common: Options = {
  config: { type: 'string', short: 'c' },
  redis: { type: 'string' },
  prefix: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

const commonHelp = `Options for every command:
  -c, --config FILE   read the redis and prefix sections of an fslb config (or FSLB_CONFIG)
      --redis URL     redis://[user:pass@]host:port[/db], rediss://..., or a socket path
                      (default REDIS_URL, else redis://127.0.0.1:6379)
      --prefix P      key prefix (default FSLB_PREFIX, else fslb)
  -h, --help          this help`;

interface Command {
  summary: string;
  usage: string;
  options: Options;
  help: string;
  positionals: number;
  run: (ctx: Context) => Promise<number>;
}

interface Context {
  io: CliIo;
  target: Target;
  values: Record<string, string | boolean | undefined>;
  args: string[];
}

const commands: Record<string, Command> = {
  status: {
    summary: 'every node: state, load, reservations, owner, heartbeat, drain',
    usage: 'fslb status [--json]',
    options: { json: { type: 'boolean' } },
    help: '      --json          machine-readable output',
    positionals: 0,
    run: (c) =>
      oneShot(c, async (store) => {
        const s = await readStatus(store);
        out(c, c.values.json === true ? statusJson(s) : renderStatus(s, paintFor(c)));
        return ExitCode.Ok;
      }),
  },
  watch: {
    summary: 'the status table, live (Ctrl-C to stop)',
    usage: 'fslb watch [--interval 2s]',
    options: { interval: { type: 'string' } },
    help: '      --interval D    full reload period besides change events (default 2s)',
    positionals: 0,
    run: runWatch,
  },
  drain: {
    summary: 'stop sending new calls to a node; --wait until its calls end',
    usage: 'fslb drain <node> [--wait [--timeout 1h]]',
    options: { wait: { type: 'boolean' }, timeout: { type: 'string' } },
    help: `      --wait          return when the node has no sessions and no reserved calls
      --timeout D     give up waiting after D (default 1h); exit 1 with the count left`,
    positionals: 1,
    run: runDrain,
  },
  undrain: {
    summary: 'let a drained node take calls again',
    usage: 'fslb undrain <node>',
    options: {},
    help: '',
    positionals: 1,
    run: (c) =>
      oneShot(c, async (store) => {
        const id = c.args[0] ?? '';
        const r = await setDrain(store, id, false);
        out(c, r.changed ? `${id} undrained: proxies may send it calls again` : `${id} was not drained`);
        return ExitCode.Ok;
      }),
  },
  limits: {
    summary: "each limit's use: calls counted on its busiest keys, admissions in the last second",
    usage: 'fslb limits [--top N] [--json]',
    options: { json: { type: 'boolean' }, top: { type: 'string' } },
    help: `      --top N         keys shown per limit, busiest first (default 10)
      --json          machine-readable output
The caps come from the limits section of --config (or FSLB_CONFIG) when given.`,
    positionals: 0,
    run: (c) => {
      const top = typeof c.values.top === 'string' ? Number(c.values.top) : 10;
      if (!Number.isInteger(top) || top < 1)
        throw new CliError('--top: expected a whole number of 1 or more', ExitCode.Usage);
      return oneShot(c, async (store) => {
        const r = await readLimits(store, c.target.limits ?? [], top);
        out(c, c.values.json === true ? limitsJson(r) : renderLimits(r, paintFor(c)));
        return ExitCode.Ok;
      });
    },
  },
  proxies: {
    summary: 'live proxy instances: host, version, uptime, view age',
    usage: 'fslb proxies [--json]',
    options: { json: { type: 'boolean' } },
    help: '      --json          machine-readable output',
    positionals: 0,
    run: (c) => runInstances(c, 'proxies'),
  },
  monitors: {
    summary: 'live monitor instances: host, version, uptime, nodes owned',
    usage: 'fslb monitors [--json]',
    options: { json: { type: 'boolean' } },
    help: '      --json          machine-readable output',
    positionals: 0,
    run: (c) => runInstances(c, 'monitors'),
  },
};

function mainHelp(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  const list = Object.entries(commands)
    .map(([n, c]) => `  ${n.padEnd(width)}  ${c.summary}`)
    .join('\n');
  return `fslb ${FSLB_VERSION}: look at and steer an fslb cluster through its Redis

Usage: fslb <command> [options]

Commands:
${list}

${commonHelp}

Exit status: 0 done, 1 failed (Redis unreachable, unknown node, wait timed out), 2 bad usage.
Run "fslb <command> --help" for a command's own options.`;
}

function commandHelp(c: Command): string {
  return `Usage: ${c.usage}

${c.summary}
${c.help === '' ? '' : `\n${c.help}\n`}
${commonHelp}`;
}

/** Runs one `fslb` invocation and returns its exit status; never calls process.exit. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (err) {
    if (err instanceof CliError) {
      io.stderr.write(`fslb: ${err.message}\n`);
      return err.exitCode;
    }
    io.stderr.write(`fslb: ${reasonOf(err)}\n`);
    return ExitCode.Failed;
  }
}

async function dispatch(argv: readonly string[], io: CliIo): Promise<number> {
  const name = argv[0];
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    const topic = name === 'help' ? argv[1] : undefined;
    const c = topic === undefined ? undefined : commands[topic];
    io.stdout.write(`${c && topic ? commandHelp(c) : mainHelp()}\n`);
    return name === undefined ? ExitCode.Usage : ExitCode.Ok;
  }
  if (name === '--version' || name === '-V') {
    io.stdout.write(`${FSLB_VERSION}\n`);
    return ExitCode.Ok;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (command === undefined) {
    throw new CliError(
      `unknown command ${JSON.stringify(name)}; commands: ${Object.keys(commands).join(', ')}`,
      ExitCode.Usage,
    );
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv.slice(1),
      options: { ...common, ...command.options },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new CliError(
      `${name}: ${firstSentence((err as Error).message)}; see "fslb ${name} --help"`,
      ExitCode.Usage,
    );
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help === true) {
    io.stdout.write(`${commandHelp(command)}\n`);
    return ExitCode.Ok;
  }
  if (parsed.positionals.length !== command.positionals) {
    throw new CliError(
      command.positionals === 0
        ? `${name} takes no arguments (got ${parsed.positionals.join(' ')}); usage: ${command.usage}`
        : `usage: ${command.usage}`,
      ExitCode.Usage,
    );
  }
  const target = resolveTarget(
    {
      ...(typeof values.config === 'string' ? { config: values.config } : {}),
      ...(typeof values.redis === 'string' ? { redis: values.redis } : {}),
      ...(typeof values.prefix === 'string' ? { prefix: values.prefix } : {}),
    },
    io.env,
  );
  return command.run({ io, target, values, args: parsed.positionals });
}

/** parseArgs' messages run on with advice about `--`; the first sentence is the point. */
function firstSentence(message: string): string {
  const m = /^[^\n]*?\.(?=\s|$)/.exec(message);
  return (m ? m[0].slice(0, -1) : (message.split('\n')[0] ?? message)).trim();
}

function out(c: Context, text: string): void {
  c.io.stdout.write(`${text}\n`);
}

function paintFor(c: Context) {
  return painter(wantsColour(c.io.stdout, c.io.env));
}

function durationFlag(c: Context, flag: string, fallbackMs: number): number {
  const v = c.values[flag];
  if (typeof v !== 'string') return fallbackMs;
  const ms = parseDuration(v);
  if (ms === undefined || ms <= 0) {
    throw new CliError(
      `--${flag} ${JSON.stringify(v)}: expected a duration such as 500ms, 30s, 10m or 1h`,
      ExitCode.Usage,
    );
  }
  return ms;
}

/** Connects without retrying, runs `body`, and always disconnects. */
async function oneShot(
  c: Context,
  body: (store: ClusterStore, redis: Redis) => Promise<number>,
): Promise<number> {
  const { redis, store } = await connect(c.target, false);
  try {
    return await body(store, redis);
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`Redis at ${describeTarget(c.target)}: ${reasonOf(err)}`);
  } finally {
    redis.disconnect();
  }
}

async function runInstances(c: Context, kind: 'proxies' | 'monitors'): Promise<number> {
  return oneShot(c, async (store) => {
    const { at, list } = await readInstances(store, kind);
    out(c, c.values.json === true ? instancesJson(kind, list) : renderInstances(kind, at, list, paintFor(c)));
    return ExitCode.Ok;
  });
}

async function runDrain(c: Context): Promise<number> {
  const id = c.args[0] ?? '';
  const wait = c.values.wait === true;
  if (!wait && c.values.timeout !== undefined) throw new CliError('--timeout needs --wait', ExitCode.Usage);
  const timeoutMs = durationFlag(c, 'timeout', 3_600_000);
  return oneShot(c, async (store, redis) => {
    const r = await setDrain(store, id, true);
    out(
      c,
      `${id} ${r.changed ? 'drained' : 'was already drained'}: proxies send it no new calls (${describeLeft(r.node)} now)`,
    );
    if (!wait) return ExitCode.Ok;
    // A subscriber wakes the wait as soon as the node's record changes.
    const sub = duplicateSubscriber(redis);
    sub.on('error', () => undefined);
    let wake: (() => void) | undefined;
    onMessage(sub, (_ch: string, msg: string) => {
      if (msg.includes(`"id":${JSON.stringify(id)}`) || msg.includes('"type":"load"')) wake?.();
    });
    for (const s of await shardStores(store)) await subscribe(sub, s.keys.events).catch(() => undefined);
    try {
      const n = await waitDrained(store, id, {
        timeoutMs,
        changed: () =>
          new Promise<void>((resolve) => {
            wake = resolve;
          }),
        progress: (row) => c.io.stderr.write(`${id}: ${describeLeft(row)} left\n`),
        ...(c.io.signal ? { signal: c.io.signal } : {}),
      });
      out(c, `${id} has no calls left (${describeLeft(n)}); it can be stopped`);
      return ExitCode.Ok;
    } finally {
      sub.disconnect();
    }
  });
}

async function runWatch(c: Context): Promise<number> {
  const intervalMs = durationFlag(c, 'interval', 2000);
  const { redis, store } = await connect(c.target, true);
  const sub = duplicateSubscriber(redis);
  sub.on('error', () => undefined);
  const signal = c.io.signal ?? new AbortController().signal;
  try {
    await watch(store, sub, {
      intervalMs,
      screen: c.io.stdout.isTTY === true,
      paint: paintFor(c),
      write: (s) => c.io.stdout.write(s),
      signal,
    });
    return ExitCode.Ok;
  } finally {
    sub.disconnect();
    redis.disconnect();
  }
}
