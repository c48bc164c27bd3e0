import { diag, trace, TraceFlags, type Attributes, type Context, type Link, type SpanKind } from '@opentelemetry/api';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  ParentBasedSampler,
  SamplingDecision,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SamplingResult,
} from '@opentelemetry/sdk-trace-base';

/**
 * Head sampling when OTEL_TRACES_SAMPLER is unset: 1 % of new traces (and every trace a caller
 * already sampled). OpenTelemetry's own default samples everything, which at gateway message
 * rates costs most of a core in span export (docs/OBSERVABILITY.md has the measurement).
 */
export const DEFAULT_SAMPLER = 'parentbased_traceidratio';
export const DEFAULT_SAMPLE_RATIO = 0.01;

/**
 * A message span is a new trace linked to its connection's upgrade span. When that upgrade was
 * sampled (a client sent a sampled `traceparent`, or the ratio picked it), every message of the
 * connection is sampled too, so one debugging client gets whole traces without raising the ratio.
 * Spans with a parent follow the wrapped sampler (parent-based by default).
 */
export class LinkedSampledSampler implements Sampler {
  constructor(private readonly delegate: Sampler) {}

  shouldSample(
    context: Context,
    traceId: string,
    spanName: string,
    spanKind: SpanKind,
    attributes: Attributes,
    links: Link[],
  ): SamplingResult {
    if (links.length > 0 && trace.getSpanContext(context) === undefined) {
      for (const link of links) {
        if ((link.context.traceFlags & TraceFlags.SAMPLED) !== 0) return { decision: SamplingDecision.RECORD_AND_SAMPLED };
      }
    }
    return this.delegate.shouldSample(context, traceId, spanName, spanKind, attributes, links);
  }

  toString(): string {
    return `LinkedSampledSampler{${this.delegate.toString()}}`;
  }
}

/**
 * The sampler OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG name (the standard values), with the
 * gateway's default when unset, wrapped so that links to sampled spans sample too.
 */
export function samplerFromEnv(env: Readonly<Record<string, string | undefined>>): Sampler {
  const given = env['OTEL_TRACES_SAMPLER']?.trim().toLowerCase();
  const name = given || DEFAULT_SAMPLER;
  const arg = env['OTEL_TRACES_SAMPLER_ARG']?.trim();
  let ratio = given ? 1 : DEFAULT_SAMPLE_RATIO;
  if (arg) {
    const parsed = Number(arg);
    if (Number.isFinite(parsed) && parsed >= 0 && parsed <= 1) ratio = parsed;
    else diag.warn(`OTEL_TRACES_SAMPLER_ARG=${arg} is not a ratio in [0, 1]; using ${ratio}`);
  }
  return new LinkedSampledSampler(namedSampler(name, ratio));
}

function namedSampler(name: string, ratio: number): Sampler {
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
    default:
      diag.warn(`unknown OTEL_TRACES_SAMPLER value "${name}"; using ${DEFAULT_SAMPLER}`);
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }
}
