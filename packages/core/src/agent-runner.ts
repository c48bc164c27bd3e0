import { context, INVALID_TRACEID, type Span } from '@opentelemetry/api';
import type { AgentHandler, AgentReply, AgentRequest } from './ports.js';
import { agentContext, failSpan, startAgentSpan } from './tracing.js';

/** One reply as a handler produced it, before it is addressed to a request. */
export type AgentOutput = Pick<AgentReply, 'kind' | 'message' | 'done'>;

/**
 * Runs one agent handler and hands its replies to `emit` in the order produced: a returned value
 * (or the value of a returned promise) becomes one `response`; an async iterable or a generator
 * (returned, or the value of a returned promise) becomes `chunk`s, the last with `done: true`.
 * Shared by the in-process bus and agent-sdk workers, so built-in and remote agents behave alike.
 * A handler that returns a plain value with no trace to continue runs to the end before this
 * returns `undefined`: no promise on the path of a built-in echo. Otherwise
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
  if (isStream(result)) return streamChunks(result, emit);
  if (isThenable(result)) {
    // `async (r) => await llm.stream(r)`: a promise of a stream streams too.
    return Promise.resolve(result).then((message) => (isStream(message) ? streamChunks(message, emit) : emit({ kind: 'response', message })));
  }
  emit({ kind: 'response', message: result });
  return undefined;
}

const SLOW = Symbol('slow');
/** Resolves with SLOW once the current event-loop turn is over (its promise jobs included). */
const afterTurn = (): Promise<typeof SLOW> => new Promise((resolve) => setImmediate(resolve, SLOW));

/**
 * Each chunk goes out as soon as the stream has produced the next one, so the last can carry
 * `done: true`; a chunk the stream is slow to follow (the next one is not ready within this turn:
 * the agent is working) goes out at once, and a stream that then ends sends an empty final chunk
 * (`""`, `done: true`). A chunk yielded before the stream throws is sent before the error.
 */
async function streamChunks(stream: AsyncIterable<unknown> | Iterable<unknown>, emit: (output: AgentOutput) => void): Promise<void> {
  const iterator = Symbol.asyncIterator in stream ? (stream as AsyncIterable<unknown>)[Symbol.asyncIterator]() : (stream as Iterable<unknown>)[Symbol.iterator]();
  let held: { value: unknown } | undefined;
  try {
    for (;;) {
      const next = Promise.resolve(iterator.next());
      let step = held ? await Promise.race([next, afterTurn()]) : await next;
      if (step === SLOW) {
        emit({ kind: 'chunk', message: (held as { value: unknown }).value, done: false });
        held = undefined;
        step = await next;
      }
      if (step.done) break;
      if (held) emit({ kind: 'chunk', message: held.value, done: false });
      held = { value: step.value };
    }
  } catch (err) {
    if (held) emit({ kind: 'chunk', message: held.value, done: false });
    throw err;
  }
  emit({ kind: 'chunk', message: held ? held.value : '', done: true });
}

/** An async iterable, or a generator object (`function*`): streamed. Strings and arrays are values. */
function isStream(value: unknown): value is AsyncIterable<unknown> | Iterable<unknown> {
  if (typeof value !== 'object' || value === null) return false;
  return Symbol.asyncIterator in value || Object.prototype.toString.call(value) === '[object Generator]';
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
