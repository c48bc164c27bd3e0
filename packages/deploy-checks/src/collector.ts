import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';

/** The one collector config (issue 5 owns it); k8s embeds a copy that must stay identical. */
export const COLLECTOR_SOURCE = 'infra/otel-collector.yaml';
export const COLLECTOR_CONFIGMAP = 'k8s/base/otel-collector/configmap.yaml';
export const COLLECTOR_DEPLOYMENT = 'k8s/base/otel-collector/deployment.yaml';
const ANNOTATION = 'ws-gateway/collector-config-sha256';

const PLACEHOLDER = `# Placeholder: ${COLLECTOR_SOURCE} does not exist yet; scripts/check-deploy --sync embeds it here.
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 0.0.0.0:4317 }
      http: { endpoint: 0.0.0.0:4318 }
exporters:
  debug: {}
extensions:
  health_check: { endpoint: 0.0.0.0:13133 }
service:
  extensions: [health_check]
  pipelines:
    metrics: { receivers: [otlp], exporters: [debug] }
    traces: { receivers: [otlp], exporters: [debug] }
`;

function sourceText(repo: string): { text: string; placeholder: boolean } {
  const path = join(repo, COLLECTOR_SOURCE);
  return existsSync(path) ? { text: readFileSync(path, 'utf8'), placeholder: false } : { text: PLACEHOLDER, placeholder: true };
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

export function collectorConfigMapYaml(config: string): string {
  const doc = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'otel-collector-config', labels: { 'app.kubernetes.io/name': 'otel-collector' } },
    data: { 'config.yaml': config },
  };
  return `# GENERATED from ${COLLECTOR_SOURCE} by \`scripts/check-deploy --sync\`: edit that file, not this one.\n${stringify(doc, { lineWidth: 0 })}`;
}

/** Problems with the embedded copy (empty when it matches the source). */
export function checkCollectorCopy(repo: string): string[] {
  const { text } = sourceText(repo);
  const problems: string[] = [];
  const cmPath = join(repo, COLLECTOR_CONFIGMAP);
  const embedded = existsSync(cmPath) ? (parse(readFileSync(cmPath, 'utf8')) as { data?: Record<string, string> }).data?.['config.yaml'] : undefined;
  if (embedded !== text) problems.push(`${COLLECTOR_CONFIGMAP}: differs from ${COLLECTOR_SOURCE}; run scripts/check-deploy --sync`);
  const deployment = readFileSync(join(repo, COLLECTOR_DEPLOYMENT), 'utf8');
  if (!deployment.includes(`${ANNOTATION}: "${sha256(text)}"`)) {
    problems.push(`${COLLECTOR_DEPLOYMENT}: ${ANNOTATION} is not the sha256 of ${COLLECTOR_SOURCE}; run scripts/check-deploy --sync`);
  }
  return problems;
}

/** Rewrites the embedded copy and its checksum annotation from the source. */
export function syncCollectorCopy(repo: string): void {
  const { text } = sourceText(repo);
  writeFileSync(join(repo, COLLECTOR_CONFIGMAP), collectorConfigMapYaml(text));
  const path = join(repo, COLLECTOR_DEPLOYMENT);
  const deployment = readFileSync(path, 'utf8');
  const updated = deployment.replace(new RegExp(`${ANNOTATION}: "[^"]*"`), `${ANNOTATION}: "${sha256(text)}"`);
  if (updated === deployment && !deployment.includes(ANNOTATION)) throw new Error(`${COLLECTOR_DEPLOYMENT}: no ${ANNOTATION} annotation to update`);
  writeFileSync(path, updated);
}
