#!/usr/bin/env node
import { redactConfig, runMain } from '@fslb/shared';

await runMain('fslb-monitor', ({ config }) => {
  const m = config.monitor;
  process.stdout.write(
    `fslb-monitor ${m.id}: would watch ${config.nodes.length} node(s) (${config.nodes.map((n) => n.id).join(', ')}) ` +
      `under prefix "${config.prefix}", probing every ${m.probeIntervalMs} ms with leases of ${m.leaseTtlMs} ms.\n`,
  );
  process.stdout.write(`config: ${JSON.stringify(redactConfig(config))}\n`);
  return Promise.resolve();
});
