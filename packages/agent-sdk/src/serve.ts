import { pino } from 'pino';
import { AGENT_TYPE_RULE, isAgentType, type AgentHandler, type Logger } from '@wsgw/core';
import { parseRedisUrl } from '@wsgw/redis';
import { LOG_REDACT_PATHS, serializeError, startTelemetry, traceFields } from '@wsgw/telemetry';
import { AgentWorker, defaultWorkerId, type AgentWorkerOptions } from './worker.js';

export type ServeOptions = Partial<Omit<AgentWorkerOptions, 'agentType' | 'handler'>> & {
  /** Environment to read settings from (tests); `process.env` by default. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Exit the process after a signal-triggered stop (default true). */
  exitOnStop?: boolean;
};

/**
 * Runs `handler` as a worker process for `agentType` until SIGTERM or SIGINT, then stops
 * gracefully (finishes in-flight requests) and exits 0. Settings come from the environment:
 * REDIS_URL (required), REDIS_KEY_PREFIX (default `wsgw:`), LOG_LEVEL, and the optional tuning
 * variables AGENT_CONCURRENCY, AGENT_HEARTBEAT_MS, AGENT_CLAIM_IDLE_MS, AGENT_HANDLER_SILENCE_MS,
 * AGENT_SHUTDOWN_GRACE_MS.
 * OpenTelemetry is configured by the standard OTEL_* variables, like the gateway's (service name
 * `agent-worker` unless OTEL_SERVICE_NAME says otherwise): each request is a span in the trace
 * the gateway started for the message.
 */
export async function serveAgent(agentType: string, handler: AgentHandler, options: ServeOptions = {}): Promise<AgentWorker> {
  const env = options.env ?? process.env;
  const problems: string[] = [];
  // A type no client message can name would serve nothing, while counting as live.
  if (!isAgentType(agentType)) problems.push(`AGENT_TYPE: ${JSON.stringify(agentType)} must be ${AGENT_TYPE_RULE}`);
  const redisUrl = options.redisUrl ?? env['REDIS_URL'];
  if (!redisUrl) problems.push("REDIS_URL: is required (redis:// or rediss:// URL of the gateways' Redis)");
  else if (!redisUrlParses(redisUrl)) problems.push("REDIS_URL: must be a URL starting with redis:// or rediss://");
  const logLevel = env['LOG_LEVEL']?.trim() || 'info';
  if (options.log === undefined && !(logLevel in pino.levels.values) && logLevel !== 'silent') {
    problems.push(`LOG_LEVEL: must be one of ${[...Object.keys(pino.levels.values), 'silent'].join(', ')} (got ${JSON.stringify(logLevel)})`);
  }
  const num = (name: string, value: string | undefined): number | undefined => {
    if (value === undefined || value.trim() === '') return undefined;
    // Whole numbers, as the gateway's: Redis refuses `COUNT 2.5` or `IDLE 2000.5` at every call.
    if (/^\d+$/.test(value.trim())) return Number(value.trim());
    problems.push(`${name}: must be a whole number of ${name === 'AGENT_CONCURRENCY' ? 'requests' : 'milliseconds'}`);
    return undefined;
  };
  const tuning = {
    concurrency: options.concurrency ?? num('AGENT_CONCURRENCY', env['AGENT_CONCURRENCY']),
    heartbeatMs: options.heartbeatMs ?? num('AGENT_HEARTBEAT_MS', env['AGENT_HEARTBEAT_MS']),
    claimIdleMs: options.claimIdleMs ?? num('AGENT_CLAIM_IDLE_MS', env['AGENT_CLAIM_IDLE_MS']),
    handlerSilenceMs: options.handlerSilenceMs ?? num('AGENT_HANDLER_SILENCE_MS', env['AGENT_HANDLER_SILENCE_MS']),
    shutdownGraceMs: options.shutdownGraceMs ?? num('AGENT_SHUTDOWN_GRACE_MS', env['AGENT_SHUTDOWN_GRACE_MS']),
  };
  // Like the gateway (CONTRACT §1): one stderr line per problem, non-zero exit, before connecting.
  if (problems.length > 0 || !redisUrl) {
    for (const line of problems) process.stderr.write(`config error: ${line}\n`);
    process.exit(2);
  }
  // One id for the worker's Redis identity (consumer, lease) and its telemetry, so they match.
  const workerId = options.workerId ?? (env['AGENT_WORKER_ID']?.trim() || defaultWorkerId());
  const telemetry = startTelemetry({ env, replicaId: workerId, defaultServiceName: 'agent-worker' });
  const log = options.log ?? createWorkerLogger(logLevel);
  const worker = new AgentWorker({
    agentType,
    handler,
    redisUrl,
    keyPrefix: options.keyPrefix ?? env['REDIS_KEY_PREFIX'] ?? 'wsgw:',
    workerId,
    ...tuning,
    handlerIdleTimeoutMs: options.handlerIdleTimeoutMs,
    log,
  });
  const stop = (signal: NodeJS.Signals) => {
    log.info({ signal }, 'stop requested');
    worker
      .stop()
      // The last spans go out before exit, in bounded time.
      .then(() => telemetry.shutdown())
      .then(
        () => {
          if (options.exitOnStop !== false) process.exit(0);
        },
        (err: unknown) => {
          log.error({ err }, 'stop failed');
          process.exit(1);
        },
      );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  await worker.start();
  return worker;
}

/** pino JSON lines on stdout, the same shape as the gateway's. */
export function createWorkerLogger(level = 'info'): Logger {
  return pino({
    level,
    base: { service: 'agent-worker', pid: process.pid },
    redact: { paths: LOG_REDACT_PATHS, remove: true },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    serializers: { err: serializeError },
    // trace_id / span_id inside a request's span, as in the gateway's lines.
    mixin: traceFields,
  });
}

function redisUrlParses(url: string): boolean {
  try {
    parseRedisUrl(url);
    return true;
  } catch {
    return false;
  }
}
