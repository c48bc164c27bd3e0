import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { redisKeys } from '@wsgw/redis';
import {
  open,
  startTestGateway,
  spawnAgentWorker,
  spawnGateway,
  startRedisServer,
  uniquePrefix,
  type GatewayProcess,
  type OpenClient,
  type RedisServerProcess,
  type WorkerProcess,
} from '@wsgw/testkit';

/**
 * Redis mode, as processes: a built-in agent (WEBSOCKET_BUILTIN_AGENTS, CONTRACT §2 "served inside
 * the gateway process") is answered in the gateway process with no stream traffic, while a type
 * the gateway does not serve goes through Redis Streams to a worker process. A redis-server of this
 * file's own, so `INFO commandstats` counts this file's traffic only. Needs a build.
 */
describe('built-in agents in Redis mode (processes)', () => {
  let server: RedisServerProcess;
  let admin: Redis;
  let gateway: GatewayProcess;
  let worker: WorkerProcess;
  let client: OpenClient;
  const prefix = uniquePrefix('agents-inprocess');
  const keys = redisKeys(prefix);

  beforeAll(async () => {
    server = await startRedisServer();
    admin = server.admin();
    gateway = await spawnGateway({
      REDIS_URL: server.url,
      REDIS_KEY_PREFIX: prefix,
      WEBSOCKET_BUILTIN_AGENTS: 'echo',
      WEBSOCKET_MAX_MESSAGES_PER_SECOND: '10000',
      WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '100000',
    });
    worker = await spawnAgentWorker({ REDIS_URL: server.url, REDIS_KEY_PREFIX: prefix, AGENT_TYPE: 'remote-echo' });
    client = await open(gateway.wsUrl('ivy'));
  });
  afterAll(async () => {
    await client?.close();
    await worker?.stop();
    await gateway?.stop();
    await server?.stop();
  });

  /** Calls per command since the server started (commands run inside scripts included). */
  async function calls(): Promise<Record<string, number>> {
    const info = await admin.info('commandstats');
    return Object.fromEntries([...info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)].map((m) => [m[1], Number(m[2])]));
  }

  /** Sends `count` messages of one type at once and checks each got its echo, once. */
  async function exchange(agentType: string, count: number): Promise<void> {
    for (let i = 0; i < count; i++) client.send({ agent_type: agentType, message: `${agentType}-${i}`, id: `${agentType}-${i}` });
    const frames = [];
    for (let i = 0; i < count; i++) frames.push(await client.next(10_000));
    expect(frames.every((f) => f['type'] === 'response' && f['message'] === f['in_reply_to'])).toBe(true);
    expect(new Set(frames.map((f) => f['in_reply_to'])).size).toBe(count);
  }

  /** How many more times Redis ran `command` in `after` than in `before`. */
  const grew = (before: Record<string, number>, after: Record<string, number>, command: string) =>
    (after[command] ?? 0) - (before[command] ?? 0);

  it('answers the built-in echo with no request stream and no XADD', async () => {
    const before = await calls();
    await exchange('echo', 200);
    const after = await calls();
    // Nothing was written to a stream (requests or replies), and no key of the echo type exists.
    expect(grew(before, after, 'xadd')).toBe(0);
    expect(await admin.exists(keys.agentRequests('echo'), keys.agentWorkers('echo'))).toBe(0);
    // The limits still went to Redis: this is Redis mode.
    expect(grew(before, after, 'evalsha')).toBeGreaterThan(0);
  });

  it('sends a type the gateway does not serve through Redis Streams to a worker process', async () => {
    const before = await calls();
    await exchange('remote-echo', 50);
    const after = await calls();
    // One XADD per request (inside the publish script) and at least one reply batch.
    expect(grew(before, after, 'xadd')).toBeGreaterThanOrEqual(51);
    expect(await admin.exists(keys.agentRequests('remote-echo'))).toBe(1);
    expect(await admin.xlen(keys.agentRequests('remote-echo'))).toBe(0);
    expect(worker.logs().some((l) => l['level'] === 50 || l['level'] === 'error')).toBe(false);
  });
});

/**
 * In-process agents keep the AGENT_MAX_QUEUE bound by counting a request until its handler
 * settles. A hung handler never settles: before, once AGENT_MAX_QUEUE requests had hung the type
 * answered `unavailable` for the life of the process. A handler silent for
 * AGENT_REPLY_TIMEOUT_SECONDS (its request has had agent_timeout) now gives its slot back.
 */
describe('hung in-process handlers and AGENT_MAX_QUEUE', () => {
  it('requests that already timed out do not keep the agent type refused', async () => {
    let calls = 0;
    const gw = await startTestGateway(
      { AGENT_MAX_QUEUE: '2', AGENT_REPLY_TIMEOUT_SECONDS: '1' },
      // The first two requests hang (a stuck downstream call); later ones answer.
      { flaky: (request) => (++calls <= 2 ? new Promise<string>(() => {}) : Promise.resolve(`ok ${request.message}`)) },
    );
    try {
      const c = await open(gw.wsUrl('queue-leak'));
      c.send({ agent_type: 'flaky', message: 'a', id: 'q1' });
      c.send({ agent_type: 'flaky', message: 'b', id: 'q2' });
      const outcomes = [await c.next(5_000), await c.next(5_000)];
      expect(outcomes.map((f) => f['code'])).toEqual(['agent_timeout', 'agent_timeout']);
      // Both have had their outcome; the slots come back within a sweep (1 s).
      await new Promise((r) => setTimeout(r, 1_500));
      c.send({ agent_type: 'flaky', message: 'c', id: 'q3' });
      expect(await c.next(5_000)).toMatchObject({ type: 'response', in_reply_to: 'q3', message: 'ok c' });
      await c.close();
    } finally {
      await gw.stop();
    }
  });
});
