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
  // A ratio sampler named without its ratio samples everything (the specification's default); an
  // unknown name (refused by the gateway's config check) falls back to the gateway's default.
  let ratio = given && Object.hasOwn(SAMPLERS, given) ? 1 : DEFAULT_SAMPLE_RATIO;
  if (arg) {
    const parsed = Number(arg);
    if (Number.isFinite(parsed) && parsed >= 0 && parsed <= 1) ratio = parsed;
    else diag.warn(`OTEL_TRACES_SAMPLER_ARG=${arg} is not a ratio in [0, 1]; using ${ratio}`);
  }
  return new LinkedSampledSampler(namedSampler(name, ratio));
}

/** The standard OTEL_TRACES_SAMPLER values, built with the ratio OTEL_TRACES_SAMPLER_ARG gives. */
const SAMPLERS: Readonly<Record<string, (ratio: number) => Sampler>> = {
  always_on: () => new AlwaysOnSampler(),
  always_off: () => new AlwaysOffSampler(),
  traceidratio: (ratio) => new TraceIdRatioBasedSampler(ratio),
  parentbased_always_on: () => new ParentBasedSampler({ root: new AlwaysOnSampler() }),
  parentbased_always_off: () => new ParentBasedSampler({ root: new AlwaysOffSampler() }),
  parentbased_traceidratio: (ratio) => new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) }),
};

/** What OTEL_TRACES_SAMPLER may name (the gateway's config refuses anything else). */
export const SAMPLER_NAMES: readonly string[] = Object.keys(SAMPLERS);

function namedSampler(name: string, ratio: number): Sampler {
  const build = Object.hasOwn(SAMPLERS, name) ? SAMPLERS[name] : undefined;
  if (build) return build(ratio);
  diag.warn(`unknown OTEL_TRACES_SAMPLER value "${name}"; using ${DEFAULT_SAMPLER}`);
  return (SAMPLERS[DEFAULT_SAMPLER] as (ratio: number) => Sampler)(ratio);
}
