import { describe, expect, it } from 'vitest';
import { launchGateway, open, OtlpReceiver } from '@wsgw/testkit';

/**
 * docs/OBSERVABILITY.md: "`origin` on closes is the origin itself only when it is in
 * `CORS_ORIGINS`; any other ... is `other`". CORS_ORIGINS accepts an origin written with a trailing
 * slash or in upper case (config's isOrigin, OriginPolicy normalizes it, the upgrade is allowed),
 * and the metrics now compare both as the upgrade check does. Before, they compared the browser's
 * Origin with the raw CORS_ORIGINS strings: every close of the allowed origin was `other`.
 */
function lastValues(receiver: OtlpReceiver, metric: string): Array<{ attrs: Record<string, unknown>; value: number }> {
  const bodies = receiver.requests.filter((r) => r.path === '/v1/metrics' && r.text.includes(metric));
  const last = JSON.parse(bodies[bodies.length - 1]!.text) as any;
  const out: Array<{ attrs: Record<string, unknown>; value: number }> = [];
  for (const rm of last.resourceMetrics ?? [])
    for (const sm of rm.scopeMetrics ?? [])
      for (const m of sm.metrics ?? []) {
        if (m.name !== metric) continue;
        for (const p of m.sum.dataPoints ?? []) {
          const attrs: Record<string, unknown> = {};
          for (const kv of p.attributes ?? []) attrs[kv.key] = Object.values(kv.value)[0];
          out.push({ attrs, value: Number(p.asInt ?? p.asDouble) });
        }
      }
  return out;
}

describe('closes by origin when CORS_ORIGINS spells an origin in a form config accepts', () => {
  for (const configured of ['https://app.example.com/', 'https://App.Example.com']) {
    it(`CORS_ORIGINS=${configured}: a close from https://app.example.com is counted under that origin`, async () => {
      const receiver = await OtlpReceiver.start();
      const gw = launchGateway({
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_METRIC_EXPORT_INTERVAL: '300',
        OTEL_METRIC_EXPORT_TIMEOUT: '300',
        OTEL_TRACES_SAMPLER: 'always_off',
        CORS_ORIGINS: configured,
        LOG_LEVEL: 'info',
      });
      try {
        const port = await gw.listening();
        // What every browser sends for that page: the serialized origin, lower case, no slash.
        const client = await open(`ws://127.0.0.1:${port}/api/ws/agent?session_token=t1`, { origin: 'https://app.example.com' });
        await client.close();
        await receiver.waitFor(() => lastValuesSafe(receiver).length > 0, 15_000, 'the close');
        const closes = lastValues(receiver, 'websocket.connection.closed');
        expect(closes.map((c) => c.attrs['origin'])).toEqual(['https://app.example.com']);
      } finally {
        if (gw.child.exitCode === null) gw.child.kill('SIGKILL');
        await gw.exit;
        await receiver.close();
      }
    }, 30_000);
  }
});

function lastValuesSafe(receiver: OtlpReceiver) {
  return receiver.requests.some((r) => r.path === '/v1/metrics' && r.text.includes('websocket.connection.closed'))
    ? lastValues(receiver, 'websocket.connection.closed')
    : [];
}
