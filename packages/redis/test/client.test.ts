import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import type { Logger } from '@wsgw/core';
import { connectRedis, createRedisClient, RedisAgentBus, RedisHealth, redisKeys, type RedisClient } from '@wsgw/redis';
import { createLogger } from '@wsgw/telemetry';
import { freePort, startRedisServer, TcpProxy } from '@wsgw/testkit';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

/** Polls until `check` holds or `timeoutMs` passes; answers whether it held. */
async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
  return check();
}

describe('the Redis client under Redis trouble (every decision in bounded time, CONTRACT §2)', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      try {
        await cleanup();
      } catch {
        // best effort
      }
    }
  });

  it(
    'a link that went silent for good (half-open TCP) is replaced: Redis answering new connections is seen within 5 s',
    async () => {
      const redis = await startRedisServer();
      cleanups.push(() => redis.stop());
      const proxy = await TcpProxy.start(redis.port);
      cleanups.push(() => proxy.close());

      // The limits client and the client the `redis` session validator GETs with, as stores.ts builds them.
      const limits = createRedisClient(proxy.url, { connectionName: 'test:limits' });
      const shared = createRedisClient(proxy.url, { connectionName: 'test:shared' });
      cleanups.push(() => limits.disconnect());
      cleanups.push(() => shared.disconnect());
      const health = new RedisHealth(limits, quiet);
      cleanups.push(() => health.close());
      expect(await connectRedis(limits)).toBe(true);
      expect(await connectRedis(shared)).toBe(true);
      expect(await shared.set('test:session:tok', '{"user_id":"u1"}')).toBe('OK');

      // The old flows vanish; Redis itself is fine and takes new connections at once.
      proxy.stallOpenLinks();
      expect(await waitFor(() => health.isDown(), 5_000)).toBe(true);
      const downAt = Date.now();

      // CONTRACT §2: within 5 s of Redis answering again shared limits apply again (slots re-registered).
      const upAgain = await waitFor(() => health.state === 'up', 5_000);
      // CONTRACT §4: a `redis` session validator reads sessions again (not 503 for ever).
      const sessionRead = await waitFor(
        () => shared.get('test:session:tok').then((v) => v !== null, () => false),
        Math.max(0, 5_000 - (Date.now() - downAt)),
      );
      expect({ upAgain, sessionRead }).toEqual({ upAgain: true, sessionRead: true });
    },
    30_000,
  );

  it(
    'after a failover that demoted the master (READONLY), writes reach the new master within 5 s',
    async () => {
      const a = await startRedisServer();
      cleanups.push(() => a.stop());
      const b = await startRedisServer();
      cleanups.push(() => b.stop());
      const adminA = a.admin();
      const adminB = b.admin();
      await adminB.replicaof('127.0.0.1', a.port);
      const proxy = await TcpProxy.start(a.port);
      cleanups.push(() => proxy.close());

      const client = createRedisClient(proxy.url, { connectionName: 'test:failover' });
      cleanups.push(() => client.disconnect());
      expect(await connectRedis(client)).toBe(true);
      expect(await client.set('test:k', '1')).toBe('OK');

      // The failover (Sentinel-less managed Redis, an operator on Kubernetes): the replica is
      // promoted, the old master follows it, the service name now leads to the new master.
      await adminB.replicaof('NO', 'ONE');
      await adminA.replicaof('127.0.0.1', b.port);
      proxy.retarget(b.port);
      const failoverAt = Date.now();

      let lastError = '';
      const writes = await waitFor(
        () =>
          client.set('test:k', '2').then(
            () => true,
            (err: Error) => {
              lastError = err.message;
              return false;
            },
          ),
        5_000,
        200,
      );
      expect({ writes, lastError: writes ? '' : lastError }).toEqual({ writes: true, lastError: '' });
      expect(Date.now() - failoverAt).toBeLessThan(6_000);
    },
    30_000,
  );

  // A Cluster nests the failed AUTH one level down (ClusterAllFailedError's lastNodeError.command).
  it.each([
    ['a single Redis', ''],
    ['a Redis Cluster URL (?cluster=1)', '/?cluster=1'],
  ])(
    'a wrong or rotated Redis password never reaches a log line (LOG_LEVEL=debug, agent bus reply reader): %s',
    async (_name, query) => {
      const redis = await startRedisServer();
      cleanups.push(() => redis.stop());
      const admin = redis.admin();
      await admin.config('SET', 'requirepass', 'right-password');
      const secret = 'S3cret-rotated-Pa55';

      const out = new PassThrough();
      let text = '';
      out.on('data', (chunk: Buffer) => (text += chunk.toString()));
      const log = createLogger({ level: 'debug', replicaId: 'client-test', destination: out }) as unknown as Logger;

      // As agents.ts builds it: the shared client and the reply reader's own connection, from REDIS_URL.
      const url = `redis://default:${secret}@127.0.0.1:${redis.port}${query}`;
      const client = createRedisClient(url);
      const blocking = createRedisClient(url, { commandTimeoutMs: 6000 });
      const bus = new RedisAgentBus(client, blocking, { keys: redisKeys('client-test:'), replicaId: 'r1', maxQueue: 10 }, log);
      cleanups.push(() => client.disconnect());
      cleanups.push(() => bus.close());
      bus.start();
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      expect(text).toContain('WRONGPASS');
      const at = text.indexOf(secret);
      // On failure: the part of the line that carries it.
      expect(at < 0 ? '' : text.slice(Math.max(0, at - 80), at + secret.length)).toBe('');
    },
    20_000,
  );

  it(
    'REDIS_URL naming an IPv6 address (redis://[::1]:port) connects',
    async () => {
      const port = await freePort();
      const dir = mkdtempSync(join(tmpdir(), 'wsgw-client-test-'));
      const child: ChildProcess = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '::1', '--save', '', '--appendonly', 'no', '--dir', dir],
        { stdio: 'ignore' },
      );
      cleanups.push(() => {
        if (child.exitCode === null) child.kill('SIGKILL');
      });
      const direct = new Redis({ host: '::1', port, lazyConnect: true, retryStrategy: () => 100 });
      direct.on('error', () => {});
      cleanups.push(() => direct.disconnect());
      expect(await waitFor(() => direct.ping().then(() => true, () => (direct.status === 'wait' ? direct.connect().then(() => false, () => false) : false)), 5_000)).toBe(true);

      const client: RedisClient = createRedisClient(`redis://[::1]:${port}`);
      cleanups.push(() => client.disconnect());
      expect(await connectRedis(client, 3_000)).toBe(true);
      expect(await client.ping()).toBe('PONG');
    },
    20_000,
  );
});

