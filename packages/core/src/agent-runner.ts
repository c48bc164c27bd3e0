import { context, INVALID_TRACEID, type Span } from '@opentelemetry/api';
import type { AgentHandler, AgentReply, AgentRequest } from './ports.js';
import { agentContext, failSpan, startAgentSpan } from './tracing.js';

/** One reply as a handler produced it, before it is addressed to a request. */
export type AgentOutput = Pick<AgentReply, 'kind' | 'message' | 'done'>;

/**
 * Runs one agent handler and hands its replies to `emit` in the order produced: a returned value
 * (or the value of a returned promise) becomes one `response`; an async iterable becomes `chunk`s,
 * the last with `done: true`. Shared by the in-process bus and agent-sdk workers, so built-in and
 * remote agents behave alike. A handler that returns a plain value with no trace to continue runs
 * to the end before this returns `undefined`: no promise on the path of a built-in echo. Otherwise
 * the promise settles when the handler is done; it rejects (or this throws) when the handler
 * throws, and what that means (log, retry, time out) is the caller's call.
 * With a trace, the run is an `agent.handle <type>` span continuing the gateway's trace from `request.trace`.
 */
export function runAgentHandler(
  handler: AgentHandler,
  request: Readonly<AgentRequest>,
  emit: (output: AgentOutput) => void,
): Promise<void> | undefined {
  const span = startAgentSpan(request.agentType, request.trace);
  // No trace at all (telemetry off): no context to enter, no span to end.
  if (span.spanContext().traceId === INVALID_TRACEID) return runHandler(handler, request, emit);
  // An unsampled trace (most connections): the handler runs inside its context, so its log lines
  // name the trace, but there is nothing to record or end, so no async frame either.
  if (!span.isRecording()) return context.with(agentContext(span), runHandler, undefined, handler, request, emit);
  return runTraced(span, handler, request, emit);
}

async function runTraced(
  span: Span,
  handler: AgentHandler,
  request: Readonly<AgentRequest>,
  emit: (output: AgentOutput) => void,
): Promise<void> {
  try {
    await context.with(agentContext(span), () => runHandler(handler, request, emit));
  } catch (err) {
    failSpan(span, err);
    throw err;
  } finally {
    span.end();
  }
}

function runHandler(
  handler: AgentHandler,
  request: Readonly<AgentRequest>,
  emit: (output: AgentOutput) => void,
): Promise<void> | undefined {
  const result = handler(request);
  if (isAsyncIterable(result)) return streamChunks(result, emit);
  if (isThenable(result)) {
    return Promise.resolve(result).then((message) => emit({ kind: 'response', message }));
  }
  emit({ kind: 'response', message: result });
  return undefined;
}

async function streamChunks(result: AsyncIterable<unknown>, emit: (output: AgentOutput) => void): Promise<void> {
  // Each chunk is held back by one so the last can carry done: true.
  let previous: { value: unknown } | undefined;
  for await (const chunk of result) {
    if (previous) emit({ kind: 'chunk', message: previous.value, done: false });
    previous = { value: chunk };
  }
  emit({ kind: 'chunk', message: previous?.value ?? '', done: true });
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
