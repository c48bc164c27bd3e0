import type { PeerCertificate } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Cluster } from 'ioredis';
import { consumeRate, type Logger } from '@wsgw/core';
import {
  connectionProblem,
  connectRedis,
  createRedisClient,
  RedisConnectionLeases,
  RedisHealth,
  redisKeys,
  RedisRateLimiter,
  type RedisClient,
  type RedisClientOptions,
} from '@wsgw/redis';
import {
  createTestCertificates,
  startRedisCluster,
  startRedisServer,
  uniquePrefix,
  type RedisClusterProcess,
  type TestCertificates,
} from '@wsgw/testkit';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

/**
 * `rediss://` against real TLS-only redis-servers whose certificate a private CA issued for the
 * name `localhost` (no IP address in it), as a managed Redis' would be. The client is given the
 * CA with the `tls.ca` option here; the gateway process takes it from NODE_EXTRA_CA_CERTS
 * (packages/gateway/test/redis-tls.test.ts).
 */
describe('rediss:// (TLS, private CA)', () => {
  let certs: TestCertificates;
  const cleanups: Array<() => Promise<void> | void> = [];

  beforeAll(() => {
    certs = createTestCertificates({ dnsNames: ['localhost'] });
  });
  afterAll(() => certs?.remove());
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      try {
        await cleanup();
      } catch {
        // best effort
      }
    }
  });

  /** A client as the gateway builds it, trusting `ca`; every `error` event it emits is kept. */
  function client(url: string, ca: string, options: RedisClientOptions = {}): { client: RedisClient; errors: string[] } {
    const c = createRedisClient(url, { ...options, tls: { ca } });
    const errors: string[] = [];
    c.on('error', (err: Error) => errors.push(err.message));
    cleanups.push(() => c.disconnect());
    return { client: c, errors };
  }

  /** Leases and rate windows on `c`, the gateway's limit scripts, with `shards` rate shards. */
  function limits(c: RedisClient, shards: number) {
    const health = new RedisHealth(c, quiet);
    const keys = redisKeys(uniquePrefix('tls'), { rateShards: shards });
    const leases = new RedisConnectionLeases(c, health, quiet, { keys, maxPerUser: 2, maxGlobal: 10, leaseMs: 30_000 });
    const rates = new RedisRateLimiter(c, health, { keys, perSecond: 100, perMinute: 1000 });
    cleanups.push(async () => {
      await rates.close();
      await leases.close();
      health.close();
    });
    return { health, keys, leases, rates };
  }

  describe('one Redis', () => {
    it('connects by the name its certificate is for and runs the limit scripts', async () => {
      const server = await startRedisServer({ tls: certs });
      cleanups.push(() => server.stop());
      const { client: c } = client(`rediss://localhost:${server.port}`, certs.ca);
      expect(await connectRedis(c, 5_000)).toBe(true);
      const { health, leases, rates } = limits(c, 1);
      expect(await leases.acquire('conn-1', 'user-1')).toEqual({ granted: true });
      expect((await consumeRate(rates, 'user-1')).allowed).toBe(true);
      expect(await health.verify()).toBe(true);
    });

    it('refuses a certificate its CA did not sign: the first connection fails in bounded time, saying why', async () => {
      const server = await startRedisServer({ tls: certs });
      cleanups.push(() => server.stop());
      const { client: c, errors } = client(`rediss://localhost:${server.port}`, certs.otherCa);
      const started = Date.now();
      expect(await connectRedis(c, 5_000)).toBe(false);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(errors.join('\n')).toMatch(/certificate/i);
      expect(await connectionProblem(c)).toMatch(/certificate/i);
      await expect(c.ping()).rejects.toThrow();
    });

    it('by IP address: refused against a certificate for a hostname only, accepted when it names the IP', async () => {
      const server = await startRedisServer({ tls: certs });
      cleanups.push(() => server.stop());
      const byIp = client(`rediss://127.0.0.1:${server.port}`, certs.ca);
      expect(await connectRedis(byIp.client, 5_000)).toBe(false);
      expect(byIp.errors.join('\n')).toMatch(/IP: 127\.0\.0\.1 is not in the cert's list/);

      const withIp = createTestCertificates({ dnsNames: ['localhost'], ips: ['127.0.0.1'] });
      cleanups.push(() => withIp.remove());
      const ipServer = await startRedisServer({ tls: withIp });
      cleanups.push(() => ipServer.stop());
      const { client: c } = client(`rediss://127.0.0.1:${ipServer.port}`, withIp.ca);
      expect(await connectRedis(c, 5_000)).toBe(true);
      expect(await c.ping()).toBe('PONG');
    });
  });

  describe('Redis Cluster (3 masters announcing their IP addresses)', () => {
    let cluster: RedisClusterProcess;
    beforeAll(async () => {
      cluster = await startRedisCluster({ masters: 3, tls: certs });
    }, 60_000);
    afterAll(async () => cluster?.stop());

    it('a seed named by the certificate`s hostname reaches every master, and the limit scripts run on each', async () => {
      const { client: c, errors } = client(`rediss://localhost:${cluster.ports[0]}?cluster=1`, certs.ca);
      expect({ connected: await connectRedis(c, 5_000), errors }).toEqual({ connected: true, errors: [] });
      const { health, keys, leases, rates } = limits(c, 16);
      // A PING to the master of every hash slot.
      expect(await health.verify()).toBe(true);
      expect(await leases.acquire('conn-1', 'user-1')).toEqual({ granted: true });
      const decisions = await Promise.all(Array.from({ length: 200 }, (_, i) => consumeRate(rates, `user-${i}`)));
      expect(decisions.every((d) => d.allowed)).toBe(true);
      const perNode = await Promise.all(cluster.ports.map(async (port) => (await cluster.nodeAdmin(port).keys(`${keys.prefix}*`)).length));
      expect(perNode.every((n) => n > 0)).toBe(true);
    });

    it('refuses the nodes when their certificate is not from the CA it trusts, saying why', async () => {
      const { client: c, errors } = client(`rediss://localhost:${cluster.ports[0]}?cluster=1`, certs.otherCa);
      const started = Date.now();
      expect(await connectRedis(c, 5_000)).toBe(false);
      expect(Date.now() - started).toBeLessThan(5_000);
      // All ioredis says: "Failed to refresh slots cache." (its last node error: "Connection is closed.").
      expect(errors.join('\n')).not.toMatch(/certificate/i);
      expect(await connectionProblem(c)).toMatch(/certificate/i);
    });

    it('a seed named by IP address is refused against a certificate for a hostname only', async () => {
      const { client: c } = client(`rediss://127.0.0.1:${cluster.ports[0]}?cluster=1`, certs.ca);
      expect(await connectRedis(c, 5_000)).toBe(false);
      expect(await connectionProblem(c)).toMatch(/IP: 127\.0\.0\.1 is not in the cert's list/);
    });

    // Last: it changes what the nodes announce. AWS ElastiCache's TLS clusters announce hostnames.
    it('nodes announcing a hostname (cluster-preferred-endpoint-type hostname) are reached by it', async () => {
      for (const port of cluster.ports) {
        const admin = cluster.nodeAdmin(port);
        await admin.config('SET', 'cluster-announce-hostname', 'localhost');
        await admin.config('SET', 'cluster-preferred-endpoint-type', 'hostname');
      }
      // Until every node names every master by hostname (gossip carries the hostnames).
      const deadline = Date.now() + 10_000;
      const byHostname = async () => {
        for (const port of cluster.ports) {
          const ranges = (await cluster.nodeAdmin(port).cluster('SLOTS')) as unknown as Array<[number, number, [string, number]]>;
          if (!ranges.every(([, , [host]]) => host === 'localhost')) return false;
        }
        return true;
      };
      while (!(await byHostname())) {
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((r) => setTimeout(r, 100));
      }
      const { client: c, errors } = client(`rediss://localhost:${cluster.ports[0]}?cluster=1`, certs.ca);
      expect({ connected: await connectRedis(c, 5_000), errors }).toEqual({ connected: true, errors: [] });
      expect((c as Cluster).nodes('master').map((node) => node.options.host)).toEqual(['localhost', 'localhost', 'localhost']);
      const { health, keys, rates } = limits(c, 16);
      expect(await health.verify()).toBe(true);
      const decisions = await Promise.all(Array.from({ length: 200 }, (_, i) => consumeRate(rates, `user-${i}`)));
      expect(decisions.every((d) => d.allowed)).toBe(true);
      const perNode = await Promise.all(cluster.ports.map(async (port) => (await cluster.nodeAdmin(port).keys(`${keys.prefix}*`)).length));
      expect(perNode.every((n) => n > 0)).toBe(true);
    });
  });

  it('a Cluster node`s certificate must be valid for the address dialled or a hostname REDIS_URL names, nothing else', () => {
    const check = (url: string) => {
      const c = createRedisClient(url) as Cluster;
      c.disconnect();
      const verify = c.options.redisOptions?.tls?.checkServerIdentity;
      if (!verify) throw new Error('no checkServerIdentity');
      return (host: string, altNames: string) =>
        verify(host, { subject: { CN: 'redis' }, subjectaltname: altNames } as unknown as PeerCertificate) === undefined;
    };
    const byName = check('rediss://cfg.redis.internal:6379?cluster=1&nodes=10.0.0.9:6379');
    expect(byName('10.0.0.5', 'DNS:cfg.redis.internal')).toBe(true);
    expect(byName('10.0.0.5', 'DNS:*.redis.internal')).toBe(true);
    expect(byName('10.0.0.5', 'IP Address:10.0.0.5')).toBe(true);
    expect(byName('node-2.redis.internal', 'DNS:node-2.redis.internal')).toBe(true);
    expect(byName('10.0.0.5', 'DNS:other.example')).toBe(false);
    expect(byName('10.0.0.5', 'IP Address:10.0.0.9')).toBe(false);
    const byAddress = check('rediss://10.0.0.9:6379?cluster=1');
    expect(byAddress('10.0.0.9', 'IP Address:10.0.0.9')).toBe(true);
    expect(byAddress('10.0.0.5', 'DNS:cfg.redis.internal')).toBe(false);
  });
});
