// The deployment assets (Dockerfile, docker-compose.yml, deploy/) checked against each other and
// against the code: every compose service has a healthcheck and a pinned image, the dashboard only
// queries metrics the monitor and the proxy register, Prometheus scrapes the ports the services
// listen on, and the stop timeouts outlast the proxy's own shutdown. docker compose (or
// docker-compose) also renders the file when one is installed; that part skips without it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { MonitorMetrics } from '@fslb/monitor';
import { ProxyMetrics } from '@fslb/proxy';
import { parseConfig, parseConfigText } from '@fslb/shared';

const root = new URL('../..', import.meta.url).pathname;
const read = (path: string): string => readFileSync(`${root}${path}`, 'utf8');

type Obj = Record<string, unknown>;
const obj = (v: unknown, what: string): Obj => {
  assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v), `${what} should be a mapping`);
  return v as Obj;
};
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);

/** The compose file as written: anchors and merge keys resolved, no interpolation. */
function composeServices(text: string): Map<string, Obj> {
  const doc = obj(parseYaml(text, { merge: true }), 'docker-compose.yml');
  const services = obj(doc.services, 'services');
  return new Map(Object.entries(services).map(([name, s]) => [name, obj(s, `service ${name}`)]));
}

/** Problems with a service's healthcheck and image, in words. */
function serviceProblems(name: string, s: Obj): string[] {
  const out: string[] = [];
  const hc = s.healthcheck as Obj | undefined;
  const test = hc?.test;
  if (hc === undefined || hc.disable === true || (Array.isArray(test) ? test.length < 2 : !test)) {
    out.push(`${name}: no healthcheck`);
  }
  const image = s.image;
  if (typeof image !== 'string') {
    if (s.build === undefined) out.push(`${name}: neither image nor build`);
  } else if (!image.includes('@sha256:')) {
    const tag = /:([^:/]+)$/.exec(image)?.[1];
    if (tag === undefined) out.push(`${name}: image ${image} has no tag`);
    else if (tag === 'latest') out.push(`${name}: image ${image} is not pinned`);
  }
  return out;
}

/** "60s", "1m30s", 45 (seconds) -> milliseconds. */
function durationMs(v: unknown): number {
  if (typeof v === 'number') return v * 1000;
  let ms = 0;
  for (const m of String(v).matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    ms += Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  }
  return ms;
}

const compose = composeServices(read('docker-compose.yml'));
const defaults = parseConfig({}, {});
/** The longest a proxy takes after SIGTERM: calls get shutdownTimeoutMs, then main.ts gives 10 s more. */
const proxyStopMs = defaults.proxy.shutdownTimeoutMs + 10_000;

