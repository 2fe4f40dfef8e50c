import {
  Counter,
  Gauge,
  Registry,
  collectDefaultMetrics,
  type CounterConfiguration,
  type LabelValues,
  type Metric,
} from 'prom-client';
import { ViewSource } from './view/view-sync.js';

/**
 * A counter whose increments on the request path go to a plain map, handed to prom-client when
 * the counter is read (a scrape, a test). prom-client's own `inc` builds and checks a label
 * hash on every call; this costs one map look-up.
 */
export class TalliedCounter<T extends string> extends Counter<T> {
  readonly #names: readonly T[];
  readonly #tally = new Map<string, { labels: LabelValues<T>; n: number }>();

  constructor(cfg: CounterConfiguration<T> & { labelNames: readonly T[] }) {
    super({
      ...cfg,
      collect(this: Counter<T>) {
        if (this instanceof TalliedCounter) this.#flush();
      },
    });
    this.#names = cfg.labelNames;
  }

  /** One more, for the label values in the order of `labelNames`. */
  count(a: string, b?: string): void {
    const key = b === undefined ? a : `${a}\u0001${b}`;
    const held = this.#tally.get(key);
    if (held) {
      held.n++;
      return;
    }
    const labels: LabelValues<T> = {};
    const [first, second] = this.#names;
    if (first !== undefined) labels[first] = a;
    if (second !== undefined && b !== undefined) labels[second] = b;
    this.#tally.set(key, { labels, n: 1 });
  }

  #flush(): void {
    for (const t of this.#tally.values()) {
      if (t.n === 0) continue;
      this.inc(t.labels, t.n);
      t.n = 0;
    }
  }
}

/**
 * A histogram counted in plain arrays on the request path, with at most one label, read by
 * prom-client's registry like its own (`get` gives the same buckets, sum and count).
 */
export class TalliedHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #bounds: readonly number[];
  readonly #series = new Map<string, { counts: Float64Array; sum: number; count: number }>();
  readonly labelNames: readonly string[];

  constructor(
    readonly name: string,
    readonly help: string,
    bounds: readonly number[],
    readonly labelName: string | undefined,
    registry: Registry,
  ) {
    this.#bounds = [...bounds].sort((a, b) => a - b);
    this.labelNames = labelName === undefined ? [] : [labelName];
    registry.registerMetric(this as unknown as Metric);
  }

  /** A value in seconds, for one value of the label (none when the histogram has no label). */
  observe(value: number, label = ''): void {
    let s = this.#series.get(label);
    if (!s) {
      s = { counts: new Float64Array(this.#bounds.length), sum: 0, count: 0 };
      this.#series.set(label, s);
    }
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= (bounds[i] as number)) {
        (s.counts[i] as number)++;
        break;
      }
    }
    s.sum += value;
    s.count++;
  }

  get(): Promise<{
    name: string;
    help: string;
    type: string;
    aggregator: string;
    values: { labels: Record<string, string | number>; value: number; metricName: string }[];
  }> {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const [label, s] of this.#series) {
      const own: Record<string, string> = this.labelName === undefined ? {} : { [this.labelName]: label };
      let acc = 0;
      this.#bounds.forEach((le, i) => {
        acc += s.counts[i] ?? 0;
        values.push({ labels: { le, ...own }, value: acc, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', ...own }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: own, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: own, value: s.count, metricName: `${this.name}_count` });
    }
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values,
    });
  }

  reset(): void {
    this.#series.clear();
  }
}

/** What the proxy's state gauges read when scraped. */
export interface GaugeSource {
  /** Requests being proxied now (waiting for a final response). */
  callsInProgress(): number;
  viewAgeMs(): number | null;
  viewSource(): string;
  redisUp(): boolean;
  drachtioUp(): boolean;
  eligibleNodes(): number;
  /** Bytes waiting in drachtio-server's UDP SIP socket at the last reading (0 when not watched). */
  udpQueuedBytes(): number;
  /** Share of new INVITEs admitted (1: none shed for drachtio-server's backlog). */
  admitRatio(): number;
  /** The wait that backlog means (ms), once the proxy has timed drachtio-server's queue. */
  drachtioWaitMs?(): number | undefined;
  nodes(): Iterable<{ id: string; sessions: number; reservations: number; maxSessions: number }>;
}

