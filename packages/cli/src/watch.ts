import { onMessage, subscribe, type ClusterStore, type Redis } from '@fslb/shared';
import { reasonOf } from './connect.js';
import { formatAge, type Paint } from './render.js';
import { shardStores } from './shards.js';
import { readStatus, renderStatus, type ClusterStatus } from './status.js';

export interface WatchOptions {
  /** Full reload period: heals lost messages and a Redis that restarted empty. */
  intervalMs: number;
  /** Shortest gap between two redraws when events arrive in a burst. */
  minGapMs?: number;
  /** Clear the screen for each frame (a TTY); otherwise frames are appended. */
  screen: boolean;
  paint: Paint;
  write: (s: string) => void;
  signal: AbortSignal;
}

/**
 * `fslb watch`: the status table, redrawn when `fslb:events` announces a change and at every
 * interval. Keys are the truth, so each redraw reads a fresh snapshot rather than patching the
 * last one from messages; a lost message costs at most one interval, and a Redis that restarted
 * (ioredis reconnects and resubscribes) shows whatever the monitors rebuild. While Redis is
 * unreachable the last table stays on screen under a banner saying so.
 */
export async function watch(store: ClusterStore, subscriber: Redis, o: WatchOptions): Promise<void> {
  // Appended frames (a pipe, a log) come at most once an interval; a screen redraws at once.
  const minGap = o.minGapMs ?? (o.screen ? 200 : o.intervalMs);
  let last: { status: ClusterStatus; readAt: number } | undefined;
  let error: string | undefined;
  let running = false;
  const queued = { again: false };
  // Functions, not fields: both change while a read is awaited.
  const more = (): boolean => queued.again && !o.signal.aborted;
  let lastDraw = 0;
  let timer: NodeJS.Timeout | undefined;

  const draw = (): void => {
    let frame: string;
    if (last === undefined) frame = o.paint(`waiting for Redis: ${error ?? 'connecting'}`, 'yellow');
    else {
      frame = renderStatus(last.status, o.paint);
      if (error !== undefined) {
        frame += `\n${o.paint(`Redis unreachable (${error}); table from ${formatAge(Date.now() - last.readAt)} ago, retrying`, 'red')}`;
      }
    }
    o.write(o.screen ? `\x1b[H\x1b[2J${frame}\n` : `${frame}\n\n`);
  };

  const reload = async (): Promise<void> => {
    if (running) {
      queued.again = true;
      return;
    }
    running = true;
    try {
      do {
        queued.again = false;
        try {
          last = { status: await readStatus(store), readAt: Date.now() };
          error = undefined;
        } catch (err) {
          error = reasonOf(err);
        }
        if (o.signal.aborted) return;
        lastDraw = Date.now();
        draw();
      } while (more());
    } finally {
      running = false;
    }
  };

  const soon = (): void => {
    if (timer !== undefined || o.signal.aborted) return;
    const wait = Math.max(0, lastDraw + minGap - Date.now());
    timer = setTimeout(() => {
      timer = undefined;
      void reload();
    }, wait);
  };

  const unlisten = onMessage(subscriber, soon);
  // After a reconnect ioredis resubscribes by itself; reload at once rather than wait an interval.
  subscriber.on('ready', soon);
  for (const s of await shardStores(store).catch(() => [store])) {
    await subscribe(subscriber, s.keys.events).catch((err: unknown) => {
      error = reasonOf(err);
    });
  }
  if (o.screen) o.write('\x1b[?25l');
  const every = setInterval(() => void reload(), o.intervalMs);
  await reload();
  await new Promise<void>((resolve) => {
    if (o.signal.aborted) resolve();
    else o.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  clearInterval(every);
  clearTimeout(timer);
  unlisten();
  subscriber.off('ready', soon);
  if (o.screen) o.write('\x1b[?25h');
}
