import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from 'ioredis';
import type { Logger } from '@wsgw/core';
import { RedisHealth } from '@wsgw/redis';
import { startRedisCluster, type RedisClusterProcess } from '@wsgw/testkit';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

/**
 * RedisHealth on a cluster whose master hands its hash slots to its replica. The gateway-level
 * scenarios (both failover kinds, real replicas) are in packages/gateway/test/redis-cluster-failover.test.ts.
 */
describe('RedisHealth on a Redis Cluster failing over (3 masters, one replica each)', () => {
  let cluster: RedisClusterProcess;
  let client: Cluster | undefined;
  let health: RedisHealth | undefined;

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
  }, 60_000);
  afterAll(async () => {
    health?.close();
    client?.disconnect();
    await cluster?.stop();
  });

  it('a graceful failover is no outage: a slot map still naming the old master is refreshed, not taken for Redis gone', async () => {
    // As the gateway's client, but with no periodic slot-map refresh: after the failover this
    // client's map names the old master until something refreshes it (in the gateway, ioredis'
    // 5 s timer or a MOVED reply, which the health check may well come before).
    client = new Cluster([{ host: '127.0.0.1', port: cluster.ports[0] as number }], {
      lazyConnect: true,
      enableOfflineQueue: false,
      slotsRefreshInterval: 0,
      redisOptions: { commandTimeout: 1000, maxRetriesPerRequest: 0 },
    });
    client.on('error', () => {});
    await client.connect();
    // The test asks for every verdict itself.
    health = new RedisHealth(client, quiet, { watchIntervalMs: 3_600_000 });
    const downs: number[] = [];
    health.onDown(() => downs.push(Date.now()));
    expect(await health.verify()).toBe(true);

    const victim = await cluster.masterOf('{slots}');
    const { promoted } = await cluster.failover(victim, { kind: 'graceful' });
    const masters = () => client!.nodes('master').map((n) => n.options.port);
    // The case at hand: Redis answers for every hash slot, this client just does not know where.
    expect(masters()).toContain(victim);
    expect(masters()).not.toContain(promoted);

    expect(await health.verify()).toBe(true);
    expect(downs).toEqual([]);
    expect(masters()).toContain(promoted);
    expect(await client.set('{slots}:after-failover', '1')).toBe('OK');
  });
});
