import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  findRedis,
  open,
  OtlpReceiver,
  spawnAgentWorker,
  spawnGateway,
  uniquePrefix,
  type GatewayProcess,
  type ReceivedSpan,
  type TestRedis,
  type WorkerProcess,
} from '@wsgw/testkit';

/**
 * The "done when": a gateway and an agent worker, separate processes on one Redis,
 * pointed at one OTLP endpoint, deliver their metrics and one joined trace per message
 * (client traceparent -> ws.upgrade; ws.message -> agent.handle in the worker -> reply).
 * Needs `npx turbo run build` first.
 */
const AGENT = 'otel-echo';

describe('one trace across gateway and agent worker (Redis mode)', () => {
  let redis: TestRedis;
  let receiver: OtlpReceiver;
  let gateway: GatewayProcess;
  let worker: WorkerProcess;
  const token = `secret-${randomBytes(8).toString('hex')}`;
  const parentTraceId = randomBytes(16).toString('hex');
  const parentSpanId = randomBytes(8).toString('hex');

  beforeAll(async () => {
    redis = await findRedis();
    receiver = await OtlpReceiver.start();
    const prefix = uniquePrefix('otel');
    const otel = {
      OTEL_SDK_DISABLED: 'false',
      ...receiver.exportEnv(),
    };
    gateway = await spawnGateway({
      ...otel,
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: prefix,
      WEBSOCKET_BUILTIN_AGENTS: '',
    });
    worker = await spawnAgentWorker({ ...otel, REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, AGENT_TYPE: AGENT });
  });

  afterAll(async () => {
    await worker?.stop();
    await gateway?.stop();
    await receiver?.close();
    await redis?.stop();
  });

  it('joins the client, gateway and worker spans of one message into one trace', async () => {
    const client = await open(gateway.wsUrl(token), {
      headers: { traceparent: `00-${parentTraceId}-${parentSpanId}-01` },
    });
    client.send({ agent_type: AGENT, message: 'traced', id: 'm1' });
    expect(await client.next(10_000)).toMatchObject({ type: 'response', message: 'traced', in_reply_to: 'm1' });
    await client.close();

    let message: ReceivedSpan | undefined;
    let agent: ReceivedSpan | undefined;
    await receiver.waitFor(
      () => {
        const spans = receiver.spans();
        message = spans.find((s) => s.name === 'ws.message' && s.attributes['wsgw.agent_type'] === AGENT);
        agent = message && spans.find((s) => s.name === `agent.handle ${AGENT}` && s.traceId === message!.traceId);
        return agent !== undefined && message!.attributes['wsgw.outcome'] === 'replied';
      },
      20_000,
      'the message and agent spans',
    );
    // The worker's span is a child of the gateway's message span, in another service.
    expect(agent!.parentSpanId).toBe(message!.spanId);
    expect(agent!.resource['service.name']).toBe('agent-worker');
    expect(message!.resource['service.name']).toBe('ws-gateway');
    expect(agent!.resource['service.instance.id']).not.toBe(message!.resource['service.instance.id']);

    // The message links to its upgrade, which continues the client's trace.
    const upgrade = receiver.spans().find((s) => s.name === 'ws.upgrade' && s.traceId === parentTraceId);
    expect(upgrade?.parentSpanId).toBe(parentSpanId);
    expect(message!.links).toEqual([{ traceId: parentTraceId, spanId: upgrade!.spanId }]);

    // Spans carry a token's hash at most, never the token.
    expect(receiver.rawBodies('/v1/traces')).not.toContain(token);
  });

  it('reports the Redis-side metrics: agent queue depth and Redis call latency', async () => {
    await receiver.waitFor(
      () => {
        const names = new Set(receiver.metrics().map((p) => p.metric));
        return names.has('websocket.agent.queue_depth') && names.has('db.client.operation.duration');
      },
      20_000,
      'queue depth and redis latency',
    );
    const depth = receiver.metrics().filter((p) => p.metric === 'websocket.agent.queue_depth');
    expect(depth.some((p) => p.attributes['agent_type'] === AGENT)).toBe(true);
    const redisPoints = receiver.metrics().filter((p) => p.metric === 'db.client.operation.duration');
    expect(redisPoints.every((p) => p.kind === 'histogram' && p.attributes['db.system.name'] === 'redis')).toBe(true);
    expect(redisPoints.some((p) => p.attributes['db.operation.name'] === 'evalsha')).toBe(true);
    // Every Redis call is timed. The gateway's client pipelines automatically and batches
    // rate-window and publish calls for many messages, so those calls belong to no single trace
    // and make no span (packages/telemetry/test/sdk.test.ts covers the spans of direct calls).
    expect(receiver.metrics().filter((p) => p.metric === 'db.client.operation.duration').every((p) => p.value >= 1)).toBe(true);
  });
});
