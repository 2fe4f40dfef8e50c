/**
 * A benchmark's window into an fslb-proxy child's view of the cluster. Loaded into the child with
 * `--import` (see `viewProbeArgs` in view-watch.ts), never by the product: when
 * BENCH_VIEW_PROBE names a UDP port, every change of a node's session count or eligibility in the
 * proxy's `ClusterView` is sent there at once, stamped with the monotonic clock (CLOCK_MONOTONIC
 * via process.hrtime, the same clock in every process on the machine, so the benchmark can
 * subtract its own readings from it).
 *
 * It wraps the four methods through which anything reaches the view (a snapshot, an event, a
 * load figure, a node held out by a reservation reply) and compares every node after each call,
 * so the time is that of the change itself, not of a poll; the message to the benchmark is sent
 * after the change is made. One datagram per call that changed something:
 * `<proxy id> <hrtime ns>\n<node> <sessions> <eligible 0|1>\n...` (sessions -1 for a node that
 * left the view).
 */
import { createSocket } from 'node:dgram';
import { ClusterView } from '@fslb/proxy';

const port = Number(process.env.BENCH_VIEW_PROBE ?? 0);
if (port > 0) install(port);

function install(to: number): void {
  const socket = createSocket('udp4');
  socket.unref();
  const proxyId = process.env.FSLB_PROXY_ID ?? `pid-${process.pid}`;
  const held = new WeakMap<ClusterView, Map<string, string>>();

  const report = (view: ClusterView): void => {
    let last = held.get(view);
    if (!last) {
      last = new Map();
      held.set(view, last);
    }
    const at = process.hrtime.bigint();
    const lines: string[] = [];
    const present = new Set<string>();
    for (const n of view.nodes) {
      present.add(n.id);
      const now = `${n.sessions} ${n.eligible ? 1 : 0}`;
      if (last.get(n.id) !== now) {
        last.set(n.id, now);
        lines.push(`${n.id} ${now}`);
      }
    }
    for (const id of last.keys()) {
      if (!present.has(id)) {
        last.delete(id);
        lines.push(`${id} -1 0`);
      }
    }
    if (lines.length > 0) socket.send(`${proxyId} ${at}\n${lines.join('\n')}`, to, '127.0.0.1');
  };

  type Method = (this: ClusterView, ...args: unknown[]) => unknown;
  const proto = ClusterView.prototype as unknown as Record<string, Method | undefined>;
  for (const name of ['applySnapshot', 'applyEvent', 'applyLoad', 'markUnavailable']) {
    const original = proto[name];
    if (typeof original !== 'function') throw new Error(`view-probe: ClusterView.${name} is gone`);
    proto[name] = function (this: ClusterView, ...args: unknown[]): unknown {
      const result = original.apply(this, args);
      report(this);
      return result;
    };
  }
}
