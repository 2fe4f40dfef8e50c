/**
 * How a benchmark runs fslb's own processes when their cost is what it measures (CPU, memory):
 * from the built JavaScript (`packages/<pkg>/dist/main.js`), as operators run them, built first
 * with `tsc -b packages/<pkg>` when a source is newer than its output; from the TypeScript
 * sources through tsx when the build fails (tsx's loader then adds to the process' memory).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromSource } from '../../test/support/source-process.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Sources of a package newer than its build output (tests and declarations aside). */
function staleSources(pkg: string): string[] {
  const src = join(ROOT, 'packages', pkg, 'src');
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts')) {
        const js = join(ROOT, 'packages', pkg, 'dist', relative(src, p).replace(/\.ts$/, '.js'));
        if (!existsSync(js) || statSync(js).mtimeMs < statSync(p).mtimeMs) out.push(relative(ROOT, p));
      }
    }
  };
  walk(src);
  return out;
}

export interface Entry {
  /** How it runs, for the results. */
  readonly runtime: string;
  /** Node.js arguments that run it with these program arguments (cwd: the repository root). */
  args(...programArgs: string[]): string[];
}

/** The entry point of `fslb-proxy` or `fslb-monitor`, built when stale. */
export function entryPoint(pkg: 'proxy' | 'monitor'): Entry {
  let stale = [...staleSources('shared'), ...staleSources(pkg)];
  let note = '';
  if (stale.length > 0) {
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    const r = spawnSync(process.execPath, [tsc, '-b', `packages/${pkg}`], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 180_000,
    });
    if (r.status === 0) {
      stale = [];
      note = ` (rebuilt with tsc -b packages/${pkg} first)`;
    } else {
      note = `; tsc -b packages/${pkg} failed: ${r.stdout.slice(-300)}`;
    }
  }
  const main = `packages/${pkg}/dist/main.js`;
  // Node.js flags for this child only (BENCH_PROXY_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/p").
  const flags = (process.env[`BENCH_${pkg.toUpperCase()}_NODE_ARGS`] ?? '').split(' ').filter(Boolean);
  if (stale.length === 0 && existsSync(join(ROOT, main))) {
    return { runtime: `built JS: node ${main}${note}`, args: (...a) => [...flags, main, ...a] };
  }
  return {
    runtime: `source: node --import tsx packages/${pkg}/src/main.ts (the build was stale or missing${note})`,
    args: (...a) => [...flags, ...fromSource(`packages/${pkg}/src/main.ts`, ...a)],
  };
}

/** The environment of an fslb child: no FSLB_* or REDIS_URL override of its config file. */
export function childEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('FSLB_') && k !== 'REDIS_URL'),
  );
}
