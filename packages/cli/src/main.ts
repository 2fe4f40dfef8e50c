#!/usr/bin/env node
import { runCli } from './cli.js';

// SIGINT / SIGTERM end `watch` and `drain --wait` cleanly (the terminal's cursor restored).
const stop = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => stop.abort());

const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  signal: stop.signal,
});
process.exitCode = code;
