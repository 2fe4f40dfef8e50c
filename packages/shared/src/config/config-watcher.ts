import { EventEmitter } from 'node:events';
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import { ConfigError } from '../errors.js';
import type { Logger } from '../logger.js';
import { loadConfigFile, type ConfigUse } from './load-config.js';
import type { FslbConfig } from './schema.js';

type Events = {
  config: [FslbConfig];
  invalid: [ConfigError];
};

/**
 * Follows a configuration file: each time it changes (stat polling, which also sees a file
 * replaced by rename, as editors and Kubernetes config maps do) or `reload()` is called
 * (SIGHUP), it is loaded again. A good file is emitted as `config`; a bad one is logged with
 * every problem and emitted as `invalid`, and the last good configuration stays in force.
 */
export class ConfigWatcher extends EventEmitter<Events> {
  readonly #path: string;
  readonly #env: Readonly<Record<string, string | undefined>>;
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #use: ConfigUse;
  #listener: ((cur: Stats, prev: Stats) => void) | undefined;

  constructor(
    path: string,
    opts: {
      log: Logger;
      /** Which component reads it: only that component's secrets must resolve. */
      use: ConfigUse;
      intervalMs?: number;
      env?: Readonly<Record<string, string | undefined>>;
    },
  ) {
    super();
    this.#use = opts.use;
    this.#path = path;
    this.#log = opts.log;
    this.#intervalMs = opts.intervalMs ?? 1000;
    this.#env = opts.env ?? process.env;
  }

  start(): void {
    if (this.#listener) return;
    this.#listener = (cur, prev) => {
      if (cur.mtimeMs === prev.mtimeMs && cur.size === prev.size && cur.ino === prev.ino) return;
      this.reload();
    };
    watchFile(this.#path, { interval: this.#intervalMs, persistent: false }, this.#listener);
  }

  reload(): void {
    try {
      const cfg = loadConfigFile(this.#path, this.#env, this.#use);
      this.#log.info({ path: this.#path, nodes: cfg.nodes.length }, 'configuration reloaded');
      this.emit('config', cfg);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      this.#log.error(
        { path: this.#path, issues: err.issues },
        'new configuration is invalid; keeping the last good one',
      );
      this.emit('invalid', err);
    }
  }

  close(): void {
    if (!this.#listener) return;
    unwatchFile(this.#path, this.#listener);
    this.#listener = undefined;
  }
}
