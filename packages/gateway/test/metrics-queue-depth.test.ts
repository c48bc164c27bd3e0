import { afterAll, describe, expect, it } from 'vitest';
import { AgentWorker } from '@wsgw/agent-sdk';
import { findRedis, open, OtlpReceiver, spawnGateway, uniquePrefix, waitFor } from '@wsgw/testkit';

/**
 * docs/OBSERVABILITY.md: `websocket.agent.queue_depth` = "requests in the agent stream not yet
 * taken" (the instrument's own description: "Agent requests not yet taken by a worker"). It was
 * XLEN of the request stream, and a worker deletes an entry only when it settles the request, so
 * requests being worked on counted as queued: an idle-queue type with busy workers reported a
 * backlog (what an operator autoscales workers on). Now: XLEN less the entries workers hold.
 */
const AGENT = 'slowpoke';

describe('agent queue depth while every request is being worked on', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  });

  it('reports 0 queued when the worker has taken both requests', async () => {
    const redis = await findRedis();
    cleanups.push(() => redis.stop());
    const receiver = await OtlpReceiver.start();
    cleanups.push(() => receiver.close());
    const prefix = uniquePrefix('obsq');
    const started: string[] = [];
    const release: Array<() => void> = [];
    const worker = new AgentWorker({
      agentType: AGENT,
      redisUrl: redis.url,
      keyPrefix: prefix,
      concurrency: 8,
      handler: (request) =>
        new Promise<string>((resolve) => {
          started.push(request.message);
          release.push(() => resolve(request.message));
        }),
    });
    await worker.start();
    cleanups.push(async () => {
      for (const r of release.splice(0)) r();
      await worker.stop();
    });
    const gw = await spawnGateway({
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: prefix,
      WEBSOCKET_BUILTIN_AGENTS: '',
      OTEL_SDK_DISABLED: 'false',
      ...receiver.exportEnv(),
      OTEL_TRACES_SAMPLER: 'always_off',
    });
    cleanups.push(() => gw.stop());

    const client = await open(gw.wsUrl('queue-user'));
    client.send({ agent_type: AGENT, message: 'one', id: '1' });
    client.send({ agent_type: AGENT, message: 'two', id: '2' });
    // The worker has taken both: its handler is running for each.
    await waitFor(() => started.length === 2, 10_000);
    // Exports made after both were taken.
    const after = receiver.requests.length;
    await receiver.waitFor(() => receiver.requests.filter((r) => r.path === '/v1/metrics').length > 0 && receiver.requests.length >= after + 3, 10_000);
    expect(receiver.lastPoint('websocket.requests.pending')?.value).toBe(2);
    expect(receiver.lastPoint('websocket.agent.queue_depth', { agent_type: AGENT })?.value).toBe(0);

    for (const r of release.splice(0)) r();
    expect(await client.next()).toMatchObject({ type: 'response' });
    expect(await client.next()).toMatchObject({ type: 'response' });
    await client.close();
  }, 60_000);
});