describe('docker-compose.yml (parsed)', () => {
  it('gives every service a healthcheck and a pinned image', () => {
    assert.ok(compose.size >= 11, `expected the whole stack, found ${[...compose.keys()].join(', ')}`);
    const problems = [...compose].flatMap(([name, s]) => serviceProblems(name, s));
    assert.deepEqual(problems, []);
  });

  it('has Redis, two FreeSWITCH nodes, two proxy + drachtio-server pairs, two monitors, and metrics only on request', () => {
    const byImage = (prefix: string): string[] =>
      [...compose].filter(([, s]) => String(s.image).startsWith(prefix)).map(([n]) => n);
    assert.equal(byImage('redis:').length, 1);
    assert.equal(byImage('safarov/freeswitch:').length, 2);
    assert.equal(byImage('drachtio/drachtio-server:').length, 2);
    assert.equal(targets('monitor').length, 2);
    assert.equal(targets('proxy').length, 2);
    const drachtios = new Set(byImage('drachtio/drachtio-server:'));
    const paired = targets('proxy').map((p) =>
      String(obj(compose.get(p)?.environment, p).FSLB_DRACHTIO_HOST),
    );
    assert.deepEqual(new Set(paired), drachtios, 'each proxy points at its own drachtio-server');
    const profiled = [...compose].filter(([, s]) => strings(s.profiles).includes('metrics')).map(([n]) => n);
    assert.deepEqual(profiled.sort(), ['grafana', 'prometheus']);
  });

  it('lets a proxy finish its calls before it is killed', () => {
    for (const p of targets('proxy')) {
      const grace = durationMs(compose.get(p)?.stop_grace_period);
      assert.ok(grace > proxyStopMs, `${p}: stop_grace_period ${grace} ms <= ${proxyStopMs} ms`);
    }
  });

  it('gives each monitor and proxy the environment its configuration file needs', () => {
    const text = read('deploy/fslb.compose.yaml');
    for (const name of [...targets('monitor'), ...targets('proxy')]) {
      const env = Object.fromEntries(
        Object.entries(obj(compose.get(name)?.environment, `${name}.environment`)).map(([k, v]) => [
          k,
          // ${VAR:-default} as compose reads it with VAR unset.
          String(v).replace(/\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}/g, '$1'),
        ]),
      );
      // Each process needs only the secrets it uses: a monitor the ESL password, a proxy the
      // drachtio secret.
      const use = targets('monitor').includes(name) ? 'monitor' : 'proxy';
      assert.doesNotThrow(
        () => parseConfigText(text, env, 'compose', use),
        `${name} cannot load its configuration`,
      );
    }
  });

  it('matches deploy/fslb.compose.yaml: node SIP addresses, ESL hosts, the monitors in the ESL ACL', () => {
    const cfg = parseConfigText(read('deploy/fslb.compose.yaml'), {
      FSLB_ESL_PASSWORD: 'x',
      FSLB_DRACHTIO_SECRET: 'y',
    });
    const aclXml = read('deploy/freeswitch/freeswitch.xml');
    assert.equal(cfg.nodes.length, 2);
    for (const n of cfg.nodes) {
      const svc = compose.get(n.esl.host);
      assert.ok(svc, `node ${n.id}: ESL host ${n.esl.host} is not a compose service`);
      assert.equal(n.sip, `${staticIp(n.esl.host)}:5080`, `node ${n.id}: SIP address`);
    }
    for (const m of targets('monitor')) {
      assert.ok(aclXml.includes(`cidr="${staticIp(m)}/32"`), `${m}'s address is not in the ESL ACL`);
    }
  });
});

/** Services built from the Dockerfile target `target`. */
function targets(target: string): string[] {
  return [...compose].filter(([, s]) => (s.build as Obj | undefined)?.target === target).map(([n]) => n);
}

function staticIp(service: string): string {
  const nets = obj(compose.get(service)?.networks, `${service}.networks`);
  const ip = (Object.values(nets)[0] as Obj | undefined)?.ipv4_address;
  assert.equal(typeof ip, 'string', `${service} has no fixed address`);
  return ip as string;
}

/** `docker compose` or `docker-compose`, whichever answers; undefined says why not. */
function composeTool(): { cmd: string; args: string[] } | { reason: string } {
  for (const [cmd, args] of [
    ['docker', ['compose']],
    ['docker-compose', []],
  ] as const) {
    const r = spawnSync(cmd, [...args, 'version'], { encoding: 'utf8', timeout: 20_000 });
    if (r.status === 0) return { cmd, args: [...args] };
  }
  return { reason: 'neither `docker compose` nor `docker-compose` is installed' };
}

describe('docker-compose.yml (rendered by compose)', () => {
  const tool = composeTool();
  const render = (t: TestContext, profiles: string[], expected: string[]): void => {
    if ('reason' in tool) {
      console.log(`skipping: ${tool.reason}`);
      t.skip(tool.reason);
      return;
    }
    const args = [...tool.args, '-f', `${root}docker-compose.yml`];
    for (const p of profiles) args.push('--profile', p);
    const r = spawnSync(tool.cmd, [...args, 'config'], { encoding: 'utf8', timeout: 60_000, cwd: root });
    assert.equal(r.status, 0, `${tool.cmd} ${args.join(' ')} config failed:\n${r.stderr}`);
    // docker-compose 1.x prints every service with its profiles; compose 2 only the active ones.
    const active = [...composeServices(r.stdout)].filter(
      ([, s]) => s.profiles === undefined || strings(s.profiles).some((p) => profiles.includes(p)),
    );
    assert.deepEqual(active.map(([name]) => name).sort(), expected.sort());
    assert.deepEqual(
      active.flatMap(([name, s]) => serviceProblems(name, s)),
      [],
    );
  };
  const base = [...compose].filter(([, s]) => s.profiles === undefined).map(([n]) => n);

  it('renders the default stack, each service with a healthcheck and a pinned image', (t) => {
    render(t, [], base);
  });
  it('renders the metrics profile too', (t) => {
    render(t, ['metrics'], [...base, 'prometheus', 'grafana']);
  });
});

