import { createHmac, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect, launchGateway, open, startTestGateway, waitFor, type OpenClient, type TestGateway } from '@wsgw/testkit';

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

describe('WebSocket upgrade: jwt sessions, the token\'s fault (401) against the key server\'s (503)', () => {
  const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const exp = () => Math.floor(Date.now() / 1000) + 300;

  it('a forged header the validator does not support (unknown "crit") is 401 session_invalid, logged as such', async () => {
    const gw = await startTestGateway({ SESSION_VALIDATOR: 'jwt', SESSION_JWT_SECRET: 'upgrade-secret' });
    try {
      // Written without the secret: jose refuses the `crit` before it looks at the signature.
      const input = `${b64url({ alg: 'HS256', crit: ['x-forged'], 'x-forged': 1 })}.${b64url({ sub: 'mallory', exp: exp() })}`;
      const forged = `${input}.${createHmac('sha256', 'not-the-secret').update(input).digest('base64url')}`;
      const result = await connect(gw.wsUrl(forged));
      expect(result.opened ? 101 : result.rejected.status).toBe(401);
      if (!result.opened) expect(result.rejected.body).toEqual({ error: 'session_invalid', message: expect.any(String) });
      const event = gw.logs().find((l) => l['event'] === 'security.session_invalid');
      expect(event).toMatchObject({ reason: 'ERR_JOSE_NOT_SUPPORTED', path: '/api/ws/agent' });
    } finally {
      await gw.stop();
    }
  });

  it('a valid RS256 token while the JWKS endpoint answers 503 is 503 unavailable; once it answers, the token opens', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    let up = false;
    const jwks: Server = createServer((_req, res) => {
      if (!up) {
        res.statusCode = 503;
        res.end('maintenance');
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'RS256', use: 'sig' }] }));
    });
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', () => r()));
    const gw = await startTestGateway({
      SESSION_VALIDATOR: 'jwt',
      SESSION_JWKS_URL: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`,
    });
    try {
      const input = `${b64url({ alg: 'RS256', kid: 'k1', typ: 'JWT' })}.${b64url({ sub: 'alice', exp: exp() })}`;
      const token = `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
      const down = await connect(gw.wsUrl(token));
      expect(down.opened ? 101 : down.rejected.status).toBe(503);
      if (!down.opened) expect(down.rejected.body).toEqual({ error: 'unavailable', message: expect.any(String) });
      expect(gw.logs().some((l) => l['event'] === 'security.session_invalid')).toBe(false);
      up = true;
      const client = await open(gw.wsUrl(token));
      await client.close();
    } finally {
      await gw.stop();
      jwks.closeAllConnections();
      jwks.close();
    }
  });
});

