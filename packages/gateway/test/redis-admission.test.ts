import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { spawnGateway, uniquePrefix, type GatewayProcess } from '@wsgw/testkit';
import { closeAll, eventually, openConcurrently } from './redis-support.js';
import { topologies, type Topology } from './redis-topologies.js';

// Real replicas on a machine shared with other work: generous per-test time (waits inside are bounded).
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

/** Issue 3 §1: exact admission across 3 real replicas sharing one Redis (or one Redis Cluster). */
describe.each(topologies)('exact admission across replicas ($name)', ({ start }) => {
  let redis: Topology;
  let replicas: GatewayProcess[] = [];
  const prefix = uniquePrefix('admission');
  const slotsAll = `${prefix}{slots}:all`;

  beforeAll(async () => {
    redis = await start();
    const env = {
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: prefix,
      WEBSOCKET_MAX_CONNECTIONS_PER_USER: '5',
      WEBSOCKET_MAX_GLOBAL_CONNECTIONS: '20',
      WEBSOCKET_LEASE_SECONDS: '5',
    };
    replicas = await Promise.all([spawnGateway(env), spawnGateway(env), spawnGateway(env)]);
  });
  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await redis?.stop();
  });

  const slotsInRedis = () => redis.admin.zcard(slotsAll);

  it('opens exactly WEBSOCKET_MAX_CONNECTIONS_PER_USER of 50 concurrent upgrades of one user, every round', async () => {
    for (let round = 0; round < 6; round++) {
      const { open, rejected, dropped } = await openConcurrently(replicas, () => `one-user-${round}`, 50);
      // Never more than the limit; every refusal is the user limit; Redis counts exactly what is
      // open. (`dropped`: see openConcurrently; normally 0, and open is then exactly 5.)
      expect(open.length).toBeLessThanOrEqual(5);
      expect(open.length + dropped).toBeGreaterThanOrEqual(5);
      expect(rejected.length + open.length + dropped).toBe(50);
      expect(new Set(rejected.map((r) => `${r.status} ${String(r.error)}`))).toEqual(new Set(['429 user_connection_limit']));
      await eventually(async () => (await slotsInRedis()) === open.length, 5000, 'slots == open sockets');
      await closeAll(open);
      await eventually(async () => (await slotsInRedis()) === 0, 5000, 'slots released');
    }
  });

  it('opens exactly WEBSOCKET_MAX_GLOBAL_CONNECTIONS when many users race, every round', async () => {
    for (let round = 0; round < 4; round++) {
      // 40 users x 2 sockets: no user reaches 5, the cluster-wide 20 decides.
      const { open, rejected, dropped } = await openConcurrently(replicas, (i) => `user-${round}-${i % 40}`, 80);
      expect(open.length).toBeLessThanOrEqual(20);
      expect(open.length + dropped).toBeGreaterThanOrEqual(20);
      expect(rejected.every((r) => r.status === 503 && r.error === 'global_connection_limit')).toBe(true);
      await eventually(async () => (await slotsInRedis()) === open.length, 5000, 'slots == open sockets');
      await closeAll(open);
      await eventually(async () => (await slotsInRedis()) === 0, 5000, 'slots released');
    }
  });
});
