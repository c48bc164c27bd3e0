import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { spawnGateway, withGatewayReport, type GatewayProcess } from '@wsgw/testkit';

describe('withGatewayReport', () => {
  let gateway: GatewayProcess;
  beforeAll(async () => {
    gateway = await spawnGateway({});
  });
  afterAll(() => gateway.stop());

  it("adds the gateways' warnings to the error of the work that failed, and passes results through", async () => {
    // A refused upgrade logs a security warning: what a failed test's message should show.
    const socket = new WebSocket(`ws://127.0.0.1:${gateway.port}/api/ws/agent`);
    socket.on('error', () => {});
    const status = await new Promise<number>((resolve) => socket.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
    socket.terminate();
    expect(status).toBe(401);
    await gateway.waitForLog((l) => l['event'] === 'security.session_invalid');

    const failure = await withGatewayReport([gateway], () => Promise.reject(new Error('no frame within 30000 ms'))).catch(
      (err: unknown) => err as Error,
    );
    expect(failure).toBeInstanceOf(Error);
    expect(failure?.message).toMatch(/^no frame within 30000 ms\n/);
    expect(failure?.message).toMatch(new RegExp(`\\ngateway ${gateway.pid}: [1-9]\\d* warning/error lines`));
    expect(failure?.message).toContain('"event":"security.session_invalid"');
    expect(failure?.cause).toBeInstanceOf(Error);

    await expect(withGatewayReport([gateway], async () => 42)).resolves.toBe(42);
  });
});
