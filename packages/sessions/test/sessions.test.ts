import { createHmac, type webcrypto } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { SessionBackendUnavailableError } from '@wsgw/core';
import { findRedis, uniquePrefix, type TestRedis } from '@wsgw/testkit';
import {
  DevSessionValidator,
  HttpSessionValidator,
  JwtSessionValidator,
  RedisSessionValidator,
} from '@wsgw/sessions';

const now = () => Math.floor(Date.now() / 1000);
const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A compact JWS with any header at all (jose's SignJWT refuses to write an unknown `crit`). */
function hs256Raw(header: Record<string, unknown>, payload: Record<string, unknown>, secret: string): string {
  const input = `${b64url(header)}.${b64url(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

async function rs256Raw(header: Record<string, unknown>, payload: Record<string, unknown>, key: webcrypto.CryptoKey): Promise<string> {
  const input = `${b64url(header)}.${b64url(payload)}`;
  const signature = await crypto.subtle.sign('RSASSA-PKCS1-v1_5', key, new TextEncoder().encode(input));
  return `${input}.${Buffer.from(signature).toString('base64url')}`;
}

function listen(server: Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)),
  );
}

describe('dev validator', () => {
  it('accepts any non-empty token; equal tokens are one user', async () => {
    const v = new DevSessionValidator();
    const a = await v.validate('test123');
    const b = await v.validate('test123');
    const c = await v.validate('other');
    expect(a.valid && b.valid && c.valid).toBe(true);
    if (a.valid && b.valid && c.valid) {
      expect(a.session.userId).toBe(b.session.userId);
      expect(a.session.userId).not.toBe(c.session.userId);
      expect(a.session.userId).not.toContain('test123');
    }
    expect((await v.validate('')).valid).toBe(false);
  });
});

describe('jwt validator, HS256', () => {
  const secret = new TextEncoder().encode('a-long-test-secret-of-32-bytes!!');
  const sign = (claims: Record<string, unknown>, alg = 'HS256', key: Uint8Array = secret) =>
    new SignJWT(claims).setProtectedHeader({ alg }).sign(key);
  const v = new JwtSessionValidator({ secret: 'a-long-test-secret-of-32-bytes!!', issuer: 'iss-1', audience: 'gw' });

  it('accepts a good token; user id = sub', async () => {
    const token = await sign({ sub: 'user-7', iss: 'iss-1', aud: 'gw', exp: now() + 60 });
    expect(await v.validate(token)).toEqual({ valid: true, session: { userId: 'user-7' } });
  });

  it.each([
    ['expired', { sub: 'u', iss: 'iss-1', aud: 'gw', exp: now() - 60 }],
    ['not yet valid', { sub: 'u', iss: 'iss-1', aud: 'gw', nbf: now() + 600 }],
    ['wrong issuer', { sub: 'u', iss: 'other', aud: 'gw' }],
    ['wrong audience', { sub: 'u', iss: 'iss-1', aud: 'else' }],
    ['no subject', { iss: 'iss-1', aud: 'gw' }],
  ])('refuses a token that is %s', async (_name, claims) => {
    expect((await v.validate(await sign(claims))).valid).toBe(false);
  });

  it('refuses a token signed with another secret, garbage, and alg none', async () => {
    const other = await sign({ sub: 'u', iss: 'iss-1', aud: 'gw' }, 'HS256', new TextEncoder().encode('x'.repeat(32)));
    expect((await v.validate(other)).valid).toBe(false);
    expect((await v.validate('garbage')).valid).toBe(false);
    expect((await v.validate('a.b.c')).valid).toBe(false);
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"sub":"u"}').toString('base64url')}.`;
    expect((await v.validate(none)).valid).toBe(false);
  });

  it('a header the validator does not support (unknown "crit") is an invalid token, not an outage', async () => {
    // Anyone can write such a header without the secret: it must not buy a 503 on demand.
    const claims = { sub: 'mallory', iss: 'iss-1', aud: 'gw', exp: now() + 60 };
    const forged = hs256Raw({ alg: 'HS256', crit: ['x-unknown'], 'x-unknown': 1 }, claims, 'not-the-secret');
    expect(await v.validate(forged)).toEqual({ valid: false, reason: 'ERR_JOSE_NOT_SUPPORTED' });
  });
});