describe('WebSocket upgrade behind a load balancer: WEBSOCKET_TRUSTED_PROXIES', () => {
  const secret = 'proxy-secret';
  const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const validToken = (sub: string) => {
    const input = `${b64url({ alg: 'HS256' })}.${b64url({ sub, exp: Math.floor(Date.now() / 1000) + 300 })}`;
    return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
  };
  const throttled = (env: Record<string, string> = {}) =>
    startTestGateway({ SESSION_VALIDATOR: 'jwt', SESSION_JWT_SECRET: secret, WEBSOCKET_SESSION_FAILURES_PER_MINUTE: '3', ...env });

  /** An upgrade's status; header values given as a list go out as one header line each. */
  function upgradeStatus(gw: TestGateway, token: string, headers: Record<string, string | string[]> = {}): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = request({
        host: '127.0.0.1',
        port: gw.port,
        path: `/api/ws/agent?session_token=${encodeURIComponent(token)}`,
        headers: {
          Connection: 'Upgrade',
          Upgrade: 'websocket',
          'Sec-WebSocket-Version': '13',
          'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
          ...headers,
        },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('upgrade', (_res, socket) => {
        socket.destroy();
        resolve(101);
      });
      req.on('error', reject);
      req.end();
    });
  }
  const ipsOfRefusals = (gw: TestGateway) =>
    gw.logs()
      .filter((l) => l['event'] === 'security.session_invalid')
      .map((l) => l['ip']);

  it("one client's failed tokens through the proxy lock out that client only, and logs name it", async () => {
    const gw = await throttled({ WEBSOCKET_TRUSTED_PROXIES: '10.0.0.0/8, 127.0.0.1' });
    try {
      const attacker = { 'X-Forwarded-For': '203.0.113.66' };
      for (let i = 0; i < 3; i++) expect(await upgradeStatus(gw, `guess-${i}`, attacker)).toBe(401);
      expect(await upgradeStatus(gw, 'guess-3', attacker)).toBe(429);
      // Another client of the same balancer, through a second proxy hop.
      expect(await upgradeStatus(gw, validToken('alice'), { 'X-Forwarded-For': '198.51.100.7, 10.1.2.3' })).toBe(101);
      expect(ipsOfRefusals(gw)).toEqual(['203.0.113.66', '203.0.113.66', '203.0.113.66', '203.0.113.66']);
    } finally {
      await gw.stop();
    }
  });

  it('reads every X-Forwarded-For line: a forged one before the line HAProxy appends changes nothing', async () => {
    const gw = await throttled({ WEBSOCKET_TRUSTED_PROXIES: '127.0.0.1' });
    try {
      // `option forwardfor` adds its own line after the client's; the first line is the client's word.
      for (let i = 0; i < 3; i++) {
        expect(await upgradeStatus(gw, `guess-${i}`, { 'X-Forwarded-For': [`192.0.2.${i}`, '203.0.113.66'] })).toBe(401);
      }
      expect(await upgradeStatus(gw, 'guess-3', { 'X-Forwarded-For': ['192.0.2.9', '203.0.113.66'] })).toBe(429);
      expect(await upgradeStatus(gw, validToken('alice'), { 'X-Forwarded-For': '192.0.2.1' })).toBe(101);
      expect(new Set(ipsOfRefusals(gw))).toEqual(new Set(['203.0.113.66']));
    } finally {
      await gw.stop();
    }
  });

  it('trusts no proxy by default: X-Forwarded-For is ignored, rotating it does not escape the throttle', async () => {
    const gw = await throttled();
    try {
      for (let i = 0; i < 3; i++) {
        expect(await upgradeStatus(gw, `guess-${i}`, { 'X-Forwarded-For': `198.51.100.${i}` })).toBe(401);
      }
      expect(await upgradeStatus(gw, 'guess-3', { 'X-Forwarded-For': '198.51.100.99' })).toBe(429);
      expect(new Set(ipsOfRefusals(gw))).toEqual(new Set(['127.0.0.1']));
    } finally {
      await gw.stop();
    }
  });

  it('on a dual-stack socket (HOST=::) an IPv4 proxy arrives IPv4-mapped and is still trusted', async () => {
    const gw = await throttled({ HOST: '::', WEBSOCKET_TRUSTED_PROXIES: '127.0.0.1' });
    try {
      expect(await upgradeStatus(gw, 'guess-0', { 'X-Forwarded-For': '203.0.113.66' })).toBe(401);
      expect(await upgradeStatus(gw, 'guess-1')).toBe(401);
      // The peer itself is logged the IPv4 way, not as uWS spells it (0000:...:ffff:7f00:0001).
      expect(ipsOfRefusals(gw)).toEqual(['203.0.113.66', '127.0.0.1']);
    } finally {
      await gw.stop();
    }
  });
});

describe('WebSocket upgrade: http introspection that stalls (CONTRACT §4)', () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    // The introspection service sends its 200 headers, then the body stalls (overloaded upstream).
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"user_id":');
      });
    });
    base = await new Promise<string>((resolve) =>
      server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)),
    );
  });
  afterAll(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });

  it('an introspection body that times out is 503 unavailable, and does not lock the client address out (429)', async () => {
    const gw = launchGateway({
      SESSION_VALIDATOR: 'http',
      SESSION_INTROSPECTION_URL: `${base}/introspect`,
      SESSION_INTROSPECTION_TIMEOUT_MS: '200',
      WEBSOCKET_SESSION_FAILURES_PER_MINUTE: '3',
      SHUTDOWN_DRAIN_SECONDS: '0',
    });
    try {
      const port = await gw.listening();
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await connect(`ws://127.0.0.1:${port}/api/ws/agent?session_token=good-token-${i}`);
        if (r.opened) {
          await r.client.close();
          statuses.push(101);
        } else statuses.push(r.rejected.status);
      }
      // Our backend was slow: every client gets 503. Before: 401 session_invalid, each counted by the
      // failed-session throttle, so good clients were soon refused 429 too.
      expect(statuses).toEqual([503, 503, 503, 503, 503]);
    } finally {
      gw.child.kill('SIGTERM');
      await gw.exit;
    }
  }, 30_000);
});
