// The fs-sim command line: `npm run fs-sim -- --esl-port 8021 --sip-port 5080 --count 3`.
import { parseCli, USAGE } from './cli-args.js';
import type { MalformedKind } from './esl/esl-frames.js';
import { FsCluster } from './fs-cluster.js';

async function main(): Promise<number> {
  const parsed = parseCli(process.argv.slice(2));
  if (parsed.help) {
    console.log(USAGE);
    return 0;
  }
  if ('problems' in parsed) {
    console.error(
      `fs-sim: invalid arguments:\n${parsed.problems.map((p) => `  - ${p}`).join('\n')}\n\n${USAGE}`,
    );
    return 2;
  }
  const { cluster: options, paused, refuseAuth, aclReject, controlStdin } = parsed.options;
  let cluster: FsCluster;
  try {
    cluster = await FsCluster.start(options);
  } catch (err) {
    console.error(`fs-sim: cannot start: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
  cluster.nodes.forEach((node, i) => {
    if (paused) node.pause();
    if (refuseAuth) node.refuseAuth(true);
    if (aclReject) node.aclReject(true);
    console.log(
      `fs-sim node ${i + 1}/${cluster.nodes.length} listening: esl ${node.host}:${node.eslPort} ` +
        `sip udp+tcp ${node.host}:${node.sipPort} hostname ${node.hostname} core-uuid ${node.coreUuid} ` +
        `max-sessions ${node.maxSessions}`,
    );
  });

  let stalled = false;
  let pausedNow = paused;
  let stopping = false;
  return new Promise<number>((resolve) => {
    const stop = (how: 'shutdown' | 'close'): void => {
      if (stopping && how === 'shutdown') return;
      stopping = true;
      const ending =
        how === 'shutdown'
          ? Promise.all(cluster.nodes.map((n) => n.shutdownElegant({ graceMs: 0 }))).then(() =>
              cluster.close(),
            )
          : cluster.close();
      void ending.then(
        () => {
          console.log(`fs-sim: stopped (${how})`);
          resolve(0);
        },
        (err: unknown) => {
          console.error(`fs-sim: error while stopping: ${String(err)}`);
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('shutdown'));
    process.on('SIGINT', () => stop('close'));
    process.on('SIGUSR1', () => {
      stalled = !stalled;
      for (const n of cluster.nodes) {
        if (stalled) n.stall();
        else n.unstall();
      }
      console.log(`fs-sim: ${stalled ? 'stalled' : 'unstalled'}`);
    });
    process.on('SIGUSR2', () => {
      for (const n of cluster.nodes) n.dropEsl();
      console.log('fs-sim: dropped every ESL connection');
    });
    if (controlStdin) {
      const kinds = new Set(['bad-json', 'bad-percent', 'bad-values', 'short-body', 'garbage']);
      let partial = '';
      process.stdin.on('data', (d: Buffer) => {
        const lines = (partial + d.toString()).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          const [cmd, kind = '', count = '1'] = line.trim().split(/\s+/);
          if (cmd === 'malformed' && kinds.has(kind)) {
            for (const n of cluster.nodes) n.sendMalformed(kind as MalformedKind);
            console.log(`fs-sim: sent a malformed frame (${kind})`);
          } else if (cmd === 'lose' && /^[A-Z_]+$/.test(kind) && /^\d+$/.test(count)) {
            for (const n of cluster.nodes) n.loseEvents(kind, Number(count));
            console.log(`fs-sim: the next ${count} ${kind} event(s) will be lost`);
          } else if (line.trim() !== '') console.error(`fs-sim: unknown command: ${line.trim()}`);
        }
      });
    }
    process.on('SIGHUP', () => {
      pausedNow = !pausedNow;
      for (const n of cluster.nodes) {
        if (pausedNow) n.pause();
        else n.resume();
      }
      console.log(`fs-sim: ${pausedNow ? 'paused' : 'resumed'}`);
    });
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
