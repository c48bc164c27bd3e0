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
      ['API_CORS_ORIGINS', 'CORS_ORIGINS', 'PORT', 'REDIS_URL', 'SESSION_VALIDATOR'].sort(),
    );
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

describe('loadConfig secrets', () => {
  it('does not echo a malformed REDIS_URL (it may hold a password)', () => {
    const lines = errors({ REDIS_URL: 'http://user:hunter2@redis' });
    expect(lines.some((l) => l.startsWith('REDIS_URL:'))).toBe(true);
    expect(lines.join('\n')).not.toContain('hunter2');
  });
});
