import {
  context,
  INVALID_SPAN_CONTEXT,
  propagation,
  ProxyTracerProvider,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Context,
  type Link,
  type Span,
  type SpanContext,
} from '@opentelemetry/api';

/**
 * Core's spans, through @opentelemetry/api only: without a registered SDK every call here is a
 * no-op, so core stays free of exporters and I/O. The tracer is looked up per call because the
 * SDK may register its provider after core is imported; the API's proxy makes that cheap.
 */
const TRACER_NAME = '@wsgw/core';

export const SpanNames = {
  upgrade: 'ws.upgrade',
  message: 'ws.message',
  sessionValidate: 'session.validate',
  slotAcquire: 'leases.acquire',
} as const;

/** Span attribute keys. Identifiers go on spans and logs, never on metrics (CONTRACT §7). */
export const SpanAttr = {
  path: 'wsgw.path',
  origin: 'wsgw.origin',
  outcome: 'wsgw.outcome',
  connectionId: 'wsgw.connection_id',
  userId: 'enduser.id',
  tokenHash: 'wsgw.token_hash',
  agentType: 'wsgw.agent_type',
  pillar: 'wsgw.pillar',
  requestId: 'wsgw.request_id',
  status: 'http.response.status_code',
  replica: 'wsgw.replica',
} as const;

export function coreTracer() {
  return trace.getTracer(TRACER_NAME);
}

/** The context a `traceparent` (and `tracestate`) header names, or the root context. */
export function contextFromHeaders(traceparent: string | undefined, tracestate: string | undefined): Context {
  if (!traceparent) return ROOT_CONTEXT;
  const carrier: Record<string, string> = { traceparent };
  if (tracestate) carrier['tracestate'] = tracestate;
  return propagation.extract(ROOT_CONTEXT, carrier);
}

const SERVER_SPAN = { kind: SpanKind.SERVER };

export function startServerSpan(name: string, parent: Context, links?: Link[]): Span {
  return coreTracer().startSpan(name, links ? { kind: SpanKind.SERVER, links } : SERVER_SPAN, parent);
}

/**
 * False for the stand-in span the API hands out when no SDK is registered and the request carried
 * no trace context (invalid ids): nothing about it is recorded, logged or propagated, and its
 * children would be the same stand-in, so the contexts and child spans around it can be skipped.
 * An SDK's spans always have valid ids, sampled or not.
 */
export function hasTrace(span: Span): boolean {
  return trace.isSpanContextValid(span.spanContext());
}

/**
 * The trace of a connection whose upgrade was not sampled. Sampling is decided once per connection,
 * at its upgrade: the messages of such a connection start no span at all (no ids to generate, no
 * sampler call, no carrier to format per message). They run under this stand-in instead: the
 * upgrade's context marked not sampled, so log lines still name the upgrade's trace and an agent
 * worker, continuing from `carrier`, knows not to sample either. Built once per connection, lazily.
 */
export class QuietTrace {
  readonly span: Span;
  readonly carrier: Record<string, string> | undefined;

  constructor(upgrade: SpanContext | undefined) {
    const valid = upgrade !== undefined && trace.isSpanContextValid(upgrade);
    this.span = trace.wrapSpanContext(
      valid ? { ...upgrade, traceFlags: TraceFlags.NONE } : INVALID_SPAN_CONTEXT,
    );
    this.carrier = valid ? traceCarrier(this.span) : undefined;
    if (this.carrier) {
      quietCarriers.set(this.carrier, this.span);
      quietContexts.set(this.span, trace.setSpan(ROOT_CONTEXT, this.span));
    }
  }
}

/** The context an in-process agent runs a QuietTrace's requests in: built once per connection. */
const quietContexts = new WeakMap<Span, Context>();

/** The context to run an agent handler in, under `span` (from startAgentSpan). */
export function agentContext(span: Span): Context {
  return quietContexts.get(span) ?? trace.setSpan(context.active(), span);
}

/**
 * Carriers of QuietTraces, to their span: an in-process agent (same carrier object as the
 * connection's) continues an unsampled trace with a lookup instead of parsing and validating ids.
 */
const quietCarriers = new WeakMap<object, Span>();

/** True when `spanContext` names a real span that was sampled (its children are sampled too). */
export function isSampled(spanContext: SpanContext | undefined): boolean {
  return (
    spanContext !== undefined &&
    (spanContext.traceFlags & TraceFlags.SAMPLED) !== 0 &&
    trace.isSpanContextValid(spanContext)
  );
}

