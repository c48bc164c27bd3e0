import { describe, expect, it } from 'vitest';
import { loadConfig } from '@wsgw/config';

function ok(env: Record<string, string>) {
  const result = loadConfig(env);
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return result.config;
}

function errors(env: Record<string, string>): string[] {
  const result = loadConfig(env);
  if (result.ok) throw new Error('expected configuration errors');
  return result.errors;
}

const PROD = {
  ENVIRONMENT: 'production',
  CORS_ORIGINS: 'https://app.example.com',
  SESSION_VALIDATOR: 'jwt',
  SESSION_JWT_SECRET: 's3cret',
  REDIS_URL: 'redis://redis:6379',
};

describe('loadConfig', () => {
  it('gives every CONTRACT §2 default in development', () => {
    const c = ok({});
    expect(c.environment).toBe('development');
    expect(c.host).toBe('0.0.0.0');
    expect(c.port).toBe(8000);
    expect(c.corsOrigins).toEqual(['*']);
    expect(c.apiCorsOrigins).toEqual(['*']);
    expect(c.websocketPaths).toEqual(['/api/ws']);
    expect(c.limits).toMatchObject({
      maxConnectionsPerUser: 5,
      maxGlobalConnections: 1000,
      maxMessagesPerSecond: 10,
      maxMessagesPerMinute: 100,
      maxPayloadBytes: 65536,
      failureMode: 'local',
    });
    expect(c.idleTimeoutSeconds).toBe(120);
    expect(c.leaseSeconds).toBe(30);
    expect(c.builtinAgents).toEqual(['echo']);
    expect(c.shutdownDrainSeconds).toBe(10);
    expect(c.agentReplyTimeoutSeconds).toBe(60);
    expect(c.redis).toBeNull();
    expect(c.session.validator).toBe('dev');
    expect(c.logLevel).toBe('info');
  });

  it('reads every variable', () => {
    const c = ok({
      HOST: '127.0.0.1',
      PORT: '9001',
      CORS_ORIGINS: 'https://a.example, https://b.example:8443',
      API_CORS_ORIGINS: 'https://admin.example',
      WEBSOCKET_PATHS: '/api/ws,/v2/ws/',
      WEBSOCKET_MAX_CONNECTIONS_PER_USER: '2',
      WEBSOCKET_MAX_GLOBAL_CONNECTIONS: '50',
      WEBSOCKET_MAX_MESSAGES_PER_SECOND: '3',
      WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '30',
      WEBSOCKET_MAX_PAYLOAD_BYTES: '1024',
      WEBSOCKET_IDLE_TIMEOUT_SECONDS: '16',
      WEBSOCKET_LEASE_SECONDS: '5',
      WEBSOCKET_LIMITS_FAILURE_MODE: 'closed',
      WEBSOCKET_BUILTIN_AGENTS: '',
      SHUTDOWN_DRAIN_SECONDS: '3',
      AGENT_REPLY_TIMEOUT_SECONDS: '7',
      REDIS_URL: 'rediss://user:pw@redis.example:6380/0',
      REDIS_KEY_PREFIX: 'blue:',
      SESSION_VALIDATOR: 'http',
      SESSION_INTROSPECTION_URL: 'https://auth.example/introspect',
      LOG_LEVEL: 'warn',
    });
    expect(c.host).toBe('127.0.0.1');
    expect(c.port).toBe(9001);
    expect(c.corsOrigins).toEqual(['https://a.example', 'https://b.example:8443']);
    expect(c.apiCorsOrigins).toEqual(['https://admin.example']);
    expect(c.websocketPaths).toEqual(['/api/ws', '/v2/ws']);
    expect(c.limits).toMatchObject({
      maxConnectionsPerUser: 2,
      maxGlobalConnections: 50,
      maxMessagesPerSecond: 3,
      maxMessagesPerMinute: 30,
      maxPayloadBytes: 1024,
      failureMode: 'closed',
    });
    expect(c.idleTimeoutSeconds).toBe(16);
    expect(c.leaseSeconds).toBe(5);
    expect(c.builtinAgents).toEqual([]);
    expect(c.shutdownDrainSeconds).toBe(3);
    expect(c.agentReplyTimeoutSeconds).toBe(7);
    expect(c.redis).toEqual({ url: 'rediss://user:pw@redis.example:6380/0', keyPrefix: 'blue:' });
    expect(c.session.validator).toBe('http');
    expect(c.logLevel).toBe('warn');
  });

  it('API_CORS_ORIGINS defaults to CORS_ORIGINS', () => {
    expect(ok({ CORS_ORIGINS: 'https://a.example' }).apiCorsOrigins).toEqual(['https://a.example']);
  });

  it('is frozen', () => {
    const c = ok({});
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.limits)).toBe(true);
    expect(() => {
      (c.limits as { maxConnectionsPerUser: number }).maxConnectionsPerUser = 99;
    }).toThrow();
  });

  it('accepts a valid production configuration, with production defaults', () => {
    const c = ok(PROD);
    expect(c.builtinAgents).toEqual([]);
    expect(c.session.validator).toBe('jwt');
  });

  it('reports every problem at once, each naming its variable', () => {
    const lines = errors({
      PORT: 'eighty',
      WEBSOCKET_MAX_CONNECTIONS_PER_USER: '-1',
      WEBSOCKET_MAX_MESSAGES_PER_SECOND: '1.5',
      WEBSOCKET_LIMITS_FAILURE_MODE: 'open',
      SESSION_VALIDATOR: 'magic',
      REDIS_URL: 'http://not-redis',
    });
    const vars = lines.map((l) => l.split(':')[0]);
    expect(vars).toEqual(
      expect.arrayContaining([
        'PORT',
        'WEBSOCKET_MAX_CONNECTIONS_PER_USER',
        'WEBSOCKET_MAX_MESSAGES_PER_SECOND',
        'WEBSOCKET_LIMITS_FAILURE_MODE',
        'SESSION_VALIDATOR',
        'REDIS_URL',
      ]),
    );
    expect(lines).toHaveLength(6);
  });

  it('a bad value does not hide the policy problems of other variables', () => {
    const lines = errors({ ...PROD, CORS_ORIGINS: '*', PORT: 'x', SESSION_VALIDATOR: 'magic', REDIS_URL: '' });
    expect(lines.map((l) => l.split(':')[0]).sort()).toEqual(
      ['CORS_ORIGINS', 'PORT', 'REDIS_URL', 'SESSION_VALIDATOR'].sort(),
    );
  });

  it.each([
    // Before: also "SESSION_JWT_SECRET: jwt sessions need SESSION_JWT_SECRET or SESSION_JWKS_URL".
    [{ SESSION_VALIDATOR: 'jwt', SESSION_JWKS_URL: 'ftp://keys.example.com/jwks' }, 'SESSION_JWKS_URL: must be a URL'],
    // Before: also blamed on API_CORS_ORIGINS, which was not set (it inherits CORS_ORIGINS).
    [{ CORS_ORIGINS: 'app.example.com' }, 'CORS_ORIGINS: "app.example.com" is not an origin'],
    [{ ...PROD, CORS_ORIGINS: '*' }, "CORS_ORIGINS: '*' is not allowed in production"],
  ])('one bad value is one line, under the variable that was set (%#)', (env, line) => {
    expect(errors(env)).toEqual([expect.stringContaining(line)]);
  });

  it('refuses a REDIS_KEY_PREFIX with { or }: it would move every key\'s cluster hash tag (CROSSSLOT)', () => {
    expect(errors({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_KEY_PREFIX: 'app{1}:' })).toEqual([
      expect.stringContaining('REDIS_KEY_PREFIX: must not contain { or }'),
    ]);
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_KEY_PREFIX: 'app-1:' }).ok).toBe(true);
  });

  it.each([
    // Before: nothing said anything; telemetry went to localhost:4318, or a typo sampled every trace.
    ['OTEL_EXPORTER_OTLP_ENDPOINT', '127.0.0.1:4318'],
    ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'collector:4318/v1/traces'],
    ['OTEL_EXPORTER_OTLP_PROTOCOL', 'http/protobufs'],
    ['OTEL_EXPORTER_OTLP_METRICS_PROTOCOL', 'json'],
    ['OTEL_METRIC_EXPORT_INTERVAL', 'ten-seconds'],
    ['OTEL_BSP_SCHEDULE_DELAY', '1.5'],
    ['OTEL_TRACES_SAMPLER', 'parentbased_traceidratio_typo'],
    ['OTEL_TRACES_SAMPLER_ARG', '5'],
  ])('refuses %s=%s, naming it', (variable, value) => {
    expect(errors({ [variable]: value })).toEqual([expect.stringMatching(new RegExp(`^${variable}: `))]);
    // Unless telemetry is off, when none of them is read.
    expect(loadConfig({ [variable]: value, OTEL_SDK_DISABLED: 'true' }).ok).toBe(true);
  });

  it('accepts the OTEL_* values the SDK takes', () => {
    const result = loadConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector:4318',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/json',
      OTEL_METRIC_EXPORT_INTERVAL: '10000',
      OTEL_TRACES_SAMPLER: 'ParentBased_TraceIdRatio',
      OTEL_TRACES_SAMPLER_ARG: '0.05',
    });
    expect(result.ok).toBe(true);
  });

  it.each([
    [{ ...PROD, CORS_ORIGINS: '*' }, 'CORS_ORIGINS'],
    [{ ...PROD, CORS_ORIGINS: '' }, 'CORS_ORIGINS'],
    [{ ...PROD, API_CORS_ORIGINS: '*' }, 'API_CORS_ORIGINS'],
    [{ ...PROD, SESSION_VALIDATOR: 'dev' }, 'SESSION_VALIDATOR'],
    [{ ...PROD, SESSION_VALIDATOR: '' }, 'SESSION_VALIDATOR'],
    [{ ...PROD, REDIS_URL: '' }, 'REDIS_URL'],
  ])('refuses unsafe production settings (%#)', (env, variable) => {
    expect(errors(env).some((l) => l.startsWith(`${variable}:`))).toBe(true);
  });

  it.each([
    [{ SESSION_VALIDATOR: 'jwt' }, 'SESSION_JWT_SECRET'],
    [{ SESSION_VALIDATOR: 'http' }, 'SESSION_INTROSPECTION_URL'],
    [{ SESSION_VALIDATOR: 'redis' }, 'REDIS_URL'],
    [{ CORS_ORIGINS: 'example.com' }, 'CORS_ORIGINS'],
    [{ WEBSOCKET_PATHS: 'api/ws' }, 'WEBSOCKET_PATHS'],
    [{ WEBSOCKET_IDLE_TIMEOUT_SECONDS: '3' }, 'WEBSOCKET_IDLE_TIMEOUT_SECONDS'],
    [{ WEBSOCKET_BUILTIN_AGENTS: 'echo,oracle' }, 'WEBSOCKET_BUILTIN_AGENTS'],
    [{ ENVIRONMENT: 'staging' }, 'ENVIRONMENT'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ SESSION_JWKS_URL: 'ftp://keys', SESSION_VALIDATOR: 'jwt' }, 'SESSION_JWKS_URL'],
  ])('names the variable in each problem (%#)', (env, variable) => {
    expect(errors(env).some((l) => l.startsWith(`${variable}:`))).toBe(true);
  });

  it('never echoes a secret it refuses', () => {
    const lines = errors({ ...PROD, CORS_ORIGINS: '*' });
    expect(lines.join('\n')).not.toContain('s3cret');
  });
});

