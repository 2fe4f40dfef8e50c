#!/usr/bin/env node
// Fails when the TypeScript sources contain an import cycle, or when a package imports across a
// boundary the architecture forbids (shared must not import drachtio-srf or modesl; monitor and
// proxy never import each other).
import madge from 'madge';

const root = new URL('..', import.meta.url).pathname;
const res = await madge(['packages', 'test/fs-sim/src'], {
  baseDir: root,
  fileExtensions: ['ts'],
  excludeRegExp: [/node_modules/, /dist\//, /\.d\.ts$/],
  tsConfig: `${root}tsconfig.check.json`,
  detectiveOptions: { ts: { skipTypeImports: true } },
});
const cycles = res.circular();
let failed = false;
if (cycles.length > 0) {
  failed = true;
  console.error('import cycles:');
  for (const c of cycles) console.error(`  ${c.join(' -> ')}`);
}
const forbidden = [
  [/^packages\/shared\//, /(drachtio-srf|modesl|@fslb\/(monitor|proxy|cli))/],
  [/^packages\/monitor\//, /@fslb\/proxy/],
  [/^packages\/proxy\//, /@fslb\/monitor/],
];
const deps = res.obj();
const { readFileSync } = await import('node:fs');
for (const file of Object.keys(deps)) {
  const text = readFileSync(`${root}${file}`, 'utf8');
  for (const [where, what] of forbidden) {
    if (!where.test(file)) continue;
    for (const m of text.matchAll(/from\s+'([^']+)'/g)) {
      if (what.test(m[1])) {
        failed = true;
        console.error(`boundary: ${file} imports ${m[1]}`);
      }
    }
  }
}
if (failed) process.exit(1);
console.log(`no import cycles or boundary breaks in ${Object.keys(deps).length} files`);
