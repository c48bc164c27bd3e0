import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentWorker } from '@wsgw/agent-sdk';
import { AgentStreams, connectRedis, createRedisClient, redisKeys, type RedisClient } from '@wsgw/redis';
import { findRedis, open, startTestGateway, uniquePrefix, waitFor, type TestGateway, type TestRedis } from '@wsgw/testkit';

/**
 * Redis mode in one process: the gateway's own agents (built-in echo, the embedder's `count` and
 * `hold`) answered in process; a real agent-sdk worker of a remote type through Redis Streams; and a
 * hand-driven "worker" speaking the stream protocol directly, to provoke duplicates, silence and
 * full queues.
 */
describe('agents over Redis Streams (in-process gateway)', () => {
  let redis: TestRedis;
  let gw: TestGateway;
  let client: RedisClient;
  let blocking: RedisClient;
  let speller: AgentWorker;
  /** Requests the in-process `hold` agent keeps open until the test lets them go. */
  const held: Array<() => void> = [];
  const prefix = uniquePrefix('agents-redis');
  const keys = redisKeys(prefix);

  beforeAll(async () => {
    redis = await findRedis();
    gw = await startTestGateway(
      {
        REDIS_URL: redis.url,
        REDIS_KEY_PREFIX: prefix,
        WEBSOCKET_BUILTIN_AGENTS: 'echo',
        WEBSOCKET_MAX_MESSAGES_PER_SECOND: '1000',
        WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '100000',
        AGENT_REPLY_TIMEOUT_SECONDS: '2',
        AGENT_MAX_QUEUE: '3',
        LOG_LEVEL: 'info',
      },
      {
        async *count(request) {
          for (let i = 1; i <= Number(request.message); i++) yield i;
        },
        hold: (request) => new Promise((resolve) => held.push(() => resolve(request.message))),
      },
    );
    // A remote agent type: a real worker (in the test process) on the gateway's Redis.
    speller = new AgentWorker({
      agentType: 'spell',
      redisUrl: redis.url,
      keyPrefix: prefix,
      async *handler(request) {
        for (const letter of request.message) yield letter;
      },
    });
    await speller.start();
    client = createRedisClient(redis.url, { commandTimeoutMs: 2000 });
    blocking = createRedisClient(redis.url, { commandTimeoutMs: 5000 });
    await connectRedis(client);
    await connectRedis(blocking);
  });
  afterAll(async () => {
    for (const release of held.splice(0)) release();
    await speller?.stop();
    await gw?.stop();
    client?.disconnect();
    blocking?.disconnect();
    await redis?.stop();
  });

  /** A worker driven by the test: registered as live, reads only when told. */
  async function manualWorker(agentType: string) {
    const streams = new AgentStreams(client, { keys, agentType });
    await streams.ensureGroup();
    await streams.heartbeat('manual', 30_000);
    return streams;
  }

  it('answers the built-in echo agent in process, without a request stream', async () => {
    const ws = await open(gw.wsUrl('alice'));
    ws.send({ agent_type: 'echo', message: 'Hello', conversation_id: 'c1', id: 'm1' });
    expect(await ws.next()).toEqual({
      type: 'response',
      agent_type: 'echo',
      conversation_id: 'c1',
      in_reply_to: 'm1',
      message: 'Hello',
    });
    // No stream and no live-worker registry for a type this process serves itself.
    expect(await client.exists(keys.agentRequests('echo'), keys.agentWorkers('echo'))).toBe(0);
    await ws.close();
  });

  it('streams chunks of a remote worker through Redis in order, the last with done', async () => {
    const ws = await open(gw.wsUrl('bea'));
    const word = 'abcdefghijklmnopqrstuvwxyz0123456789';
    ws.send({ agent_type: 'spell', message: word, id: 'sp' });
    const frames = [];
    for (let i = 0; i < word.length; i++) frames.push(await ws.next());
    expect(frames.map((f) => f['message']).join('')).toBe(word);
    expect(frames.every((f) => f['type'] === 'chunk' && f['in_reply_to'] === 'sp')).toBe(true);
    expect(frames.map((f) => f['done'])).toEqual([...word].map((_, i) => i === word.length - 1));
    // It went through the type's stream, which answered requests leave empty.
    expect(await client.exists(keys.agentRequests('spell'))).toBe(1);
    expect(await client.xlen(keys.agentRequests('spell'))).toBe(0);
    await ws.close();
  });

  it("streams an in-process agent's chunks in order, the last with done", async () => {
    const ws = await open(gw.wsUrl('bob'));
    ws.send({ agent_type: 'count', message: '50', id: 's1' });
    const frames = [];
    for (let i = 0; i < 50; i++) frames.push(await ws.next());
    expect(frames.map((f) => f['message'])).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(frames.every((f) => f['type'] === 'chunk' && f['in_reply_to'] === 's1')).toBe(true);
    expect(frames.map((f) => f['done'])).toEqual(Array.from({ length: 50 }, (_, i) => i === 49));
    expect(await client.exists(keys.agentRequests('count'))).toBe(0);
    await ws.close();
  });

  it('answers agent_unavailable within 1 s for a type nobody serves', async () => {
    const ws = await open(gw.wsUrl('carol'));
    const started = Date.now();
    ws.send({ agent_type: 'nobody', message: 'x', id: 'u1' });
    expect(await ws.next(1000)).toMatchObject({ type: 'error', code: 'agent_unavailable', in_reply_to: 'u1' });
    expect(Date.now() - started).toBeLessThan(1000);
    await ws.close();
  });

  it('delivers one final reply when a request is answered twice, and drops repeated chunks', async () => {
    const streams = await manualWorker('twice');
    const ws = await open(gw.wsUrl('dave'));
    ws.send({ agent_type: 'twice', message: 'x', id: 'd1' });
    ws.send({ agent_type: 'twice', message: 'y', id: 'd2' });
    const taken = [];
    while (taken.length < 2) taken.push(...(await streams.read(blocking, 'manual', 10, 2000)));
    expect(taken).toHaveLength(2);
    const [first, second] = taken.map((d) => d.request!);
    const to = (r: typeof first) => ({ requestId: r!.requestId, connectionId: r!.connectionId, replicaId: r!.replicaId });
    // As if a second worker took each request over and ran it again.
    await streams.sendReplies([
      { ...to(first), kind: 'response', message: 'one', seq: 0 },
      { ...to(first), kind: 'response', message: 'one again', seq: 0 },
      { ...to(second), kind: 'chunk', message: 'a', done: false, seq: 0 },
      { ...to(second), kind: 'chunk', message: 'a', done: false, seq: 0 },
      { ...to(second), kind: 'chunk', message: 'b', done: true, seq: 1 },
      { ...to(second), kind: 'chunk', message: 'b', done: true, seq: 1 },
    ]);
    await streams.settle(taken.map((d) => d.entryId));
    const frames = [await ws.next(), await ws.next(), await ws.next()];
    expect(frames.map((f) => [f['in_reply_to'], f['message']])).toEqual([
      ['d1', 'one'],
      ['d2', 'a'],
      ['d2', 'b'],
    ]);
    // Nothing else arrives: send a probe and expect its answer next.
    ws.send({ agent_type: 'echo', message: 'probe', id: 'p' });
    expect(await ws.next()).toMatchObject({ in_reply_to: 'p', message: 'probe' });
    await ws.close();
  });

  it('answers agent_timeout when the worker never replies', async () => {
    await manualWorker('silent');
    const ws = await open(gw.wsUrl('erin'));
    const started = Date.now();
    ws.send({ agent_type: 'silent', message: 'x', id: 't1' });
    expect(await ws.next(5000)).toMatchObject({ type: 'error', code: 'agent_timeout', in_reply_to: 't1' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    await ws.close();
  });

  it('answers unavailable at once past the queue bound', async () => {
    await manualWorker('slow');
    const ws = await open(gw.wsUrl('frank'));
    for (let i = 0; i < 5; i++) ws.send({ agent_type: 'slow', message: 'x', id: `q${i}` });
    const refused = [await ws.next(1000), await ws.next(1000)];
    expect(refused.map((f) => [f['code'], f['in_reply_to']]).sort()).toEqual([
      ['unavailable', 'q3'],
      ['unavailable', 'q4'],
    ]);
    expect(await client.xlen(keys.agentRequests('slow'))).toBe(3);
    await ws.close();
  });

  it('answers unavailable at once past the queue bound of an in-process agent', async () => {
    const ws = await open(gw.wsUrl('gina'));
    for (let i = 0; i < 5; i++) ws.send({ agent_type: 'hold', message: `h${i}`, id: `h${i}` });
    const refused = [await ws.next(1000), await ws.next(1000)];
    expect(refused.map((f) => [f['code'], f['in_reply_to']]).sort()).toEqual([
      ['unavailable', 'h3'],
      ['unavailable', 'h4'],
    ]);
    expect(held).toHaveLength(3);
    // Once the held ones finish, the bound has room again.
    for (const release of held.splice(0)) release();
    const answered = [await ws.next(), await ws.next(), await ws.next()];
    expect(answered.map((f) => f['in_reply_to']).sort()).toEqual(['h0', 'h1', 'h2']);
    ws.send({ agent_type: 'hold', message: 'again', id: 'h5' });
    await waitFor(() => held.length === 1, 2000);
    held.splice(0)[0]!();
    expect(await ws.next()).toMatchObject({ type: 'response', message: 'again', in_reply_to: 'h5' });
    await ws.close();
  });
});
