import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consumeRate, type Logger } from '@wsgw/core';
import {
  createRedisClient,
  parseRedisUrl,
  RedisConnectionLeases,
  RedisHealth,
  redisKeys,
  RedisRateLimiter,
  type RedisClient,
} from '@wsgw/redis';
import { startRedisCluster, uniquePrefix, type RedisClusterProcess } from '@wsgw/testkit';
import { leasesContract, rateContract } from './limits-contract.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

/** Issue 3 §7: the same scripts and contract on a real local 3-master Redis Cluster. */
describe('limits on Redis Cluster (3 masters)', () => {
  let cluster: RedisClusterProcess;
  const clients: RedisClient[] = [];
  const closers: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
  }, 60_000);
  afterAll(async () => {
    for (const close of closers.splice(0)) await close();
    for (const c of clients.splice(0)) c.disconnect();
    await cluster?.stop();
  });

  async function client(): Promise<RedisClient> {
    const c = createRedisClient(cluster.url);
    clients.push(c);
    await c.connect();
    return c;
  }

  it('reads a cluster REDIS_URL', () => {
    const target = parseRedisUrl(cluster.url);
    expect(target.cluster).toBe(true);
    expect(target.nodes).toHaveLength(3);
  });

  describe('RedisConnectionLeases', () => {
    leasesContract(async () => {
      const prefix = uniquePrefix('cluster-leases');
      const make = async () => {
        const c = await client();
        const health = new RedisHealth(c, quiet);
        const leases = new RedisConnectionLeases(c, health, quiet, {
          keys: redisKeys(prefix, { rateShards: 16 }),
          maxPerUser: 2,
          maxGlobal: 3,
          leaseMs: 30_000,
        });
        closers.push(async () => {
          await leases.close();
          health.close();
        });
        return leases;
      };
      return { leases: await make(), peer: await make() };
    });
  });

  describe('RedisRateLimiter (16 shards over the masters)', () => {
    rateContract(async () => {
      const prefix = uniquePrefix('cluster-rate');
      const make = async () => {
        const c = await client();
        const health = new RedisHealth(c, quiet);
        const rates = new RedisRateLimiter(c, health, { keys: redisKeys(prefix, { rateShards: 16 }), perSecond: 5, perMinute: 8 });
        closers.push(async () => {
          await rates.close();
          health.close();
        });
        return rates;
      };
      return { rates: await make(), peer: await make() };
    });

    it('spreads the windows of many users over every master, one call per shard per turn', async () => {
      const c = await client();
      const health = new RedisHealth(c, quiet);
      const keys = redisKeys(uniquePrefix('spread'), { rateShards: 16 });
      const rates = new RedisRateLimiter(c, health, { keys, perSecond: 100, perMinute: 1000 });
      closers.push(async () => {
        await rates.close();
        health.close();
      });
      const decisions = await Promise.all(Array.from({ length: 400 }, (_, i) => consumeRate(rates, `user-${i % 200}`)));
      expect(decisions.every((d) => d.allowed)).toBe(true);
      expect(rates.stats.calls).toBeLessThanOrEqual(16);
      const perNode = await Promise.all(
        cluster.ports.map(async (port) => (await cluster.nodeAdmin(port).keys(`${keys.prefix}*`)).length),
      );
      expect(perNode.every((n) => n > 0)).toBe(true);
      expect(perNode.reduce((a, b) => a + b, 0)).toBe(200);
    });
  });
});
