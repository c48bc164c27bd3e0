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
      const { open, rejected } = await openConcurrently(replicas, () => `one-user-${round}`, 50);
      expect(open).toHaveLength(5);
      expect(rejected).toHaveLength(45);
      expect(new Set(rejected.map((r) => `${r.status} ${String(r.error)}`))).toEqual(new Set(['429 user_connection_limit']));
      expect(await slotsInRedis()).toBe(5);
      await closeAll(open);
      await eventually(async () => (await slotsInRedis()) === 0, 5000, 'slots released');
    }
  });

  it('opens exactly WEBSOCKET_MAX_GLOBAL_CONNECTIONS when many users race, every round', async () => {
    for (let round = 0; round < 4; round++) {
      // 40 users x 2 sockets: no user reaches 5, the cluster-wide 20 decides.
      const { open, rejected } = await openConcurrently(replicas, (i) => `user-${round}-${i % 40}`, 80);
      expect(open).toHaveLength(20);
      expect(rejected.every((r) => r.status === 503 && r.error === 'global_connection_limit')).toBe(true);
      expect(await slotsInRedis()).toBe(20);
      await closeAll(open);
      await eventually(async () => (await slotsInRedis()) === 0, 5000, 'slots released');
    }
  });
});
