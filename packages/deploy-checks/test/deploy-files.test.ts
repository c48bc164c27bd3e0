import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  checkCompose,
  checkDockerfile,
  checkHaproxyConfig,
  checkOverlay,
  renderKustomization,
  validateObjects,
  type K8sObject,
} from '../src/index.js';

const repo = fileURLToPath(new URL('../../..', import.meta.url));
const clone = <T>(v: T): T => structuredClone(v);

describe('what ships to operators', () => {
  // The whole pipeline as CI runs it: Dockerfile, compose + HAProxy, the Collector copy, both
  // overlays rendered (kubectl, or the built-in renderer where it is missing; kustomize.test.ts
  // holds the two to the same output) and validated against the schemas and the rules.
  it('scripts/check-deploy (the built CLI) finds no problem', () => {
    const run = spawnSync(process.execPath, [join(repo, 'packages', 'deploy-checks', 'dist', 'cli.js')], { cwd: repo, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^check-deploy: ok/);
  }, 90_000);
});

describe('the checks catch what they are for', () => {
  const prod = renderKustomization(join(repo, 'k8s', 'overlays', 'prod'));
  const gateway = (objects: K8sObject[]) => objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'ws-gateway') as any;

  it('an unknown field (a typo) and a wrongly typed value fail schema validation', { timeout: 60_000 }, async () => {
    const typo = clone(prod);
    const container = gateway(typo).spec.template.spec.containers[0];
    container.readynessProbe = container.readinessProbe;
    expect((await validateObjects(typo)).join('\n')).toContain('readynessProbe');

    const wrongType = clone(prod);
    gateway(wrongType).spec.template.spec.containers[0].ports[0].containerPort = '8000';
    expect((await validateObjects(wrongType)).join('\n')).toMatch(/containerPort must be integer/);
  });

  it('a grace period shorter than preStop + drain, a missing probe or a writable root filesystem are reported', () => {
    const objects = clone(prod);
    const pod = gateway(objects).spec.template.spec;
    pod.terminationGracePeriodSeconds = 12;
    delete pod.containers[0].readinessProbe;
    pod.containers[0].securityContext.readOnlyRootFilesystem = false;
    const problems = checkOverlay('prod', objects);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringContaining('terminationGracePeriodSeconds 12'),
        expect.stringContaining('readiness probe'),
        expect.stringContaining('read-only'),
      ]),
    );
  });

  it('a contract variable not wired to the ConfigMap/Secret, or a credential in the ConfigMap, is reported', () => {
    const objects = clone(prod);
    const container = gateway(objects).spec.template.spec.containers[0];
    container.env = container.env.filter((e: { name: string }) => e.name !== 'WEBSOCKET_LEASE_SECONDS');
    const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'ws-gateway-config') as any;
    cm.data.REDIS_URL = 'redis://oops';
    const problems = checkOverlay('prod', objects);
    expect(problems).toEqual(
      expect.arrayContaining([expect.stringContaining('WEBSOCKET_LEASE_SECONDS'), expect.stringContaining('REDIS_URL is a credential')]),
    );
  });

  it('more than one Collector pod (each would export part of the series the HPA reads) is reported', () => {
    const objects = clone(prod);
    (objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'otel-collector') as any).spec.replicas = 2;
    expect(checkOverlay('prod', objects)).toEqual([expect.stringContaining('otel-collector runs 2 pods')]);
  });

  it('a configuration the gateway would refuse (production with CORS *) is reported', () => {
    const objects = clone(prod);
    const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'ws-gateway-config') as any;
    cm.data.CORS_ORIGINS = '*';
    expect(checkOverlay('prod', objects)).toEqual(expect.arrayContaining([expect.stringContaining('CORS_ORIGINS')]));
  });

  it('a root, single-stage, Alpine image without a health check is reported', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wsgw-dockerfile-'));
    mkdirSync(join(dir, 'packages'));
    writeFileSync(join(dir, 'package.json'), '{}');
    writeFileSync(join(dir, '.dockerignore'), readFileSync(join(repo, '.dockerignore')));
    writeFileSync(
      join(dir, 'Dockerfile'),
      ['FROM node:20-alpine', 'WORKDIR /app', 'COPY package.json packages ./', 'USER root', 'CMD ["node", "packages/gateway/dist/main.js"]', ''].join('\n'),
    );
    const problems = checkDockerfile(dir);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringContaining('not multi-stage'),
        expect.stringContaining('musl'),
        expect.stringContaining('USER is root'),
        expect.stringContaining('HEALTHCHECK'),
        expect.stringContaining('NODE_OPTIONS'),
      ]),
    );
  });

  it('an image whose NODE_OPTIONS differs from the gateway\'s shipped V8 options is reported', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wsgw-dockerfile-'));
    cpSync(join(repo, '.dockerignore'), join(dir, '.dockerignore'));
    for (const f of ['package.json', 'package-lock.json', '.npmrc', 'turbo.json', 'tsconfig.base.json', 'tsconfig.json']) writeFileSync(join(dir, f), '');
    mkdirSync(join(dir, 'packages'));
    const shipped = readFileSync(join(repo, 'Dockerfile'), 'utf8');
    expect(checkDockerfile(repo)).toEqual([]);
    writeFileSync(join(dir, 'Dockerfile'), shipped.replace(/NODE_OPTIONS=\S+/, 'NODE_OPTIONS=--max-old-space-size=400'));
    expect(checkDockerfile(dir)).toEqual([expect.stringContaining('NODE_OPTIONS')]);
    writeFileSync(join(dir, 'Dockerfile'), shipped.replace(/^\s*NODE_OPTIONS=\S+ \\\n/m, ''));
    expect(checkDockerfile(dir)).toEqual([expect.stringContaining('NODE_OPTIONS')]);
  });
});

