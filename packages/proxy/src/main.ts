#!/usr/bin/env node
import { redactConfig, runMain } from '@fslb/shared';
import { describePlan } from './index.js';

await runMain('fslb-proxy', ({ config }) => {
  process.stdout.write(`${describePlan(config)}\n`);
  process.stdout.write(`config: ${JSON.stringify(redactConfig(config))}\n`);
  return Promise.resolve();
});