/** The proxy's Prometheus metrics, on a registry of its own (tests run several proxies in one process). */
export class ProxyMetrics {
  readonly registry = new Registry();
  readonly requests = new TalliedCounter({
    name: 'fslb_proxy_requests_total',
    help:
      'Requests by method and outcome (connected, failed, challenged, cancelled, no-capacity, ' +
      'forbidden, rate-limited, overloaded, backlog, in-dialog, loop, shutting-down, timeout, error, ' +
      'over-limit, rejected, no-route, ' +
      'drachtio-lost, options-ok, options-unavailable)',
    labelNames: ['method', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly refusals = new Counter({
    name: 'fslb_proxy_refusals_total',
    help:
      'Requests refused before routing, by reason: forbidden (outside proxy.acl), rate-limited ' +
      '(its source over proxy.rateLimit), in-dialog (481), loop (482, from a node), overloaded ' +
      "(replica over proxy.maxCps), backlog (drachtio-server's SIP socket backing up, " +
      'proxy.overload), shutting-down, error (a fault inside fslb, 500), own-header ' +
      '(an INVITE from outside carrying X-Fslb-Limits or X-Fslb-Slot, 403)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly decisionSeconds = new TalliedHistogram(
    'fslb_proxy_decision_duration_seconds',
    'Time to choose the targets of one request from the view (no I/O)',
    [0.000_002, 0.000_005, 0.000_01, 0.000_02, 0.000_05, 0.000_1, 0.000_25, 0.001],
    undefined,
    this.registry,
  );
  readonly reservationSeconds = new TalliedHistogram(
    'fslb_proxy_reservation_duration_seconds',
    'Round trip of the reservation script, by outcome',
    [0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    'outcome',
    this.registry,
  );
  readonly reservations = new TalliedCounter({
    name: 'fslb_proxy_reservations_total',
    help:
      'Reservations by outcome: redis (slots taken atomically), advance (an advance slot held ' +
      'ahead of time, no round trip), full (every candidate full in ' +
      'Redis), local-timeout, local-error, local-offline, local-rebuilding (counted in this proxy only)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly targetFailures = new Counter({
    name: 'fslb_proxy_target_failures_total',
    help: 'Final failure responses from proxied targets, by status (the next target was tried)',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  /** Where the state gauges are read from at scrape time (see `gaugesFrom`). */
  #state: GaugeSource | undefined;
  readonly eligibleNodes = new Gauge({
    name: 'fslb_proxy_eligible_nodes',
    help: 'Nodes that can take a call now (up, not drained, watched, below capacity)',
    registers: [this.registry],
    collect: this.#fromState((s) => this.eligibleNodes.set(s.eligibleNodes())),
  });
  readonly viewAgeSeconds = new Gauge({
    name: 'fslb_proxy_view_age_seconds',
    help: 'Time since the view last heard from Redis (snapshot or event)',
    registers: [this.registry],
    collect: this.#fromState((s) => {
      const age = s.viewAgeMs();
      this.viewAgeSeconds.set(age === null ? -1 : age / 1000);
    }),
  });
  readonly viewSource = new Gauge({
    name: 'fslb_proxy_view_source',
    help: '1 for the current source of the view: none, live, last-known',
    labelNames: ['source'] as const,
    registers: [this.registry],
    collect: this.#fromState((s) => {
      const now = s.viewSource();
      for (const v of Object.values(ViewSource)) this.viewSource.set({ source: v }, v === now ? 1 : 0);
    }),
  });
  readonly redisUp = new Gauge({
    name: 'fslb_proxy_redis_up',
    help: '1 when the Redis command connection is ready',
    registers: [this.registry],
    collect: this.#fromState((s) => this.redisUp.set(s.redisUp() ? 1 : 0)),
  });
  readonly drachtioUp = new Gauge({
    name: 'fslb_proxy_drachtio_up',
    help: '1 when connected to drachtio-server',
    registers: [this.registry],
    collect: this.#fromState((s) => this.drachtioUp.set(s.drachtioUp() ? 1 : 0)),
  });
  readonly udpQueuedBytes = new Gauge({
    name: 'fslb_proxy_drachtio_udp_queued_bytes',
    help: "Bytes waiting in drachtio-server's UDP SIP socket (kernel accounting), read every proxy.overload.sampleMs",
    registers: [this.registry],
    collect: this.#fromState((s) => this.udpQueuedBytes.set(s.udpQueuedBytes())),
  });
  readonly udpDrops = new Counter({
    name: 'fslb_proxy_drachtio_udp_drops_total',
    help: "Datagrams the kernel dropped at drachtio-server's UDP SIP socket (receive buffer full) while this proxy watched",
    registers: [this.registry],
  });
  readonly drachtioWait = new Gauge({
    name: 'fslb_proxy_drachtio_queue_wait_seconds',
    help: "The wait drachtio-server's UDP SIP backlog means at the rate it drains (timed with the proxy's own OPTIONS); absent until timed",
    registers: [this.registry],
    collect: this.#fromState((s) => {
      const ms = s.drachtioWaitMs?.();
      if (ms === undefined) this.drachtioWait.reset();
      else this.drachtioWait.set(ms / 1000);
    }),
  });
  readonly admitRatio = new Gauge({
    name: 'fslb_proxy_admit_ratio',
    help: "Share of new INVITEs admitted: below 1 while drachtio-server's SIP socket backs up (proxy.overload)",
    registers: [this.registry],
    collect: this.#fromState((s) => this.admitRatio.set(s.admitRatio())),
  });
  readonly callsInProgress = new Gauge({
    name: 'fslb_proxy_calls_in_progress',
    help: 'Requests being proxied now (waiting for a final response)',
    registers: [this.registry],
    collect: this.#fromState((s) => this.callsInProgress.set(s.callsInProgress())),
  });
  readonly nodeLoad = new Gauge({
    name: 'fslb_proxy_node_load',
    help: 'Per node, as this proxy sees it: sessions, reservations, max',
    labelNames: ['node', 'kind'] as const,
    registers: [this.registry],
    collect: this.#fromState((s) => {
      const g = this.nodeLoad;
      g.reset();
      for (const n of s.nodes()) {
        g.set({ node: n.id, kind: 'sessions' }, n.sessions);
        g.set({ node: n.id, kind: 'reservations' }, n.reservations);
        g.set({ node: n.id, kind: 'max' }, n.maxSessions);
      }
    }),
  });

  /**
   * Where the state gauges (calls in progress, view, connections, nodes' load) are read from: at
   * scrape time, so that nothing on the request path or on a timer keeps them current.
   */
  gaugesFrom(source: GaugeSource): void {
    this.#state = source;
  }

  /** A state gauge's `collect`: reads the source when the proxy has given one. */
  #fromState(read: (s: GaugeSource) => void): () => void {
    return () => {
      if (this.#state) read(this.#state);
    };
  }

  readonly poolCalls = new TalliedCounter({
    name: 'fslb_proxy_pool_calls_total',
    help:
      'INVITEs by pool and outcome: reserved (a slot taken in the pool), spilled (reserved in a ' +
      'later pool of the route than the first), full (no pool of the route had room)',
    labelNames: ['pool', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly limitRefusals = new Counter({
    name: 'fslb_proxy_limit_refusals_total',
    help:
      'INVITEs refused by a cluster-wide limit, by limit id and what was reached: maxCalls, ' +
      'maxCps, unavailable (Redis cannot be reached and the limit refuses then)',
    labelNames: ['limit', 'kind'] as const,
    registers: [this.registry],
  });
  readonly routeRefusals = new Counter({
    name: 'fslb_proxy_route_refusals_total',
    help: 'Requests answered by the routing rules themselves, by route: a reject route, or none matched (route "none")',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });

  /** A reservation's outcome and time (the call accounting's observer). */
  reservation(outcome: string, ms: number): void {
    this.reservations.count(outcome);
    this.reservationSeconds.observe(ms / 1000, outcome);
  }

  constructor() {
    // Under their standard names (process_cpu_seconds_total, nodejs_eventloop_lag_p99_seconds,
    // ...): Prometheus tells the processes apart by their job and instance labels.
    collectDefaultMetrics({ register: this.registry });
  }
}
