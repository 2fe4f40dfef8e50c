export { runCli, type CliIo } from './cli.js';
export { CliError, ExitCode, resolveTarget, type Target } from './connect.js';
export { readStatus, renderStatus, type ClusterStatus, type NodeRow } from './status.js';
export { readInstances, type Instance, type InstanceKind } from './instances.js';
