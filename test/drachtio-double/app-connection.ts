/**
 * One srf app's connection to the double: what it said (authentication, tags, routes, every
 * message) and the writer that frames what the double says to it.
 */
import type { Socket } from 'node:net';

import { FrameWriter, type AppMessage, type FramingOptions } from './wire.js';

/** One app connection (one srf `connect`). */
export class AppConnection {
  authenticated = false;
  tags: string[] = [];
  /** Verbs routed (lower case), as `route|<verb>` named them. */
  readonly verbs = new Set<string>();
  /** Every message received, in order. */
  readonly messages: AppMessage[] = [];
  closed = false;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** @internal */
  readonly writer: FrameWriter;

  constructor(
    readonly id: number,
    /** @internal */ readonly socket: Socket,
    framing: FramingOptions,
  ) {
    this.remoteAddress = socket.remoteAddress ?? '';
    this.remotePort = socket.remotePort ?? 0;
    this.writer = new FrameWriter(socket, { ...framing });
  }

  get framing(): FramingOptions {
    return this.writer.framing;
  }

  set framing(f: FramingOptions) {
    this.writer.framing = { ...f };
  }

  /** Socket writes made to this app (a split message takes several). */
  get writes(): number {
    return this.writer.writes;
  }
}
