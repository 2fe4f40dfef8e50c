import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProxyMetrics } from './metrics.js';

/** The sample lines of one metric in the exposition text, without HELP and TYPE. */
async function lines(m: ProxyMetrics, name: string): Promise<string[]> {
  return (await m.registry.metrics()).split('\n').filter((l) => l.startsWith(name));
}

describe('ProxyMetrics counted on the request path', () => {
  it('exports tallied counters with their labels, adding what came since the last read', async () => {
    const m = new ProxyMetrics();
    m.requests.count('INVITE', 'connected');
    m.requests.count('INVITE', 'connected');
    m.requests.count('OPTIONS', 'options-ok');
    assert.deepEqual(await lines(m, 'fslb_proxy_requests_total'), [
      'fslb_proxy_requests_total{method="INVITE",outcome="connected"} 2',
      'fslb_proxy_requests_total{method="OPTIONS",outcome="options-ok"} 1',
    ]);
    m.requests.count('INVITE', 'connected');
    m.reservations.count('advance');
    const values = (await m.requests.get()).values.map((v) => [v.labels.outcome, v.value]);
    assert.deepEqual(values, [
      ['connected', 3],
      ['options-ok', 1],
    ]);
    assert.deepEqual(await lines(m, 'fslb_proxy_reservations_total'), [
      'fslb_proxy_reservations_total{outcome="advance"} 1',
    ]);
  });

  it('exports tallied histograms as cumulative buckets with sum and count, by label', async () => {
    const m = new ProxyMetrics();
    m.reservation('redis', 0.3); // 0.0003 s: the 0.0005 bucket
    m.reservation('redis', 3); // 0.003 s: the 0.005 bucket
    m.reservation('advance', 0.01);
    m.reservation('redis', 5000); // above every bound: +Inf only
    const redis = (await lines(m, 'fslb_proxy_reservation_duration_seconds')).filter((l) =>
      l.includes('outcome="redis"'),
    );
    const at = (le: string) =>
      redis.find((l) => l.startsWith(`fslb_proxy_reservation_duration_seconds_bucket{le="${le}",`));
    assert.match(at('0.00025') ?? '', / 0$/);
    assert.match(at('0.0005') ?? '', / 1$/);
    assert.match(at('0.005') ?? '', / 2$/);
    assert.match(at('1') ?? '', / 2$/);
    assert.match(at('+Inf') ?? '', / 3$/);
    assert.ok(redis.includes('fslb_proxy_reservation_duration_seconds_count{outcome="redis"} 3'));
    const sum = Number(redis.find((l) => l.includes('_sum'))?.split(' ')[1]);
    assert.ok(Math.abs(sum - 5.0033) < 1e-9, String(sum));

    m.decisionSeconds.observe(0.000_003);
    assert.ok(
      (await lines(m, 'fslb_proxy_decision_duration_seconds_count')).includes(
        'fslb_proxy_decision_duration_seconds_count 1',
      ),
    );
    m.registry.resetMetrics();
    assert.deepEqual(await lines(m, 'fslb_proxy_decision_duration_seconds'), []);
  });

  it('reads calls in progress and the overload gauges at scrape time', async () => {
    const m = new ProxyMetrics();
    m.gaugesFrom({
      callsInProgress: () => 4,
      viewAgeMs: () => null,
      viewSource: () => 'none',
      redisUp: () => true,
      drachtioUp: () => true,
      eligibleNodes: () => 0,
      udpQueuedBytes: () => 65_536,
      admitRatio: () => 0.75,
      nodes: () => [],
    });
    assert.deepEqual(await lines(m, 'fslb_proxy_calls_in_progress'), ['fslb_proxy_calls_in_progress 4']);
    assert.deepEqual(await lines(m, 'fslb_proxy_drachtio_udp_queued_bytes'), [
      'fslb_proxy_drachtio_udp_queued_bytes 65536',
    ]);
    assert.deepEqual(await lines(m, 'fslb_proxy_admit_ratio'), ['fslb_proxy_admit_ratio 0.75']);
  });
});