describe('loadConfig: REDIS_URL forms (docs/REDIS.md)', () => {
  it.each([
    'redis://127.0.0.1:6379',
    'redis://127.0.0.1:6379/',
    'redis://127.0.0.1:6379/2',
    'rediss://user:pw@redis.example:6380/0',
    'redis://redis',
    'redis://host1:7000?cluster=1',
    'redis://host1:7000/0?cluster=1&nodes=host2:7001,host3:7002,host4',
  ])('accepts %s', (url) => {
    expect(ok({ REDIS_URL: url }).redis?.url).toBe(url);
  });

  it.each([
    ['redis://user:hunter2@127.0.0.1:6379/abc', 'database'],
    ['redis://user:hunter2@127.0.0.1:6379/2/x', 'database'],
    ['redis://user:hunter2@127.0.0.1:6379/-1', 'database'],
    ['redis://user:hunter2@127.0.0.1:0', 'port'],
    ['redis://user:hunter2@127.0.0.1:99999', 'redis://'],
    ['redis://user:hunter2@host1:7000?cluster=1&nodes=host2:abc', 'nodes='],
    ['redis://user:hunter2@host1:7000?cluster=1&nodes=host2:7001,host3:70000', 'nodes='],
    ['redis://user:hunter2@host1:7000?cluster=1&nodes=host2:7001:9', 'nodes='],
    ['redis://user:hunter2@host1:7000/3?cluster=1', 'database 0'],
  ])('refuses %s in one line naming REDIS_URL, without the password', (url, says) => {
    const lines = errors({ REDIS_URL: url });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^REDIS_URL: /);
    expect(lines[0]).toContain(says);
    expect(lines[0]).not.toContain('hunter2');
  });
});

