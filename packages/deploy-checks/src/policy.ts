import { loadConfig } from '@wsgw/config';
import { MetricNames } from '@wsgw/telemetry';
import { INTERNAL_RANGES, parseRange, rangeWithin, trustedProxyProblems } from './addresses.js';
import type { K8sObject } from './kustomize.js';

/** CONTRACT §2, in its order. OTEL_* are checked separately (the SDK's own variables). */
export const CONTRACT_VARIABLES = [
  'ENVIRONMENT',
  'HOST',
  'PORT',
  'CORS_ORIGINS',
  'API_CORS_ORIGINS',
  'WEBSOCKET_PATHS',
  'WEBSOCKET_MAX_CONNECTIONS_PER_USER',
  'WEBSOCKET_MAX_GLOBAL_CONNECTIONS',
  'WEBSOCKET_MAX_MESSAGES_PER_SECOND',
  'WEBSOCKET_MAX_MESSAGES_PER_MINUTE',
  'WEBSOCKET_MAX_PAYLOAD_BYTES',
  'WEBSOCKET_IDLE_TIMEOUT_SECONDS',
  'WEBSOCKET_LEASE_SECONDS',
  'WEBSOCKET_LIMITS_FAILURE_MODE',
  'WEBSOCKET_BUILTIN_AGENTS',
  'SHUTDOWN_DRAIN_SECONDS',
  'AGENT_REPLY_TIMEOUT_SECONDS',
  'REDIS_URL',
  'REDIS_KEY_PREFIX',
  'SESSION_VALIDATOR',
  'SESSION_JWT_SECRET',
  'SESSION_JWKS_URL',
  'SESSION_JWT_ISSUER',
  'SESSION_JWT_AUDIENCE',
  'SESSION_INTROSPECTION_URL',
  'LOG_LEVEL',
] as const;

/**
 * Variables outside CONTRACT §2 that the manifests must still wire from the ConfigMap: behind the
 * Ingress, WEBSOCKET_TRUSTED_PROXIES decides whether clients can be told apart at all.
 */
export const WIRED_VARIABLES = [...CONTRACT_VARIABLES, 'WEBSOCKET_TRUSTED_PROXIES'] as const;

/** Variables that carry credentials: only ever from a Secret. */
export const SECRET_VARIABLES = ['REDIS_URL', 'SESSION_JWT_SECRET'] as const;

const GATEWAY = 'ws-gateway';
const CONFIG_MAP = 'ws-gateway-config';
const SECRET = 'ws-gateway-secrets';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function find(objects: readonly K8sObject[], kind: string, name: string): Json | undefined {
  return objects.find((o) => o.kind === kind && o.metadata.name === name) as Json | undefined;
}

