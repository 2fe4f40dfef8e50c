import { ConfigError, formatIssues } from './errors.js';
import type { FslbConfig } from './config/schema.js';
import { loadConfig, type ConfigUse } from './config/load-config.js';

export interface MainContext {
  config: FslbConfig;
  argv: readonly string[];
}

/**
 * The common start of every fslb command: load and validate the configuration, exiting with
 * status 2 and every problem listed when it is bad, then hand over to `body`. An error escaping
 * `body` exits with status 1. Only mains call this.
 */
export async function runMain(
  program: string,
  body: (ctx: MainContext) => Promise<void>,
  argv: readonly string[] = process.argv.slice(2),
  use: ConfigUse = 'all',
): Promise<void> {
  let config: FslbConfig;
  try {
    config = loadConfig(argv, process.env, use);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${program}: invalid configuration:\n${formatIssues(err.issues)}\n`);
      process.exit(2);
    }
    throw err;
  }
  try {
    await body({ config, argv });
  } catch (err) {
    process.stderr.write(`${program}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  }
}
