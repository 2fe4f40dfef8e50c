#!/usr/bin/env node
// The built entry point (`npm run build` makes dist/); in a checkout not built yet, the sources.
import { existsSync } from 'node:fs';
const built = new URL('../dist/main.js', import.meta.url);
if (existsSync(built)) await import(built.href);
else
  await (
    await import('../../../scripts/from-source.mjs')
  ).runFromSource(new URL('../src/main.ts', import.meta.url));