describe('jwt validator, JWKS (RS256 and ES256)', () => {
  let server: Server;
  let url: string;
  let fetches = 0;
  const jwksAuthorizations: string[] = [];
  const keys: JWK[] = [];
  let rsa: webcrypto.CryptoKey;
  let ec: webcrypto.CryptoKey;

  beforeAll(async () => {
    const r = await generateKeyPair('RS256');
    const e = await generateKeyPair('ES256');
    rsa = r.privateKey as webcrypto.CryptoKey;
    ec = e.privateKey as webcrypto.CryptoKey;
    keys.push({ ...(await exportJWK(r.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' });
    keys.push({ ...(await exportJWK(e.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' });
    server = createServer((req, res) => {
      fetches++;
      jwksAuthorizations.push(req.headers.authorization ?? '');
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys }));
    });
    url = `${await listen(server)}/jwks.json`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('verifies RS256 and ES256 tokens and caches the key set', async () => {
    const v = new JwtSessionValidator({ jwksUrl: url });
    const t1 = await new SignJWT({ sub: 'rsa-user' }).setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' }).sign(rsa);
    const t2 = await new SignJWT({ sub: 'ec-user' }).setProtectedHeader({ alg: 'ES256', kid: 'ec-1' }).sign(ec);
    expect(await v.validate(t1)).toEqual({ valid: true, session: { userId: 'rsa-user' } });
    expect(await v.validate(t2)).toEqual({ valid: true, session: { userId: 'ec-user' } });
    const before = fetches;
    for (let i = 0; i < 5; i++) await v.validate(t1);
    expect(fetches).toBe(before);
  });

  it('a JWKS URL with credentials sends them as HTTP Basic; an outage\'s message never quotes them', async () => {
    // Before: fetch refused the URL (every token 503) and its message, URL and password, reached spans.
    const withCredentials = url.replace('http://', 'http://keys-client:p%40ss-w0rd@');
    const v = new JwtSessionValidator({ jwksUrl: withCredentials });
    const t = await new SignJWT({ sub: 'rsa-user' }).setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' }).sign(rsa);
    expect(await v.validate(t)).toEqual({ valid: true, session: { userId: 'rsa-user' } });
    expect(jwksAuthorizations.at(-1)).toBe(`Basic ${Buffer.from('keys-client:p@ss-w0rd').toString('base64')}`);

    const dead = createServer();
    const deadUrl = await listen(dead);
    await new Promise<void>((r) => dead.close(() => r()));
    const down = new JwtSessionValidator({ jwksUrl: `${deadUrl.replace('http://', 'http://keys-client:p%40ss-w0rd@')}/jwks.json` });
    const failure = await down.validate(t).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(SessionBackendUnavailableError);
    expect((failure as Error).message).not.toMatch(/ss-w0rd|keys-client|127\.0\.0\.1/);
  });

  it('refuses HS256 when configured for JWKS (algorithm confusion)', async () => {
    const v = new JwtSessionValidator({ jwksUrl: url });
    const t = await new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' }).sign(new Uint8Array(32));
    expect((await v.validate(t)).valid).toBe(false);
  });

  it('an unreachable JWKS endpoint is our outage (503), not an invalid token', async () => {
    const dead = createServer();
    const deadUrl = await listen(dead);
    await new Promise<void>((r) => dead.close(() => r()));
    const v = new JwtSessionValidator({ jwksUrl: `${deadUrl}/jwks.json` });
    const t = await new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' }).sign(rsa);
    await expect(v.validate(t)).rejects.toBeInstanceOf(SessionBackendUnavailableError);
  });

  it('a JWKS endpoint that answers without a key set (5xx, redirect, not JSON, not a set) is our outage', async () => {
    const answers: Record<string, (res: ServerResponse) => void> = {
      '/5xx': (res) => {
        res.statusCode = 503;
        res.end('maintenance');
      },
      '/redirect': (res) => {
        res.statusCode = 302;
        res.setHeader('location', url);
        res.end();
      },
      '/html': (res) => res.end('<html>login</html>'),
      '/not-a-set': (res) => res.end(JSON.stringify({ keys: 'none' })),
    };
    let up = false;
    const broken = createServer((req, res) => {
      if (up) return res.end(JSON.stringify({ keys }));
      answers[req.url ?? '']!(res);
    });
    const base = await listen(broken);
    try {
      const t = await new SignJWT({ sub: 'rsa-user' }).setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' }).sign(rsa);
      const validators = Object.keys(answers).map((path) => new JwtSessionValidator({ jwksUrl: `${base}${path}` }));
      for (const v of validators) await expect(v.validate(t)).rejects.toBeInstanceOf(SessionBackendUnavailableError);
      // A failed fetch is not cached: once the endpoint answers, the same token is valid at once.
      up = true;
      for (const v of validators) expect(await v.validate(t)).toEqual({ valid: true, session: { userId: 'rsa-user' } });
    } finally {
      broken.closeAllConnections();
      await new Promise<void>((r) => broken.close(() => r()));
    }
  });

  it('a JWKS endpoint that does not answer in time is our outage', async () => {
    const silent = createServer(() => {}); // takes the request, never answers
    const base = await listen(silent);
    try {
      const v = new JwtSessionValidator({ jwksUrl: `${base}/jwks.json` });
      const t = await new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' }).sign(rsa);
      await expect(v.validate(t)).rejects.toBeInstanceOf(SessionBackendUnavailableError);
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it('a token naming a key the JWKS does not hold is invalid (the client\'s fault), also after the refetch', async () => {
    const v = new JwtSessionValidator({ jwksUrl: url });
    const known = await new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' }).sign(rsa);
    expect((await v.validate(known)).valid).toBe(true);
    const unknown = await new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'RS256', kid: 'nobody' }).sign(rsa);
    expect(await v.validate(unknown)).toEqual({ valid: false, reason: 'ERR_JWKS_NO_MATCHING_KEY' });
    const crit = await rs256Raw({ alg: 'RS256', kid: 'rsa-1', crit: ['x'], x: 1 }, { sub: 'u' }, rsa);
    expect(await v.validate(crit)).toEqual({ valid: false, reason: 'ERR_JOSE_NOT_SUPPORTED' });
  });
});

describe('http introspection validator', () => {
  let server: Server;
  let base: string;
  const seen: string[] = [];
  const introspectionAuthorizations: string[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push(body);
        introspectionAuthorizations.push(req.headers.authorization ?? '');
        const token = (JSON.parse(body) as { token: string }).token;
        if (token === 'good') res.end(JSON.stringify({ user_id: 'u-42' }));
        else if (token === 'nouser') res.end(JSON.stringify({ active: true }));
        else if (token === 'notjson') res.end('<html>');
        else if (token === 'boom') {
          res.statusCode = 500;
          res.end();
        } else if (token === 'slow') setTimeout(() => res.end(JSON.stringify({ user_id: 'late' })), 2000);
        else {
          res.statusCode = 401;
          res.end(JSON.stringify({ error: 'inactive' }));
        }
      });
    });
    base = await listen(server);
  });
  afterAll(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });

  it('a 200 with user_id is valid; the token is POSTed as JSON', async () => {
    const v = new HttpSessionValidator({ url: `${base}/introspect`, timeoutMs: 1000 });
    expect(await v.validate('good')).toEqual({ valid: true, session: { userId: 'u-42' } });
    expect(seen).toContain('{"token":"good"}');
  });

  it('a URL with credentials sends them as HTTP Basic (RFC 7662 client authentication)', async () => {
    // Before: fetch refused the URL, so every upgrade was refused 503 with nothing in any log.
    const v = new HttpSessionValidator({ url: `${base.replace('http://', 'http://gateway:s3cr%3At@')}/introspect`, timeoutMs: 1000 });
    expect(await v.validate('good')).toEqual({ valid: true, session: { userId: 'u-42' } });
    expect(introspectionAuthorizations.at(-1)).toBe(`Basic ${Buffer.from('gateway:s3cr:t').toString('base64')}`);
  });

  it.each(['bad', 'nouser', 'notjson'])('anything else is invalid (%s)', async (token) => {
    const v = new HttpSessionValidator({ url: `${base}/introspect`, timeoutMs: 1000 });
    expect((await v.validate(token)).valid).toBe(false);
  });

  it('a 5xx or a timeout is our outage (503), not an invalid token', async () => {
    const v = new HttpSessionValidator({ url: `${base}/introspect`, timeoutMs: 200 });
    await expect(v.validate('boom')).rejects.toBeInstanceOf(SessionBackendUnavailableError);
    const started = Date.now();
    await expect(v.validate('slow')).rejects.toBeInstanceOf(SessionBackendUnavailableError);
    expect(Date.now() - started).toBeLessThan(1500);
  });
});

describe('redis validator (against a plain getter; the Redis-backed path is tested in Redis mode)', () => {
  const store = new Map<string, string>([
    ['wsgw:session:tok-1', '{"user_id":"u-1","roles":["a"]}'],
    ['wsgw:session:tok-2', 'not json'],
    ['wsgw:session:tok-3', '{"user":"x"}'],
  ]);
  const v = new RedisSessionValidator(async (key) => store.get(key) ?? null, 'wsgw:');

  it('reads {prefix}session:{token}', async () => {
    expect(await v.validate('tok-1')).toEqual({ valid: true, session: { userId: 'u-1' } });
    expect((await v.validate('tok-2')).valid).toBe(false);
    expect((await v.validate('tok-3')).valid).toBe(false);
    expect((await v.validate('missing')).valid).toBe(false);
  });

  it('a failing store is an outage', async () => {
    const failing = new RedisSessionValidator(async () => {
      throw new Error('ECONNREFUSED');
    }, 'wsgw:');
    await expect(failing.validate('tok-1')).rejects.toBeInstanceOf(SessionBackendUnavailableError);
  });

  it('an outage\'s message (logged, put on spans) names the error, never the key with the token', async () => {
    // A proxy in front of Redis may quote the command in its error.
    const quoting = new RedisSessionValidator(async (key) => {
      throw new Error(`ERR proxy could not forward GET ${key}`);
    }, 'wsgw:');
    const failure = await quoting.validate('tok-secret-1').catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(SessionBackendUnavailableError);
    expect((failure as Error).message).toBe('session store unreachable: ERR');
  });
});

describe('redis validator against a real Redis', () => {
  let redis: TestRedis;
  let admin: Redis;
  const prefix = uniquePrefix('sessions');

  beforeAll(async () => {
    redis = await findRedis();
    admin = redis.admin();
  });
  afterAll(async () => {
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length > 0) await admin.del(...keys);
    await redis.stop();
  });

  it('a session key holding a hash, list or set is no session (malformed_session), not a Redis outage', async () => {
    // The gateway passes its ioredis client's `get`, as here; CONTRACT §2: the session is the key's string value.
    const v = new RedisSessionValidator((key) => admin.get(key), prefix);
    await admin.set(`${prefix}session:str`, JSON.stringify({ user_id: 'alice' }));
    await admin.hset(`${prefix}session:hash`, 'user_id', 'bob');
    await admin.rpush(`${prefix}session:list`, '{"user_id":"bob"}');
    await admin.sadd(`${prefix}session:set`, '{"user_id":"bob"}');
    expect(await v.validate('str')).toEqual({ valid: true, session: { userId: 'alice' } });
    for (const token of ['hash', 'list', 'set']) {
      expect(await v.validate(token)).toEqual({ valid: false, reason: 'malformed_session' });
    }
  });
});
