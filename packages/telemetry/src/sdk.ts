import { metrics, trace, type Meter } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { SynchronousContextManager } from './context.js';
import { samplerFromEnv } from './sampler.js';

export interface TelemetryOptions {
  /** The environment to read OTEL_SDK_DISABLED and the service name from (the SDK reads the rest). */
  env: Readonly<Record<string, string | undefined>>;
  /** `service.instance.id`: tells replicas apart (Prometheus `instance`). */
  replicaId: string;
  /** `service.name` when neither OTEL_SERVICE_NAME nor OTEL_RESOURCE_ATTRIBUTES names one. */
  defaultServiceName: string;
  serviceVersion?: string;
  /**
   * `async` (default): AsyncLocalStorage, the active span follows awaits (agent workers, whose
   * handlers may log after awaiting). `synchronous`: no async hooks; the gateway's choice, since it
   * passes spans explicitly (see context.ts).
   */
  contextPropagation?: 'async' | 'synchronous';
}

export interface Telemetry {
  readonly enabled: boolean;
  /** The meter for the process's own instruments; undefined when the SDK is disabled. */
  meter(name: string): Meter | undefined;
  /** Exports what is buffered now (tests, and before exit). */
  flush(): Promise<void>;
  /** Flushes and stops the exporters; bounded by `timeoutMs` so a dead collector cannot hold up exit. */
  shutdown(timeoutMs?: number): Promise<void>;
}

const disabled: Telemetry = {
  enabled: false,
  meter: () => undefined,
  flush: async () => {},
  shutdown: async () => {},
};

/**
 * Starts the OpenTelemetry Node SDK, configured by the standard OTEL_* variables: exporters
 * (OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER, default otlp), OTEL_EXPORTER_OTLP_ENDPOINT and
 * OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf by default; http/json; grpc), OTEL_SERVICE_NAME,
 * OTEL_RESOURCE_ATTRIBUTES, OTEL_METRIC_EXPORT_INTERVAL, OTEL_TRACES_SAMPLER(_ARG), OTEL_PROPAGATORS.
 * OTEL_SDK_DISABLED=true turns everything into no-ops. One departure from the SDK's defaults:
 * with OTEL_TRACES_SAMPLER unset, 1 % of new traces are sampled, not all (see sampler.ts). Call it before the gateway creates anything:
 * meters taken before the SDK registers stay no-ops for good.
 */
export function startTelemetry(options: TelemetryOptions): Telemetry {
  const { env } = options;
  if (isTrue(env['OTEL_SDK_DISABLED'])) return disabled;

  const namesService =
    nonEmpty(env['OTEL_SERVICE_NAME']) || /(^|,)\s*service\.name\s*=/.test(env['OTEL_RESOURCE_ATTRIBUTES'] ?? '');
  const attributes: Record<string, string> = { 'service.instance.id': options.replicaId };
  if (options.serviceVersion) attributes['service.version'] = options.serviceVersion;
  const sdk = new NodeSDK({
    // Detected attributes (OTEL_RESOURCE_ATTRIBUTES, host, process) are merged over these.
    resource: resourceFromAttributes(attributes),
    sampler: samplerFromEnv(env),
    ...(options.contextPropagation === 'synchronous' ? { contextManager: new SynchronousContextManager() } : {}),
    ...(namesService ? {} : { serviceName: options.defaultServiceName }),
  });
  sdk.start();

  let stopped: Promise<void> | undefined;
  return {
    enabled: true,
    meter: (name) => metrics.getMeter(name, options.serviceVersion),
    flush: async () => {
      await Promise.all([forceFlush(metrics.getMeterProvider()), forceFlush(tracerProviderOf())]);
    },
    shutdown: (timeoutMs = 3000) => {
      stopped ??= Promise.race([
        sdk.shutdown().catch(() => {}),
        new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref()),
      ]);
      return stopped;
    },
  };
}

/** The SDK's tracer provider behind the API's proxy. */
function tracerProviderOf(): unknown {
  const provider = trace.getTracerProvider() as { getDelegate?: () => unknown };
  return provider.getDelegate ? provider.getDelegate() : provider;
}

async function forceFlush(provider: unknown): Promise<void> {
  const p = provider as { forceFlush?: () => Promise<void> };
  if (typeof p.forceFlush === 'function') await p.forceFlush();
}

function isTrue(value: string | undefined): boolean {
  return value?.trim().toLowerCase() === 'true';
}

function nonEmpty(value: string | undefined): boolean {
  return value !== undefined && value.trim() !== '';
}
