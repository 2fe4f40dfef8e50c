import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from './logger.js';

export interface HealthSource {
  /** Liveness: the process works (JSON details). */
  health(): Record<string, unknown>;
  /** Readiness: true when the component can do its job; `detail` says what it sees. */
  ready(): { ready: boolean; detail: Record<string, unknown> };
}

/** What the server needs of a prom-client Registry. */
export interface MetricsRegistry {
  readonly contentType: string;
  metrics(): Promise<string>;
}

/** `/healthz`, `/readyz` and `/metrics` on one small HTTP server (monitor and proxy alike). */
export class HealthHttpServer {
  readonly #server: Server;
  readonly #log: Logger;
  #closing: Promise<void> | undefined;

  constructor(source: HealthSource, registry: MetricsRegistry, log: Logger) {
    this.#log = log;
    this.#server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const json = (code: number, body: unknown): void => {
        res.writeHead(code, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
      };
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        json(405, { error: 'method not allowed' });
        return;
      }
      switch (path) {
        case '/healthz':
          json(200, { status: 'ok', ...source.health() });
          return;
        case '/readyz': {
          const r = source.ready();
          json(r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not ready', ...r.detail });
          return;
        }
        case '/metrics':
          registry.metrics().then(
            (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
            (err: unknown) => {
              this.#log.error({ err }, 'metrics collection failed');
              json(500, { error: 'metrics failed' });
            },
          );
          return;
        default:
          json(404, { error: 'not found', paths: ['/healthz', '/readyz', '/metrics'] });
      }
    });
  }

  async listen(host: string, port: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    const port_ = (this.#server.address() as AddressInfo).port;
    this.#log.info({ host, port: port_ }, 'http listening');
    return port_;
  }

  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      if (!this.#server.listening) {
        resolve();
        return;
      }
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
    return this.#closing;
  }
}
