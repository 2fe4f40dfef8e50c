#!/usr/bin/env node
// Runs every test in the repository with Node's own test runner, straight from the TypeScript
// sources (tsx, and the "@fslb/source" export condition so workspace packages resolve to src/).
// Usage: node scripts/run-tests.mjs [path-filter ...]
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const skip = new Set(['node_modules', 'dist', '.git', 'coverage', '.tmp']);

/** @param {string} dir @returns {string[]} */
function find(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    if (skip.has(name)) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...find(path));
    else if (name.endsWith('.test.ts')) out.push(relative(root, path));
  }
  return out;
}

const filters = process.argv.slice(2);
const files = ['packages', 'test']
  .flatMap((d) => find(join(root, d)))
  .filter((f) => filters.length === 0 || filters.some((p) => f.includes(p)))
  .sort();
if (files.length === 0) {
  console.error('no test files matched', filters);
  process.exit(1);
}
// Two kinds of files run in a second lane beside the others (which run one file at a time):
// - `*.long.int.test.ts` spend a minute or more mostly waiting (a fault held for a while);
// - `*.background.int.test.ts` are long and busy but not sensitive to timing (a fresh copy's
//   `npm ci` and demo): they run after the long ones, at a lower CPU priority (nice 10), on what
//   the main lane leaves idle. At normal priority beside it, the Quick start's `npm ci` once starved
//   a real-peer flood test (through drachtio-server, 300 INVITEs/s) into failing its calls.
const long = files.filter((f) => f.endsWith('.long.int.test.ts'));
const background = files.filter((f) => f.endsWith('.background.int.test.ts'));
const rest = files.filter((f) => !long.includes(f) && !background.includes(f));
const BACKGROUND_NICE = 10;

/** @param {string[]} group @param {number} [nice] @returns {Promise<number>} */
function run(group, nice = 0) {
  if (group.length === 0) return Promise.resolve(0);
  const child = spawn(
    process.execPath,
    ['--conditions=@fslb/source', '--import', 'tsx', '--test', '--test-reporter=spec', ...group],
    { cwd: root, stdio: 'inherit', env: { ...process.env, FSLB_TEST: '1' } },
  );
  // Set before the runner starts the file's own process, which inherits it (and its children).
  if (nice !== 0 && child.pid !== undefined) {
    try {
      setPriority(child.pid, nice);
    } catch (err) {
      console.error(`could not lower the priority of ${group.join(', ')}: ${String(err)}`);
    }
  }
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))));
}

const codes = await Promise.all([
  run(rest),
  run(long).then(async (code) => [code, await run(background, BACKGROUND_NICE)]),
]);
process.exit(codes.flat().find((c) => c !== 0) ?? 0);
