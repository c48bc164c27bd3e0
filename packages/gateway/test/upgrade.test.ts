import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect, open, startTestGateway, waitFor, type OpenClient, type TestGateway } from '@wsgw/testkit';

const ORIGIN = 'https://app.example';

describe('WebSocket upgrade: every row of CONTRACT §4', () => {
  let gw: TestGateway;
  const clients: OpenClient[] = [];
  beforeAll(async () => {
    gw = await startTestGateway({
      CORS_ORIGINS: ORIGIN,
      WEBSOCKET_PATHS: '/api/ws,/v2/ws',
      WEBSOCKET_MAX_CONNECTIONS_PER_USER: '2',
      WEBSOCKET_MAX_GLOBAL_CONNECTIONS: '4',
    });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await waitFor(() => gw.handle.hub.openCount === 0);
  });
  afterAll(() => gw.stop());

  it('opens on {path}/agent for every WEBSOCKET_PATHS entry', async () => {
    clients.push(await open(gw.wsUrl('a', '/api/ws'), { origin: ORIGIN }));
    clients.push(await open(gw.wsUrl('b', '/v2/ws'), { origin: ORIGIN }));
    expect(gw.handle.hub.openCount).toBe(2);
  });

  it('takes the token from session_token or Authorization: Bearer', async () => {
    clients.push(await open(`ws://127.0.0.1:${gw.port}/api/ws/agent`, { headers: { Authorization: 'Bearer tok-b' } }));
    expect(gw.handle.hub.openCount).toBe(1);
  });

  it('403 origin_not_allowed for a listed-origin policy and another Origin; missing Origin is allowed', async () => {
    const result = await connect(gw.wsUrl('a'), { origin: 'https://evil.example' });
    expect(result.opened).toBe(false);
    if (!result.opened) {
      expect(result.rejected.status).toBe(403);
      expect(result.rejected.body).toEqual({ error: 'origin_not_allowed', message: expect.any(String) });
    }
    clients.push(await open(gw.wsUrl('a')));
    const event = gw.logs().find((l) => l['event'] === 'security.origin_rejected');
    expect(event).toMatchObject({ origin: 'https://evil.example', path: '/api/ws/agent' });
  });

  it('401 session_invalid when the token is missing or empty', async () => {
    for (const url of [gw.wsUrl(''), `ws://127.0.0.1:${gw.port}/api/ws/agent?session_token=`]) {
      const result = await connect(url, { origin: ORIGIN });
      expect(result.opened).toBe(false);
      if (!result.opened) {
        expect(result.rejected.status).toBe(401);
        expect(result.rejected.body).toMatchObject({ error: 'session_invalid' });
      }
    }
    const bad = await connect(`ws://127.0.0.1:${gw.port}/api/ws/agent`, { headers: { Authorization: 'Basic abc' } });
    expect(bad.opened ? 0 : bad.rejected.status).toBe(401);
  });

  it('429 user_connection_limit with Retry-After past the per-user limit', async () => {
    clients.push(await open(gw.wsUrl('same-user')));
    clients.push(await open(gw.wsUrl('same-user')));
    const result = await connect(gw.wsUrl('same-user'));
    expect(result.opened).toBe(false);
    if (!result.opened) {
      expect(result.rejected.status).toBe(429);
      expect(result.rejected.headers['retry-after']).toMatch(/^\d+$/);
      expect(result.rejected.body).toMatchObject({ error: 'user_connection_limit' });
    }
    const event = gw.logs().find((l) => l['event'] === 'security.connection_limit');
    expect(event).toMatchObject({ reason: 'user_connection_limit', user_id: expect.any(String) });
  });

  it('503 global_connection_limit with Retry-After past the global limit', async () => {
    for (const token of ['g1', 'g2', 'g3', 'g4']) clients.push(await open(gw.wsUrl(token)));
    const result = await connect(gw.wsUrl('g5'));
    expect(result.opened).toBe(false);
    if (!result.opened) {
      expect(result.rejected.status).toBe(503);
      expect(result.rejected.headers['retry-after']).toMatch(/^\d+$/);
      expect(result.rejected.body).toMatchObject({ error: 'global_connection_limit' });
    }
  });

  it('a closed socket gives its slot back', async () => {
    const a = await open(gw.wsUrl('reuse'));
    const b = await open(gw.wsUrl('reuse'));
    await a.close();
    await waitFor(() => gw.handle.hub.openCount === 1);
    clients.push(b, await open(gw.wsUrl('reuse')));
  });
});

