/**
 * The benchmark's side of view-probe.ts: a UDP socket that receives every change of every
 * proxy's view, keeps each proxy's current view of each node, and answers "when did every one of
 * these proxies see this node in this state" in the probe's clock (process.hrtime, CLOCK_MONOTONIC,
 * shared by every process on the machine).
 *
 * Usage: `const watch = await ViewWatch.start()`, then start the proxies with
 * `execArgv: viewProbeArgs()` and `BENCH_VIEW_PROBE=<watch.port>` in their environment.
 */
import { createSocket, type Socket } from 'node:dgram';
import { pathToFileURL } from 'node:url';

export interface NodeView {
  sessions: number;
  eligible: boolean;
  /** Monotonic ns at which the proxy's view took this state. */
  at: bigint;
}

interface Waiter {
  node: string;
  pred: (v: NodeView) => boolean;
  left: Set<string>;
  seen: Map<string, bigint>;
  done: (seen: Map<string, bigint>) => void;
}

/** Node.js flags that load the probe into a proxy child started from source (tsx first). */
export function viewProbeArgs(): string[] {
  return [
    '--import',
    'tsx',
    '--import',
    pathToFileURL(new URL('view-probe.ts', import.meta.url).pathname).href,
  ];
}

/** Now on the probe's clock, in ns. */
export function monoNow(): bigint {
  return process.hrtime.bigint();
}

/** ns between two readings of the monotonic clock, in ms. */
export function msBetween(from: bigint, to: bigint): number {
  return Number(to - from) / 1e6;
}

export class ViewWatch {
  readonly #views = new Map<string, Map<string, NodeView>>();
  readonly #waiters = new Set<Waiter>();
  #reports = 0;

  private constructor(readonly socket: Socket) {
    socket.on('message', (m) => this.#receive(m.toString()));
  }

  static async start(): Promise<ViewWatch> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    return new ViewWatch(socket);
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** Datagrams received so far. */
  get reports(): number {
    return this.#reports;
  }

  /** Proxies that have reported a view. */
  get proxies(): string[] {
    return [...this.#views.keys()];
  }

  view(proxy: string, node: string): NodeView | undefined {
    return this.#views.get(proxy)?.get(node);
  }

  /**
   * Resolves with the moment (per proxy, monotonic ns) at which each of `proxies` saw `node` in
   * a state that satisfies `pred`; a proxy already in such a state counts with the time it got
   * there. Rejects after `timeoutMs` naming the proxies still waited for.
   */
  until(
    node: string,
    proxies: readonly string[],
    pred: (v: NodeView) => boolean,
    timeoutMs: number,
  ): Promise<Map<string, bigint>> {
    return new Promise((resolve, reject) => {
      const w: Waiter = { node, pred, left: new Set(proxies), seen: new Map(), done: () => undefined };
      const timer = setTimeout(() => {
        this.#waiters.delete(w);
        const detail = [...w.left].map((p) => `${p}: ${JSON.stringify(this.view(p, node), big)}`).join(', ');
        reject(new Error(`${node}: not seen by ${detail} within ${timeoutMs} ms`));
      }, timeoutMs);
      w.done = (seen) => {
        clearTimeout(timer);
        resolve(seen);
      };
      for (const p of proxies) {
        const v = this.view(p, node);
        if (v && pred(v)) this.#mark(w, p, v.at);
      }
      if (w.left.size > 0) this.#waiters.add(w);
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  #mark(w: Waiter, proxy: string, at: bigint): void {
    if (!w.left.delete(proxy)) return;
    w.seen.set(proxy, at);
    if (w.left.size === 0) {
      this.#waiters.delete(w);
      w.done(w.seen);
    }
  }

  #receive(text: string): void {
    this.#reports++;
    const lines = text.split('\n');
    const [proxy = '', atText = '0'] = (lines[0] ?? '').split(' ');
    const at = BigInt(atText);
    let views = this.#views.get(proxy);
    if (!views) {
      views = new Map();
      this.#views.set(proxy, views);
    }
    for (const line of lines.slice(1)) {
      const [node = '', sessions = '0', eligible = '0'] = line.split(' ');
      const v: NodeView = { sessions: Number(sessions), eligible: eligible === '1', at };
      views.set(node, v);
      for (const w of [...this.#waiters])
        if (w.node === node && w.left.has(proxy) && w.pred(v)) this.#mark(w, proxy, at);
    }
  }
}

function big(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}
