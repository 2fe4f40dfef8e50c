/**
 * A UDP socket on loopback that nothing reads until the test lets it: datagrams sent to it wait in
 * its kernel receive buffer (and past the buffer's size are dropped), as at a server whose reading
 * thread has fallen behind. A worker thread binds it, then blocks its own event loop on a shared
 * flag, so the socket is real and only its reading is held back.
 */
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const dgram = require('node:dgram');
const socket = dgram.createSocket('udp4');
let received = 0;
socket.on('message', () => received++);
parentPort.on('message', (m) => {
  if (m === 'count') parentPort.postMessage({ received });
  if (m === 'close') socket.close(() => parentPort.close());
});
socket.bind(0, '127.0.0.1', () => {
  if (workerData.recvBufferSize) socket.setRecvBufferSize(workerData.recvBufferSize);
  parentPort.postMessage({ port: socket.address().port });
  Atomics.wait(new Int32Array(workerData.gate), 0, 0);
});
`;

export interface HeldUdpSocket {
  readonly port: number;
  /** Lets the socket be read: what waits in its buffer is read at once. */
  release(): void;
  /** Datagrams the socket has read so far: only after `release` (before it, the worker cannot answer). */
  received(): Promise<number>;
  close(): Promise<void>;
}

export async function holdUdpSocket(opts: { recvBufferSize?: number } = {}): Promise<HeldUdpSocket> {
  const gate = new SharedArrayBuffer(4);
  const flag = new Int32Array(gate);
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: { gate, recvBufferSize: opts.recvBufferSize },
  });
  const [first] = (await once(worker, 'message')) as [{ port: number }];
  const release = (): void => {
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
  };
  let closed: Promise<void> | undefined;
  return {
    port: first.port,
    release,
    async received() {
      release();
      worker.postMessage('count');
      const [m] = (await once(worker, 'message')) as [{ received: number }];
      return m.received;
    },
    close() {
      closed ??= (async () => {
        release();
        const exited = once(worker, 'exit');
        worker.postMessage('close');
        await exited;
      })();
      return closed;
    },
  };
}
