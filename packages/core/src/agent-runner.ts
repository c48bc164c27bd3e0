import { context, INVALID_TRACEID } from '@opentelemetry/api';
import type { AgentHandler, AgentReply, AgentRequest } from './ports.js';
import { agentContext, failSpan, startAgentSpan } from './tracing.js';

/** One reply as a handler produced it, before it is addressed to a request. */
export type AgentOutput = Pick<AgentReply, 'kind' | 'message' | 'done'>;

/**
 * Runs one agent handler and hands its replies to `emit` in the order produced: a returned value
 * becomes one `response`; an async iterable becomes `chunk`s, the last with `done: true`.
 * Shared by the in-process bus and agent-sdk workers, so built-in and remote agents behave alike.
 * Rejects when the handler throws; what that means (log, retry, time out) is the caller's call.
 * The run is an `agent.handle <type>` span continuing the gateway's trace from `request.trace`.
 */
export async function runAgentHandler(
  handler: AgentHandler,
  request: Readonly<AgentRequest>,
  emit: (output: AgentOutput) => void,
): Promise<void> {
  const span = startAgentSpan(request.agentType, request.trace);
  // No trace at all (telemetry off): no context to enter, no span to end.
  if (span.spanContext().traceId === INVALID_TRACEID) return runHandler(handler, request, emit);
  try {
    await context.with(agentContext(span), () => runHandler(handler, request, emit));
  } catch (err) {
    failSpan(span, err);
    throw err;
  } finally {
    span.end();
  }
}

async function runHandler(
  handler: AgentHandler,
  request: Readonly<AgentRequest>,
  emit: (output: AgentOutput) => void,
): Promise<void> {
  const result = handler(request);
  if (!isAsyncIterable(result)) {
    emit({ kind: 'response', message: await result });
    return;
  }
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
