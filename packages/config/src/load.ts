import { isIP } from 'node:net';
import { z } from 'zod';
import { defaultReplicaId, type Config } from './config.js';

export type Env = Readonly<Record<string, string | undefined>>;

export type LoadResult = { ok: true; config: Config } | { ok: false; errors: string[] };

/** Values never echoed back in an error line (they may carry credentials). */
const SECRET_VARIABLES = new Set(['REDIS_URL', 'SESSION_JWT_SECRET', 'SESSION_INTROSPECTION_URL', 'SESSION_JWKS_URL']);

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** An optional variable: unset and empty both mean "use the default". */
const opt = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (typeof v === 'string' && v.trim() === '' ? undefined : v), schema.optional());

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  opt(
    z
      .string()
      .trim()
      .regex(/^\d+$/, { message: 'must be a whole number' })
      .transform(Number)
      .pipe(z.number().int().min(min, { message: `must be at least ${min}` }).max(max, { message: `must be at most ${max}` })),
  );

const list = opt(
  z.string().transform((s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter((x) => x !== ''),
  ),
);

const url = (protocols: readonly string[]) =>
  opt(
    z
      .string()
      .trim()
      .refine(
        (s) => {
          try {
            return protocols.includes(new URL(s).protocol);
          } catch {
            return false;
          }
        },
        { message: `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}` },
      ),
  );

const REDIS_URL_FORM = 'must be a URL starting with redis:// or rediss://';

/**
 * Why REDIS_URL cannot be used as written (docs/REDIS.md lists its forms), or undefined. Anything
 * the Redis client would read as NaN (a database `/abc`, a port `nodes=h:x`) is refused here:
 * at run time it became SELECT NaN and a replica silently on database 0. Never quotes the URL,
 * which may hold a password.
 */
function redisUrlProblem(value: string): string | undefined {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return REDIS_URL_FORM;
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') return REDIS_URL_FORM;
  if (u.port === '0') return 'the port must be 1-65535';
  const db = /^\/?(\d*)$/.exec(u.pathname);
  if (!db) return 'the path must be empty or a database number (redis://host:6379/2)';
  const flag = u.searchParams.get('cluster');
  const cluster = flag !== null && flag !== '0' && flag !== 'false';
  if (cluster && Number(db[1] || 0) !== 0) return 'a Redis Cluster has only database 0 (drop the /<database>)';
  const seeds = (u.searchParams.get('nodes') ?? '').split(',').filter((s) => s !== '');
  for (const [i, seed] of seeds.entries()) {
    const port = /^[^:/@\s]*(?::(\d+))?$/.exec(seed);
    if (!port || (port[1] !== undefined && !(Number(port[1]) >= 1 && Number(port[1]) <= 65535))) {
      return `nodes= entry ${i + 1} must be host or host:port with a port 1-65535`;
    }
  }
  return undefined;
}

const redisUrl = opt(
  z
    .string()
    .trim()
    .superRefine((value, ctx) => {
      const problem = redisUrlProblem(value);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    }),
);

/** `10.0.0.7`, `10.0.0.0/8`, `fd00::/8`, `::1`: what node:net's BlockList takes. */
function isAddressOrRange(entry: string): boolean {
  const [address = '', prefix, extra] = entry.split('/');
  const family = address.includes('%') ? 0 : isIP(address);
  if (family === 0 || extra !== undefined) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

const schema = z.object({
  ENVIRONMENT: opt(z.enum(['development', 'production'], { message: 'must be development or production' })),
  HOST: opt(z.string().trim()),
  PORT: int(0, 65535),
  CORS_ORIGINS: list,
  API_CORS_ORIGINS: list,
  WEBSOCKET_PATHS: list,
  WEBSOCKET_MAX_CONNECTIONS_PER_USER: int(1),
  WEBSOCKET_MAX_GLOBAL_CONNECTIONS: int(1),
  WEBSOCKET_MAX_MESSAGES_PER_SECOND: int(1),
  WEBSOCKET_MAX_MESSAGES_PER_MINUTE: int(1),
  WEBSOCKET_MAX_PAYLOAD_BYTES: int(128, 64 * 1024 * 1024),
  WEBSOCKET_MAX_BACKPRESSURE_BYTES: int(1024),
  WEBSOCKET_SESSION_FAILURES_PER_MINUTE: int(0),
  WEBSOCKET_IDLE_TIMEOUT_SECONDS: int(0, 956),
  WEBSOCKET_LEASE_SECONDS: int(2, 3600),
  WEBSOCKET_LIMITS_FAILURE_MODE: opt(z.enum(['local', 'closed'], { message: 'must be local or closed' })),
  WEBSOCKET_TRUSTED_PROXIES: list,
  // Set but empty means "no built-in agents", unlike the other variables.
  WEBSOCKET_BUILTIN_AGENTS: z.string().optional(),
  AGENT_MAX_QUEUE: int(1),
  SHUTDOWN_DRAIN_SECONDS: int(0, 3600),
  AGENT_REPLY_TIMEOUT_SECONDS: int(1, 3600),
  REDIS_URL: redisUrl,
  // Keys carry their own {hash tag} after the prefix; a brace in the prefix would move the tag
  // and split every script's keys across Redis Cluster slots (CROSSSLOT on each call).
  REDIS_KEY_PREFIX: opt(z.string().regex(/^[^{}]*$/, { message: 'must not contain { or } (keys carry their own Redis Cluster hash tags)' })),
  SESSION_VALIDATOR: opt(z.enum(['dev', 'jwt', 'redis', 'http'], { message: 'must be one of dev, jwt, redis, http' })),
  SESSION_JWT_SECRET: opt(z.string()),
  SESSION_JWKS_URL: url(['http:', 'https:']),
  SESSION_JWT_ISSUER: opt(z.string().trim()),
  SESSION_JWT_AUDIENCE: opt(z.string().trim()),
  SESSION_INTROSPECTION_URL: url(['http:', 'https:']),
  SESSION_INTROSPECTION_TIMEOUT_MS: int(1, 60_000),
  LOG_LEVEL: opt(z.enum(LOG_LEVELS, { message: `must be one of ${LOG_LEVELS.join(', ')}` })),
  REPLICA_ID: opt(z.string().trim().regex(/^[A-Za-z0-9_.:-]{1,128}$/, { message: 'must be 1-128 of letters, digits, _ . : -' })),
});

/** Every variable the gateway reads (besides OTEL_*, read by the OpenTelemetry SDK). */
export const VARIABLES: readonly string[] = Object.keys(schema.shape);

/**
 * Reads and checks every variable at once. Problems are returned together, one line each,
 * naming the variable, so an operator fixes them in one go instead of one restart per typo.
 */
export function loadConfig(env: Env): LoadResult {
  // Each variable on its own, so one bad value does not hide the problems of the others.
  const errors: string[] = [];
  const failed = new Set<string>();
  const values: Record<string, unknown> = {};
  for (const [variable, fieldSchema] of Object.entries(schema.shape)) {
    const result = (fieldSchema as z.ZodType).safeParse(env[variable]);
    if (result.success) {
      values[variable] = result.data;
      continue;
    }
    failed.add(variable);
    const shown = SECRET_VARIABLES.has(variable) ? '' : ` (got ${JSON.stringify(env[variable] ?? '')})`;
    for (const issue of result.error.issues) errors.push(`${variable}: ${issue.message}${shown}`);
  }
  const v = values as z.infer<typeof schema>;
  const environment = v.ENVIRONMENT ?? 'development';
  const prod = environment === 'production';

  const corsOrigins = v.CORS_ORIGINS ?? (prod ? [] : ['*']);
  // CONTRACT §1 refuses an empty API_CORS_ORIGINS in production: set but blank there is a mistake
  // (a template whose value went missing), not a request for CORS_ORIGINS. Unset still falls back.
  const apiCorsBlank = prod && env['API_CORS_ORIGINS'] !== undefined && v.API_CORS_ORIGINS === undefined;
  const apiCorsOrigins = v.API_CORS_ORIGINS ?? (apiCorsBlank ? [] : corsOrigins);
  // An unset API_CORS_ORIGINS is CORS_ORIGINS: its problems are reported once, under CORS_ORIGINS.
  const originLists: Array<readonly ['CORS_ORIGINS' | 'API_CORS_ORIGINS', string[]]> = [['CORS_ORIGINS', corsOrigins]];
  if (env['API_CORS_ORIGINS'] !== undefined) originLists.push(['API_CORS_ORIGINS', apiCorsOrigins]);
  for (const [name, origins] of originLists) {
    if (name === 'API_CORS_ORIGINS' && apiCorsBlank) {
      errors.push(`${name}: is set but empty; in production list the origins, or unset it to use CORS_ORIGINS`);
    } else if (prod && origins.length === 0) {
      errors.push(`${name}: is required in production (a comma list of origins)`);
    }
    if (prod && origins.includes('*')) errors.push(`${name}: '*' is not allowed in production; list the origins`);
    for (const origin of origins) {
      if (origin !== '*' && !isOrigin(origin)) {
        errors.push(`${name}: ${JSON.stringify(origin)} is not an origin of the form scheme://host[:port]`);
      }
    }
  }

  const websocketPaths = (v.WEBSOCKET_PATHS ?? ['/api/ws']).map((p) => p.replace(/\/+$/, ''));
  // Blank means the default; a list of nothing (" , ") would be a gateway with no WebSocket endpoint.
  if (websocketPaths.length === 0) errors.push('WEBSOCKET_PATHS: lists no path; give at least one (like /api/ws) or unset it');
  for (const path of websocketPaths) {
    if (!/^\/[A-Za-z0-9/_.~-]*$/.test(path) || path === '') {
      errors.push(`WEBSOCKET_PATHS: ${JSON.stringify(path)} must start with / and hold only URL path characters`);
    }
  }

  const trustedProxies = v.WEBSOCKET_TRUSTED_PROXIES ?? [];
  for (const entry of trustedProxies) {
    if (!isAddressOrRange(entry)) {
      errors.push(
        `WEBSOCKET_TRUSTED_PROXIES: ${JSON.stringify(entry)} is not an IP address or CIDR range (like 10.0.0.7, 10.0.0.0/8, fd00::/8)`,
      );
    }
  }

  const validator = v.SESSION_VALIDATOR ?? (prod ? undefined : 'dev');
  if (validator === undefined) errors.push('SESSION_VALIDATOR: is required in production (jwt, redis or http)');
  if (prod && validator === 'dev') errors.push('SESSION_VALIDATOR: dev accepts any token and is refused in production');
  if (validator === 'jwt' && !v.SESSION_JWT_SECRET && !v.SESSION_JWKS_URL && !failed.has('SESSION_JWKS_URL') && !failed.has('SESSION_JWT_SECRET')) {
    errors.push('SESSION_JWT_SECRET: jwt sessions need SESSION_JWT_SECRET (HS256) or SESSION_JWKS_URL');
  }
  if (validator === 'http' && !v.SESSION_INTROSPECTION_URL) {
    errors.push('SESSION_INTROSPECTION_URL: is required when SESSION_VALIDATOR=http');
  }
  if (validator === 'redis' && !v.REDIS_URL) errors.push('REDIS_URL: is required when SESSION_VALIDATOR=redis');
  if (prod && !v.REDIS_URL) {
    errors.push('REDIS_URL: is required in production (embedded mode serves one replica only)');
  }

  const perSecond = v.WEBSOCKET_MAX_MESSAGES_PER_SECOND ?? 10;
  const perMinute = v.WEBSOCKET_MAX_MESSAGES_PER_MINUTE ?? 100;
  const idle = v.WEBSOCKET_IDLE_TIMEOUT_SECONDS ?? 120;
  if (idle !== 0 && idle < 8) {
    errors.push('WEBSOCKET_IDLE_TIMEOUT_SECONDS: must be 0 (off) or at least 8 (the socket timer ticks every 4 s)');
  }

  const builtinAgents = (v.WEBSOCKET_BUILTIN_AGENTS ?? (prod ? '' : 'echo'))
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const agent of builtinAgents) {
    if (agent !== 'echo') errors.push(`WEBSOCKET_BUILTIN_AGENTS: unknown built-in agent ${JSON.stringify(agent)} (known: echo)`);
  }

  errors.push(...otelProblems(env));

  if (errors.length > 0 || validator === undefined) {
    // A variable whose value was refused is reported once, not again by the checks that used it.
    const reported = new Set<string>();
    const unique = errors.filter((line) => {
      const variable = line.slice(0, line.indexOf(':'));
      if (failed.has(variable) && reported.has(variable)) return false;
      reported.add(variable);
      return true;
    });
    return { ok: false, errors: unique };
  }

  const config: Config = {
    environment,
    host: v.HOST ?? '0.0.0.0',
    port: v.PORT ?? 8000,
    corsOrigins,
    apiCorsOrigins,
    websocketPaths,
    trustedProxies,
    limits: {
      maxConnectionsPerUser: v.WEBSOCKET_MAX_CONNECTIONS_PER_USER ?? 5,
      maxGlobalConnections: v.WEBSOCKET_MAX_GLOBAL_CONNECTIONS ?? 1000,
      maxMessagesPerSecond: perSecond,
      maxMessagesPerMinute: perMinute,
      maxPayloadBytes: v.WEBSOCKET_MAX_PAYLOAD_BYTES ?? 65536,
      maxBackpressureBytes: v.WEBSOCKET_MAX_BACKPRESSURE_BYTES ?? 1024 * 1024,
      sessionFailuresPerMinute: v.WEBSOCKET_SESSION_FAILURES_PER_MINUTE ?? 30,
      failureMode: v.WEBSOCKET_LIMITS_FAILURE_MODE ?? 'local',
    },
    idleTimeoutSeconds: idle,
    leaseSeconds: v.WEBSOCKET_LEASE_SECONDS ?? 30,
    builtinAgents,
    agentMaxQueue: v.AGENT_MAX_QUEUE ?? 10_000,
    shutdownDrainSeconds: v.SHUTDOWN_DRAIN_SECONDS ?? 10,
    agentReplyTimeoutSeconds: v.AGENT_REPLY_TIMEOUT_SECONDS ?? 60,
    redis: v.REDIS_URL ? { url: v.REDIS_URL, keyPrefix: v.REDIS_KEY_PREFIX ?? 'wsgw:' } : null,
    session: {
      validator,
      jwtSecret: v.SESSION_JWT_SECRET,
      jwksUrl: v.SESSION_JWKS_URL,
      jwtIssuer: v.SESSION_JWT_ISSUER,
      jwtAudience: v.SESSION_JWT_AUDIENCE,
      introspectionUrl: v.SESSION_INTROSPECTION_URL,
      introspectionTimeoutMs: v.SESSION_INTROSPECTION_TIMEOUT_MS ?? 2000,
    },
    logLevel: v.LOG_LEVEL ?? 'info',
    replicaId: v.REPLICA_ID ?? defaultReplicaId(),
  };
  return { ok: true, config: deepFreeze(config) };
}

/** The standard OTEL_TRACES_SAMPLER values the gateway builds (telemetry's sampler.ts). */
export const OTEL_SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;

const OTLP_PROTOCOLS = ['grpc', 'http/protobuf', 'http/json'];
const OTLP_SIGNALS = ['', 'TRACES_', 'METRICS_', 'LOGS_'];

/**
 * The OTEL_* variables the gateway documents, checked like its own: the SDK reads them itself and,
 * unless OTEL_LOG_LEVEL is set, says nothing of a value it cannot use (an endpoint without its
 * scheme sent everything to localhost:4318; an unknown sampler sampled every trace). Nothing is
 * checked when OTEL_SDK_DISABLED=true.
 */
function otelProblems(env: Env): string[] {
  const problems: string[] = [];
  const set = (name: string) => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  };
  if (set('OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return problems;
  for (const signal of OTLP_SIGNALS) {
    const endpoint = `OTEL_EXPORTER_OTLP_${signal}ENDPOINT`;
    const value = set(endpoint);
    if (value !== undefined && !isHttpUrl(value)) {
      problems.push(`${endpoint}: must be a URL starting with http:// or https:// (got ${JSON.stringify(value)})`);
    }
    const protocol = `OTEL_EXPORTER_OTLP_${signal}PROTOCOL`;
    const given = set(protocol);
    if (given !== undefined && !OTLP_PROTOCOLS.includes(given)) {
      problems.push(`${protocol}: must be one of ${OTLP_PROTOCOLS.join(', ')} (got ${JSON.stringify(given)})`);
    }
  }
  for (const name of ['OTEL_METRIC_EXPORT_INTERVAL', 'OTEL_METRIC_EXPORT_TIMEOUT', 'OTEL_BSP_SCHEDULE_DELAY', 'OTEL_BSP_EXPORT_TIMEOUT']) {
    const value = set(name);
    if (value !== undefined && !/^\d+$/.test(value)) problems.push(`${name}: must be a whole number of milliseconds (got ${JSON.stringify(value)})`);
  }
  const sampler = set('OTEL_TRACES_SAMPLER')?.toLowerCase();
  if (sampler !== undefined && !(OTEL_SAMPLERS as readonly string[]).includes(sampler)) {
    problems.push(`OTEL_TRACES_SAMPLER: must be one of ${OTEL_SAMPLERS.join(', ')} (got ${JSON.stringify(sampler)})`);
  }
  const ratio = set('OTEL_TRACES_SAMPLER_ARG');
  if (ratio !== undefined && (sampler === undefined || sampler.endsWith('traceidratio'))) {
    const n = Number(ratio);
    if (!Number.isFinite(n) || n < 0 || n > 1) problems.push(`OTEL_TRACES_SAMPLER_ARG: must be a ratio from 0 to 1 (got ${JSON.stringify(ratio)})`);
  }
  return problems;
}

function isHttpUrl(value: string): boolean {
  try {
    const u = new URL(value);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

function isOrigin(value: string): boolean {
  try {
    const u = new URL(value);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.origin === value.replace(/\/+$/, '').toLowerCase();
  } catch {
    return false;
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
