import { PassThrough } from 'node:stream';
import { context, trace } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { coreTracer } from '@wsgw/core';
import { createGatewayMetrics, createLogger, instrumentRedisClient, startTelemetry, type Telemetry } from '@wsgw/telemetry';
import { findRedis, OtlpReceiver, uniquePrefix, type TestRedis } from '@wsgw/testkit';

/**
 * The SDK in this test process (vitest runs each file in its own process), configured like the
 * gateway's by OTEL_* variables, exporting to a real OTLP/HTTP receiver.
 */
describe('startTelemetry in process, against a real OTLP receiver', () => {
  let receiver: OtlpReceiver;
  let telemetry: Telemetry;
  let redis: TestRedis;

  beforeAll(async () => {
    receiver = await OtlpReceiver.start();
    redis = await findRedis();
    Object.assign(process.env, {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      // Exports happen when the test flushes, not on a timer.
      OTEL_METRIC_EXPORT_INTERVAL: '600000',
      OTEL_BSP_SCHEDULE_DELAY: '600000',
      OTEL_TRACES_SAMPLER: 'always_on',
    });
    delete process.env['OTEL_SDK_DISABLED'];
    delete process.env['OTEL_SERVICE_NAME'];
    telemetry = startTelemetry({ env: process.env, replicaId: 'replica-under-test', defaultServiceName: 'ws-gateway' });
  });

  afterAll(async () => {
    await telemetry?.shutdown();
    await receiver?.close();
    await redis?.stop();
  });

  it('is enabled and names the service and replica on the resource', async () => {
    expect(telemetry.enabled).toBe(true);
    const metrics = createGatewayMetrics(telemetry.meter('test'), ['https://app.example']);
    metrics.connectionAccepted('/api/ws/agent');
    await telemetry.flush();
    const point = receiver.metrics().find((p) => p.metric === 'websocket.connection.accepted');
    expect(point?.resource).toMatchObject({ 'service.name': 'ws-gateway', 'service.instance.id': 'replica-under-test' });
  });

  it('maps origins to configured ones, `none` or `other`, and caps agent types', async () => {
    const metrics = createGatewayMetrics(telemetry.meter('origins'), ['https://app.example', '*']);
    metrics.connectionClosed('/p', 50, 'https://app.example', 1000);
    metrics.connectionClosed('/p', 50, 'https://random.example', 4999);
    metrics.connectionClosed('/p', 50, undefined, 1006);
    for (let i = 0; i < 250; i++) metrics.messageReceived(`agent-${i}`, undefined);
    metrics.fallbackDecision('rates', 'local_allowed');
    metrics.redisCall('evalsha', 1.5, true);
    metrics.redisCall('evalsha', 500, false);
    metrics.observeOpenConnections(() => 3);
    metrics.observeOpenConnections(() => 4);
    metrics.observeAgentQueues(async () => [['echo', 2] as const]);
    await telemetry.flush();
    const closes = receiver.metrics().filter((p) => p.metric === 'websocket.connection.closed');
    expect(closes.map((p) => [p.attributes['origin'], p.attributes['code']]).sort()).toEqual([
      ['https://app.example', '1000'],
      ['none', '1006'],
      ['other', 'other'],
    ]);
    const received = receiver.metrics().filter((p) => p.metric === 'websocket.message.received');
    // 200 distinct agent types at most (from this instance), the rest folded into `other`.
    expect(received.filter((p) => p.attributes['agent_type'] !== 'other')).toHaveLength(200);
    expect(received.find((p) => p.attributes['agent_type'] === 'other')?.value).toBe(50);
    expect(receiver.metrics().find((p) => p.metric === 'websocket.limits.fallback')?.attributes).toEqual({
      store: 'rates',
      decision: 'local_allowed',
    });
    const redisPoints = receiver.metrics().filter((p) => p.metric === 'db.client.operation.duration');
    expect(redisPoints.map((p) => p.attributes['error.type'] ?? 'ok').sort()).toEqual(['error', 'ok']);
    expect(redisPoints.every((p) => p.unit === 's')).toBe(true);
    const active = receiver.metrics().filter((p) => p.metric === 'websocket.connection.active');
    expect(active.at(-1)?.value).toBe(7);
    const depth = receiver.metrics().filter((p) => p.metric === 'websocket.agent.queue_depth');
    expect(depth.at(-1)).toMatchObject({ value: 2, attributes: { agent_type: 'echo' } });
  });

  it('puts trace_id and span_id on log lines written inside a span, nothing outside one', async () => {
    const stream = new PassThrough();
    let raw = '';
    stream.on('data', (c: Buffer) => (raw += c.toString()));
    const log = createLogger({ level: 'info', replicaId: 'r', destination: stream });
    const span = coreTracer().startSpan('test.span');
    context.with(trace.setSpan(context.active(), span), () => log.info({}, 'inside'));
    span.end();
    log.info({}, 'outside');
    await new Promise((resolve) => setImmediate(resolve));
    const [inside, outside] = raw
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(inside).toMatchObject({ trace_id: span.spanContext().traceId, span_id: span.spanContext().spanId });
    expect(outside).not.toHaveProperty('trace_id');
    await telemetry.flush();
    expect(receiver.spans().find((s) => s.name === 'test.span')?.traceId).toBe(span.spanContext().traceId);
  });

  it('times Redis commands and traces them inside a span only; blocking reads are left out', async () => {
    const metrics = createGatewayMetrics(telemetry.meter('redis'), []);
    const client = instrumentRedisClient(redis.admin(), metrics);
    expect(instrumentRedisClient(client, metrics)).toBe(client);
    const key = `${uniquePrefix('telemetry')}k`;
    try {
      await client.set(key, 'v'); // outside a span: a sample, no span
      const parent = coreTracer().startSpan('redis.parent');
      await context.with(trace.setSpan(context.active(), parent), async () => {
        await client.get(key);
        await client.xread('BLOCK', 10, 'STREAMS', `${key}:s`, '$');
      });
      parent.end();
      await client.del(key);
    } finally {
      await client.quit();
    }
    await telemetry.flush();
    const ops = new Set(
      receiver
        .metrics()
        .filter((p) => p.metric === 'db.client.operation.duration')
        .map((p) => p.attributes['db.operation.name']),
    );
    expect([...ops]).toEqual(expect.arrayContaining(['set', 'get', 'del']));
    expect([...ops]).not.toContain('xread');
    const parent = receiver.spans().find((s) => s.name === 'redis.parent')!;
    const children = receiver.spans().filter((s) => s.parentSpanId === parent.spanId);
    expect(children.map((s) => s.name)).toEqual(['redis GET']);
    expect(receiver.spans().some((s) => s.name === 'redis SET')).toBe(false);
    // Keys hold user ids: only command names are recorded.
    expect(receiver.rawBodies('/v1/traces')).not.toContain(key);
    expect(receiver.rawBodies('/v1/metrics')).not.toContain(key);
  });
});
