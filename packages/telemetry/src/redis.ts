import { context, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { noopMetrics, type GatewayMetrics } from '@wsgw/core';

/** The part of an ioredis client (Redis or Cluster) this needs: every command goes through it. */
export interface CommandSender {
  sendCommand(command: RedisCommandLike, ...rest: unknown[]): unknown;
}

export interface RedisCommandLike {
  name: string;
  promise: Promise<unknown>;
}

/**
 * Commands whose time is spent waiting for data, not serving a call: their latency would drown
 * the histogram, so they get neither a sample nor a span.
 */
const BLOCKING = new Set([
  'xread',
  'xreadgroup',
  'blpop',
  'brpop',
  'blmove',
  'brpoplpush',
  'blmpop',
  'bzpopmin',
  'bzpopmax',
  'bzmpop',
  'wait',
  'subscribe',
  'psubscribe',
  'ssubscribe',
]);

const INSTRUMENTED = Symbol.for('wsgw.telemetry.redis-instrumented');

/**
 * Times every command of an ioredis client into `metrics.redisCall` (db.client.operation.duration)
 * and, when the command runs inside a span (an upgrade, a message), records it as a child
 * `redis <COMMAND>` span. Commands outside any span (heartbeats, sweeps) make no span: they would
 * each start a trace of their own. Only command names are recorded, never arguments (keys hold
 * user ids; a `redis` session validator's key holds a token).
 */
export function instrumentRedisClient<T extends CommandSender>(client: T, metrics: GatewayMetrics): T {
  const tagged = client as T & { [INSTRUMENTED]?: boolean };
  if (tagged[INSTRUMENTED]) return client;
  tagged[INSTRUMENTED] = true;
  const original = client.sendCommand.bind(client);
  const tracer = trace.getTracer('@wsgw/telemetry/redis');
  // With telemetry off the metrics are no-ops: a command outside a recording span is then passed
  // through as is, without the timing callbacks and promise it would otherwise cost.
  const timed = metrics !== noopMetrics;
  client.sendCommand = (command: RedisCommandLike, ...rest: unknown[]): unknown => {
    const parent = trace.getActiveSpan();
    if (!timed && !parent?.isRecording()) return original(command, ...rest);
    const name = command.name.toLowerCase();
    if (BLOCKING.has(name)) return original(command, ...rest);
    let span: Span | undefined;
    if (parent?.isRecording()) {
      span = tracer.startSpan(
        `redis ${name.toUpperCase()}`,
        { kind: SpanKind.CLIENT, attributes: { 'db.system.name': 'redis', 'db.operation.name': name } },
        context.active(),
      );
    }
    const started = performance.now();
    const result = original(command, ...rest);
    command.promise.then(
      () => {
        metrics.redisCall(name, performance.now() - started, true);
        span?.end();
      },
      (err: unknown) => {
        metrics.redisCall(name, performance.now() - started, false);
        if (span) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : 'error' });
          span.end();
        }
      },
    );
    return result;
  };
  return client;
}
