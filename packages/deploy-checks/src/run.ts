import { join } from 'node:path';
import { checkCollectorCopy } from './collector.js';
import { checkCompose, checkHaproxyConfig } from './compose.js';
import { checkDockerfile } from './dockerfile.js';
import { kubectlAvailable, renderKustomization, type K8sObject, type Renderer } from './kustomize.js';
import { checkOverlay } from './policy.js';
import { validateObjects } from './schemas.js';

export const OVERLAYS = ['dev', 'prod'] as const;

export interface DeployReport {
  renderer: Renderer;
  rendered: Record<(typeof OVERLAYS)[number], K8sObject[]>;
  problems: string[];
}

/** Everything `scripts/check-deploy` checks; `problems` is empty when all is well. */
export async function checkDeploy(repo: string, renderer: Renderer = kubectlAvailable() ? 'kubectl' : 'builtin'): Promise<DeployReport> {
  const problems: string[] = [];
  const attempt = async (what: string, fn: () => string[] | Promise<string[]>) => {
    try {
      problems.push(...(await fn()));
    } catch (err) {
      problems.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  await attempt('Dockerfile', () => checkDockerfile(repo));
  await attempt('haproxy', () => checkHaproxyConfig(repo));
  await attempt('compose', () => checkCompose(repo));
  await attempt('collector', () => checkCollectorCopy(repo));
  const rendered = { dev: [] as K8sObject[], prod: [] as K8sObject[] };
  for (const overlay of OVERLAYS) {
    await attempt(`k8s/overlays/${overlay}`, async () => {
      rendered[overlay] = renderKustomization(join(repo, 'k8s', 'overlays', overlay), renderer);
      const schema = (await validateObjects(rendered[overlay])).map((p) => `${overlay}: schema: ${p}`);
      return [...schema, ...checkOverlay(overlay, rendered[overlay])];
    });
  }
  return { renderer, rendered, problems };
}
