#!/usr/bin/env node
import { configPathFrom, createLogger, runMain } from '@fslb/shared';
import { Monitor } from './monitor.js';

await runMain(
  'fslb-monitor',
  async ({ config, argv }) => {
    // The Monitor's own child logger adds monitorId to every line.
    const log = createLogger({ level: config.log.level, name: 'fslb-monitor' });
    const configPath = configPathFrom(argv, process.env);
    const monitor = new Monitor({ config, log, ...(configPath === undefined ? {} : { configPath }) });

    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'stopping: releasing leases');
      const force = setTimeout(() => {
        log.error('did not stop within 10 s; exiting');
        process.exit(1);
      }, 10_000);
      force.unref();
      monitor.close().then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err }, 'error while stopping');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      log.info('SIGHUP: reloading the configuration');
      monitor.reloadFromFile();
    });

    await monitor.start();
  },
  process.argv.slice(2),
  'monitor',
);