describe('loadConfig: lists set to nothing', () => {
  it('WEBSOCKET_PATHS listing no path is an error; blank still means the default', () => {
    expect(errors({ WEBSOCKET_PATHS: ' , ' })).toEqual([expect.stringMatching(/^WEBSOCKET_PATHS: lists no path/)]);
    expect(errors({ WEBSOCKET_PATHS: ',' })).toEqual([expect.stringMatching(/^WEBSOCKET_PATHS: /)]);
    expect(ok({ WEBSOCKET_PATHS: '' }).websocketPaths).toEqual(['/api/ws']);
  });

  it('production refuses API_CORS_ORIGINS set but empty (CONTRACT §1); unset still falls back to CORS_ORIGINS', () => {
    for (const blank of ['', '  ', ' , ']) {
      expect(errors({ ...PROD, API_CORS_ORIGINS: blank })).toEqual([expect.stringMatching(/^API_CORS_ORIGINS: /)]);
    }
    expect(ok(PROD).apiCorsOrigins).toEqual(['https://app.example.com']);
  });

  it('development keeps the fallback for a blank API_CORS_ORIGINS', () => {
    expect(ok({ CORS_ORIGINS: 'https://a.example', API_CORS_ORIGINS: '' }).apiCorsOrigins).toEqual(['https://a.example']);
  });
});

