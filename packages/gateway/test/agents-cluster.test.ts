import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  findRedis,
  open,
  spawnAgentWorker,
  spawnGateway,
  uniquePrefix,
  type GatewayProcess,
  type OpenClient,
  type TestRedis,
  type WorkerProcess,
} from '@wsgw/testkit';

/**
 * CONTRACT §6 with real processes: gateway replicas (`node packages/gateway/dist/main.js`) and
 * example workers (`node packages/agent-sdk/dist/examples/*.js`) sharing one Redis. Needs a build.
 */

const LIMITS = { WEBSOCKET_MAX_MESSAGES_PER_SECOND: '10000', WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '100000' };

/** Collects every frame a client receives, by `in_reply_to`. */
function collector(client: OpenClient) {
  const frames: Array<Record<string, unknown>> = [];
  let wake: (() => void) | undefined;
  client.ws.on('message', (data) => {
    frames.push(JSON.parse(data.toString()) as Record<string, unknown>);
    wake?.();
  });
  return {
    frames,
    async until(check: () => boolean, timeoutMs: number): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (!check()) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out with ${frames.length} frames`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, Math.min(left, 200));
        });
      }
    },
  };
}

describe('agents across replicas (processes)', () => {
  let redis: TestRedis;
  const processes: Array<{ stop(): Promise<unknown> }> = [];

  beforeAll(async () => {
    redis = await findRedis();
  });
  afterEach(async () => {
    await Promise.all(processes.splice(0).map((p) => p.stop()));
  });
  afterAll(async () => {
    await redis?.stop();
  });

  async function gateway(prefix: string, env: Record<string, string> = {}): Promise<GatewayProcess> {
    const g = await spawnGateway({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, ...LIMITS, ...env });
    processes.push(g);
    return g;
  }

  async function worker(prefix: string, env: Record<string, string>, example: 'echo' | 'words' = 'echo'): Promise<WorkerProcess> {
    const w = await spawnAgentWorker({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, ...env }, example);
    processes.push(w);
    return w;
  }

  /** Pending entries per consumer of a type's group, by consumer name. */
  async function pendingByConsumer(prefix: string, agentType: string): Promise<Map<string, number>> {
    const admin = redis.admin();
    const summary = (await admin.xpending(`${prefix}{agent:${agentType}}:requests`, 'workers')) as [
      number,
      string | null,
      string | null,
      Array<[string, string]> | null,
    ];
    return new Map((summary[3] ?? []).map(([name, count]) => [name, Number(count)]));
  }

  it('two replicas and two workers answer hundreds of messages, each at the socket that asked; a SIGKILLed worker loses none', async () => {
    const prefix = uniquePrefix('agents-cluster');
    const workerEnv = { AGENT_TYPE: 'remote', ECHO_DELAY_MS: '150', AGENT_HEARTBEAT_MS: '500', AGENT_CLAIM_IDLE_MS: '1500' };
    const [g1, g2] = await Promise.all([gateway(prefix), gateway(prefix)]);
    const [w1] = await Promise.all([worker(prefix, workerEnv), worker(prefix, workerEnv)]);

    // Two clients on each replica.
    const clients = await Promise.all(
      [g1, g1, g2, g2].map(async (g, i) => {
        const client = await open(g!.wsUrl(`user-${i}`));
        return { name: `c${i}`, client, got: collector(client) };
      }),
    );

    // Round 1: 100 messages per client, all workers alive.
    for (const c of clients) {
      for (let i = 0; i < 100; i++) c.client.send({ agent_type: 'remote', message: `${c.name}:${i}`, id: `${c.name}-a${i}` });
    }
    await Promise.all(clients.map((c) => c.got.until(() => c.got.frames.length >= 100, 20_000)));
    for (const c of clients) {
      expect(c.got.frames).toHaveLength(100);
      for (const f of c.got.frames) {
        expect(f['type']).toBe('response');
        // The reply reached the socket that asked, with the answer to its own message.
        expect(String(f['in_reply_to'])).toMatch(new RegExp(`^${c.name}-a\\d+$`));
        expect(f['message']).toBe(`${c.name}:${String(f['in_reply_to']).split('-a')[1]}`);
      }
      expect(new Set(c.got.frames.map((f) => f['in_reply_to'])).size).toBe(100);
    }

    // Round 2: another 100 each; one worker is SIGKILLed while it holds requests.
    for (const c of clients) c.got.frames.length = 0;
    for (const c of clients) {
      for (let i = 0; i < 100; i++) c.client.send({ agent_type: 'remote', message: `${c.name}:${i}`, id: `${c.name}-b${i}` });
    }
    const total = () => clients.reduce((n, c) => n + c.got.frames.length, 0);
    await clients[0]!.got.until(() => total() >= 60, 20_000);
    const held = [...(await pendingByConsumer(prefix, 'remote')).entries()].find(([name]) => name.includes(`-${w1!.pid}-`));
    w1!.signal('SIGKILL');
    await w1!.exited;
    expect(held?.[1] ?? 0).toBeGreaterThan(0);

    await Promise.all(clients.map((c) => c.got.until(() => c.got.frames.length >= 100, 30_000)));
    // A quiet moment in which a duplicate would show up.
    await new Promise((r) => setTimeout(r, 1000));
    for (const c of clients) {
      const ids = c.got.frames.map((f) => String(f['in_reply_to']));
      expect(c.got.frames.every((f) => f['type'] === 'response')).toBe(true);
      expect(ids).toHaveLength(100);
      expect(new Set(ids).size).toBe(100);
      expect(ids.every((id) => id.startsWith(`${c.name}-b`))).toBe(true);
    }
    await Promise.all(clients.map((c) => c.client.close()));
  }, 90_000);

  it('agent_unavailable within 1 s for an unserved type; agent_timeout when every worker hangs; unavailable once all workers are dead', async () => {
    const prefix = uniquePrefix('agents-dead');
    const g = await gateway(prefix, { AGENT_REPLY_TIMEOUT_SECONDS: '2' });
    // Default heartbeat: the contract's "a dead worker stops counting within 10 s" as shipped.
    const w = await worker(prefix, { AGENT_TYPE: 'fragile' });
    const client = await open(g.wsUrl('zoe'));

    let started = Date.now();
    client.send({ agent_type: 'nobody', message: 'x', id: 'n1' });
    expect(await client.next(1000)).toMatchObject({ type: 'error', code: 'agent_unavailable', in_reply_to: 'n1' });
    expect(Date.now() - started).toBeLessThan(1000);

    client.send({ agent_type: 'fragile', message: 'alive?', id: 'f1' });
    expect(await client.next()).toMatchObject({ type: 'response', message: 'alive?', in_reply_to: 'f1' });

    // Frozen worker: still within its lease, so the message is accepted, and times out.
    w.signal('SIGSTOP');
    started = Date.now();
    client.send({ agent_type: 'fragile', message: 'hello?', id: 'f2' });
    expect(await client.next(6000)).toMatchObject({ type: 'error', code: 'agent_timeout', in_reply_to: 'f2' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);

    w.signal('SIGKILL');
    await w.exited;
    const killedAt = Date.now();
    let code: unknown;
    for (let i = 0; code !== 'agent_unavailable'; i++) {
      expect(Date.now() - killedAt).toBeLessThan(10_000);
      client.send({ agent_type: 'fragile', message: 'anyone?', id: `p${i}` });
      const frame = await client.next(3000).catch(() => undefined);
      code = frame?.['code'];
      if (code !== 'agent_unavailable') await new Promise((r) => setTimeout(r, 250));
    }
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    await client.close();
  }, 60_000);

  it('chunks from a streaming worker process reach the client in order', async () => {
    const prefix = uniquePrefix('agents-words');
    const g = await gateway(prefix);
    await worker(prefix, { AGENT_TYPE: 'words' }, 'words');
    const client = await open(g.wsUrl('wendy'));
    const words = Array.from({ length: 200 }, (_, i) => `w${i}`);
    client.send({ agent_type: 'words', message: words.join(' '), id: 'w', conversation_id: 'conv' });
    const frames = [];
    for (let i = 0; i < words.length; i++) frames.push(await client.next());
    expect(frames.map((f) => f['message'])).toEqual(words);
    expect(frames.every((f) => f['type'] === 'chunk' && f['conversation_id'] === 'conv')).toBe(true);
    expect(frames.map((f) => f['done'])).toEqual(words.map((_, i) => i === words.length - 1));
    await client.close();
    // A Redis-mode replica (built-in echo in process, streams for the rest) still stops cleanly on SIGTERM.
    expect(await g.stop()).toEqual({ code: 0, signal: null });
  });
});
