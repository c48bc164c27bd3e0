import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Redis } from 'ioredis';
import {
  connect,
  findRedis,
  open,
  spawnGateway,
  TcpProxy,
  uniquePrefix,
  type GatewayProcess,
  type OpenClient,
  type TestRedis,
} from '@wsgw/testkit';
import { closeAll, eventually } from './redis-support.js';

// Real replicas on a machine shared with other work: generous per-test time (waits inside are bounded).
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

/**
 * Issue 3 §2: a slot is keyed by connection id, so a call whose reply was lost (the link cut
 * between the call and its reply) neither leaks a slot nor counts one twice.
 */
describe('idempotent slots when the Redis link breaks between a call and its reply', () => {
  let redis: TestRedis;
  let admin: Redis;
  let proxy: TcpProxy;
  const started: GatewayProcess[] = [];

  beforeAll(async () => {
    redis = await findRedis();
    admin = redis.admin();
    const port = Number(new URL(redis.url).port || 6379);
    proxy = await TcpProxy.start(port);
  });
  afterEach(async () => {
    await Promise.all(started.splice(0).map((r) => r.stop()));
  });
  afterAll(async () => {
    await proxy?.close();
    await redis?.stop();
  });

  async function replica(prefix: string, mode: 'local' | 'closed'): Promise<GatewayProcess> {
    const gw = await spawnGateway({
      REDIS_URL: proxy.url,
      REDIS_KEY_PREFIX: prefix,
      WEBSOCKET_LEASE_SECONDS: '30',
      WEBSOCKET_MAX_CONNECTIONS_PER_USER: '3',
      WEBSOCKET_LIMITS_FAILURE_MODE: mode,
    });
    started.push(gw);
    return gw;
  }

  for (const mode of ['local', 'closed'] as const) {
    it(`keeps Redis equal to the open sockets (${mode} mode)`, async () => {
      const prefix = uniquePrefix(`idem-${mode}`);
      const gw = await replica(prefix, mode);
      const sockets: OpenClient[] = [await open(gw.wsUrl('idem')), await open(gw.wsUrl('idem'))];

      // The acquire reaches Redis and runs; its reply never comes back.
      const cut = proxy.cutAfterNextRequest(150);
      const attempt = await connect(gw.wsUrl('idem'));
      await cut;
      if (mode === 'local') {
        // Decided from this replica's memory: 2 < 3, so it opens.
        expect(attempt.opened).toBe(true);
        if (attempt.opened) sockets.push(attempt.client);
      } else {
        expect(attempt.opened).toBe(false);
        if (!attempt.opened) expect(attempt.rejected).toMatchObject({ status: 503, body: { error: 'unavailable' } });
      }
      const all = `${prefix}{slots}:all`;
      const mine = `${prefix}{slots}:user:dev-`;
      // Once the replica is back on Redis, slots in Redis == sockets open, for the user and in total.
      await gw.waitForLog((l) => l['msg'] === 'redis answers again: shared limits apply', 10_000);
      await eventually(async () => (await admin.zcard(all)) === sockets.length, 5000, 'slots == sockets');
      const userKeys = await admin.keys(`${mine}*`);
      expect(userKeys).toHaveLength(1);
      expect(await admin.zcard(userKeys[0] as string)).toBe(sockets.length);
      // And the shared limit applies again, counting each socket once.
      const more = await connect(gw.wsUrl('idem'));
      if (mode === 'local') {
        expect(more.opened).toBe(false);
        if (!more.opened) expect(more.rejected.status).toBe(429);
      } else {
        expect(more.opened).toBe(true);
        if (more.opened) sockets.push(more.client);
        expect(await admin.zcard(all)).toBe(3);
      }
      await closeAll(sockets);
      await eventually(async () => (await admin.zcard(all)) === 0, 5000, 'released');
    });
  }
});
