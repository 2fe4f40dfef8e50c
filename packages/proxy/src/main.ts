#!/usr/bin/env node
import { configPathFrom, createLogger, flushLogger, runMain } from '@fslb/shared';
import { plainEnvironment } from './drachtio/drachtio-link.js';
import { FslbProxy } from './proxy.js';

plainEnvironment();

await runMain(
  'fslb-proxy',
  async ({ config, argv }) => {
    // A line per call: buffered, so that logging is not a system call per INVITE.
    const log = createLogger({ level: config.log.level, name: 'fslb-proxy', buffered: true });
    const configPath = configPathFrom(argv, process.env);
    const proxy = new FslbProxy({ config, log, ...(configPath === undefined ? {} : { configPath }) });

    let stopping = false;
    const stop = (signal: string, drain: boolean): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, drain ? 'stopping: finishing calls in progress' : 'stopping now');
      const force = setTimeout(() => {
        log.error('did not stop in time; exiting');
        process.exit(1);
      }, config.proxy.shutdownTimeoutMs + 10_000);
      force.unref();
      (drain ? proxy.drain() : Promise.resolve())
        .then(() => proxy.close())
        .then(
          () => flushLogger(log).then(() => process.exit(0)),
          (err: unknown) => {
            log.error({ err }, 'error while stopping');
            return flushLogger(log).then(() => process.exit(1));
          },
        );
    };
    process.on('SIGTERM', () => stop('SIGTERM', true));
    process.on('SIGINT', () => stop('SIGINT', true));
    process.on('SIGHUP', () => {
      log.info('SIGHUP: reloading the routing rules');
      proxy.reloadFromFile();
    });

    await proxy.start();
  },
  process.argv.slice(2),
  'proxy',
);
