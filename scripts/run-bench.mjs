#!/usr/bin/env node
// Runs every benchmark (bench/*.bench.ts) one after another from the TypeScript sources. Each
// prints its figures and writes bench/results/<name>.json; this script then gathers them all
// into bench/results/latest.json.
// Usage: node scripts/run-bench.mjs [name-filter ...]
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const benchDir = join(root, 'bench');
const resultsDir = join(benchDir, 'results');
const filters = process.argv.slice(2);
const files = readdirSync(benchDir)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => filters.length === 0 || filters.some((p) => f.includes(p)))
  .sort();
if (files.length === 0) {
  console.error('no benchmarks matched', filters);
  process.exit(1);
}
let failed = 0;
for (const f of files) {
  console.log(`\n== ${f}`);
  const r = spawnSync(process.execPath, ['--conditions=@fslb/source', '--import', 'tsx', join('bench', f)], {
    cwd: root,
    stdio: 'inherit',
  });
  if (r.status !== 0) {
    failed++;
    console.error(`${f} failed (${r.status ?? r.signal})`);
  }
}
const latest = {};
for (const f of readdirSync(resultsDir).filter((x) => x.endsWith('.json') && x !== 'latest.json')) {
  latest[f.replace(/\.json$/, '')] = JSON.parse(readFileSync(join(resultsDir, f), 'utf8'));
}
if (Object.keys(latest).length > 0 || !existsSync(join(resultsDir, 'latest.json'))) {
  writeFileSync(join(resultsDir, 'latest.json'), `${JSON.stringify(latest, null, 2)}\n`);
  console.log(`\nwrote bench/results/latest.json (${Object.keys(latest).join(', ')})`);
}
process.exit(failed === 0 ? 0 : 1);
