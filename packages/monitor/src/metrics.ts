import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The monitor's Prometheus metrics, on a registry of its own (several monitors can live in one
 * process, as they do in tests).
 */
export class MonitorMetrics {
  readonly registry = new Registry();
  readonly connections = new Gauge({
    name: 'fslb_monitor_esl_connections',
    help: 'ESL connections of owned nodes, by state (connecting, connected, down)',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });
  readonly probeSeconds = new Histogram({
    name: 'fslb_monitor_probe_duration_seconds',
    help: 'Round trip of one probe (status, pause, shutdown and profile checks) over ESL',
    labelNames: ['node', 'result'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly leasesHeld = new Gauge({
    name: 'fslb_monitor_leases_held',
    help: 'Node leases this monitor holds',
    registers: [this.registry],
  });
  readonly liveMonitors = new Gauge({
    name: 'fslb_monitor_live_monitors',
    help: 'Monitors alive according to Redis, this one included',
    registers: [this.registry],
  });
  readonly publishes = new Counter({
    name: 'fslb_monitor_publishes_total',
    help: 'Fenced writes of node records, by outcome (changed, unchanged, fenced, removed, unlisted, error)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: 'fslb_monitor_errors_total',
    help: 'Errors by kind (redis, esl, config, lease)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly nodeState = new Gauge({
    name: 'fslb_monitor_node_up',
    help: '1 when an owned node is up, 0 otherwise',
    labelNames: ['node'] as const,
    registers: [this.registry],
  });

  constructor() {
    // Under their standard names (process_cpu_seconds_total, nodejs_eventloop_lag_p99_seconds,
    // ...): Prometheus tells the processes apart by their job and instance labels.
    collectDefaultMetrics({ register: this.registry });
  }
}