function matches(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** Seconds in a preStop `sleep N` (exec or the native sleep action); 0 when there is none. */
function preStopSeconds(container: Json): number {
  const preStop = container.lifecycle?.preStop;
  if (!preStop) return 0;
  if (preStop.sleep?.seconds) return Number(preStop.sleep.seconds);
  const cmd: string[] = preStop.exec?.command ?? [];
  const i = cmd.indexOf('sleep');
  return i >= 0 ? Number(cmd[i + 1] ?? 0) : 0;
}

/**
 * What the issue asks of the manifests, checked on the rendered overlay (so an overlay patch
 * that breaks a rule is caught, not just the base).
 */
export function checkOverlay(overlay: 'dev' | 'prod', objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  const need = (kind: string, name: string) => {
    const o = find(objects, kind, name);
    if (!o) problems.push(`${overlay}: no ${kind}/${name}`);
    return o;
  };
  const deployment = need('Deployment', GATEWAY);
  const service = need('Service', GATEWAY);
  const hpa = need('HorizontalPodAutoscaler', GATEWAY);
  const pdb = need('PodDisruptionBudget', GATEWAY);
  const netpol = need('NetworkPolicy', GATEWAY);
  const ingress = need('Ingress', GATEWAY);
  const configMap = need('ConfigMap', CONFIG_MAP);
  const collector = need('Deployment', 'otel-collector');
  // Its Prometheus exporter holds what one pod received: more pods split and duplicate the series
  // the HPA reads (k8s/base/otel-collector/deployment.yaml).
  if (collector && Number(collector.spec?.replicas ?? 1) !== 1) {
    problems.push(`${overlay}: the otel-collector runs ${collector.spec.replicas} pods; each would export part of the gateways' metrics under the same labels`);
  }
  need('Service', 'otel-collector');
  need('ConfigMap', 'otel-collector-config');
  if (!deployment || !configMap) return problems;

  const podLabels: Record<string, string> = deployment.spec?.template?.metadata?.labels ?? {};
  const pod = deployment.spec?.template?.spec ?? {};
  const container: Json = (pod.containers ?? []).find((c: Json) => c.name === 'gateway') ?? {};
  const data: Record<string, string> = configMap.data ?? {};

  // Probes, shutdown, resources, security.
  if (container.readinessProbe?.httpGet?.path !== '/readyz') problems.push(`${overlay}: readiness probe is not GET /readyz`);
  if (container.livenessProbe?.httpGet?.path !== '/healthz') problems.push(`${overlay}: liveness probe is not GET /healthz`);
  const drain = Number(data.SHUTDOWN_DRAIN_SECONDS || 10);
  const preStop = preStopSeconds(container);
  if (preStop <= 0) problems.push(`${overlay}: the gateway container has no preStop pause`);
  const grace = Number(pod.terminationGracePeriodSeconds ?? 30);
  if (!(grace > drain + preStop)) {
    problems.push(`${overlay}: terminationGracePeriodSeconds ${grace} must exceed preStop ${preStop} s + SHUTDOWN_DRAIN_SECONDS ${drain} s`);
  }
  for (const kind of ['requests', 'limits']) {
    for (const resource of ['cpu', 'memory']) {
      if (!container.resources?.[kind]?.[resource]) problems.push(`${overlay}: no ${kind}.${resource} on the gateway container`);
    }
  }
  const sc = container.securityContext ?? {};
  if (!(pod.securityContext?.runAsNonRoot || sc.runAsNonRoot)) problems.push(`${overlay}: runAsNonRoot is not set`);
  if (sc.readOnlyRootFilesystem !== true) problems.push(`${overlay}: the root filesystem is not read-only`);
  if (sc.allowPrivilegeEscalation !== false) problems.push(`${overlay}: allowPrivilegeEscalation is not false`);
  if (!(sc.capabilities?.drop ?? []).includes('ALL')) problems.push(`${overlay}: capabilities are not dropped`);
  const spread: Json[] = pod.topologySpreadConstraints ?? [];
  if (spread.length === 0 || !spread.every((t) => matches(t.labelSelector?.matchLabels, podLabels))) {
    problems.push(`${overlay}: no topology spread constraint selecting the gateway pods`);
  }
  const port = Number(data.PORT || 8000);
  if (!(container.ports ?? []).some((p: Json) => p.containerPort === port && p.name === 'http')) {
    problems.push(`${overlay}: no container port named http on PORT ${port}`);
  }

  // Every CONTRACT §2 variable is referenced, secrets only from the Secret.
  const env: Json[] = container.env ?? [];
  for (const name of WIRED_VARIABLES) {
    const entry = env.find((e) => e.name === name);
    const secret = (SECRET_VARIABLES as readonly string[]).includes(name);
    const ref = secret ? entry?.valueFrom?.secretKeyRef : entry?.valueFrom?.configMapKeyRef;
    if (!ref || ref.name !== (secret ? SECRET : CONFIG_MAP) || ref.key !== name) {
      problems.push(`${overlay}: ${name} is not taken from the ${secret ? `Secret ${SECRET}` : `ConfigMap ${CONFIG_MAP}`}`);
    }
    if (secret && name in data) problems.push(`${overlay}: ${name} is a credential and must not be in the ConfigMap`);
  }
  // A URL with a user or password in it (an introspection endpoint's basic auth) is a credential too.
  for (const [key, value] of Object.entries(data)) {
    if (/^[a-z][a-z0-9+.-]*:\/\/[^/@\s]+@/i.test(String(value).trim())) {
      problems.push(`${overlay}: ${key} in the ConfigMap carries credentials in its URL; put it in the Secret ${SECRET}`);
    }
  }
  for (const name of ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_SERVICE_NAME', 'OTEL_RESOURCE_ATTRIBUTES']) {
    if (!env.some((e) => e.name === name)) problems.push(`${overlay}: ${name} is not set`);
  }

  // The configuration the pods would boot with is one the gateway accepts.
  const secretObject = find(objects, 'Secret', SECRET);
  const secretData: Record<string, string> = { ...(secretObject?.stringData ?? {}) };
  for (const [k, v] of Object.entries<string>(secretObject?.data ?? {})) secretData[k] = Buffer.from(v, 'base64').toString();
  if (overlay === 'prod') {
    if (secretObject) problems.push('prod: the Secret must not be committed; it comes from the cluster secret store');
    // Stand-ins for what the secret store provides, to check the rest.
    secretData.REDIS_URL ??= 'rediss://redis.example.com:6379';
  }
  const loaded = loadConfig({ ...data, ...secretData });
  if (!loaded.ok) for (const error of loaded.errors) problems.push(`${overlay}: the gateway would refuse this configuration: ${error}`);
  if (overlay === 'prod' && data.ENVIRONMENT !== 'production') problems.push('prod: ENVIRONMENT is not production');
  if (overlay === 'dev' && !find(objects, 'Deployment', 'redis')) problems.push('dev: no in-cluster Redis');

  // Wiring between the objects.
  if (service && !matches(service.spec?.selector, podLabels)) problems.push(`${overlay}: the Service does not select the gateway pods`);
  if (pdb && !matches(pdb.spec?.selector?.matchLabels, podLabels)) problems.push(`${overlay}: the PodDisruptionBudget does not select the gateway pods`);
  if (netpol && !matches(netpol.spec?.podSelector?.matchLabels, podLabels)) problems.push(`${overlay}: the NetworkPolicy does not select the gateway pods`);
  // Trusting a whole pod CIDR's X-Forwarded-For is safe only while nothing but the proxies can
  // reach the gateway: every ingress rule names its sources, none of them "anywhere".
  if (netpol && (data.WEBSOCKET_TRUSTED_PROXIES ?? '').trim() !== '') {
    const rules: Json[] = netpol.spec?.ingress ?? [];
    const open = rules.some(
      (r) =>
        !Array.isArray(r.from) ||
        r.from.length === 0 ||
        r.from.some((peer: Json) => {
          if (peer.ipBlock) {
            const range = parseRange(String(peer.ipBlock.cidr ?? ''));
            return !range || !INTERNAL_RANGES.some((internal) => rangeWithin(range, internal));
          }
          // `{}` selects everything: a peer whose selectors are all empty is anyone.
          const narrows = (sel: Json | undefined) =>
            !!sel && (Object.keys(sel.matchLabels ?? {}).length > 0 || (sel.matchExpressions ?? []).length > 0);
          return !narrows(peer.namespaceSelector) && !narrows(peer.podSelector);
        }),
    );
    if (!(netpol.spec?.policyTypes ?? []).includes('Ingress') || open) {
      problems.push(`${overlay}: the NetworkPolicy lets more than the ingress controller reach the gateway, which trusts X-Forwarded-For from WEBSOCKET_TRUSTED_PROXIES`);
    }
  }
  if (hpa) {
    if (hpa.spec?.scaleTargetRef?.kind !== 'Deployment' || hpa.spec?.scaleTargetRef?.name !== GATEWAY) {
      problems.push(`${overlay}: the HorizontalPodAutoscaler does not target the gateway Deployment`);
    }
    const metrics: Json[] = hpa.spec?.metrics ?? [];
    if (!metrics.some((m) => m.type === 'Resource' && m.resource?.name === 'cpu')) problems.push(`${overlay}: the HPA does not scale on CPU`);
    // The gateway's gauge as Prometheus names it (dots become underscores, `{connection}` adds no suffix).
    const connections = MetricNames.connectionsActive.replace(/\./g, '_');
    if (!metrics.some((m) => m.type === 'Pods' && m.pods?.metric?.name === connections)) {
      problems.push(`${overlay}: the HPA does not scale on ${connections} (active connections per pod)`);
    }
    if (deployment.spec?.replicas !== undefined) problems.push(`${overlay}: the Deployment sets replicas, which fights the HPA`);
  }
  if (ingress) {
    const backends: Json[] = (ingress.spec?.rules ?? []).flatMap((r: Json) => (r.http?.paths ?? []).map((p: Json) => p.backend?.service));
    const servicePorts: string[] = (service?.spec?.ports ?? []).map((p: Json) => p.name);
    if (backends.length === 0 || !backends.every((b) => b?.name === GATEWAY && servicePorts.includes(b?.port?.name))) {
      problems.push(`${overlay}: the Ingress does not route to the gateway Service's http port`);
    }
    // Behind ingress-nginx every peer is a controller pod: without trusted proxies one client's bad
    // tokens would get every client 429.
    problems.push(...trustedProxyProblems(overlay, data.WEBSOCKET_TRUSTED_PROXIES));
    const idle = Number(data.WEBSOCKET_IDLE_TIMEOUT_SECONDS || 120);
    for (const a of ['nginx.ingress.kubernetes.io/proxy-read-timeout', 'nginx.ingress.kubernetes.io/proxy-send-timeout']) {
      const value = Number(ingress.metadata?.annotations?.[a] ?? 60);
      if (!(value > idle)) problems.push(`${overlay}: Ingress ${a} (${value} s) must outlast WEBSOCKET_IDLE_TIMEOUT_SECONDS (${idle} s)`);
    }
  }
  const image = String(container.image ?? '');
  if (overlay === 'prod' && (/:latest$/.test(image) || !/[:@]/.test(image))) problems.push(`prod: the image ${image} is not pinned`);
  return problems;
}
