#!/usr/bin/env node
// Lint and typecheck at once, as `npm test` runs them before the tests: eslint (type-aware) and
// tsc are each one thread, so on two cores they take the time of the longer instead of the sum.
// Each check's output is printed whole when it ends; the exit code is the first failure's.
// Usage: node scripts/run-checks.mjs
import { spawn } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const checks = [
  ['lint', 'npm', ['run', 'lint']],
  ['typecheck', 'npm', ['run', 'typecheck']],
];

/** @param {string} name @param {string} cmd @param {string[]} args @returns {Promise<number>} */
function check(name, cmd, args) {
  const started = performance.now();
  const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = [];
  child.stdout.on('data', (d) => out.push(d));
  child.stderr.on('data', (d) => out.push(d));
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      const status = code ?? (signal ? 1 : 0);
      const took = ((performance.now() - started) / 1000).toFixed(1);
      process.stdout.write(Buffer.concat(out));
      console.log(`${name}: ${status === 0 ? 'ok' : `failed (${status})`} in ${took} s`);
      resolve(status);
    });
  });
}

const codes = await Promise.all(checks.map(([name, cmd, args]) => check(name, cmd, args)));
process.exit(codes.find((c) => c !== 0) ?? 0);