/** fslb's own metrics as a registry holds them: name -> type and label names. */
function fslbMetrics(registry: ProxyMetrics['registry']): Map<string, { type: string; labels: string[] }> {
  const out = new Map<string, { type: string; labels: string[] }>();
  for (const m of registry.getMetricsAsArray()) {
    const metric = m as unknown as { name: string; type: string; labelNames?: readonly string[] };
    if (!metric.name.startsWith('fslb_')) continue;
    out.set(metric.name, { type: metric.type, labels: [...(metric.labelNames ?? [])] });
  }
  return out;
}

describe('Grafana dashboard', () => {
  const declared = new Map([
    ...fslbMetrics(new MonitorMetrics().registry),
    ...fslbMetrics(new ProxyMetrics().registry),
  ]);
  const dashboard = obj(JSON.parse(read('deploy/grafana/dashboards/fslb.json')), 'dashboard');
  const panels = (dashboard.panels as Obj[]).filter((p) => p.type !== 'row');
  const exprs = panels.flatMap((p) =>
    (p.targets as Obj[]).map((t) => ({ panel: String(p.title), expr: String(t.expr) })),
  );

  it("reads fslb's metrics, their types and labels, from the registries", async () => {
    assert.deepEqual(declared.get('fslb_proxy_requests_total'), {
      type: 'counter',
      labels: ['method', 'outcome'],
    });
    assert.deepEqual(declared.get('fslb_proxy_reservation_duration_seconds'), {
      type: 'histogram',
      labels: ['outcome'],
    });
    assert.ok(declared.has('fslb_monitor_esl_connections'));
    // Each one is exported, however it is counted.
    const exported = new Set<string>();
    for (const m of [new MonitorMetrics(), new ProxyMetrics()]) {
      for (const r of await m.registry.getMetricsAsJSON()) exported.add(r.name);
    }
    for (const name of declared.keys()) assert.ok(exported.has(name), `${name} registered, not exported`);
  });

  it("exports prom-client's process and Node.js metrics under their standard names", async () => {
    for (const m of [new MonitorMetrics(), new ProxyMetrics()]) {
      const names = (await m.registry.getMetricsAsJSON()).map((r) => r.name);
      for (const std of [
        'process_cpu_seconds_total',
        'process_resident_memory_bytes',
        'nodejs_eventloop_lag_p99_seconds',
      ])
        assert.ok(names.includes(std), `${std} is exported`);
      assert.deepEqual(
        names.filter((n) => !/^(fslb_(monitor|proxy)_|process_|nodejs_)/.test(n)),
        [],
        'every other metric is fslb_monitor_* or fslb_proxy_*',
      );
      assert.ok(!names.some((n) => /^fslb_[a-z]+_process_/.test(n)), 'no prefixed copies');
    }
  });

  it('selects the process metrics of proxies and of monitors by a metric only they export', () => {
    const processExprs = exprs.filter((e) => /\b(process|nodejs)_/.test(e.expr));
    assert.ok(processExprs.length >= 4);
    for (const { panel, expr } of processExprs)
      assert.match(expr, /and on \(job, instance\) fslb_(proxy|monitor)_[a-z_]+$/, `${panel}: ${expr}`);
  });

  it('queries only metrics the monitor and the proxy register, and only their labels', async () => {
    // Known = fslb's metrics with their labels, plus prom-client's default metrics.
    const known = new Map<string, string[]>();
    for (const [name, d] of declared) {
      known.set(name, d.labels);
      if (d.type === 'histogram') {
        for (const s of ['_bucket', '_sum', '_count']) known.set(name + s, [...d.labels, 'le']);
      }
    }
    for (const m of [new MonitorMetrics(), new ProxyMetrics()]) {
      for (const r of await m.registry.getMetricsAsJSON()) {
        if (!known.has(r.name)) known.set(r.name, []);
      }
    }
    assert.ok(exprs.length >= 10, 'the dashboard has its queries');
    const problems: string[] = [];
    for (const { panel, expr } of exprs) {
      if (!/\bfslb_[a-z0-9_]+/.test(expr)) problems.push(`${panel}: ${expr} queries no fslb metric`);
      const names = [...new Set(expr.match(/\b(?:fslb|process|nodejs)_[a-z0-9_]+/g) ?? [])];
      for (const name of names) {
        const labels = known.get(name);
        if (labels === undefined) {
          problems.push(`${panel}: ${name} is not registered`);
          continue;
        }
        const used = [...expr.matchAll(/\b(?:by|without) \(([^)]*)\)|\{([^}]*)\}/g)].flatMap((m) =>
          m[1] !== undefined
            ? m[1].split(',').map((l) => l.trim())
            : (m[2] ?? '').split(',').map((l) => l.split(/[=!~]/)[0]?.trim() ?? ''),
        );
        for (const l of used.filter((x) => x !== '' && x !== 'instance' && x !== 'job')) {
          if (!labels.includes(l)) problems.push(`${panel}: ${name} has no label ${l}`);
        }
      }
    }
    assert.deepEqual(problems, []);
  });

  it('covers calls, node load, decisions, view age and ESL ownership', () => {
    const all = exprs.map((e) => e.expr).join('\n');
    for (const name of [
      'fslb_proxy_requests_total',
      'fslb_proxy_node_load',
      'fslb_proxy_decision_duration_seconds_bucket',
      'fslb_proxy_view_age_seconds',
      'fslb_monitor_esl_connections',
      'fslb_monitor_leases_held',
      'fslb_monitor_live_monitors',
      'fslb_monitor_node_up',
    ]) {
      assert.ok(all.includes(name), `no panel shows ${name}`);
    }
  });

  it('takes its data source from a variable, with unique panel ids', () => {
    const vars = (obj(dashboard.templating, 'templating').list as Obj[]).filter(
      (v) => v.type === 'datasource',
    );
    assert.equal(vars.length, 1);
    const ref = `\${${String(vars[0]?.name)}}`;
    for (const p of panels) assert.equal(obj(p.datasource, String(p.title)).uid, ref, String(p.title));
    const ids = (dashboard.panels as Obj[]).map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
    assert.equal(typeof dashboard.schemaVersion, 'number');
  });

  it('is the file Grafana provisions', () => {
    const provider = obj(
      (
        obj(parseYaml(read('deploy/grafana/provisioning/dashboards/fslb.yml')), 'provider').providers as Obj[]
      )[0],
      'provider',
    );
    const path = String(obj(provider.options, 'options').path);
    const grafana = compose.get('grafana');
    assert.ok(strings(grafana?.volumes).includes(`./deploy/grafana/dashboards:${path}:ro`));
  });
});