describe('the client address behind a proxy (WEBSOCKET_TRUSTED_PROXIES)', () => {
  const prod = renderKustomization(join(repo, 'k8s', 'overlays', 'prod'));
  const configMap = (objects: K8sObject[]) => objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'ws-gateway-config') as any;
  const gateway = (objects: K8sObject[]) => objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'ws-gateway') as any;
  const netpol = (objects: K8sObject[]) => objects.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'ws-gateway') as any;

  /** A copy of infra/ (and the Dockerfile the compose file builds) with compose.yaml or haproxy.cfg edited. */
  const infraWith = (edit: { compose?: (text: string) => string; haproxy?: (text: string) => string }) => {
    const dir = mkdtempSync(join(tmpdir(), 'wsgw-infra-'));
    cpSync(join(repo, 'infra'), join(dir, 'infra'), { recursive: true });
    cpSync(join(repo, 'Dockerfile'), join(dir, 'Dockerfile'));
    for (const [file, fn] of [['compose.yaml', edit.compose], ['haproxy/haproxy.cfg', edit.haproxy]] as const) {
      if (fn) writeFileSync(join(dir, 'infra', file), fn(readFileSync(join(dir, 'infra', file), 'utf8')));
    }
    return dir;
  };

  it('k8s: the variable unwired, empty, or trusting addresses outside the cluster is reported', () => {
    expect(checkOverlay('prod', prod)).toEqual([]);
    const unwired = clone(prod);
    const container = gateway(unwired).spec.template.spec.containers[0];
    container.env = container.env.filter((e: { name: string }) => e.name !== 'WEBSOCKET_TRUSTED_PROXIES');
    expect(checkOverlay('prod', unwired)).toEqual([expect.stringContaining('WEBSOCKET_TRUSTED_PROXIES is not taken from the ConfigMap')]);

    const empty = clone(prod);
    delete configMap(empty).data.WEBSOCKET_TRUSTED_PROXIES;
    expect(checkOverlay('prod', empty)).toEqual([expect.stringContaining('WEBSOCKET_TRUSTED_PROXIES is empty behind a proxy')]);

    for (const wide of ['0.0.0.0/0', '10.244.0.0/16,203.0.113.0/24', '::/0']) {
      const objects = clone(prod);
      configMap(objects).data.WEBSOCKET_TRUSTED_PROXIES = wide;
      expect(checkOverlay('prod', objects)).toEqual([expect.stringContaining('reaches outside private address space')]);
    }
  });

  it('k8s: a NetworkPolicy that lets anyone reach the pods that trust the pod CIDR is reported', () => {
    for (const from of [undefined, [], [{ ipBlock: { cidr: '0.0.0.0/0' } }], [{ namespaceSelector: {} }]]) {
      const objects = clone(prod);
      netpol(objects).spec.ingress[0].from = from;
      expect(checkOverlay('prod', objects)).toEqual([expect.stringContaining('lets more than the ingress controller reach the gateway')]);
    }
  });

  it('k8s: a credential in a ConfigMap URL is reported', () => {
    const objects = clone(prod);
    configMap(objects).data.SESSION_INTROSPECTION_URL = 'https://gateway:hunter2@auth.example.com/introspect';
    expect(checkOverlay('prod', objects)).toEqual(
      expect.arrayContaining([expect.stringContaining('SESSION_INTROSPECTION_URL in the ConfigMap carries credentials')]),
    );
  });

  it('compose: replicas that do not trust HAProxy, or trust more than HAProxy, are reported', () => {
    expect(checkCompose(repo)).toEqual([]);
    const dropped = infraWith({ compose: (t) => t.replace(/^\s*WEBSOCKET_TRUSTED_PROXIES:.*\n/m, '') });
    expect(checkCompose(dropped)).toEqual(
      expect.arrayContaining([expect.stringContaining('gateway-1: WEBSOCKET_TRUSTED_PROXIES is empty behind a proxy')]),
    );
    const network = infraWith({ compose: (t) => t.replace(/(WEBSOCKET_TRUSTED_PROXIES:) \S+/, '$1 10.213.47.0/24') });
    expect(checkCompose(network)).toEqual(expect.arrayContaining([expect.stringContaining('more than haproxy\'s address')]));
    const floating = infraWith({ compose: (t) => t.replace(/ipv4_address: 10\.213\.47\.10/, 'ipv4_address: 10.213.47.200') });
    expect(checkCompose(floating)).toEqual(
      expect.arrayContaining([expect.stringContaining('inside the range Docker hands out'), expect.stringContaining('does not cover haproxy')]),
    );
  });

  it('HAProxy without `option forwardfor`, or with `if-none`, is reported', () => {
    expect(checkHaproxyConfig(repo)).toEqual([]);
    const none = infraWith({ haproxy: (t) => t.replace(/^\s*option forwardfor\s*$/m, '') });
    expect(checkHaproxyConfig(none)).toEqual([expect.stringContaining("no 'option forwardfor'")]);
    const ifNone = infraWith({ haproxy: (t) => t.replace(/^(\s*option forwardfor)\s*$/m, '$1 if-none') });
    expect(checkHaproxyConfig(ifNone)).toEqual([expect.stringContaining('if-none')]);
  });

  it('an HAProxy access log with the query string (where browsers send the session token) is reported', () => {
    const httplog = infraWith({ haproxy: (t) => t.replace(/^\s*log-format .*$/m, '    option httplog') });
    expect(checkHaproxyConfig(httplog)).toEqual([expect.stringContaining('query string')]);
    for (const field of ['%r', '%{+Q}r', '%HU', '%HQ']) {
      const logged = infraWith({ haproxy: (t) => t.replace(/%HM %HP %HV/, field) });
      expect(checkHaproxyConfig(logged), field).toEqual([expect.stringContaining('query string')]);
    }
  });
});
