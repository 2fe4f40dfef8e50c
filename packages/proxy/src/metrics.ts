import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The proxy's Prometheus metrics, on a registry of its own (tests run several proxies in one process). */
export class ProxyMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'fslb_proxy_requests_total',
    help:
      'Requests by method and outcome (connected, failed, challenged, cancelled, no-capacity, ' +
      'forbidden, rate-limited, overloaded, in-dialog, loop, shutting-down, timeout, error, ' +
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
      '(replica over proxy.maxCps), shutting-down, error (a fault inside fslb, 500), own-header ' +
      '(an INVITE from outside carrying X-Fslb-Limits or X-Fslb-Slot, 403)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly decisionSeconds = new Histogram({
    name: 'fslb_proxy_decision_duration_seconds',
    help: 'Time to choose the targets of one request from the view (no I/O)',
    buckets: [0.000_002, 0.000_005, 0.000_01, 0.000_02, 0.000_05, 0.000_1, 0.000_25, 0.001],
    registers: [this.registry],
  });
  readonly reservationSeconds = new Histogram({
    name: 'fslb_proxy_reservation_duration_seconds',
    help: 'Round trip of the reservation script, by outcome',
    labelNames: ['outcome'] as const,
    buckets: [0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  readonly reservations = new Counter({
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
  readonly eligibleNodes = new Gauge({
    name: 'fslb_proxy_eligible_nodes',
    help: 'Nodes that can take a call now (up, not drained, watched, below capacity)',
    registers: [this.registry],
  });
  readonly viewAgeSeconds = new Gauge({
    name: 'fslb_proxy_view_age_seconds',
    help: 'Time since the view last heard from Redis (snapshot or event)',
    registers: [this.registry],
  });
  readonly viewSource = new Gauge({
    name: 'fslb_proxy_view_source',
    help: '1 for the current source of the view: none, live, last-known',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });
  readonly redisUp = new Gauge({
    name: 'fslb_proxy_redis_up',
    help: '1 when the Redis command connection is ready',
    registers: [this.registry],
  });
  readonly drachtioUp = new Gauge({
    name: 'fslb_proxy_drachtio_up',
    help: '1 when connected to drachtio-server',
    registers: [this.registry],
  });
  readonly callsInProgress = new Gauge({
    name: 'fslb_proxy_calls_in_progress',
    help: 'Requests being proxied now (waiting for a final response)',
    registers: [this.registry],
  });
  readonly nodeLoad = new Gauge({
    name: 'fslb_proxy_node_load',
    help: 'Per node, as this proxy sees it: sessions, reservations, max',
    labelNames: ['node', 'kind'] as const,
    registers: [this.registry],
  });

  readonly poolCalls = new Counter({
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

  constructor() {
    // Under their standard names (process_cpu_seconds_total, nodejs_eventloop_lag_p99_seconds,
    // ...): Prometheus tells the processes apart by their job and instance labels.
    collectDefaultMetrics({ register: this.registry });
  }
}
