import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentReply, AgentRequest, Logger } from '@wsgw/core';
import { AgentWorker } from '@wsgw/agent-sdk';
import { connectRedis, createRedisClient, RedisAgentBus, redisKeys, type RedisClient } from '@wsgw/redis';
import { startRedisCluster, uniquePrefix, waitFor, type RedisClusterProcess } from '@wsgw/testkit';

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

/** The agent bus and worker on a real local Redis Cluster: every script's keys share a hash tag. */
describe('agents on Redis Cluster (3 masters)', () => {
  let cluster: RedisClusterProcess;
  const closers: Array<() => Promise<unknown> | void> = [];

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
  }, 60_000);
  afterAll(async () => {
    for (const close of closers.splice(0).reverse()) await close();
    await cluster?.stop();
  });

  it('carries requests of several types from two replicas to workers and the replies back', async () => {
    const prefix = uniquePrefix('agents-cluster');
    const keys = redisKeys(prefix);
    const buses: Array<{ bus: RedisAgentBus; replies: AgentReply[] }> = [];
    for (const replicaId of ['r1', 'r2']) {
      const client: RedisClient = createRedisClient(cluster.url, { commandTimeoutMs: 2000 });
      await connectRedis(client);
      const bus = new RedisAgentBus(
        client,
        createRedisClient(cluster.url, { commandTimeoutMs: 5000 }),
        { keys, replicaId, maxQueue: 1000, blockMs: 200 },
        silent,
      );
      const replies: AgentReply[] = [];
      bus.onReply((r) => replies.push(r));
      bus.start();
      buses.push({ bus, replies });
      closers.push(async () => {
        await bus.close();
        client.disconnect();
      });
    }
    const types = ['alpha', 'beta', 'gamma'];
    for (const agentType of types) {
      const worker = new AgentWorker({
        agentType,
        redisUrl: cluster.url,
        keyPrefix: prefix,
        log: silent,
        handler: async function* (request) {
          yield `${request.agentType}:`;
          yield request.message;
        },
      });
      closers.push(() => worker.stop());
      await worker.start();
    }

    const sent: AgentRequest[] = [];
    for (let n = 0; n < 60; n++) {
      const replicaId = n % 2 === 0 ? 'r1' : 'r2';
      const request: AgentRequest = {
        requestId: `q${n}`,
        connectionId: `c${n}`,
        replicaId,
        userId: 'u',
        agentType: types[n % 3]!,
        message: `m${n}`,
      };
      sent.push(request);
    }
    const results = await Promise.all(sent.map((r) => buses[r.replicaId === 'r1' ? 0 : 1]!.bus.publish(r)));
    expect(results.every((r) => r.accepted)).toBe(true);
    expect(await buses[0]!.bus.publish({ ...sent[0]!, requestId: 'x', agentType: 'nobody' })).toMatchObject({
      accepted: false,
      code: 'agent_unavailable',
    });

    await waitFor(() => buses[0]!.replies.length === 60 && buses[1]!.replies.length === 60, 15_000);
    for (const [i, { replies }] of buses.entries()) {
      const mine = sent.filter((r) => r.replicaId === (i === 0 ? 'r1' : 'r2'));
      for (const request of mine) {
        const got = replies.filter((r) => r.requestId === request.requestId);
        expect(got.map((r) => [r.message, r.done])).toEqual([
          [`${request.agentType}:`, false],
          [request.message, true],
        ]);
      }
    }
  }, 60_000);
});
