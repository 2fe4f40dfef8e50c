import { Writable } from 'node:stream';
import { createLogger, type Logger } from '@fslb/shared';

/** A logger whose lines a test can read back, to check what was (and was not) logged. */
export function captureLogger(level = 'trace'): { log: Logger; text: () => string } {
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return { log: createLogger({ level }, sink), text: () => text };
}
