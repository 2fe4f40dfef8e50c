// How much CPU 100 simulated FreeSWITCH nodes cost in one process when idle (HEARTBEAT every
// second): measured with no ESL client, then with one client per node subscribed to HEARTBEAT
// (as a monitor would be). The nodes run in a child process so the clients' own work is not
// counted. Prints the figures and writes bench/results/fs-sim-idle.json and .md.
// Env: BENCH_IDLE_SAMPLE_MS (3000 per sample).
// Run: node --conditions=@fslb/source --import tsx bench/fs-sim-idle.bench.ts
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

import { FsCluster } from '@fslb/fs-sim';
import { Children } from './support/children.js';
import { machine, table, writeBench } from './support/results.js';

const NODES = 100;
const HEARTBEAT_MS = 1000;
const SAMPLE_MS = Number(process.env.BENCH_IDLE_SAMPLE_MS ?? 3000);

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
  const started = performance.now();
  const children = new Children();
  const child = children.spawn(
    process.execPath,
    ['--conditions=@fslb/source', '--import', 'tsx', fileURLToPath(import.meta.url), '--serve'],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
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
    machine: machine(),
    nodes: NODES,
    heartbeatMs: HEARTBEAT_MS,
    sampleMs: SAMPLE_MS,
    noClients,
    withClients: { ...withClients, clients: sockets.length, heartbeatsPerSecond },
    duration_s: Math.round((performance.now() - started) / 100) / 10,
  };
  console.log(JSON.stringify(result, null, 2));
  writeBench(
    'fs-sim-idle',
    result,
    `## fs-sim-idle: ${NODES} simulated nodes in one process, idle (HEARTBEAT every ${HEARTBEAT_MS} ms)

${table(
  ['ESL clients', 'CPU % of one core', 'RSS MiB', 'heap used MiB'],
  [
    ['none', noClients.cpuPercentOfOneCore, noClients.rssMiB, noClients.heapUsedMiB],
    [
      `${sockets.length}, subscribed to HEARTBEAT (${heartbeatsPerSecond}/s)`,
      withClients.cpuPercentOfOneCore,
      withClients.rssMiB,
      withClients.heapUsedMiB,
    ],
  ],
)}

${SAMPLE_MS / 1000} s per sample. Took ${result.duration_s} s.`,
  );
  console.log('wrote bench/results/fs-sim-idle.json');
}
