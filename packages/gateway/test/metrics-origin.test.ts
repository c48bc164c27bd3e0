import { describe, expect, it } from 'vitest';
import { launchGateway, open, OtlpReceiver } from '@wsgw/testkit';

/**
 * docs/OBSERVABILITY.md: "`origin` on closes is the origin itself only when it is in
 * `CORS_ORIGINS`; any other ... is `other`". CORS_ORIGINS accepts an origin written with a trailing
 * slash or in upper case (config's isOrigin, OriginPolicy normalizes it, the upgrade is allowed),
 * and the metrics now compare both as the upgrade check does. Before, they compared the browser's
 * Origin with the raw CORS_ORIGINS strings: every close of the allowed origin was `other`.
 */
describe('closes by origin when CORS_ORIGINS spells an origin in a form config accepts', () => {
  for (const configured of ['https://app.example.com/', 'https://App.Example.com']) {
    it(`CORS_ORIGINS=${configured}: a close from https://app.example.com is counted under that origin`, async () => {
      const receiver = await OtlpReceiver.start();
      const gw = launchGateway({
        ...receiver.exportEnv(),
        OTEL_TRACES_SAMPLER: 'always_off',
        CORS_ORIGINS: configured,
        LOG_LEVEL: 'info',
      });
      try {
        const port = await gw.listening();
        // What every browser sends for that page: the serialized origin, lower case, no slash.
        const client = await open(`ws://127.0.0.1:${port}/api/ws/agent?session_token=t1`, { origin: 'https://app.example.com' });
        await client.close();
        await receiver.waitFor(() => receiver.lastPoint('websocket.connection.closed') !== undefined, 15_000, 'the close');
        // Cumulative exports repeat the series: the origins of every close point, each once.
        const origins = new Set(receiver.metrics().filter((p) => p.metric === 'websocket.connection.closed').map((p) => p.attributes['origin']));
        expect([...origins]).toEqual(['https://app.example.com']);
      } finally {
        if (gw.child.exitCode === null) gw.child.kill('SIGKILL');
        await gw.exit;
        await receiver.close();
      }
    }, 30_000);
  }
});
