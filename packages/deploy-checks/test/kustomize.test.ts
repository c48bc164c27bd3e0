import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kubectlAvailable, renderBuiltin, renderWithKubectl, type K8sObject } from '../src/kustomize.js';

const repo = fileURLToPath(new URL('../../..', import.meta.url));
const byKey = (objects: K8sObject[]) =>
  Object.fromEntries(objects.map((o) => [`${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`, o]));

describe('the built-in kustomize renderer', () => {
  for (const overlay of ['dev', 'prod']) {
    it.runIf(kubectlAvailable())(`renders k8s/overlays/${overlay} exactly as kubectl kustomize does`, () => {
      const dir = join(repo, 'k8s', 'overlays', overlay);
      expect(byKey(renderBuiltin(dir))).toEqual(byKey(renderWithKubectl(dir)));
    });
  }
});
