import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';

export interface RedisRelay {
  /** Where clients connect instead of Redis. */
  readonly url: string;
  /** Replies are held `delayMs` while this is set. */
  slow: boolean;
  close(): Promise<void>;
}

/**
 * A TCP relay in front of Redis that holds every reply for `delayMs` while `slow` is set: a
 * Redis that answers, steadily, but late, without stopping it. Replies leave in order: one is
 * never overtaken by a later one while it is held.
 */
export async function redisRelay(target: URL, delayMs: number, slow = true): Promise<RedisRelay> {
  const sockets = new Set<Socket>();
  const state = { slow };
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    client.pipe(upstream);
    let lastDue = 0;
    upstream.on('data', (chunk: Buffer) => {
      const now = performance.now();
      const due = Math.max(now + (state.slow ? delayMs : 0), lastDue);
      lastDue = due;
      setTimeout(() => {
        if (client.writable) client.write(chunk);
      }, due - now);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `redis://127.0.0.1:${port}`,
    get slow() {
      return state.slow;
    },
    set slow(v: boolean) {
      state.slow = v;
    },
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