describe('Prometheus', () => {
  it('parses, and scrapes every monitor and proxy on the port it serves', () => {
    const prom = obj(parseYaml(read('deploy/prometheus/prometheus.yml')), 'prometheus.yml');
    const scraped = (prom.scrape_configs as Obj[]).flatMap((job) =>
      (job.static_configs as Obj[]).flatMap((sc) => strings(sc.targets)),
    );
    const expected = [
      ...targets('monitor').map(
        (s) => `${s}:${httpPort(s, 'FSLB_MONITOR_HTTP_PORT', defaults.monitor.http.port)}`,
      ),
      ...targets('proxy').map((s) => `${s}:${httpPort(s, 'FSLB_PROXY_HTTP_PORT', defaults.proxy.http.port)}`),
    ];
    assert.deepEqual(scraped.sort(), expected.sort());
  });
});

/** The port a service serves HTTP on (its env override, else the default), checked against `expose`. */
function httpPort(service: string, envName: string, fallback: number): number {
  const s = compose.get(service);
  const env = s?.environment as Obj | undefined;
  const port = Number(env?.[envName] ?? fallback);
  assert.ok(strings(s?.expose).includes(String(port)), `${service} does not expose ${port}`);
  const test = strings(obj(s?.healthcheck, `${service}.healthcheck`).test).join(' ');
  assert.ok(test.includes(`:${port}/healthz`), `${service}'s healthcheck does not ask port ${port}`);
  return port;
}

