/**
 * The real drachtio-srf, connected to a DrachtioDouble, for the double's own tests. The types
 * drachtio-srf bundles lack `req.proxy`, `srf.options`/`register`, `reconnect` and the request's
 * meta fields; the casts to them live here and nowhere else in this directory.
 */
import { once } from 'node:events';

import Srf from 'drachtio-srf';

import { settlesWithin } from '../support/wait.js';

import type { DrachtioDouble } from './drachtio-double.js';

/** `req.proxy()` options as srf 5.0.29 reads them (lib/request.js). */
export interface ProxyOptions {
  destination: string | string[];
  remainInDialog?: boolean;
  recordRoute?: boolean;
  followRedirects?: boolean;
  forking?: 'serial' | 'simultaneous';
  provisionalTimeout?: string;
  finalTimeout?: string;
  headers?: Record<string, string>;
}

/** One entry of `responses`: srf groups a target's final responses under its address. */
export interface ProxyResponseGroup {
  address: string;
  port: number;
  msgs: { time: string; status: number; msg: Srf.SipMessage }[];
}

/** What `req.proxy()` resolves to. */
export interface ProxyResult {
  connected: boolean;
  finalStatus?: number;
  finalResponse?: { time: string; status: number; msg: Srf.SipMessage };
  responses: ProxyResponseGroup[];
}

export type AppRequest = Srf.SrfRequest & {
  proxy(opts: ProxyOptions): Promise<ProxyResult>;
  source_port: number;
  source_address: string;
  protocol: string;
  stackTxnId: string;
  receivedOn: string | undefined;
  socket: import('node:net').Socket;
};

type Handler = (req: AppRequest, res: Srf.SrfResponse) => void;

export interface SrfAppOptions {
  secret?: string;
  tags?: string[];
  /** srf's reconnect options (`maxAttempts: 1` stops it retrying). */
  reconnect?: { retryMaxDelay?: number; maxAttempts?: number };
}

/** An srf app connected to a double; `close()` disconnects it cleanly. */
export class SrfApp {
  readonly srf: Srf;
  /** 'error' events srf emitted (it re-emits socket errors; with no listener the process dies). */
  readonly errors: Error[] = [];
  /** The `connect` events: err (undefined when authenticated) and the hostport string. */
  readonly connects: { err: Error | undefined; hostport: string | undefined; version: string | undefined }[] =
    [];
  private connected = false;

  constructor(
    private readonly dx: DrachtioDouble,
    private readonly options: SrfAppOptions = {},
  ) {
    this.srf = options.tags ? new Srf(options.tags) : new Srf();
    this.srf.on('error', (err) => this.errors.push(err));
    this.srf.on('connect', (err: Error | undefined, hostport: string | undefined, version?: string) => {
      this.connects.push({ err: err ?? undefined, hostport, version });
      if (!err) this.connected = true;
    });
    (this.srf as unknown as { on(e: 'close', fn: () => void): void }).on('close', () => {
      this.connected = false;
    });
  }

  connect(): this {
    const opts = {
      host: this.dx.host,
      port: this.dx.port,
      secret: this.options.secret ?? this.dx.secret,
      ...(this.options.reconnect ? { reconnect: this.options.reconnect } : {}),
    };
    void (this.srf.connect as (o: typeof opts) => unknown)(opts);
    return this;
  }

  invite(fn: Handler): this {
    this.srf.invite(fn as (req: Srf.SrfRequest, res: Srf.SrfResponse) => void);
    return this;
  }

  /** srf.options / srf.register / srf.subscribe (delegated per SIP method, untyped). */
  route(method: 'options' | 'register' | 'subscribe', fn: Handler): this {
    (this.srf as unknown as Record<string, (fn: Handler) => void>)[method]?.(fn);
    return this;
  }

  /**
   * Disconnects srf for good. srf's `disconnect()` throws while it is between reconnects, and a
   * pending retry would connect again later, so when not connected this waits (up to 3 s) for
   * the reconnect first. Call it before closing the double.
   */
  async close(): Promise<void> {
    if (!this.connected && this.options.reconnect?.maxAttempts !== 1) {
      await settlesWithin(once(this.srf, 'connect'), 3000);
    }
    if (this.connected) this.srf.disconnect();
  }
}
