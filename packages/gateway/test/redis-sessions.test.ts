import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Redis } from 'ioredis';
import {
  connect,
  findRedis,
  spawnGateway,
  startRedisServer,
  startTestGateway,
  uniquePrefix,
  type GatewayProcess,
  type RedisServerProcess,
  type TestRedis,
} from '@wsgw/testkit';

// Real replicas on a machine shared with other work: generous per-test time (waits inside are bounded).
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

/**
 * Issue 3 §8 and §9 in Redis mode: sessions read from Redis (CONTRACT §2), and the per-address
 * throttle on failed session checks counted across replicas.
 */
describe('sessions and the upgrade throttle in Redis mode', () => {
  let server: RedisServerProcess;
  let admin: Redis;
  let replicas: GatewayProcess[] = [];
  const prefix = uniquePrefix('sessions');

  beforeAll(async () => {
    server = await startRedisServer();
    admin = server.admin();
    const env = {
      REDIS_URL: server.url,
      REDIS_KEY_PREFIX: prefix,
      SESSION_VALIDATOR: 'redis',
      WEBSOCKET_SESSION_FAILURES_PER_MINUTE: '3',
      WEBSOCKET_MAX_CONNECTIONS_PER_USER: '1',
    };
    replicas = await Promise.all([spawnGateway(env), spawnGateway(env)]);
  });
  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await server?.stop();
  });

  it('admits the user the session key names, and counts limits by that user across replicas', async () => {
    const [a, b] = replicas as [GatewayProcess, GatewayProcess];
    await admin.set(`${prefix}session:tok-1`, JSON.stringify({ user_id: 'alice' }));
    await admin.set(`${prefix}session:tok-2`, JSON.stringify({ user_id: 'alice' }));
    const first = await connect(a.wsUrl('tok-1'));
    expect(first.opened).toBe(true);
    // Another token of the same user on another replica: alice already has her 1 connection.
    const second = await connect(b.wsUrl('tok-2'));
    expect(second.opened ? 200 : second.rejected.status).toBe(429);
    expect(await admin.zrange(`${prefix}{slots}:user:alice`, 0, -1)).toHaveLength(1);
    if (first.opened) await first.client.close();
  });

  it('answers 503 unavailable when the session store cannot be reached, in bounded time', async () => {
    const [a] = replicas as [GatewayProcess];
    await server.kill();
    const t0 = Date.now();
    const r = await connect(a.wsUrl('tok-1'));
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(r.opened ? null : r.rejected).toMatchObject({ status: 503, body: { error: 'unavailable' } });
    await server.restart();
    // Both replicas notice the outage (a PING a second) and come back.
    for (const gw of replicas) await gw.waitForLog((l) => l['msg'] === 'redis answers again: shared limits apply', 10_000);
  });

  it('throttles an address that keeps failing session checks, across replicas, with its own 429', async () => {
    const [a, b] = replicas as [GatewayProcess, GatewayProcess];
    const statuses: Array<[number, unknown]> = [];
    // 3 failures a minute; each replica learns the budget is spent from its own next failure,
    // so at most 3 + (replicas - 1) tokens are tried before every replica refuses at once.
    for (let i = 0; i < 8; i++) {
      const r = await connect((i % 2 ? b : a).wsUrl(`guess-${i}`));
      expect(r.opened).toBe(false);
      if (!r.opened) statuses.push([r.rejected.status, (r.rejected.body as { error: unknown }).error]);
    }
    const tried = statuses.filter(([s]) => s === 401).length;
    expect(tried).toBeGreaterThanOrEqual(3);
    expect(tried).toBeLessThanOrEqual(3 + 1);
    expect(statuses.slice(tried).every(([s, e]) => s === 429 && e === 'too_many_upgrades')).toBe(true);
    // Even a valid token from that address waits for the window (tokens cannot be guessed at line rate).
    await admin.set(`${prefix}session:tok-3`, JSON.stringify({ user_id: 'bob' }));
    const valid = await connect(a.wsUrl('tok-3'));
    expect(valid.opened ? 200 : valid.rejected.status).toBe(429);
  });
});

describe('sessions in Redis mode: what the session key holds', () => {
  it('a session key holding a hash is no session: 401 session_invalid, not a Redis outage (503)', async () => {
    const redis: TestRedis = await findRedis();
    const admin = redis.admin();
    const prefix = uniquePrefix('sessions-type');
    const gw = await startTestGateway({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, SESSION_VALIDATOR: 'redis' });
    try {
      // CONTRACT §2: the session is the key's string value; GET on a hash fails with WRONGTYPE.
      await admin.hset(`${prefix}session:hash-tok`, 'user_id', 'bob');
      const r = await connect(gw.wsUrl('hash-tok'));
      expect(r.opened ? null : r.rejected).toMatchObject({ status: 401, body: { error: 'session_invalid' } });
      expect(gw.logs().find((l) => l['event'] === 'security.session_invalid')).toMatchObject({ reason: 'malformed_session' });
    } finally {
      await gw.stop();
      const keys = await admin.keys(`${prefix}*`);
      if (keys.length > 0) await admin.del(...keys);
      await redis.stop();
    }
  });
});
