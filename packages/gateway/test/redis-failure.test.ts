import { afterAll, beforeAll, describe, it, vi } from 'vitest';
import type { Redis } from 'ioredis';
import { startRedisServer, TcpProxy, type GatewayProcess, type RedisServerProcess } from '@wsgw/testkit';
import { outageScenario, fetchPing, type Outage, type Target } from './redis-outage.js';
import { eventually } from './redis-support.js';
import { liveSlots } from './redis-topologies.js';

// Real replicas on a machine shared with other work: generous per-test time (waits inside are bounded).
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

/**
 * Issue 3 §6: Redis stopped, paused (CLIENT PAUSE) or unreachable (a silent network), with
 * WEBSOCKET_LIMITS_FAILURE_MODE local and closed side by side. Replicas reach Redis through a
 * TCP proxy so the network can go silent; this file stops and restarts its own redis-server.
 */
describe('limits while Redis is unavailable', () => {
  let server: RedisServerProcess;
  let proxy: TcpProxy;
  let admin: Redis;
  const started: GatewayProcess[] = [];

  beforeAll(async () => {
    server = await startRedisServer();
    proxy = await TcpProxy.start(server.port);
  });
  afterAll(async () => {
    await Promise.all(started.map((r) => r.stop()));
    await proxy?.close();
    await server?.stop();
  });

  const outages: Record<string, Outage> = {
    stopped: {
      begin: () => server.kill(),
      // Back empty: every slot must be registered again by the replicas holding it.
      end: () => server.restart(),
    },
    paused: {
      begin: async () => {
        admin = server.admin();
        await admin.client('PAUSE', 10_000, 'ALL');
      },
      end: async () => {
        // CLIENT PAUSE ends by itself; wait for it.
        await eventually(async () => (await fetchPing(server)) === 'PONG', 8000, 'pause over');
      },
    },
    unreachable: {
      begin: async () => proxy.blackhole(true),
      end: async () => {
        // Links that lived through the silence are dead for good (their bytes were lost), as after
        // a real partition: close them, the replicas reconnect.
        proxy.dropAll();
        proxy.blackhole(false);
      },
    },
  };

  const target: Target = { url: () => proxy.url, slotCount: (key) => liveSlots(server.admin(), key), started };
  for (const [name, outage] of Object.entries(outages)) {
    it(`Redis ${name}: local keeps serving with per-replica limits, closed refuses, both recover`, () =>
      outageScenario(name, target, outage));
  }
});
