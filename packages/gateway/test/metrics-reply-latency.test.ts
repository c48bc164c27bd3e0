import { afterAll, describe, expect, it } from 'vitest';
import { findRedis, open, OtlpReceiver, spawnGateway, TcpProxy, uniquePrefix } from '@wsgw/testkit';

/**
 * docs/OBSERVABILITY.md: `websocket.message.reply_latency` is "message received to first reply
 * sent". The hub stamped `receivedAt` only after the per-user rate decision had come back from
 * Redis, so the wait for that decision (one Redis round trip, longer under a slow Redis) never
 * showed: with Redis 250 ms away, clients waited >= 250 ms for every echo reply while the histogram
 * reported ~0 s. It counts from the frame's arrival now.
 */
const DELAY_MS = 250;

describe('reply latency includes the wait for the rate decision', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  });

  it('a reply the client waited >= 250 ms for is not recorded as ~0 s', async () => {
    const redis = await findRedis();
    cleanups.push(() => redis.stop());
    const redisPort = Number(new URL(redis.url).port);
    // Redis' answers come back DELAY_MS late: every rate decision waits that long.
    const link = await TcpProxy.start(redisPort);
    link.delayReplies(DELAY_MS);
    cleanups.push(() => link.close());
    const receiver = await OtlpReceiver.start();
    cleanups.push(() => receiver.close());
    const gw = await spawnGateway({
      REDIS_URL: link.url,
      REDIS_KEY_PREFIX: uniquePrefix('obslat'),
      WEBSOCKET_BUILTIN_AGENTS: 'echo',
      OTEL_SDK_DISABLED: 'false',
      ...receiver.exportEnv(),
      OTEL_TRACES_SAMPLER: 'always_off',
    });
    cleanups.push(() => gw.stop());

    const client = await open(gw.wsUrl('latency-user'));
    const waited: number[] = [];
    for (let i = 0; i < 4; i++) {
      const t0 = performance.now();
      client.send({ agent_type: 'echo', message: `m${i}`, id: `m${i}` });
      expect(await client.next()).toMatchObject({ type: 'response', in_reply_to: `m${i}` });
      waited.push(performance.now() - t0);
    }
    await client.close();
    expect(Math.min(...waited)).toBeGreaterThanOrEqual(DELAY_MS);

    await receiver.waitFor(() => (receiver.lastPoint('websocket.message.reply_latency', { agent_type: 'echo' })?.value ?? 0) >= 4, 15_000);
    const point = receiver.lastPoint('websocket.message.reply_latency', { agent_type: 'echo' })!;
    const h = { count: point.value, sum: point.sum ?? 0 };
    expect(h.count).toBe(4);
    // The mean latency the gateway reports vs. what the client saw (>= 0.25 s each).
    expect(h.sum / h.count).toBeGreaterThanOrEqual((DELAY_MS * 0.9) / 1000);
  }, 60_000);
});
