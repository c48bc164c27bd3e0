import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AgentReply, AgentRequest, Logger } from '@wsgw/core';
import {
  AgentStreams,
  connectRedis,
  createRedisClient,
  RedisAgentBus,
  redisKeys,
  type RedisClient,
  type RedisKeys,
} from '@wsgw/redis';
import { findRedis, uniquePrefix, type TestRedis } from '@wsgw/testkit';

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

function request(n: number, replicaId: string, agentType = 'echo'): AgentRequest {
  return {
    requestId: `req-${n}`,
    connectionId: `conn-${n % 3}`,
    replicaId,
    userId: 'u1',
    agentType,
    message: `hello ${n}`,
    conversationId: 'c1',
    clientId: `m${n}`,
    pillar: 'p',
    trace: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
  };
}

describe('RedisAgentBus and AgentStreams against a real Redis', () => {
  let redis: TestRedis;
  const owned: Array<{ close(): Promise<unknown> | void }> = [];
  let keys: RedisKeys;

  beforeAll(async () => {
    redis = await findRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });
  afterEach(async () => {
    for (const o of owned.splice(0).reverse()) await o.close();
  });

  async function client(commandTimeoutMs = 2000): Promise<RedisClient> {
    const c = createRedisClient(redis.url, { commandTimeoutMs });
    expect(await connectRedis(c)).toBe(true);
    owned.push({ close: () => void c.disconnect() });
    return c;
  }

  async function bus(replicaId: string, maxQueue = 100) {
    const shared = await client();
    const blocking = createRedisClient(redis.url, { commandTimeoutMs: 5000 });
    const b = new RedisAgentBus(shared, blocking, { keys, replicaId, maxQueue, blockMs: 200 }, silent);
    const replies: AgentReply[] = [];
    b.onReply((r) => replies.push(r));
    b.start();
    owned.push({ close: () => b.close() });
    return { bus: b, replies };
  }

  async function worker(agentType = 'echo') {
    const c = await client();
    return { streams: new AgentStreams(c, { keys, agentType }), blocking: await client(5000), client: c };
  }

  async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) throw new Error('condition not met in time');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  it('a reply stream trimmed past what its replica read ends the request as lost, not as a stream with a hole', async () => {
    keys = redisKeys(uniquePrefix('bus-gap'));
    const c = await client();
    // A worker that capped its reply stream low, writing while the replica did not read (paused).
    const streams = new AgentStreams(c, { keys, agentType: 'echo', replyStreamMaxLen: 10 });
    const chunk = (seq: number, done = false) => ({
      requestId: 'req-1',
      connectionId: 'conn-1',
      replicaId: 'r1',
      kind: 'chunk' as const,
      message: `part ${seq}`,
      done,
      seq,
    });
    for (let seq = 0; seq < 400; seq++) await streams.sendReplies([chunk(seq)]);
    await streams.sendReplies([chunk(400, true)]);
    expect(await c.xlen(keys.replicaReplies('r1'))).toBeLessThan(400);
    const { replies } = await bus('r1');
    await until(() => replies.some((r) => r.kind === 'chunk' && r.done === true));
    // Before: the parts left were delivered from wherever the trim stopped, then `done`.
    expect(replies.map((r) => r.kind)).toEqual(['lost', 'chunk']);
    expect(replies[0]).toMatchObject({ requestId: 'req-1', connectionId: 'conn-1', kind: 'lost' });
  });

  it('answers agent_unavailable at once for a type with no live worker', async () => {
    keys = redisKeys(uniquePrefix('bus-none'));
    const { bus: b } = await bus('r1');
    const started = Date.now();
    const result = await b.publish(request(1, 'r1', 'nobody'));
    expect(Date.now() - started).toBeLessThan(1000);
    expect(result).toMatchObject({ accepted: false, code: 'agent_unavailable' });
  });

  it('carries a request to a worker and its reply back to the replica that asked', async () => {
    keys = redisKeys(uniquePrefix('bus-roundtrip'));
    const r1 = await bus('r1');
    const r2 = await bus('r2');
    const w = await worker();
    await w.streams.ensureGroup();
    expect(await w.streams.heartbeat('w1', 5000)).toBe(1);

    expect(await r2.bus.publish(request(7, 'r2'))).toEqual({ accepted: true });
    const [delivery] = await w.streams.read(w.blocking, 'w1', 10, 1000);
    expect(delivery?.request).toEqual(request(7, 'r2'));

    await w.streams.sendReplies([
      { requestId: 'req-7', connectionId: 'conn-1', replicaId: 'r2', kind: 'response', message: { echoed: 'hello 7' }, seq: 0 },
    ]);
    await w.streams.settle([delivery!.entryId]);
    await until(() => r2.replies.length === 1);
    expect(r2.replies[0]).toEqual({ requestId: 'req-7', connectionId: 'conn-1', kind: 'response', message: { echoed: 'hello 7' } });
    expect(await w.client.xlen(keys.agentRequests('echo'))).toBe(0);
    // Not broadcast: the other replica's reader saw nothing.
    await new Promise((r) => setTimeout(r, 300));
    expect(r1.replies).toEqual([]);
  });

  it('refuses with unavailable past the queue bound, and accepts again once answered', async () => {
    keys = redisKeys(uniquePrefix('bus-bound'));
    const { bus: b } = await bus('r1', 3);
    const w = await worker();
    await w.streams.ensureGroup();
    await w.streams.heartbeat('w1', 5000);
    const results = await Promise.all([1, 2, 3, 4, 5].map((n) => b.publish(request(n, 'r1'))));
    expect(results.filter((r) => r.accepted)).toHaveLength(3);
    expect(results.filter((r) => !r.accepted && r.code === 'unavailable')).toHaveLength(2);
    expect(await w.client.xlen(keys.agentRequests('echo'))).toBe(3);

    const taken = await w.streams.read(w.blocking, 'w1', 1, 1000);
    await w.streams.settle(taken.map((d) => d.entryId));
    expect(await b.publish(request(6, 'r1'))).toEqual({ accepted: true });
  });

  it('stops counting a worker whose lease lapsed', async () => {
    keys = redisKeys(uniquePrefix('bus-lease'));
    const { bus: b } = await bus('r1');
    const w = await worker();
    await w.streams.ensureGroup();
    await w.streams.heartbeat('w1', 300);
    expect(await b.publish(request(1, 'r1'))).toEqual({ accepted: true });
    await new Promise((r) => setTimeout(r, 400));
    expect(await b.publish(request(2, 'r1'))).toMatchObject({ accepted: false, code: 'agent_unavailable' });
    // A worker that leaves stops counting at once.
    await w.streams.heartbeat('w2', 5000);
    expect(await b.publish(request(3, 'r1'))).toEqual({ accepted: true });
    await w.streams.leave('w2');
    expect(await b.publish(request(4, 'r1'))).toMatchObject({ accepted: false, code: 'agent_unavailable' });
  });

  it('lets another consumer take over entries a dead one never settled, but not entries still renewed', async () => {
    keys = redisKeys(uniquePrefix('bus-claim'));
    const { bus: b } = await bus('r1');
    const w = await worker();
    await w.streams.ensureGroup();
    await w.streams.heartbeat('w1', 5000);
    for (const n of [1, 2, 3]) await b.publish(request(n, 'r1'));
    const dead = await w.streams.read(w.blocking, 'dead', 2, 1000);
    const alive = await w.streams.read(w.blocking, 'alive', 1, 1000);
    expect(dead).toHaveLength(2);
    expect(alive).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 250));
    await w.streams.renew('alive', alive.map((d) => d.entryId), 100);

    const deliveries = await w.streams.claim('rescuer', 200, 10);
    expect(deliveries.map((d) => d.request?.requestId).sort()).toEqual(['req-1', 'req-2']);
    expect(deliveries.map((d) => d.deliveries)).toEqual([2, 2]);
    // Its own entries are never taken back by the consumer holding them.
    await new Promise((r) => setTimeout(r, 250));
    await w.streams.renew('alive', alive.map((d) => d.entryId), 100);
    expect(await w.streams.claim('rescuer', 200, 10)).toEqual([]);
    // The dead consumer holds nothing now; it can be forgotten.
    expect(await w.streams.removeConsumerIfIdle('dead')).toBe(true);
    expect(await w.streams.removeConsumerIfIdle('alive')).toBe(false);
  });

  it('drops the chunks a second worker repeats after taking a request over, keeping order', async () => {
    keys = redisKeys(uniquePrefix('bus-seq'));
    const r1 = await bus('r1');
    const w = await worker();
    const chunk = (seq: number, done = false) => ({
      requestId: 'req-s',
      connectionId: 'conn-s',
      replicaId: 'r1',
      kind: 'chunk' as const,
      message: `c${seq}`,
      done,
      seq,
    });
    await w.streams.sendReplies([chunk(0), chunk(1)]);
    await w.streams.sendReplies([chunk(0), chunk(1), chunk(2), chunk(3, true)]);
    await until(() => r1.replies.length === 4);
    expect(r1.replies.map((r) => [r.message, r.done])).toEqual([
      ['c0', false],
      ['c1', false],
      ['c2', false],
      ['c3', true],
    ]);
  });
});
