/**
 * Simulated FreeSWITCH nodes for a proxy fleet, in this thread or in a worker thread of their
 * own, behind one small async interface: their ports, preloaded sessions, and what each node
 * lived through (calls, peak sessions, refused INVITEs and whether another node had room then).
 *
 * Why a worker: fs-sim parses every SIP message with sip.js' grammar at about a millisecond of
 * CPU each, so a burst of a thousand calls keeps its event loop busy for seconds. Sharing that
 * loop with the drachtio-server doubles delays their SIP timers' callbacks and the 100 Trying
 * they wait for, which fires retransmissions and provisional timeouts that are artefacts of the
 * harness (calls set up twice, spurious failovers). In a worker the simulators get their own
 * event loop (and core); the doubles stay responsive.
 */
import { once } from 'node:events';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { FsCluster, type FsClusterOptions, type FsNode } from '@fslb/fs-sim';

/** What one simulated node lived through since it started. */
export interface NodeStats {
  /** Session-Count now (real calls and preloaded phantom sessions). */
  sessions: number;
  /** Calls it takes: Max-Sessions less one, as sofia counts. */
  takes: number;
  /** Real calls up now. */
  calls: number;
  /** Highest Session-Count reached when a call started. */
  peakSessions: number;
  /** INVITEs refused, by fs-sim's reason (max-sessions, sps-exceeded, paused...). */
  refused: Record<string, number>;
  /** INVITEs refused for max-sessions while another node had room: overbooking. */
  refusedWhileRoom: number;
}

export interface SimHost {
  /** Where each node listens, fs1 first. */
  readonly nodes: readonly { sipPort: number; eslPort: number }[];
  /** Preloads a node's Session-Count (phantom sessions: FsNode.setSessions). */
  setSessions(index: number, sessions: number): Promise<void>;
  stats(): Promise<NodeStats[]>;
  /** Stops every node (and the worker). Idempotent. */
  close(): Promise<void>;
}

/** Follows the nodes' events and keeps the figures `NodeStats` reports. */
class Tracker {
  readonly #peak: number[];
  readonly #refused: Record<string, number>[];
  readonly #whileRoom: number[];