describe('WebSocket upgrade: draining and client aborts', () => {
  it('while draining: readiness 503, new upgrades 503 draining, in-flight replies still delivered, then 1001', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const gw = await startTestGateway({ SHUTDOWN_DRAIN_SECONDS: '10' }, {
      slow: async (request) => {
        await gate;
        return `late ${request.message}`;
      },
    });
    const client = await open(gw.wsUrl('x'));
    client.send({ agent_type: 'slow', message: 'work', id: 'w1' });
    await waitFor(() => gw.handle.hub.pendingCount === 1);
    const stopping = gw.stop();
    expect((await fetch(gw.httpUrl('/readyz'))).status).toBe(503);
    const refused = await connect(gw.wsUrl('y'));
    expect(refused.opened ? 0 : refused.rejected.status).toBe(503);
    if (!refused.opened) expect(refused.rejected.body).toMatchObject({ error: 'draining' });
    release();
    expect(await client.next()).toMatchObject({ type: 'response', in_reply_to: 'w1', message: 'late work' });
    await stopping;
    expect((await client.closed).code).toBe(1001);
  });

  it('closes sockets with 1001 after at most SHUTDOWN_DRAIN_SECONDS even if an agent never answers', async () => {
    const gw = await startTestGateway({ SHUTDOWN_DRAIN_SECONDS: '1' }, { hang: () => new Promise(() => {}) });
    const client = await open(gw.wsUrl('x'));
    client.send({ agent_type: 'hang', message: 'x' });
    await waitFor(() => gw.handle.hub.pendingCount === 1);
    const started = Date.now();
    await gw.stop();
    expect((await client.closed).code).toBe(1001);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('a client that gives up during a slow session check holds no slot', async () => {
    const pending: Array<() => void> = [];
    const introspection: Server = createServer((req, res) => {
      req.resume();
      pending.push(() => res.end(JSON.stringify({ user_id: 'abort-user' })));
    });
    await new Promise<void>((r) => introspection.listen(0, '127.0.0.1', () => r()));
    const gw = await startTestGateway({
      SESSION_VALIDATOR: 'http',
      SESSION_INTROSPECTION_URL: `http://127.0.0.1:${(introspection.address() as AddressInfo).port}/`,
      SESSION_INTROSPECTION_TIMEOUT_MS: '10000',
      WEBSOCKET_MAX_CONNECTIONS_PER_USER: '1',
    });
    const { default: WebSocket } = await import('ws');
    const ws = new WebSocket(gw.wsUrl('t'));
    ws.on('error', () => {});
    await waitFor(() => pending.length === 1);
    ws.terminate(); // gone mid-upgrade
    await new Promise((r) => setTimeout(r, 100));
    pending.shift()!(); // the validator now says yes; the slot must not stay taken
    await new Promise((r) => setTimeout(r, 200));
    expect(gw.handle.hub.openCount).toBe(0);
    // The user's only slot is free: a new connection gets it.
    const next = open(gw.wsUrl('t'));
    await waitFor(() => pending.length === 1);
    pending.shift()!();
    const client = await next;
    expect(gw.handle.hub.openCount).toBe(1);
    await client.close();
    await gw.stop();
    introspection.closeAllConnections();
    introspection.close();
  });
});
