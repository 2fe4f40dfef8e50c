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
  if (settings.buffered) {
    const dest = pino.destination({ dest: 1, sync: false, minLength: 4096 });
    const timer = setInterval(() => dest.flush(), 100);
    timer.unref();
    return pino(options, dest);
  }
  return pino(options);
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