describe('loadConfig: WEBSOCKET_TRUSTED_PROXIES', () => {
  it('trusts no proxy by default', () => {
    expect(ok({}).trustedProxies).toEqual([]);
    expect(ok({ WEBSOCKET_TRUSTED_PROXIES: '' }).trustedProxies).toEqual([]);
  });

  it('reads IPv4 and IPv6 addresses and CIDR ranges', () => {
    const entries = ['10.0.0.7', '10.0.0.0/8', '192.168.1.0/24', '0.0.0.0/0', '::1', 'fd00::/8', '2001:db8::/128', '::ffff:10.0.0.0/104'];
    expect(ok({ WEBSOCKET_TRUSTED_PROXIES: ` ${entries.join(' , ')} ` }).trustedProxies).toEqual(entries);
  });

  it('refuses anything else, one line per entry naming the variable and the entry', () => {
    const bad = ['proxy.internal', '10.0.0.0/33', 'fd00::/129', '10.0.0.0/8/1', '10.0.0.0/', '999.1.1.1', 'fe80::1%eth0', '10.0.0.1:80'];
    const lines = errors({ WEBSOCKET_TRUSTED_PROXIES: ['10.0.0.1', ...bad].join(',') });
    expect(lines).toHaveLength(bad.length);
    for (const [i, entry] of bad.entries()) {
      expect(lines[i]).toMatch(/^WEBSOCKET_TRUSTED_PROXIES: /);
      expect(lines[i]).toContain(JSON.stringify(entry));
    }
  });
});

describe('loadConfig secrets', () => {
  it('does not echo a malformed REDIS_URL (it may hold a password)', () => {
    const lines = errors({ REDIS_URL: 'http://user:hunter2@redis' });
    expect(lines.some((l) => l.startsWith('REDIS_URL:'))).toBe(true);
    expect(lines.join('\n')).not.toContain('hunter2');
  });
});
