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
 * logs tokens. Errors go through `serializeError`, which removes what ioredis attaches to them.
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
];

/** Keys never written from inside an error, at any depth (see `serializeError`). */
const SECRET_ERROR_KEYS = new Set(['command', 'password', 'token', 'session_token', 'authorization', 'headers']);

/**
 * pino's error serializer, then a copy without secret-bearing keys at any depth. ioredis nests the
 * error with the failed command (an AUTH's password, a `session:<token>` key) in places a fixed
 * redact path cannot list: `err.command`, `err.cause.command`, a Cluster's
 * `err.lastNodeError.command`, errors inside arrays...
 */
export function serializeError(err: unknown): unknown {
  return scrub(pino.stdSerializers.err(err as Error), 0);
}

function scrub(value: unknown, depth: number): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (depth > 8) return '[nested too deep]';
  if (Array.isArray(value)) return value.map((item) => scrub(item, depth + 1));
  const copy: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    if (!SECRET_ERROR_KEYS.has(key.toLowerCase())) copy[key] = scrub(inner, depth + 1);
  }
  return copy;
}


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
      serializers: { err: serializeError },
      mixin: traceFields,
    },
    options.destination ?? pino.destination({ sync: false }),
  );
}
