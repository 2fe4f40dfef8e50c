import { pino, type Logger, type LoggerOptions, type DestinationStream } from 'pino';
import { censor, redactPaths } from './redact.js';

export type { Logger } from 'pino';

export interface LoggerSettings {
  level?: string;
  /** Service name put on every line, e.g. `fslb-monitor`. */
  name?: string;
  /** Extra fields put on every line, e.g. `{ monitorId }`. */
  base?: Record<string, unknown>;
  /**
   * Write stdout through a buffer (4 KiB or 100 ms) instead of one system call a line: for a
   * proxy logging a line per call. `flushLogger` before exiting.
   */
  buffered?: boolean;
}

/**
 * The root logger of a process: made once in a `main.ts` and passed down. Components take
 * `log.child({ component, nodeId })`. Secret fields are censored and URL credentials masked,
 * wherever they sit in a logged object.
 */
export function createLogger(settings: LoggerSettings = {}, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level: settings.level ?? 'info',
    base: { name: settings.name, pid: process.pid, ...settings.base },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: [...redactPaths], censor },
    serializers: {
      err: pino.stdSerializers.err,
    },
    formatters: { level: (label) => ({ level: label }) },
  };
  if (destination) return pino(options, destination);
  if (settings.buffered) return pino(options, bufferedStdout());
  return pino(options);
}

/** How long a line may wait in a buffered logger's buffer, ms. */
const FLUSH_MS = 100;

/**
 * stdout through a 4 KiB buffer, written out at the latest FLUSH_MS after the first line that
 * went into it. The timer runs only while lines wait: an idle process is not woken every
 * FLUSH_MS for an empty buffer (on a VM each wake-up costs more CPU than the line it writes).
 */
function bufferedStdout(): DestinationStream {
  const dest = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    timer = undefined;
    dest.flush();
  };
  const stream: DestinationStream & { flush(cb?: (err?: Error) => void): void; flushSync(): void } = {
    write(line: string): void {
      dest.write(line);
      if (timer === undefined) {
        timer = setTimeout(flush, FLUSH_MS);
        timer.unref();
      }
    },
    flush(cb?: (err?: Error) => void): void {
      clearTimeout(timer);
      timer = undefined;
      dest.flush(cb);
    },
    flushSync(): void {
      dest.flushSync();
    },
  };
  return stream;
}

/** Writes out whatever a buffered logger still holds. */
export function flushLogger(log: Logger): Promise<void> {
  return new Promise((resolve) => {
    try {
      log.flush(() => resolve());
    } catch {
      resolve();
    }
  });
}
