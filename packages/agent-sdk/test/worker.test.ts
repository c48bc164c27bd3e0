import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AgentHandler, AgentReply, AgentRequest, Logger } from '@wsgw/core';
import { AgentWorker } from '@wsgw/agent-sdk';
import { AGENT_GROUP, AgentStreams, connectRedis, createRedisClient, RedisAgentBus, redisKeys, type RedisKeys } from '@wsgw/redis';
import { findRedis, uniquePrefix, waitFor, type TestRedis } from '@wsgw/testkit';

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

describe('AgentWorker with a real Redis', () => {
  let redis: TestRedis;
  let keys: RedisKeys;
  let prefix: string;
  const cleanup: Array<() => Promise<unknown> | void> = [];

  beforeAll(async () => {
    redis = await findRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function gatewayBus(replicaId: string, maxQueue = 10_000) {
    const client = createRedisClient(redis.url, { commandTimeoutMs: 2000 });
    await connectRedis(client);
    const blocking = createRedisClient(redis.url, { commandTimeoutMs: 5000 });
    const bus = new RedisAgentBus(client, blocking, { keys, replicaId, maxQueue, blockMs: 200 }, silent);
    const replies: AgentReply[] = [];
    bus.onReply((r) => replies.push(r));
    bus.start();
    cleanup.push(async () => {
      await bus.close();
      client.disconnect();
    });
    return { bus, replies, client };
  }

  async function startWorker(agentType: string, handler: AgentHandler, extra: Partial<ConstructorParameters<typeof AgentWorker>[0]> = {}) {
    const worker = new AgentWorker({ agentType, handler, redisUrl: redis.url, keyPrefix: prefix, log: silent, ...extra });
    cleanup.push(() => worker.stop());
    await worker.start();
    return worker;
  }

  function req(n: number, agentType: string, replicaId = 'r1'): AgentRequest {
    return {
      requestId: `q${n}`,
      connectionId: `c${n % 7}`,
      replicaId,
      userId: 'u',
      agentType,
      message: `m${n}`,
      clientId: `id${n}`,
      trace: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    };
  }

  function fresh(name: string) {
    prefix = uniquePrefix(name);
    keys = redisKeys(prefix);
  }

  it('answers hundreds of requests, each reply addressed to its request, and leaves no stream behind', async () => {
    fresh('w-many');
    const { bus, replies, client } = await gatewayBus('r1');
    const seen: AgentRequest[] = [];
    await startWorker('echo', async (r) => {
      seen.push(r);
      return r.message;
    });
    const results = await Promise.all(Array.from({ length: 300 }, (_, n) => bus.publish(req(n, 'echo'))));
    expect(results.every((r) => r.accepted)).toBe(true);
    await waitFor(() => replies.length === 300, 10_000);
    for (const reply of replies) {
      const n = Number(reply.requestId.slice(1));
      expect(reply).toEqual({ requestId: `q${n}`, connectionId: `c${n % 7}`, kind: 'response', message: `m${n}` });
    }
    // The trace context reached the handler untouched.
    expect(seen[0]?.trace).toEqual(req(0, 'echo').trace);
    await waitFor(async () => (await client.xlen(keys.agentRequests('echo'))) === 0);
  });

  it('sends a reply the handler returns as a plain value, and logs a handler that throws at once', async () => {
    fresh('w-plain');
    const { bus, replies } = await gatewayBus('r1');
    const errors: unknown[] = [];
    const log: Logger = { ...silent, error: (obj) => errors.push(obj), child: () => log };
    await startWorker('plain', (r) => {
      if (r.message === 'm2') throw new Error('no m2');
      return r.message.toUpperCase();
    }, { log });
    await bus.publish(req(1, 'plain'));
    await bus.publish(req(2, 'plain'));
    await bus.publish(req(3, 'plain'));
    await waitFor(() => replies.length === 2 && errors.length === 1);
    expect(replies.map((r) => [r.requestId, r.message]).sort()).toEqual([
      ['q1', 'M1'],
      ['q3', 'M3'],
    ]);
  });

  it('streams chunks in the order the handler yields them, the last with done', async () => {
    fresh('w-chunks');
    const { bus, replies } = await gatewayBus('r1');
    await startWorker('words', async function* () {
      for (let i = 0; i < 100; i++) {
        if (i % 10 === 0) await new Promise((r) => setTimeout(r, 1));
        yield `w${i}`;
      }
    });
    expect(await bus.publish(req(1, 'words'))).toEqual({ accepted: true });
    await waitFor(() => replies.length === 100);
    expect(replies.map((r) => r.message)).toEqual(Array.from({ length: 100 }, (_, i) => `w${i}`));
    expect(replies.map((r) => r.done)).toEqual(Array.from({ length: 100 }, (_, i) => i === 99));
  });

  it('takes over the requests of a worker that died holding them', async () => {
    fresh('w-claim');
    const { bus, replies, client } = await gatewayBus('r1');
    // A worker that registered, took two requests and died without answering.
    const ghost = new AgentStreams(client, { keys, agentType: 'echo' });
    await ghost.ensureGroup();
    await ghost.heartbeat('ghost', 5000);
    await bus.publish(req(1, 'echo'));
    await bus.publish(req(2, 'echo'));
    const blocking = createRedisClient(redis.url, { commandTimeoutMs: 5000 });
    await connectRedis(blocking);
    expect(await ghost.read(blocking, 'ghost', 10, 1000)).toHaveLength(2);
    blocking.disconnect();

    const started = Date.now();
    await startWorker('echo', async (r) => r.message, { heartbeatMs: 200, claimIdleMs: 600 });
    await waitFor(() => replies.length === 2, 10_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    expect(replies.map((r) => r.requestId).sort()).toEqual(['q1', 'q2']);
  });

  it('never runs more handlers than its concurrency when taking over requests while new ones arrive', async () => {
    fresh('w-concurrency');
    const { bus, replies, client } = await gatewayBus('r1');
    // A worker that took two requests and died: they wait to be taken over.
    const ghost = new AgentStreams(client, { keys, agentType: 'busy' });
    await ghost.ensureGroup();
    await ghost.heartbeat('ghost', 5000);
    await bus.publish(req(1, 'busy'));
    await bus.publish(req(2, 'busy'));
    const blocking = createRedisClient(redis.url, { commandTimeoutMs: 5000 });
    await connectRedis(blocking);
    expect(await ghost.read(blocking, 'ghost', 10, 1000)).toHaveLength(2);
    blocking.disconnect();

    let running = 0;
    let mostAtOnce = 0;
    await startWorker('busy', async (r) => {
      running++;
      mostAtOnce = Math.max(mostAtOnce, running);
      await new Promise((res) => setTimeout(res, 1500));
      running--;
      return r.message;
    }, { concurrency: 2, heartbeatMs: 200, claimIdleMs: 600 });
    // Idle, the worker waits on the stream for 2 requests; the takeover fills both slots meanwhile.
    await waitFor(() => running === 2, 10_000);
    await bus.publish(req(3, 'busy'));
    await bus.publish(req(4, 'busy'));
    await waitFor(() => replies.length === 4, 15_000);
    expect(replies.map((r) => r.requestId).sort()).toEqual(['q1', 'q2', 'q3', 'q4']);
    expect(mostAtOnce).toBe(2);
  });

  it('takes back, under a name it restarted with, the requests its crashed run had read', async () => {
    fresh('w-same-id');
    const { bus, replies, client } = await gatewayBus('r1');
    // The first run of worker 'pod-a' (AGENT_WORKER_ID = the pod's hostname, which survives a
    // container restart) read a request and was killed before answering.
    const crashed = new AgentStreams(client, { keys, agentType: 'echo' });
    await crashed.ensureGroup();
    await crashed.heartbeat('pod-a', 5000);
    await bus.publish(req(1, 'echo'));
    const blocking = createRedisClient(redis.url, { commandTimeoutMs: 5000 });
    await connectRedis(blocking);
    expect(await crashed.read(blocking, 'pod-a', 10, 1000)).toHaveLength(1);
    blocking.disconnect();

    // Restarted under the same name, and the only worker of its type.
    await startWorker('echo', async (r) => r.message, { workerId: 'pod-a', heartbeatMs: 200, claimIdleMs: 600 });
    await bus.publish(req(2, 'echo'));
    await waitFor(() => replies.length === 2, 8000);
    expect(replies.map((r) => r.requestId).sort()).toEqual(['q1', 'q2']);
    await waitFor(async () => (await client.xlen(keys.agentRequests('echo'))) === 0);
  });

  it('ends a stream taken over mid-way even when the second run streams fewer chunks than the first sent', async () => {
    fresh('w-shorter');
    const { bus, replies, client } = await gatewayBus('r1');
    // Worker A read the request, streamed five chunks and died; a model behind a handler need not
    // say the same thing twice.
    const a = new AgentStreams(client, { keys, agentType: 'llm' });
    await a.ensureGroup();
    await a.heartbeat('a', 5000);
    await bus.publish(req(1, 'llm'));
    const blocking = createRedisClient(redis.url, { commandTimeoutMs: 5000 });
    await connectRedis(blocking);
    expect(await a.read(blocking, 'a', 10, 1000)).toHaveLength(1);
    blocking.disconnect();
    await a.sendReplies(
      Array.from({ length: 5 }, (_, seq) => ({
        requestId: 'q1',
        connectionId: 'c1',
        replicaId: 'r1',
        kind: 'chunk' as const,
        message: `a${seq}`,
        done: false,
        seq,
      })),
    );
    await waitFor(() => replies.length === 5);

    // B takes it over and streams two chunks (done on seq 1): its final chunk must reach the client.
    await startWorker(
      'llm',
      async function* () {
        yield 'b0';
        yield 'b1';
      },
      { heartbeatMs: 200, claimIdleMs: 600 },
    );
    await waitFor(() => replies.length === 6, 8000);
    expect(replies[5]).toEqual({ requestId: 'q1', connectionId: 'c1', kind: 'chunk', message: 'b1', done: true });
    await waitFor(async () => (await client.xlen(keys.agentRequests('llm'))) === 0);
  });

  it('does not let a slow but live worker lose its request to another (renewals)', async () => {
    fresh('w-renew');
    const { bus, replies } = await gatewayBus('r1');
    const calls: string[] = [];
    const handler: AgentHandler = async (r) => {
      calls.push(r.requestId);
      await new Promise((res) => setTimeout(res, 1500));
      return r.message;
    };
    await startWorker('slow', handler, { heartbeatMs: 200, claimIdleMs: 500, concurrency: 1 });
    await bus.publish(req(1, 'slow'));
    await waitFor(() => calls.length === 1);
    await startWorker('slow', handler, { heartbeatMs: 200, claimIdleMs: 500 });
    await waitFor(() => replies.length === 1, 5000);
    expect(calls).toEqual(['q1']);
  });

  it('lets another worker take over a request whose handler hangs in a live process', async () => {
    fresh('w-hung');
    const { bus, replies } = await gatewayBus('r1');
    let hungCalls = 0;
    const settings = { heartbeatMs: 200, claimIdleMs: 600, handlerSilenceMs: 500, shutdownGraceMs: 100 };
    await startWorker('flaky', () => {
      hungCalls++;
      return new Promise<unknown>(() => {});
    }, { ...settings, workerId: 'hangs' });
    await bus.publish(req(1, 'flaky'));
    await waitFor(() => hungCalls === 1);
    const started = Date.now();
    await startWorker('flaky', async (r) => `rescued ${r.message}`, { ...settings, workerId: 'rescuer' });
    await waitFor(() => replies.length === 1, 10_000);
    expect(replies[0]).toMatchObject({ requestId: 'q1', kind: 'response', message: 'rescued m1' });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('gives up a request its handler hangs on and nobody took over: settled, the stream is empty', async () => {
    fresh('w-give-up');
    const { bus, client } = await gatewayBus('r1');
    let calls = 0;
    await startWorker('stuck', () => {
      calls++;
      return new Promise<unknown>(() => {});
    }, { heartbeatMs: 200, claimIdleMs: 600, handlerSilenceMs: 300, handlerIdleTimeoutMs: 1000, shutdownGraceMs: 100 });
    await bus.publish(req(1, 'stuck'));
    await waitFor(async () => (await client.xlen(keys.agentRequests('stuck'))) === 0, 5000);
    expect(calls).toBe(1);
  });

  it('gives up a hung request without settling it when another worker has taken it over meanwhile', async () => {
    fresh('w-abandon');
    const { bus, replies, client } = await gatewayBus('r1');
    const given: string[] = [];
    const noting: Logger = {
      ...silent,
      error(_obj, msg) {
        if (msg) given.push(msg);
      },
      child: () => noting,
    };
    const hang = { heartbeatMs: 200, claimIdleMs: 600, shutdownGraceMs: 100 };
    // A: silent after 300 ms (released, so B takes it over), gives up at 3 s.
    let aCalls = 0;
    const a = await startWorker('slow', () => {
      aCalls++;
      return new Promise<unknown>(() => {});
    }, { ...hang, workerId: 'a', handlerSilenceMs: 300, handlerIdleTimeoutMs: 3000, log: noting });
    await bus.publish(req(1, 'slow'));
    await waitFor(() => aCalls === 1);
    // B takes it over and is still working on it (it renews it) when A gives up.
    let bCalls = 0;
    const b = await startWorker('slow', () => {
      bCalls++;
      return new Promise<unknown>(() => {});
    }, { ...hang, workerId: 'b', handlerSilenceMs: 60_000, handlerIdleTimeoutMs: 120_000 });
    await waitFor(() => bCalls === 1, 5000);
    await waitFor(() => given.includes('agent handler hung; giving up on its request'), 5000);
    await new Promise((res) => setTimeout(res, 300));
    // Before: A's give-up acknowledged and deleted the entry B holds; had B died, it was lost.
    const pending = (await client.xpending(keys.agentRequests('slow'), AGENT_GROUP, '-', '+', 10)) as Array<[string, string]>;
    expect(pending.map(([, owner]) => owner)).toEqual(['b']);
    // B dies (stops without answering); a third worker answers the request.
    await a.stop();
    await b.stop();
    await startWorker('slow', async (r) => `rescued ${r.message}`, { ...hang, workerId: 'c' });
    await waitFor(() => replies.length === 1, 5000);
    expect(replies[0]).toMatchObject({ requestId: 'q1', kind: 'response', message: 'rescued m1' });
  });

  it('drops a request that no worker answers after too many takeovers', async () => {
    fresh('w-poison');
    const { bus, client } = await gatewayBus('r1');
    let calls = 0;
    const hang = () => {
      calls++;
      return new Promise<unknown>(() => {});
    };
    const settings = { heartbeatMs: 200, claimIdleMs: 400, handlerSilenceMs: 300, maxDeliveries: 2, shutdownGraceMs: 100 };
    await startWorker('poison', hang, { ...settings, workerId: 'p1' });
    await startWorker('poison', hang, { ...settings, workerId: 'p2' });
    await bus.publish(req(1, 'poison'));
    await waitFor(async () => (await client.xlen(keys.agentRequests('poison'))) === 0, 15_000);
    expect(calls).toBe(2);
  });

  it('stops gracefully: in-flight requests are answered, then it no longer counts as live', async () => {
    fresh('w-stop');
    const { bus, replies } = await gatewayBus('r1');
    let started = 0;
    const worker = await startWorker('echo', async (r) => {
      started++;
      await new Promise((res) => setTimeout(res, 300));
      return r.message;
    });
    for (let n = 0; n < 5; n++) await bus.publish(req(n, 'echo'));
    await waitFor(() => started === 5);
    await worker.stop();
    expect(replies).toHaveLength(5);
    expect(await bus.publish(req(9, 'echo'))).toMatchObject({ accepted: false, code: 'agent_unavailable' });
  });

  it('settles a request whose handler throws, and keeps serving', async () => {
    fresh('w-throw');
    const { bus, replies, client } = await gatewayBus('r1');
    await startWorker('picky', async (r) => {
      if (r.message === 'm1') throw new Error('no');
      return r.message;
    });
    await bus.publish(req(1, 'picky'));
    await bus.publish(req(2, 'picky'));
    await waitFor(() => replies.length === 1);
    expect(replies[0]?.requestId).toBe('q2');
    await waitFor(async () => (await client.xlen(keys.agentRequests('picky'))) === 0);
  });

  it('drops a reply with no JSON form and keeps writing the replies after it', async () => {
    fresh('w-not-json');
    const { bus, replies, client } = await gatewayBus('r1');
    const circular: Record<string, unknown> = {};
    circular['self'] = circular;
    await startWorker('odd', async (r) => {
      if (r.message === 'm1') return { n: 1n };
      if (r.message === 'm2') return circular;
      return r.message;
    });
    await bus.publish(req(1, 'odd'));
    await bus.publish(req(2, 'odd'));
    await new Promise((res) => setTimeout(res, 100));
    await bus.publish(req(3, 'odd'));
    // Before: the batch holding the BigInt was retried for ever and nothing after it was written.
    await waitFor(() => replies.length === 1, 5000);
    expect(replies[0]).toMatchObject({ requestId: 'q3', message: 'm3' });
    // The two unanswerable requests are settled (they end with agent_timeout at the gateway).
    await waitFor(async () => (await client.xlen(keys.agentRequests('odd'))) === 0);
  });
});
