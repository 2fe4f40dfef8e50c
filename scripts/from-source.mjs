// Runs a package's TypeScript entry point in a checkout that has not been built (no dist/): the
// packages' bins come here, so that `npx fslb`, `npx fslb-monitor` and `npx fslb-proxy` work right
// after `npm ci`. It loads tsx (a development dependency) and resolves the workspace packages to
// their sources (the `@fslb/source` export condition), as the tests and the demo run them.
// Built code (`npm run build`, the container images) never comes here.
import { register } from 'node:module';

const sourceCondition = `
export async function resolve(specifier, context, next) {
  const conditions = context.conditions.includes('@fslb/source')
    ? context.conditions
    : ['@fslb/source', ...context.conditions];
  return next(specifier, { ...context, conditions });
}
`;

/** Runs `main` (a file URL of a `src/main.ts`). */
export async function runFromSource(main) {
  let tsx;
  try {
    tsx = await import('tsx/esm/api');
  } catch {
    process.stderr.write(
      'fslb: this checkout is not built and tsx is not installed: run `npm ci`, or `npm run build`\n',
    );
    process.exit(1);
  }
  tsx.register();
  register(`data:text/javascript,${encodeURIComponent(sourceCondition)}`);
  await import(main.href);
}
