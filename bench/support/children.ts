/**
 * The child processes a benchmark starts, so that it ends every one of them itself, whatever
 * happens: `stop()` sends SIGTERM (or the signal asked for), then SIGKILL after a grace period;
 * `stopAll()` does so for all of them; and on the benchmark's own exit anything still running
 * gets SIGKILL. Processes started by someone else's helper (drachtio-server, redis-server) can be
 * adopted by pid for that last resort.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { isChildOf } from '../../test/support/proc-stat.js';

export class Children {
  readonly #running = new Set<ChildProcess>();
  readonly #adopted = new Set<number>();

  constructor() {
    process.on('exit', () => {
      for (const c of this.#running) if (alive(c)) c.kill('SIGKILL');
      for (const pid of this.#adopted) {
        if (isChildOf(pid, process.pid)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // Already gone.
          }
        }
      }
    });
  }

  spawn(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
    const child = spawn(command, args, options);
    this.#running.add(child);
    child.once('exit', () => this.#running.delete(child));
    // A program that cannot start ('error') is reported by the caller's exit handling.
    child.once('error', () => this.#running.delete(child));
    return child;
  }

  /** A process started elsewhere that this one must not leave behind. */
  adopt(pid: number): void {
    this.#adopted.add(pid);
  }

  /** Ends a child: `signal` first, SIGKILL after `graceMs`. Resolves with how long it took to go. */
  async stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<number> {
    const t0 = performance.now();
    if (!alive(child)) return 0;
    const exited = once(child, 'exit');
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
    return performance.now() - t0;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#running].map((c) => this.stop(c)));
  }
}

export function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null && child.pid !== undefined;
}

/** Resolves when the child exits (with its code or signal), at once if it already has. */
export async function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: string | null }> {
  if (!alive(child)) return { code: child.exitCode, signal: child.signalCode };
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  return { code, signal };
}
