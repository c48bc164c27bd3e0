import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  checkDockerfile,
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
      ]),
    );
  });
});
