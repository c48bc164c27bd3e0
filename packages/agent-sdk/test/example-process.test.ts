import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentReply, Logger } from '@wsgw/core';
import { connectRedis, createRedisClient, RedisAgentBus, redisKeys } from '@wsgw/redis';
import { findRedis, freePort, spawnAgentWorker, startRedisServer, uniquePrefix, waitFor, type TestRedis } from '@wsgw/testkit';

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

/** `node packages/agent-sdk/dist/examples/echo.js` as CONTRACT §6 names it (needs a build). */
describe('the example echo worker process', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await findRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('answers with the message it got, logs JSON lines, and on SIGTERM finishes in-flight work, then exits 0', async () => {
    const prefix = uniquePrefix('example');
    const keys = redisKeys(prefix);
    const worker = await spawnAgentWorker({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, AGENT_TYPE: 'parrot', ECHO_DELAY_MS: '400' });
    const client = createRedisClient(redis.url, { commandTimeoutMs: 2000 });
    await connectRedis(client);
    const blocking = createRedisClient(redis.url, { commandTimeoutMs: 5000 });
    const bus = new RedisAgentBus(client, blocking, { keys, replicaId: 'r-example', maxQueue: 100, blockMs: 200 }, silent);
    const replies: AgentReply[] = [];
    bus.onReply((r) => replies.push(r));
    bus.start();
    try {
      for (let n = 0; n < 5; n++) {
        const result = await bus.publish({
          requestId: `q${n}`,
          connectionId: 'c',
          replicaId: 'r-example',
          userId: 'u',
          agentType: 'parrot',
          message: `hello ${n}`,
        });
        expect(result).toEqual({ accepted: true });
      }
      // All five are in the worker's hands (pending), none answered yet: stop it now.
      await waitFor(async () => {
        const summary = (await client.xpending(keys.agentRequests('parrot'), 'workers')) as [number];
        return summary[0] === 5;
      });
      worker.signal('SIGTERM');
      expect(await worker.exited).toEqual({ code: 0, signal: null });
      await waitFor(() => replies.length === 5);
      expect(replies.map((r) => r.message).sort()).toEqual([0, 1, 2, 3, 4].map((n) => `hello ${n}`));
      expect(replies.every((r) => r.kind === 'response')).toBe(true);
      // It no longer counts as live, and left nothing pending.
      expect(await client.zcard(keys.agentWorkers('parrot'))).toBe(0);
      expect(await client.xlen(keys.agentRequests('parrot'))).toBe(0);
      const lines = worker.logs();
      expect(lines.find((l) => l['msg'] === 'agent worker serving')).toMatchObject({ agent_type: 'parrot', level: 'info' });
      expect(lines.find((l) => l['msg'] === 'agent worker stopped')).toBeDefined();
    } finally {
      await bus.close();
      client.disconnect();
      await worker.stop();
    }
  });

  it('waits for a Redis that is not up yet, and serves again after Redis restarts empty', async () => {
    const port = await freePort();
    const prefix = uniquePrefix('example-restart');
    const keys = redisKeys(prefix);
    const starting = spawnAgentWorker({
      REDIS_URL: `redis://127.0.0.1:${port}`,
      REDIS_KEY_PREFIX: prefix,
      AGENT_TYPE: 'phoenix',
      AGENT_HEARTBEAT_MS: '300',
    });
    await new Promise((r) => setTimeout(r, 1000));
    const server = await startRedisServer({ port });
    const worker = await starting;
    const client = createRedisClient(server.url, { commandTimeoutMs: 2000 });
    const blocking = createRedisClient(server.url, { commandTimeoutMs: 5000 });
    await connectRedis(client);
    const bus = new RedisAgentBus(client, blocking, { keys, replicaId: 'r-phoenix', maxQueue: 100, blockMs: 200 }, silent);
    const replies: AgentReply[] = [];
    bus.onReply((r) => replies.push(r));
    bus.start();
    const ask = (n: number) =>
      bus.publish({ requestId: `p${n}`, connectionId: 'c', replicaId: 'r-phoenix', userId: 'u', agentType: 'phoenix', message: `m${n}` });
    try {
      expect(await ask(1)).toEqual({ accepted: true });
      await waitFor(() => replies.length === 1, 10_000);

      // Redis comes back empty: no stream, no group, no registry. The worker registers again.
      await server.kill();
      await server.restart();
      await waitFor(async () => (await ask(2).catch(() => ({ accepted: false }))).accepted, 10_000, 200);
      await waitFor(() => replies.some((r) => r.requestId === 'p2'), 10_000);
    } finally {
      await bus.close();
      client.disconnect();
      await worker.stop();
      await server.stop();
    }
  }, 40_000);

  it('refuses to start without REDIS_URL, naming the variable', async () => {
    await expect(spawnAgentWorker({})).rejects.toThrow(/REDIS_URL/);
  });

  it('refuses bad tuning variables with one config error line each, naming them (not a stack trace)', async () => {
    const failed = spawnAgentWorker({ REDIS_URL: redis.url, AGENT_CONCURRENCY: 'lots', AGENT_HEARTBEAT_MS: '-5' });
    await expect(failed).rejects.toThrow(/config error: AGENT_CONCURRENCY: .*\n?.*config error: AGENT_HEARTBEAT_MS: /s);
  });

  // Before: each of these started, logged "agent worker serving" and counted as live, yet served
  // nothing (Redis refused COUNT 2.5 / IDLE 2000.5 at every read or claim; no client message can
  // name "shout " or "team/shout"), or died with a stack trace (LOG_LEVEL, REDIS_URL).
  it.each([
    [{ AGENT_CONCURRENCY: '2.5' }, 'AGENT_CONCURRENCY: must be a whole number'],
    [{ AGENT_CLAIM_IDLE_MS: '2000.5' }, 'AGENT_CLAIM_IDLE_MS: must be a whole number'],
    [{ AGENT_TYPE: 'shout ' }, 'AGENT_TYPE: "shout " must be'],
    [{ AGENT_TYPE: 'team/shout' }, 'AGENT_TYPE: "team/shout" must be'],
    [{ LOG_LEVEL: 'verbose' }, 'LOG_LEVEL: must be one of'],
    [{ REDIS_URL: 'http://127.0.0.1:6379' }, 'REDIS_URL: must be a URL starting with redis://'],
  ])('refuses %o with a config error line, before serving', async (env, line) => {
    const failed = spawnAgentWorker({ REDIS_URL: redis.url, ...env });
    await expect(failed).rejects.toThrow(`config error: ${line}`);
  });
});
