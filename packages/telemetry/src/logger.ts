import { pino, type Logger as PinoLogger } from 'pino';

export interface LoggerOptions {
  level: string;
  replicaId: string;
  service?: string;
  /** Where lines go; stdout by default. Tests pass a stream to read them back. */
  destination?: NodeJS.WritableStream;
}

/**
 * Any field that could carry a session token is removed before a line is written; security events
 * carry `token_hash` (a short SHA-256 prefix) instead. Defence in depth: code never logs tokens.
 */
const REDACT = [
  'token',
  'session_token',
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  '*.token',
  '*.session_token',
  '*.authorization',
];

export function createLogger(options: LoggerOptions): PinoLogger {
  return pino(
    {
      level: options.level,
      base: { service: options.service ?? 'ws-gateway', replica: options.replicaId },
      redact: { paths: REDACT, remove: true },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: pino.stdSerializers.err },
    },
    options.destination ?? pino.destination({ sync: false }),
  );
}
