import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import ts from 'typescript';
import type { K8sObject } from './kustomize.js';

/**
 * Offline validation of rendered objects against the Kubernetes API schemas, two ways:
 *
 * 1. `kubernetes-models`: validators compiled from the Kubernetes OpenAPI schema (types,
 *    required fields, enums, formats such as int-or-string and quantities). The Kubernetes
 *    schema allows unknown fields, so a typo (`readynessProbe`) passes there; hence
 * 2. `kubernetes-types`: the API's TypeScript types. Each object is type-checked as an object
 *    literal of its kind, and TypeScript's excess-property check reports every unknown field.
 *
 * Both come from the npm registry: nothing is fetched at run time.
 */
export async function validateObjects(objects: readonly K8sObject[]): Promise<string[]> {
  const problems: string[] = [];
  for (const o of objects) problems.push(...(await validateWithModels(o)));
  problems.push(...typeCheckObjects(objects));
  return problems;
}

function label(o: K8sObject): string {
  return `${o.kind}/${o.metadata?.name ?? '?'}`;
}

async function validateWithModels(o: K8sObject): Promise<string[]> {
  if (typeof o.apiVersion !== 'string' || typeof o.kind !== 'string') return [`${label(o)}: no apiVersion/kind`];
  let model: { validate(): void };
  try {
    const mod = (await import(`kubernetes-models/${o.apiVersion}/${o.kind}`)) as Record<
      string,
      new (data: unknown) => { validate(): void }
    >;
    const Model = mod[o.kind] ?? mod.default;
    if (!Model) return [`${label(o)}: no schema for ${o.apiVersion} ${o.kind}`];
    model = new Model(o);
  } catch (err) {
    return [`${label(o)}: no schema for ${o.apiVersion} ${o.kind} (${(err as Error).message.split('\n')[0]})`];
  }
  try {
    model.validate();
    return [];
  } catch (err) {
    return [`${label(o)}: ${(err as Error).message}`];
  }
}

/** apiVersion -> kubernetes-types module. */
function typesModule(apiVersion: string): string {
  if (!apiVersion.includes('/')) return `kubernetes-types/core/${apiVersion}`;
  const [group, version] = apiVersion.split('/') as [string, string];
  return `kubernetes-types/${group.replace(/\.k8s\.io$/, '')}/${version}`;
}

export function typeCheckObjects(objects: readonly K8sObject[]): string[] {
  const require = createRequire(import.meta.url);
  // A virtual file next to this package, so module resolution finds its node_modules.
  const typesDir = dirname(require.resolve('kubernetes-types/package.json'));
  const fileName = join(dirname(typesDir), '..', '__k8s_objects_check__.ts');
  const imports = new Map<string, string>();
  const lines: string[] = [];
  objects.forEach((o, i) => {
    const mod = typesModule(o.apiVersion);
    let alias = imports.get(mod);
    if (!alias) {
      alias = `M${imports.size}`;
      imports.set(mod, alias);
    }
    // One line per object so a diagnostic's line names the object.
    lines.push(`export const o${i}: ${alias}.${o.kind} = ${JSON.stringify(o)};`);
  });
  const header = [...imports].map(([mod, alias]) => `import type * as ${alias} from '${mod}';`);
  const source = [...header, ...lines].join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, onError, shouldCreate) =>
    name === fileName ? ts.createSourceFile(name, source, lang) : getSourceFile(name, lang, onError, shouldCreate);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === fileName || fileExists(name);
  const program = ts.createProgram([fileName], options, host);
  const problems: string[] = [];
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (d.file?.fileName !== fileName || d.start === undefined) {
      problems.push(`type check: ${text}`);
      continue;
    }
    const line = d.file.getLineAndCharacterOfPosition(d.start).line - header.length;
    const o = objects[line];
    problems.push(`${o ? label(o) : `line ${line}`}: ${text.split('\n').pop() ?? text}`);
  }
  return problems;
}
