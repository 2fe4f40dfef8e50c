// deploy/kubernetes checked against the Kubernetes API schemas (kubernetes-models) and against
// fslb itself: the configuration in the ConfigMap loads, each container gets every variable it
// names from the Secret, the probes hit /healthz and /readyz on the ports fslb serves, the proxy
// pairs run on the host's network, their grace period outlasts the proxy's shutdown, and the
// disruption budgets select the pods they guard.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { ConfigMap, Namespace } from 'kubernetes-models/v1';
import { DaemonSet, Deployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { parseConfigText } from '@fslb/shared';

const dir = new URL('../../deploy/kubernetes/', import.meta.url).pathname;
type Obj = Record<string, unknown>;
interface Manifest {
  file: string;
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Obj;
  data?: Record<string, string>;
}

/** Every document of every YAML file but the kustomization, with its file. */
const manifests: Manifest[] = readdirSync(dir)
  .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
  .flatMap((file) =>
    parseAllDocuments(readFileSync(dir + file, 'utf8')).map((d) => {
      assert.deepEqual(d.errors, [], `${file} parses`);
      return { file, ...(d.toJS() as Omit<Manifest, 'file'>) };
    }),
  );
const kustomization = parseYaml(readFileSync(`${dir}kustomization.yaml`, 'utf8')) as {
  namespace: string;
  resources: string[];
  images: { name: string; newName: string; newTag: string }[];
};

const models = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'apps/v1/Deployment': Deployment,
  'apps/v1/DaemonSet': DaemonSet,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
} as const;

function find(kind: string, name: string): Manifest {
  const m = manifests.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(m, `${kind} ${name} is in deploy/kubernetes`);
  return m;
}

interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  ports?: { name: string; containerPort: number; protocol: string }[];
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  hostNetwork?: boolean;
  dnsPolicy?: string;
  terminationGracePeriodSeconds?: number;
  containers: Container[];
  volumes?: { name: string; configMap?: { name: string } }[];
}
const podOf = (m: Manifest): { labels: Record<string, string>; spec: PodSpec } => {
  const t = (m.spec as { template: { metadata: { labels: Record<string, string> }; spec: PodSpec } })
    .template;
  return { labels: t.metadata.labels, spec: t.spec };
};
const container = (m: Manifest, name: string): Container => {
  const c = podOf(m).spec.containers.find((x) => x.name === name);
  assert.ok(c, `${m.metadata.name} has a container ${name}`);
  return c;
};
const configText = (): string => find('ConfigMap', 'fslb-config').data?.['fslb.yaml'] ?? '';

/** The environment a container gets, secrets as placeholders. */
function envOf(c: Container): Record<string, string> {
  return Object.fromEntries(
    (c.env ?? []).map((e) => [e.name, e.value ?? (e.valueFrom?.secretKeyRef ? 'from-secret' : 'from-field')]),
  );
}

