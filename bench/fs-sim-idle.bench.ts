// How much CPU 100 simulated FreeSWITCH nodes cost in one process when idle (HEARTBEAT every
// second): measured with no ESL client, then with one client per node subscribed to HEARTBEAT
// (as a monitor would be). The nodes run in a child process so the clients' own work is not
// counted. Prints the figures and writes bench/results/fs-sim-idle.json.
// Run: node --conditions=@fslb/source --import tsx bench/fs-sim-idle.bench.ts
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';

import { FsCluster } from '@fslb/fs-sim';

const NODES = 100;
const HEARTBEAT_MS = 1000;
const SAMPLE_MS = 10_000;

interface Sample {
  wallMs: number;
  userMs: number;
  systemMs: number;
  cpuPercentOfOneCore: number;
  rssMiB: number;
  heapUsedMiB: number;
}

type ToChild = { kind: 'measure'; ms: number } | { kind: 'stop' };
type ToParent = { kind: 'ready'; eslPorts: number[] } | { kind: 'sample'; sample: Sample };

if (process.argv.includes('--serve')) {
  await serve();
} else {
  await orchestrate();
}

/** The child: runs the cluster and measures its own CPU on request. */
async function serve(): Promise<void> {
  const cluster = await FsCluster.start({ count: NODES, heartbeatMs: HEARTBEAT_MS });
  const send = (m: ToParent): void => {
    process.send?.(m);
  };
  process.on('message', (m: ToChild) => {
    if (m.kind === 'stop') {
      void cluster.close().then(() => process.exit(0));
      return;
    }
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    setTimeout(() => {
      const cpu = process.cpuUsage(cpu0);
      const wallMs = performance.now() - t0;
      const mem = process.memoryUsage();
      send({
        kind: 'sample',
        sample: {
          wallMs: Math.round(wallMs),
          userMs: Math.round(cpu.user / 1000),
          systemMs: Math.round(cpu.system / 1000),
          cpuPercentOfOneCore: Number((((cpu.user + cpu.system) / 1000 / wallMs) * 100).toFixed(2)),
          rssMiB: Number((mem.rss / 2 ** 20).toFixed(1)),
          heapUsedMiB: Number((mem.heapUsed / 2 ** 20).toFixed(1)),
        },
      });
    }, m.ms);
  });
  send({ kind: 'ready', eslPorts: cluster.nodes.map((n) => n.eslPort) });
}

/** The parent: starts the child, connects the clients, collects the samples. */
async function orchestrate(): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), ['--serve'], {
    execArgv: ['--conditions=@fslb/source', '--import', 'tsx'],
  });
  const messages: ToParent[] = [];
  let wake: () => void = () => undefined;
  child.on('message', (m: ToParent) => {
    messages.push(m);
    wake();
  });
  const next = async <K extends ToParent['kind']>(kind: K): Promise<Extract<ToParent, { kind: K }>> => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const i = messages.findIndex((m) => m.kind === kind);
      if (i >= 0) return messages.splice(i, 1)[0] as Extract<ToParent, { kind: K }>;
      if (Date.now() > deadline) throw new Error(`no ${kind} from the child`);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 1000);
      });
    }
  };
  const measure = async (): Promise<Sample> => {
    child.send({ kind: 'measure', ms: SAMPLE_MS } satisfies ToChild);
    return (await next('sample')).sample;
  };

  const { eslPorts } = await next('ready');
  console.log(`${eslPorts.length} nodes up; sampling ${SAMPLE_MS / 1000} s with no ESL client...`);
  const noClients = await measure();

  let heartbeats = 0;
  const sockets: Socket[] = await Promise.all(
    eslPorts.map(
      (port) =>
        new Promise<Socket>((resolve, reject) => {
          const s = connect({ port, host: '127.0.0.1' }, () => {
            s.write('auth ClueCon\n\nevent plain HEARTBEAT\n\n');
            resolve(s);
          });
          s.on('error', reject);
          s.on('data', (d: Buffer) => {
            heartbeats += d.toString().split('Event-Name: HEARTBEAT\n').length - 1;
          });
        }),
    ),
  );
  console.log(`sampling ${SAMPLE_MS / 1000} s with ${sockets.length} clients subscribed to HEARTBEAT...`);
  const before = heartbeats;
  const withClients = await measure();
  const heartbeatsPerSecond = Number((((heartbeats - before) * 1000) / withClients.wallMs).toFixed(1));

  for (const s of sockets) s.destroy();
  child.send({ kind: 'stop' } satisfies ToChild);
  await new Promise((resolve) => child.on('exit', resolve));

  const result = {
    benchmark: 'fs-sim-idle',
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version },
    nodes: NODES,
    heartbeatMs: HEARTBEAT_MS,
    sampleMs: SAMPLE_MS,
    noClients,
    withClients: { ...withClients, clients: sockets.length, heartbeatsPerSecond },
  };
  console.log(JSON.stringify(result, null, 2));
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}fs-sim-idle.json`, `${JSON.stringify(result, null, 2)}\n`);
  console.log('wrote bench/results/fs-sim-idle.json');
}
