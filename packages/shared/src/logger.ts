import { pino, type Logger, type LoggerOptions, type DestinationStream } from 'pino';
import { censor, redactPaths } from './redact.js';

export type { Logger } from 'pino';

export interface LoggerSettings {
  level?: string;
  /** Service name put on every line, e.g. `fslb-monitor`. */
  name?: string;
  /** Extra fields put on every line, e.g. `{ monitorId }`. */
  base?: Record<string, unknown>;
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
  return destination ? pino(options, destination) : pino(options);
}
