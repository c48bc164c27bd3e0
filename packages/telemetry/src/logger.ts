import { trace } from '@opentelemetry/api';
import { pino, type Logger as PinoLogger } from 'pino';

export interface LoggerOptions {
  level: string;
  replicaId: string;
  service?: string;
  /** Where lines go; stdout by default. Tests pass a stream to read them back. */
  destination?: NodeJS.WritableStream;
}

/**
 * Any field that could carry a session token or a password is removed before a line is written;
 * security events carry `token_hash` (a short SHA-256 prefix) instead. Defence in depth: code never
 * logs tokens. ioredis puts the failed command on its errors (`err.command`: name and arguments),
 * which would carry the Redis password of an AUTH, or a session key (`session:<token>`).
 */
export const LOG_REDACT_PATHS = [
  'token',
  'session_token',
  'authorization',
  'password',
  'headers.authorization',
  'req.headers.authorization',
  '*.token',
  '*.session_token',
  '*.authorization',
  '*.password',
  'err.command',
  'err.cause.command',
];


/**
 * Joins log lines to traces: inside an active, valid span a line carries `trace_id` and `span_id`
 * (OpenTelemetry's log data model names). Outside one it adds nothing.
 * (pino merges the log call's fields into the returned object, so it must be a fresh, extensible one.)
 */
export function traceFields(): object {
  const span = trace.getActiveSpan();
  if (!span) return {};
  const ctx = span.spanContext();
  if (!trace.isSpanContextValid(ctx)) return {};
  return { trace_id: ctx.traceId, span_id: ctx.spanId, trace_flags: ctx.traceFlags === 1 ? '01' : '00' };
}

export function createLogger(options: LoggerOptions): PinoLogger {
  return pino(
    {
      level: options.level,
      base: { service: options.service ?? 'ws-gateway', replica: options.replicaId },
      redact: { paths: LOG_REDACT_PATHS, remove: true },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: pino.stdSerializers.err },
      mixin: traceFields,
    },
    options.destination ?? pino.destination({ sync: false }),
  );
}
