import type { FslbConfig } from '@fslb/shared';

/** What `fslb` will do with this configuration (commands arrive with the operations issue). */
export function describePlan(config: FslbConfig): string {
  return (
    `fslb: configuration is valid: ${config.nodes.length} node(s) under prefix "${config.prefix}". ` +
    `Admin commands (status, drain, undrain, proxies, monitors) are not built yet.`
  );
}
