/**
 * The Node.js arguments that run one of fslb's entry points straight from its TypeScript source
 * (tsx, and the `@fslb/source` condition so that workspace packages resolve to src/), as the
 * tests and benchmarks spawn them: `spawn(process.execPath, fromSource('packages/proxy/src/main.ts',
 * '--config', file), { cwd: repoRoot })`. The test then kills that child itself.
 */
export function fromSource(main: string, ...args: string[]): string[] {
  return ['--conditions=@fslb/source', '--import', 'tsx', main, ...args];
}
