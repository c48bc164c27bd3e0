import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '@wsgw/testkit';

/** Sends raw bytes on a fresh TCP connection and returns everything received within `ms`. */
function rawExchange(port: number, data: string, ms = 500): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    socket.on('data', (chunk: Buffer) => (got += chunk.toString('latin1')));
    socket.on('error', () => {});
    socket.on('connect', () => socket.write(data));
    setTimeout(() => {
      socket.destroy();
      resolve(got);
    }, ms);
  });
}

describe('HTTP endpoints (CONTRACT §3)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({
      CORS_ORIGINS: 'https://app.example',
      API_CORS_ORIGINS: 'https://admin.example,https://app.example',
    });
  });
  afterAll(() => gw.stop());

  it('GET /healthz is 200', async () => {
    const res = await fetch(gw.httpUrl('/healthz'));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('GET /readyz is 200 when accepting connections', async () => {
    const res = await fetch(gw.httpUrl('/readyz'));
    expect(res.status).toBe(200);
  });

  it('any other path is 404 with a JSON body', async () => {
    for (const path of ['/', '/nope', '/api/ws', '/api/ws/agent/extra', '/healthz/x']) {
      const res = await fetch(gw.httpUrl(path));
      expect(res.status, path).toBe(404);
      expect(await res.json()).toEqual({ error: 'not_found', message: 'No such endpoint' });
    }
    const post = await fetch(gw.httpUrl('/healthz'), { method: 'POST', body: 'x' });
    expect(post.status).toBe(404);
  });

  it('CORS headers only for origins in API_CORS_ORIGINS', async () => {
    const allowed = await fetch(gw.httpUrl('/healthz'), { headers: { origin: 'https://admin.example' } });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://admin.example');
    expect(allowed.headers.get('vary')).toBe('Origin');
    const other = await fetch(gw.httpUrl('/healthz'), { headers: { origin: 'https://evil.example' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    const notFound = await fetch(gw.httpUrl('/missing'), { headers: { origin: 'https://admin.example' } });
    expect(notFound.status).toBe(404);
    expect(notFound.headers.get('access-control-allow-origin')).toBe('https://admin.example');
  });

  it('OPTIONS preflight: 204, with CORS headers only for allowed origins', async () => {
    const ok = await fetch(gw.httpUrl('/readyz'), {
      method: 'OPTIONS',
      headers: { origin: 'https://admin.example', 'access-control-request-method': 'GET' },
    });
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://admin.example');
    expect(ok.headers.get('access-control-allow-methods')).toContain('GET');
    const no = await fetch(gw.httpUrl('/readyz'), {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' },
    });
    expect(no.status).toBe(204);
    expect(no.headers.get('access-control-allow-origin')).toBeNull();
    expect(no.headers.get('access-control-allow-methods')).toBeNull();
  });

  it('GET on the agent path without an upgrade is not a WebSocket', async () => {
    const res = await fetch(gw.httpUrl('/api/ws/agent?session_token=test123'));
    expect(res.status).toBeGreaterThanOrEqual(400);
  });

  it.each(['/healthz', '/readyz', '/no-such-path'])('HEAD %s answers as GET would, without a body (keep-alive is not corrupted)', async (path) => {
    const get = await fetch(gw.httpUrl(path));
    const got = await rawExchange(gw.port, `HEAD ${path} HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`);
    const endOfHead = got.indexOf('\r\n\r\n');
    expect(endOfHead).toBeGreaterThan(0);
    expect(got.split('\r\n')[0]).toBe(`HTTP/1.1 ${get.status} ${get.statusText}`);
    expect(got.slice(0, endOfHead).toLowerCase()).toContain(`content-length: ${(await get.text()).length}`);
    // RFC 9112 §6.3: a response to HEAD ends with its header section. Before, a JSON body followed,
    // which a keep-alive client or proxy reads as its next status line.
    expect(got.slice(endOfHead + 4)).toMatch(/^HTTP\/1\.1 200 /);
  });
});
