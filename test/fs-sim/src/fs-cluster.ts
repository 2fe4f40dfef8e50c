import { FsNode, type FsNodeOptions } from './fs-node.js';

export interface FsClusterOptions extends Omit<FsNodeOptions, 'hostname' | 'coreUuid'> {
  /** How many nodes. */
  count: number;
  /** Hostnames are `<prefix><n>` (n from 1); by default each node's own default. */
  hostnamePrefix?: string;
}

/**
 * Several nodes in one process. With non-zero ports, node n (from 0) listens on eslPort + n and
 * sipPort + n; with 0, every node gets its own free ports.
 */
export class FsCluster {
  private closing: Promise<void> | undefined;

  private constructor(readonly nodes: readonly FsNode[]) {}

  static async start(options: FsClusterOptions): Promise<FsCluster> {
    const { count, hostnamePrefix, ...common } = options;
    if (!Number.isInteger(count) || count < 1)
      throw new RangeError(`count must be a positive integer, got ${count}`);
    const eslBase = common.eslPort ?? 0;
    const sipBase = common.sipPort ?? 0;
    const started = await Promise.allSettled(
      Array.from({ length: count }, (_, i) =>
        FsNode.start({
          ...common,
          eslPort: eslBase === 0 ? 0 : eslBase + i,
          sipPort: sipBase === 0 ? 0 : sipBase + i,
          ...(hostnamePrefix === undefined ? {} : { hostname: `${hostnamePrefix}${i + 1}` }),
        }),
      ),
    );
    const nodes = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failure = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) {
      await Promise.all(nodes.map((n) => n.close()));
      throw failure.reason instanceof Error ? failure.reason : new Error(String(failure.reason));
    }
    return new FsCluster(nodes);
  }

  /** Closes every node. Idempotent. */
  close(): Promise<void> {
    this.closing ??= Promise.all(this.nodes.map((n) => n.close())).then(() => undefined);
    return this.closing;
  }
}
