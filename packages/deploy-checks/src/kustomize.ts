import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

/** A Kubernetes object as rendered: plain JSON. */
export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
};

export type Renderer = 'kubectl' | 'builtin';

/** Renders a kustomization folder: `kubectl kustomize` where kubectl exists, else the built-in renderer. */
export function renderKustomization(dir: string, renderer: Renderer = kubectlAvailable() ? 'kubectl' : 'builtin'): K8sObject[] {
  return renderer === 'kubectl' ? renderWithKubectl(dir) : renderBuiltin(dir);
}

export function kubectlAvailable(): boolean {
  const probe = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
  return probe.status === 0;
}

export function renderWithKubectl(dir: string): K8sObject[] {
  const out = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', maxBuffer: 32 * 1024 * 1024 });
  if (out.status !== 0) throw new Error(`kubectl kustomize ${dir} failed: ${out.stderr.trim()}`);
  return parseYamlObjects(out.stdout, `kubectl kustomize ${dir}`);
}

export function parseYamlObjects(text: string, source: string): K8sObject[] {
  const objects: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) continue;
    objects.push(value as K8sObject);
  }
  return objects;
}

// ---------------------------------------------------------------------------------------------
// The built-in renderer: the subset of kustomize this repository's k8s/ uses, for machines
// without kubectl (no kustomize is published on npm). The test suite renders every overlay with
// both where kubectl exists and requires equal output, so the subset cannot drift silently.
// Supported: resources (files and folders), namespace, labels (includeSelectors: false), images,
// patches (JSON 6902 with a kind/name target). No generators: their name hash is kustomize's own,
// so the repository commits plain ConfigMaps instead.
// ---------------------------------------------------------------------------------------------

interface Kustomization {
  resources?: string[];
  namespace?: string;
  labels?: Array<{ pairs: Record<string, string>; includeSelectors?: boolean; includeTemplates?: boolean }>;
  images?: Array<{ name: string; newName?: string; newTag?: string; digest?: string }>;
  patches?: Array<{ path: string; target: { kind: string; name: string } }>;
  [key: string]: unknown;
}

const SUPPORTED = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'labels', 'images', 'patches']);

/** Kinds that live outside namespaces (the ones this repository could plausibly use). */
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'PersistentVolume',
  'StorageClass',
  'PriorityClass',
  'IngressClass',
]);

export function renderBuiltin(dir: string): K8sObject[] {
  const root = resolve(dir);
  const file = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'].map((f) => join(root, f)).find((f) => existsSync(f));
  if (!file) throw new Error(`${root}: no kustomization.yaml`);
  const k = parseYamlObjects(readFileSync(file, 'utf8'), file)[0] as unknown as Kustomization;
  for (const key of Object.keys(k)) {
    if (!SUPPORTED.has(key)) throw new Error(`${file}: the built-in renderer does not support '${key}' (install kubectl)`);
  }

  let objects: K8sObject[] = [];
  for (const entry of k.resources ?? []) {
    const path = join(root, entry);
    if (statSync(path).isDirectory()) objects.push(...renderBuiltin(path));
    else objects.push(...parseYamlObjects(readFileSync(path, 'utf8'), path));
  }

  for (const patch of k.patches ?? []) {
    const ops = parseYamlObjects(readFileSync(join(root, patch.path), 'utf8'), patch.path)[0] as unknown as JsonPatchOp[];
    const targets = objects.filter((o) => o.kind === patch.target.kind && o.metadata.name === patch.target.name);
    if (targets.length === 0) throw new Error(`${file}: patch ${patch.path} matches nothing`);
    for (const target of targets) applyJsonPatch(target, ops, patch.path);
  }

  for (const image of k.images ?? []) {
    for (const o of objects) {
      for (const c of podContainers(o)) {
        const { name, tag } = splitImage(String(c.image ?? ''));
        if (name !== image.name) continue;
        const newName = image.newName ?? name;
        c.image = image.digest ? `${newName}@${image.digest}` : `${newName}${image.newTag ? `:${image.newTag}` : tag ? `:${tag}` : ''}`;
      }
    }
  }

  for (const set of k.labels ?? []) {
    if (set.includeSelectors || set.includeTemplates) {
      throw new Error(`${file}: the built-in renderer supports labels with includeSelectors: false only`);
    }
    for (const o of objects) o.metadata.labels = { ...(o.metadata.labels ?? {}), ...set.pairs };
  }

  if (k.namespace) {
    for (const o of objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  }
  return objects;
}

function podSpec(o: K8sObject): Record<string, unknown> | undefined {
  const spec = o.spec as { template?: { spec?: Record<string, unknown> } } | undefined;
  return spec?.template?.spec;
}

function podContainers(o: K8sObject): Array<Record<string, unknown>> {
  const spec = podSpec(o);
  if (!spec) return [];
  return [...((spec.containers as Array<Record<string, unknown>>) ?? []), ...((spec.initContainers as Array<Record<string, unknown>>) ?? [])];
}

function splitImage(image: string): { name: string; tag: string | undefined } {
  const at = image.indexOf('@');
  const base = at >= 0 ? image.slice(0, at) : image;
  const colon = base.lastIndexOf(':');
  if (colon > base.lastIndexOf('/')) return { name: base.slice(0, colon), tag: base.slice(colon + 1) };
  return { name: base, tag: undefined };
}

interface JsonPatchOp {
  op: 'add' | 'replace' | 'remove';
  path: string;
  value?: unknown;
}

/** RFC 6902 add / replace / remove (what the overlays use). */
export function applyJsonPatch(target: unknown, ops: JsonPatchOp[], source: string): void {
  for (const op of ops) {
    const parts = op.path
      .split('/')
      .slice(1)
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop();
    if (last === undefined) throw new Error(`${source}: empty patch path`);
    let node = target as Record<string, unknown> | unknown[];
    for (const part of parts) {
      const next = Array.isArray(node) ? node[Number(part)] : node[part];
      if (typeof next !== 'object' || next === null) throw new Error(`${source}: ${op.path}: ${part} does not exist`);
      node = next as Record<string, unknown> | unknown[];
    }
    if (Array.isArray(node)) {
      const index = last === '-' ? node.length : Number(last);
      if (op.op === 'add') node.splice(index, 0, op.value);
      else if (op.op === 'replace') {
        if (index >= node.length) throw new Error(`${source}: ${op.path} does not exist`);
        node[index] = op.value;
      } else node.splice(index, 1);
    } else {
      if (op.op !== 'add' && !(last in node)) throw new Error(`${source}: ${op.path} does not exist`);
      if (op.op === 'remove') delete node[last];
      else node[last] = op.value;
    }
  }
}
