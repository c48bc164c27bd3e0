import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentStreams, connectRedis, createRedisClient, redisKeys, type RedisClient } from '@wsgw/redis';
import {
  open,
  startRedisServer,
  startTestGateway,
  TcpProxy,
  uniquePrefix,
  type RedisServerProcess,
  type TestGateway,
} from '@wsgw/testkit';

/**
 * WEBSOCKET_LIMITS_FAILURE_MODE=local keeps serving while Redis is unreachable: built-in agents,
 * answered in the gateway process in every mode, keep answering; remote agents, unreachable without
 * Redis, get `unavailable`. (In `closed` mode the rate limiter refuses every message first:
 * redis-failure.test.ts.) The gateway reaches Redis through a TCP proxy that can go silent.
 */
describe('agents while Redis is unreachable (local failure mode)', () => {
  let server: RedisServerProcess;
  let proxy: TcpProxy;
  let gw: TestGateway;
  let admin: RedisClient;
  const prefix = uniquePrefix('agents-failover');

  beforeAll(async () => {
    server = await startRedisServer();
    proxy = await TcpProxy.start(server.port);
    gw = await startTestGateway({
      REDIS_URL: proxy.url,
      REDIS_KEY_PREFIX: prefix,
      WEBSOCKET_LIMITS_FAILURE_MODE: 'local',
      WEBSOCKET_BUILTIN_AGENTS: 'echo',
      WEBSOCKET_MAX_MESSAGES_PER_SECOND: '1000',
      WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '100000',
      LOG_LEVEL: 'info',
    });
    admin = createRedisClient(server.url, { commandTimeoutMs: 2000 });
    await connectRedis(admin);
    // A remote worker of type `remote`, registered straight on Redis (not through the proxy).
    const remote = new AgentStreams(admin, { keys: redisKeys(prefix), agentType: 'remote' });
    await remote.ensureGroup();
    await remote.heartbeat('remote-1', 60_000);
  });
  afterAll(async () => {
    proxy?.blackhole(false);
    await gw?.stop();
    admin?.disconnect();
    await proxy?.close();
    await server?.stop();
  });

  it('keeps answering built-in agents, refuses remote ones, and takes the Redis road again after', async () => {
    const ws = await open(gw.wsUrl('ann'));
    ws.send({ agent_type: 'echo', message: 'before', id: 'b' });
    expect(await ws.next()).toMatchObject({ type: 'response', message: 'before', in_reply_to: 'b' });

    proxy.blackhole(true);
    ws.send({ agent_type: 'echo', message: 'during', id: 'd' });
    expect(await ws.next(5000)).toMatchObject({ type: 'response', message: 'during', in_reply_to: 'd' });
    ws.send({ agent_type: 'remote', message: 'during', id: 'r' });
    expect(await ws.next(5000)).toMatchObject({ type: 'error', code: 'unavailable', in_reply_to: 'r' });

    proxy.dropAll();
    proxy.blackhole(false);
    // Back on Redis: the remote worker's type is accepted again (it lands in its stream).
    const requests = redisKeys(prefix).agentRequests('remote');
    const deadline = Date.now() + 10_000;
    let n = 0;
    while ((await admin.xlen(requests)) === 0) {
      expect(Date.now()).toBeLessThan(deadline);
      ws.send({ agent_type: 'remote', message: 'after', id: `a${n++}` });
      await new Promise((r) => setTimeout(r, 300));
    }
    ws.send({ agent_type: 'echo', message: 'after', id: 'e' });
    const frames = [];
    for (;;) {
      const frame = await ws.next(5000);
      frames.push(frame);
      if (frame['in_reply_to'] === 'e') break;
    }
    expect(frames.at(-1)).toMatchObject({ type: 'response', message: 'after' });
    expect(gw.logs().some((l) => l['msg'] === 'unhandled rejection')).toBe(false);
    await ws.close();
  }, 40_000);
});
