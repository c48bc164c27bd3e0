import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
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

export function startServerSpan(name: string, parent: Context, links?: Link[]): Span {
  return coreTracer().startSpan(name, links ? { kind: SpanKind.SERVER, links } : { kind: SpanKind.SERVER }, parent);
}

/** A link to `spanContext` when it names a real span (not the no-op's invalid one). */
export function linkTo(spanContext: SpanContext | undefined): Link[] | undefined {
  return spanContext && trace.isSpanContextValid(spanContext) ? [{ context: spanContext }] : undefined;
}

/**
 * Runs `fn` in a child span of the active one, ended when `fn` settles; a throw marks it failed.
 * Used around the awaited steps of an upgrade so each shows its own duration.
 */
export async function inChildSpan<T>(name: string, fn: (span: Span) => Promise<T>): Promise<T> {
  const span = coreTracer().startSpan(name, { kind: SpanKind.INTERNAL });
  try {
    return await context.with(trace.setSpan(context.active(), span), () => fn(span));
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
 * The W3C trace context of `span` as a string map, for the agent request (the worker continues the
 * trace from it). Undefined when there is nothing to carry (no SDK, or an invalid context).
 */
export function traceCarrier(span: Span): Record<string, string> | undefined {
  if (!trace.isSpanContextValid(span.spanContext())) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(ROOT_CONTEXT, span), carrier);
  return carrier['traceparent'] ? carrier : undefined;
}

/**
 * For whoever serves an agent request (a built-in agent, an agent-sdk worker): a span continuing
 * the trace the gateway put in `request.trace`. The caller ends it.
 */
export function startAgentSpan(agentType: string, carrier: Record<string, string> | undefined): Span {
  const parent = carrier ? propagation.extract(ROOT_CONTEXT, carrier) : ROOT_CONTEXT;
  const span = trace
    .getTracer(TRACER_NAME)
    .startSpan(`agent.handle ${agentType}`, { kind: SpanKind.CONSUMER }, parent);
  if (span.isRecording()) span.setAttribute(SpanAttr.agentType, agentType);
  return span;
}