describe('Kubernetes manifests (deploy/kubernetes)', () => {
  it('are valid objects of the Kubernetes API, each in the fslb namespace, listed by the kustomization', () => {
    assert.ok(manifests.length >= 6);
    for (const m of manifests) {
      const Model = models[`${m.apiVersion}/${m.kind}` as keyof typeof models];
      assert.ok(Model, `${m.file}: ${m.apiVersion} ${m.kind} is one the test knows`);
      const { file: _file, ...body } = m;
      assert.doesNotThrow(
        () => new Model(body as never).validate(),
        `${m.file}: ${m.kind} ${m.metadata.name}`,
      );
      if (m.kind !== 'Namespace')
        assert.equal(m.metadata.namespace, kustomization.namespace, m.metadata.name);
    }
    const files = new Set(manifests.map((m) => m.file));
    assert.deepEqual([...kustomization.resources].sort(), [...files].sort());
  });

  it('the validation catches a broken manifest', () => {
    const d = find('DaemonSet', 'fslb-proxy');
    const broken = structuredClone(d) as Omit<Manifest, 'file'> & { file?: string };
    delete broken.file;
    const pod = podOf(broken as Manifest).spec;
    (pod.containers[0] as unknown as Obj).ports = [{ containerPort: 'sip' }];
    assert.throws(() => new DaemonSet(broken as never).validate(), /containerPort must be integer/);
  });

  it('the configuration in the ConfigMap loads for each process with the environment its pod gives it', () => {
    for (const [kind, name, use] of [
      ['Deployment', 'fslb-monitor', 'monitor'],
      ['DaemonSet', 'fslb-proxy', 'proxy'],
    ] as const) {
      const m = find(kind, name);
      const c = container(m, name);
      const env = envOf(c);
      assert.equal(env.FSLB_CONFIG, '/etc/fslb/fslb.yaml');
      const mount = c.volumeMounts?.find((v) => v.mountPath === '/etc/fslb');
      const volume = podOf(m).spec.volumes?.find((v) => v.name === mount?.name);
      assert.equal(volume?.configMap?.name, 'fslb-config', `${name} mounts fslb-config on /etc/fslb`);
      assert.doesNotThrow(() => parseConfigText(configText(), env, name, use), name);
      // Every secret the configuration names comes from the Secret, never from a plain value.
      for (const v of configText().matchAll(/(?:passwordEnv|secretEnv): (\w+)/g)) {
        const e = c.env?.find((x) => x.name === v[1]);
        if (e === undefined) continue; // a secret this process does not use (checked by the load above)
        assert.equal(e.valueFrom?.secretKeyRef?.name, 'fslb-secrets', `${name}: ${v[1]}`);
      }
    }
    assert.doesNotMatch(configText(), /\b(password|secret): /, 'no secret in the ConfigMap');
  });

  it('monitors: a Deployment of two, probed on /healthz and /readyz, guarded by a budget', () => {
    const m = find('Deployment', 'fslb-monitor');
    assert.ok(
      (m.spec as { replicas?: number }).replicas !== undefined &&
        (m.spec as { replicas: number }).replicas >= 2,
    );
    const cfg = parseConfigText(
      configText(),
      { FSLB_ESL_PASSWORD: 'x', FSLB_REDIS_PASSWORD: 'x' },
      'k8s',
      'monitor',
    );
    const c = container(m, 'fslb-monitor');
    assertProbes(c, cfg.monitor.http.port);
    assert.ok(envOf(c).FSLB_MONITOR_ID, 'each monitor names itself');
    assertBudget('fslb-monitor', podOf(m).labels);
  });

  it('proxies: drachtio-server + fslb-proxy pods on the host network, outliving the proxy shutdown', () => {
    const d = find('DaemonSet', 'fslb-proxy');
    const { spec } = podOf(d);
    assert.equal(spec.hostNetwork, true);
    assert.equal(spec.dnsPolicy, 'ClusterFirstWithHostNet', 'cluster DNS (Redis) from the host network');
    const cfg = parseConfigText(
      configText(),
      { FSLB_DRACHTIO_SECRET: 'x', FSLB_REDIS_PASSWORD: 'x' },
      'k8s',
      'proxy',
    );
    const proxy = container(d, 'fslb-proxy');
    const drachtio = container(d, 'drachtio');
    assertProbes(proxy, cfg.proxy.http.port);
    // The proxy reaches drachtio-server beside it on loopback, with the same secret.
    assert.equal(cfg.proxy.drachtio.host, '127.0.0.1');
    const xml = find('ConfigMap', 'drachtio-config').data?.['drachtio.conf.xml'] ?? '';
    assert.match(xml, new RegExp(`<admin port="${cfg.proxy.drachtio.port}">127\\.0\\.0\\.1</admin>`));
    const secretKey = (c: Container, v: string) =>
      c.env?.find((e) => e.name === v)?.valueFrom?.secretKeyRef?.key;
    assert.equal(secretKey(drachtio, 'DRACHTIO_SECRET'), secretKey(proxy, 'FSLB_DRACHTIO_SECRET'));
    // SIP on the host's address.
    assert.ok(drachtio.args?.includes('sip:$(HOST_IP):5060;transport=udp,tcp'));
    assert.ok(drachtio.env?.some((e) => e.name === 'HOST_IP'));
    // SIGTERM: the grace period outlasts the proxy's shutdown, and drachtio-server outlasts it too.
    const graceMs = (spec.terminationGracePeriodSeconds ?? 30) * 1000;
    assert.ok(graceMs > cfg.proxy.shutdownTimeoutMs, `${graceMs} ms > ${cfg.proxy.shutdownTimeoutMs} ms`);
    const sleep = Number(drachtio.lifecycle?.preStop?.exec?.command.at(-1)) * 1000;
    assert.ok(
      sleep > cfg.proxy.shutdownTimeoutMs && sleep < graceMs,
      `drachtio's preStop sleeps ${sleep} ms`,
    );
    assertBudget('fslb-proxy', podOf(d).labels);
  });

  it("uses pinned images, fslb's at the version of its packages", () => {
    const version = (
      JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
    ).version;
    for (const m of manifests.filter((x) => x.kind === 'Deployment' || x.kind === 'DaemonSet')) {
      for (const c of podOf(m).spec.containers) {
        const tag = /:([^:/]+)$/.exec(c.image)?.[1];
        assert.ok(tag !== undefined && tag !== 'latest', `${c.name}: ${c.image} is pinned`);
        if (c.image.startsWith('fslb-')) assert.equal(tag, version, c.image);
      }
    }
    for (const i of kustomization.images) assert.equal(i.newTag, version, i.name);
  });
});

function assertProbes(c: Container, port: number): void {
  const http = c.ports?.find((p) => p.name === 'http');
  assert.equal(http?.containerPort, port, `${c.name}: the http port is the one fslb serves`);
  assert.deepEqual(c.livenessProbe?.httpGet, { path: '/healthz', port: 'http' });
  assert.deepEqual(c.readinessProbe?.httpGet, { path: '/readyz', port: 'http' });
}

function assertBudget(name: string, podLabels: Record<string, string>): void {
  const pdb = find('PodDisruptionBudget', name);
  const match = (pdb.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;
  for (const [k, v] of Object.entries(match))
    assert.equal(podLabels[k], v, `${name}'s budget selects its pods`);
}
