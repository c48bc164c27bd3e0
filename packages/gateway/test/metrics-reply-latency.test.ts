import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { findRedis, open, OtlpReceiver, spawnGateway, uniquePrefix } from '@wsgw/testkit';

/**
 * docs/OBSERVABILITY.md: `websocket.message.reply_latency` is "message received to first reply
 * sent". The hub stamped `receivedAt` only after the per-user rate decision had come back from
 * Redis, so the wait for that decision (one Redis round trip, longer under a slow Redis) never
 * showed: with Redis 250 ms away, clients waited >= 250 ms for every echo reply while the histogram
 * reported ~0 s. It counts from the frame's arrival now.
 */
const DELAY_MS = 250;

/** Loopback TCP proxy that delays everything Redis sends back by DELAY_MS (order kept). */
async function slowLink(targetPort: number): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.on('data', (d) => upstream.write(d));
    upstream.on('data', (d) => setTimeout(() => client.writable && client.write(d), DELAY_MS));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function lastHistogram(receiver: OtlpReceiver, metric: string, agentType: string): { count: number; sum: number } | undefined {
  let found: { count: number; sum: number } | undefined;
  for (const r of receiver.requests) {
    if (r.path !== '/v1/metrics' || !r.text.includes(metric)) continue;
    const body = JSON.parse(r.text) as any;
    for (const rm of body.resourceMetrics ?? [])
      for (const sm of rm.scopeMetrics ?? [])
        for (const m of sm.metrics ?? []) {
          if (m.name !== metric) continue;
          for (const p of m.histogram.dataPoints ?? []) {
            const a = Object.fromEntries((p.attributes ?? []).map((kv: any) => [kv.key, Object.values(kv.value)[0]]));
            if (a['agent_type'] === agentType) found = { count: Number(p.count), sum: Number(p.sum) };
          }
        }
  }
  return found;
}

describe('reply latency includes the wait for the rate decision', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  });

  it('a reply the client waited >= 250 ms for is not recorded as ~0 s', async () => {
    const redis = await findRedis();
    cleanups.push(() => redis.stop());
    const redisPort = Number(new URL(redis.url).port);
    const link = await slowLink(redisPort);
    cleanups.push(() => link.close());
    const receiver = await OtlpReceiver.start();
    cleanups.push(() => receiver.close());
    const gw = await spawnGateway({
      REDIS_URL: `redis://127.0.0.1:${link.port}`,
      REDIS_KEY_PREFIX: uniquePrefix('obslat'),
      WEBSOCKET_BUILTIN_AGENTS: 'echo',
      OTEL_SDK_DISABLED: 'false',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_METRIC_EXPORT_INTERVAL: '300',
      OTEL_METRIC_EXPORT_TIMEOUT: '300',
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

    await receiver.waitFor(() => (lastHistogram(receiver, 'websocket.message.reply_latency', 'echo')?.count ?? 0) >= 4, 15_000);
    const h = lastHistogram(receiver, 'websocket.message.reply_latency', 'echo')!;
    expect(h.count).toBe(4);
    // The mean latency the gateway reports vs. what the client saw (>= 0.25 s each).
    expect(h.sum / h.count).toBeGreaterThanOrEqual((DELAY_MS * 0.9) / 1000);
  }, 60_000);
});
