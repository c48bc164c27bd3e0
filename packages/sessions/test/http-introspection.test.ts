import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionBackendUnavailableError } from '@wsgw/core';
import { HttpSessionValidator } from '@wsgw/sessions';

function listen(server: Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)),
  );
}
function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise<void>((r) => server.close(() => r()));
}

/** Outcome as the gateway maps it: valid -> 101, invalid -> 401, SessionBackendUnavailableError -> 503. */
async function outcome(p: Promise<unknown>): Promise<'valid' | 'invalid' | 'unavailable' | string> {
  try {
    const r = (await p) as { valid: boolean };
    return r.valid ? 'valid' : 'invalid';
  } catch (err) {
    return err instanceof SessionBackendUnavailableError ? 'unavailable' : `threw ${String(err)}`;
  }
}

describe('http introspection validator: backend faults are outages (503), only a refusal is an invalid token', () => {
  let base: string;
  let other: string;
  const otherSeen: string[] = [];
  let server: Server;
  let otherServer: Server;

  beforeAll(async () => {
    // A second server the introspection endpoint redirects to (another host in real life).
    otherServer = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        otherSeen.push(`${req.method} ${body}`);
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ user_id: 'someone-else' }));
      });
    });
    other = await listen(otherServer);
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const path = req.url ?? '';
        if (path === '/stall-body') {
          // Headers and half the body at once, the rest never (a stuck upstream / proxy).
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write('{"user_id":');
          return;
        }
        if (path === '/reset-body') {
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
          res.write('{"user_id":');
          setTimeout(() => res.socket?.destroy(), 20);
          return;
        }
        if (path === '/redirect-307') {
          res.writeHead(307, { location: `${other}/elsewhere` });
          res.end();
          return;
        }
        if (path === '/redirect-302') {
          res.writeHead(302, { location: `${other}/elsewhere` });
          res.end();
          return;
        }
        if (path === '/huge') {
          // A 200 with a 64 MiB body: it used to be buffered whole, for one upgrade.
          res.writeHead(200, { 'content-type': 'application/json' });
          const chunk = 'x'.repeat(1 << 20);
          res.write('{"user_id":"u-huge","pad":"');
          let left = 64;
          const more = (): void => {
            while (left > 0) {
              left--;
              if (!res.write(chunk)) {
                res.once('drain', more);
                return;
              }
            }
            res.end('"}');
          };
          more();
          return;
        }
        if (path === '/429') {
          res.writeHead(429, { 'retry-after': '1' });
          res.end('{"error":"rate_limited"}');
          return;
        }
        res.writeHead(404);
        res.end();
      });
    });
    base = await listen(server);
  });
  afterAll(async () => {
    await close(server);
    await close(otherServer);
  });

  it('a body that stops coming after a 200 (timeout while reading) is our outage (503), not an invalid token (401)', async () => {
    const v = new HttpSessionValidator({ url: `${base}/stall-body`, timeoutMs: 300 });
    const started = Date.now();
    expect(await outcome(v.validate('t'))).toBe('unavailable');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('a connection cut while the 200 body is read is our outage (503), not an invalid token (401)', async () => {
    const v = new HttpSessionValidator({ url: `${base}/reset-body`, timeoutMs: 2000 });
    expect(await outcome(v.validate('t'))).toBe('unavailable');
  });

  it.each(['/redirect-307', '/redirect-302'])(
    'a redirect (%s) is not a 200: no session from wherever it points, and the token is not sent there',
    async (path) => {
      otherSeen.length = 0;
      const v = new HttpSessionValidator({ url: `${base}${path}`, timeoutMs: 2000 });
      // Never followed, and not the token's fault: a misconfigured backend, like a JWKS that redirects.
      expect(await outcome(v.validate('secret-token'))).toBe('unavailable');
      expect(otherSeen).toEqual([]);
    },
  );

  it('a huge 200 body is not buffered whole (bounded read): refused, not accepted after 64 MiB', async () => {
    const v = new HttpSessionValidator({ url: `${base}/huge`, timeoutMs: 10_000 });
    expect(await outcome(v.validate('t'))).not.toBe('valid');
  });

  it('a 429 from the introspection service (it is overloaded) is our outage (503), not 401 for a good token', async () => {
    const v = new HttpSessionValidator({ url: `${base}/429`, timeoutMs: 2000 });
    expect(await outcome(v.validate('t'))).toBe('unavailable');
  });
});
