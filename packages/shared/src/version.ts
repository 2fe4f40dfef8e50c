import { readFileSync } from 'node:fs';

/** fslb's version, from the shared package's manifest (the packages are released together). */
export const FSLB_VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