/** A link to `spanContext` when it names a real span (not the no-op's invalid one). */
export function linkTo(spanContext: SpanContext | undefined): Link[] | undefined {
  return spanContext && trace.isSpanContextValid(spanContext) ? [{ context: spanContext }] : undefined;
}

/**
 * Runs `fn` in a child span of `parent`, ended when `fn` settles; a throw marks it failed.
 * Used around the awaited steps of an upgrade so each shows its own duration. The parent is
 * explicit: after an await the active context cannot be relied on (see traceLogFields).
 */
export async function inChildSpan<T>(name: string, parent: Span, fn: (span: Span) => Promise<T>): Promise<T> {
  const span = coreTracer().startSpan(name, { kind: SpanKind.INTERNAL }, trace.setSpan(ROOT_CONTEXT, parent));
  try {
    return await context.with(trace.setSpan(ROOT_CONTEXT, span), () => fn(span));
  } catch (err) {
    failSpan(span, err);
    throw err;
  } finally {
    span.end();
  }
}

export function failSpan(span: Span, err: unknown): void {
  if (!span.isRecording()) return;
  if (err instanceof Error) span.recordException(err);
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}

/**
 * The W3C trace context of `span` (`traceparent`, and `tracestate` when there is one) for the agent
 * request: the worker continues the trace from it. Written directly rather than through the global
 * propagators, which also run the baggage propagator: that alone cost ~2 % of the gateway's CPU
 * per message. Undefined when there is nothing to carry (no SDK).
 */
export function traceCarrier(span: Span): Record<string, string> | undefined {
  const ctx = span.spanContext();
  if (!trace.isSpanContextValid(ctx)) return undefined;
  const traceparent = `00-${ctx.traceId}-${ctx.spanId}-${(ctx.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
  const tracestate = ctx.traceState?.serialize();
  return tracestate ? { traceparent, tracestate } : { traceparent };
}

const NO_TRACE: Readonly<Record<string, string>> = Object.freeze({});

/**
 * `trace_id` and `span_id` of `span` for a log line written after an await, where the active
 * context may be gone (the gateway runs without async context propagation). Spread it into the
 * line's object; empty when there is no SDK.
 */
export function traceLogFields(span: Span): Readonly<Record<string, string>> {
  const ctx = span.spanContext();
  return trace.isSpanContextValid(ctx) ? { trace_id: ctx.traceId, span_id: ctx.spanId } : NO_TRACE;
}

/**
 * For whoever serves an agent request (a built-in agent, an agent-sdk worker): a span continuing
 * the trace the gateway put in `request.trace`. The caller ends it.
 */
export function startAgentSpan(agentType: string, carrier: Record<string, string> | undefined): Span {
  // No trace to continue and no SDK to start one: what the API's no-op would hand out, without
  // its tracer, options and span objects per message (the gateway with telemetry off).
  if (carrier === undefined && !sdkRegistered()) return NO_TRACE_SPAN;
  // An unsampled gateway trace (most connections, by default) gets no span of its own here:
  // its context is carried as is, so log lines still name the trace, at no sampling cost.
  const quiet = carrier && quietCarriers.get(carrier);
  if (quiet) return quiet;
  const traceparent = carrier?.['traceparent'];
  if (traceparent !== undefined && traceparent.length === 55 && traceparent.endsWith('-00')) {
    const parsed = trace.wrapSpanContext({
      traceId: traceparent.slice(3, 35),
      spanId: traceparent.slice(36, 52),
      traceFlags: 0,
      isRemote: true,
    });
    if (trace.isSpanContextValid(parsed.spanContext())) return parsed;
  }
  const parent = carrier ? propagation.extract(ROOT_CONTEXT, carrier) : ROOT_CONTEXT;
  const span = trace
    .getTracer(TRACER_NAME)
    .startSpan(`agent.handle ${agentType}`, { kind: SpanKind.CONSUMER }, parent);
  if (span.isRecording()) span.setAttribute(SpanAttr.agentType, agentType);
  return span;
}

/** The span of no trace (invalid ids, records nothing): the API's no-op span, made once. */
const NO_TRACE_SPAN = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** Whether an SDK registered a tracer provider: before that, the API's proxy has no delegate. */
function sdkRegistered(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegateTracer(TRACER_NAME) !== undefined;
}
