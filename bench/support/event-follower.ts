/**
 * A proxy's view, alone, in a process of its own: fslb-proxy's ClusterView kept current by its
 * ViewSync (the snapshot at start, then `fslb:events` as they come, resyncs every 5 s), nothing
 * else. The fleet bench starts a few of these and reads their CPU from /proc while node events
 * flow, so what a proxy spends on events is measured apart from routing.
 *
 * argv: <redis url> <key prefix>. Prints `ready <nodes>` once the first snapshot is applied;
 * on `report` (a line on stdin) prints `sessions <sum of every node's sessions in its view>`.
 */
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { ClusterKeys, ClusterStore, createLogger } from '@fslb/shared';
import { ClusterView, ViewSync } from '@fslb/proxy';

const [url, prefix] = process.argv.slice(2);
if (!url || !prefix) throw new Error('usage: event-follower <redis url> <key prefix>');
const client = new Redis(url);
const subscriber = new Redis(url);
const store = new ClusterStore(client, new ClusterKeys(prefix));
const view = new ClusterView();
const sync = new ViewSync({
  view,
  store,
  subscriber,
  resyncMs: 5000,
  log: createLogger({ level: 'warn', name: 'event-follower' }),
});
await sync.start();
console.log(`ready ${view.nodes.length}`);
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'report') return;
  let sum = 0;
  for (const n of view.nodes) sum += n.sessions;
  console.log(`sessions ${sum}`);
});
process.on('SIGTERM', () => {
  sync.close();
  client.disconnect();
  subscriber.disconnect();
  process.exit(0);
});
