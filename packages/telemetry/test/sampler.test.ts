import { ROOT_CONTEXT, SpanKind, trace, TraceFlags, type Link } from '@opentelemetry/api';
import { SamplingDecision } from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { createContextKey } from '@opentelemetry/api';
import { DEFAULT_SAMPLE_RATIO, samplerFromEnv, SynchronousContextManager } from '@wsgw/telemetry';

// The ratio sampler picks a trace when the XOR of its id's four 32-bit words is below
// ratio x 2^32: this id (XOR 1) is picked by any ratio above 0, that one (XOR 2^32-1) by ratio 1 only.
const PICKED = '00000000000000000000000000000001';
const SKIPPED = 'ffffffff000000000000000000000000';

function decide(env: Record<string, string>, traceId: string, links: Link[] = [], parentSampled?: boolean) {
  const parent =
    parentSampled === undefined
      ? ROOT_CONTEXT
      : trace.setSpanContext(ROOT_CONTEXT, {
          traceId: PICKED,
          spanId: '0000000000000001',
          traceFlags: parentSampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
          isRemote: true,
        });
  return samplerFromEnv(env).shouldSample(parent, traceId, 'ws.message', SpanKind.SERVER, {}, links).decision;
}

describe('samplerFromEnv', () => {
  it('samples 1 % of new traces by default and follows a sampled parent', () => {
    expect(DEFAULT_SAMPLE_RATIO).toBe(0.01);
    expect(decide({}, PICKED)).toBe(SamplingDecision.RECORD_AND_SAMPLED);
    expect(decide({}, SKIPPED)).toBe(SamplingDecision.NOT_RECORD);
    expect(decide({}, SKIPPED, [], true)).toBe(SamplingDecision.RECORD_AND_SAMPLED);
    expect(decide({}, PICKED, [], false)).toBe(SamplingDecision.NOT_RECORD);
  });

  it('samples a new trace linked to a sampled span (messages of a traced connection)', () => {
    const link = (flags: number): Link => ({
      context: { traceId: PICKED, spanId: '0000000000000002', traceFlags: flags },
    });
    expect(decide({}, SKIPPED, [link(TraceFlags.SAMPLED)])).toBe(SamplingDecision.RECORD_AND_SAMPLED);
    expect(decide({}, SKIPPED, [link(TraceFlags.NONE)])).toBe(SamplingDecision.NOT_RECORD);
  });

  it('honours the standard OTEL_TRACES_SAMPLER values and OTEL_TRACES_SAMPLER_ARG', () => {
    expect(decide({ OTEL_TRACES_SAMPLER: 'always_on' }, SKIPPED)).toBe(SamplingDecision.RECORD_AND_SAMPLED);
    expect(decide({ OTEL_TRACES_SAMPLER: 'parentbased_always_on' }, SKIPPED)).toBe(SamplingDecision.RECORD_AND_SAMPLED);
    expect(decide({ OTEL_TRACES_SAMPLER: 'always_off' }, PICKED)).toBe(SamplingDecision.NOT_RECORD);
    // A named ratio sampler without an argument samples everything, as the specification says.
    expect(decide({ OTEL_TRACES_SAMPLER: 'traceidratio' }, SKIPPED)).toBe(SamplingDecision.RECORD_AND_SAMPLED);
    expect(decide({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' }, PICKED)).toBe(
      SamplingDecision.NOT_RECORD,
    );
  });

  it.each(['parentbased_traceidratio_typo', 'constructor'])('an unknown OTEL_TRACES_SAMPLER (%s) samples like the default, not every trace', (name) => {
    // Before: any set value made the ratio 1, so a typo sampled 100 % of traces.
    expect(decide({ OTEL_TRACES_SAMPLER: name }, SKIPPED)).toBe(SamplingDecision.NOT_RECORD);
    expect(decide({ OTEL_TRACES_SAMPLER: name }, PICKED)).toBe(SamplingDecision.RECORD_AND_SAMPLED);
  });
});

describe('SynchronousContextManager', () => {
  const key = createContextKey('k');

  it('keeps the context for the synchronous extent of `with` only, and restores the previous one', async () => {
    const manager = new SynchronousContextManager();
    const ctx = ROOT_CONTEXT.setValue(key, 'v');
    let before: unknown;
    let after: unknown;
    const done = manager.with(ctx, async () => {
      before = manager.active().getValue(key);
      await Promise.resolve();
      after = manager.active().getValue(key);
    });
    expect(manager.active()).toBe(ROOT_CONTEXT);
    await done;
    expect(before).toBe('v');
    expect(after).toBeUndefined();
    const bound = manager.bind(ctx, () => manager.active().getValue(key));
    expect(bound()).toBe('v');
    expect(() =>
      manager.with(ctx, () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(manager.active()).toBe(ROOT_CONTEXT);
  });
});
