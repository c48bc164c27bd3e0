import { afterEach, describe, expect, it } from 'vitest';
import { trace } from '@opentelemetry/api';
import { AlwaysOnSampler, BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { startAgentSpan } from '../src/tracing.js';

describe('startAgentSpan', () => {
  afterEach(() => {
    trace.disable();
  });

  it('with no trace to continue and no SDK: a span of no trace, recording nothing', () => {
    const span = startAgentSpan('echo', undefined);
    expect(trace.isSpanContextValid(span.spanContext())).toBe(false);
    expect(span.isRecording()).toBe(false);
  });

  it('with no trace to continue and an SDK registered (an agent worker with telemetry on): a root span of its own', () => {
    // Registered after core was imported, as the gateway and workers start their SDK.
    trace.setGlobalTracerProvider(new BasicTracerProvider({ sampler: new AlwaysOnSampler() }));
    const span = startAgentSpan('echo', undefined);
    expect(trace.isSpanContextValid(span.spanContext())).toBe(true);
    expect(span.isRecording()).toBe(true);
    span.end();
  });

  it('continues an unsampled trace a carrier names without starting a span', () => {
    trace.setGlobalTracerProvider(new BasicTracerProvider({ sampler: new AlwaysOnSampler() }));
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const span = startAgentSpan('echo', { traceparent: `00-${traceId}-b7ad6b7169203331-00` });
    expect(span.spanContext()).toMatchObject({ traceId, spanId: 'b7ad6b7169203331' });
    expect(span.isRecording()).toBe(false);
  });
});