/** The bin of packages/<pkg>, relative to the repository root. */
function binOf(pkg: string): string {
  const manifest = obj(JSON.parse(read(`packages/${pkg}/package.json`)) as unknown, `${pkg} package.json`);
  const bins = Object.values(obj(manifest.bin, `${pkg} bin`));
  assert.equal(bins.length, 1, `packages/${pkg} has one bin`);
  return String(bins[0]).replace(/^\.\//, `packages/${pkg}/`);
}

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');

  it('builds from a pinned image and runs as node', () => {
    const arg = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1] ?? '';
    assert.match(arg, /^node:22\.\d+\.\d+-[a-z]+-slim$/);
    for (const m of dockerfile.matchAll(/^FROM (\S+)/gm)) {
      assert.ok(['${NODE_IMAGE}', 'runtime'].includes(m[1] ?? ''), `FROM ${m[1]}`);
    }
    assert.match(dockerfile, /^USER node$/m);
  });

  it('has a target per command, whose entry point is that package bin', () => {
    for (const target of ['monitor', 'proxy', 'cli']) {
      const bin = binOf(target);
      const stage = new RegExp(`^FROM runtime AS ${target}$([\\s\\S]*?)(?=^FROM |(?![\\s\\S]))`, 'm').exec(
        dockerfile,
      );
      assert.ok(stage, `no target ${target}`);
      assert.match(stage[1] ?? '', new RegExp(`^ENTRYPOINT \\["node", "${bin}"\\]$`, 'm'));
    }
  });
});

describe('systemd units', () => {
  const unit = (name: string): Map<string, string[]> => {
    const keys = new Map<string, string[]>();
    for (const m of read(`deploy/systemd/${name}`).matchAll(/^([A-Za-z]+)=(.*)$/gm)) {
      keys.set(m[1] ?? '', [...(keys.get(m[1] ?? '') ?? []), m[2] ?? '']);
    }
    return keys;
  };

  for (const name of ['fslb-monitor.service', 'fslb-proxy@.service', 'drachtio@.service']) {
    it(`${name} restarts on failure, hardened, with secrets from an environment file`, () => {
      const u = unit(name);
      assert.deepEqual(u.get('Restart'), ['on-failure']);
      assert.deepEqual(u.get('NoNewPrivileges'), ['yes']);
      assert.deepEqual(u.get('ProtectSystem'), ['strict']);
      assert.ok(u.get('DynamicUser')?.[0] === 'yes' || u.has('User'), 'runs as an unprivileged user');
      assert.ok((u.get('EnvironmentFile') ?? []).length > 0);
      assert.deepEqual(u.get('KillSignal'), ['SIGTERM']);
    });
  }

  it('gives fslb-proxy@ longer to stop than the proxy takes, and pairs it with drachtio@', () => {
    const u = unit('fslb-proxy@.service');
    const stop = durationMs(u.get('TimeoutStopSec')?.[0]);
    assert.ok(stop > proxyStopMs, `TimeoutStopSec ${stop} ms <= ${proxyStopMs} ms`);
    assert.ok(
      u.get('EnvironmentFile')?.some((f) => f.includes('%i')),
      'a file per instance',
    );
    assert.ok(u.get('After')?.some((a) => a.includes('drachtio@%i.service')));
    assert.ok(u.get('ExecStart')?.[0]?.endsWith(`/opt/fslb/${binOf('proxy')}`));
  });
});