  constructor(readonly nodes: readonly FsNode[]) {
    this.#peak = nodes.map(() => 0);
    this.#refused = nodes.map(() => ({}));
    this.#whileRoom = nodes.map(() => 0);
    nodes.forEach((n, i) => {
      n.on('callStarted', () => (this.#peak[i] = Math.max(this.#peak[i] ?? 0, n.sessions)));
      n.on('inviteRefused', (reason) => {
        const r = this.#refused[i] ?? {};
        r[reason] = (r[reason] ?? 0) + 1;
        if (reason === 'max-sessions' && nodes.some((m) => m !== n && m.sessions < m.maxSessions - 1))
          this.#whileRoom[i] = (this.#whileRoom[i] ?? 0) + 1;
      });
    });
  }

  stats(): NodeStats[] {
    return this.nodes.map((n, i) => ({
      sessions: n.sessions,
      takes: n.maxSessions - 1,
      calls: n.calls().length,
      peakSessions: this.#peak[i] ?? 0,
      refused: { ...this.#refused[i] },
      refusedWhileRoom: this.#whileRoom[i] ?? 0,
    }));
  }
}

/** The nodes in this thread: `cluster` gives the test the FsNodes themselves. */
export class LocalSims implements SimHost {
  readonly #tracker: Tracker;

  private constructor(readonly cluster: FsCluster) {
    this.#tracker = new Tracker(cluster.nodes);
  }

  static async start(o: FsClusterOptions): Promise<LocalSims> {
    return new LocalSims(await FsCluster.start(o));
  }

  get nodes(): readonly FsNode[] {
    return this.cluster.nodes;
  }

  setSessions(index: number, sessions: number): Promise<void> {
    this.cluster.nodes[index]?.setSessions(sessions);
    return Promise.resolve();
  }

  stats(): Promise<NodeStats[]> {
    return Promise.resolve(this.#tracker.stats());
  }

  close(): Promise<void> {
    return this.cluster.close();
  }
}

type Ask = { op: 'stats' } | { op: 'setSessions'; index: number; sessions: number };
type Request = Ask & { id: number };
type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };
type Started = { started: { sipPort: number; eslPort: number }[] } | { failed: string };

/** The nodes in a worker thread (run from source: the worker registers tsx itself). */
export class WorkerSims implements SimHost {
  #next = 1;
  readonly #waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #closing: Promise<void> | undefined;

  private constructor(
    readonly worker: Worker,
    readonly nodes: readonly { sipPort: number; eslPort: number }[],
  ) {
    worker.on('message', (m: Reply) => {
      const w = this.#waiting.get(m.id);
      this.#waiting.delete(m.id);
      if (m.ok) w?.resolve(m.value);
      else w?.reject(new Error(m.error));
    });
    worker.on('error', (err) => this.#failAll(err));
    worker.on('exit', () => this.#failAll(new Error('the simulator worker exited')));
  }

  static async start(o: FsClusterOptions): Promise<WorkerSims> {
    const api = import.meta.resolve('tsx/esm/api');
    const boot = `import { register } from ${JSON.stringify(api)}; register(); await import(${JSON.stringify(import.meta.url)});`;
    const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(boot)}`), {
      workerData: { fslbSims: o },
    });
    const [first] = (await Promise.race([
      once(worker, 'message'),
      once(worker, 'error').then(([err]) => {
        throw err instanceof Error ? err : new Error(String(err));
      }),
    ])) as [Started];
    if ('failed' in first) {
      await worker.terminate();
      throw new Error(`simulators did not start: ${first.failed}`);
    }
    return new WorkerSims(worker, first.started);
  }

  #call(req: Ask): Promise<unknown> {
    if (this.#closing) return Promise.reject(new Error('closed'));
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      this.worker.postMessage({ ...req, id });
    });
  }

  #failAll(err: Error): void {
    for (const w of this.#waiting.values()) w.reject(err);
    this.#waiting.clear();
  }

  async setSessions(index: number, sessions: number): Promise<void> {
    await this.#call({ op: 'setSessions', index, sessions });
  }

  async stats(): Promise<NodeStats[]> {
    return (await this.#call({ op: 'stats' })) as NodeStats[];
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      const exited = once(this.worker, 'exit');
      this.worker.postMessage({ id: 0, op: 'close' });
      // A node's timer left behind would keep the worker alive: give it a moment, then terminate.
      const timer = setTimeout(() => void this.worker.terminate(), 5000);
      await exited;
      clearTimeout(timer);
    })();
    return this.#closing;
  }
}

/** Inside the worker: start the nodes, then answer requests until told to close. */
async function serve(o: FsClusterOptions): Promise<void> {
  const port = parentPort;
  if (!port) return;
  let cluster: FsCluster;
  try {
    cluster = await FsCluster.start(o);
  } catch (err) {
    port.postMessage({ failed: String(err) } satisfies Started);
    return;
  }
  const tracker = new Tracker(cluster.nodes);
  port.on('message', (m: Request | { id: 0; op: 'close' }) => {
    if (m.op === 'close') {
      void cluster.close().finally(() => port.close());
      return;
    }
    try {
      let value: unknown;
      if (m.op === 'stats') value = tracker.stats();
      else cluster.nodes[m.index]?.setSessions(m.sessions);
      port.postMessage({ id: m.id, ok: true, value } satisfies Reply);
    } catch (err) {
      port.postMessage({ id: m.id, ok: false, error: String(err) } satisfies Reply);
    }
  });
  port.postMessage({
    started: cluster.nodes.map((n) => ({ sipPort: n.sipPort, eslPort: n.eslPort })),
  } satisfies Started);
}

const data = workerData as { fslbSims?: FsClusterOptions } | null;
if (!isMainThread && data?.fslbSims) await serve(data.fslbSims);
