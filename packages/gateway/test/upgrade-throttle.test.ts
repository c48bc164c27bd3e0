import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import {
  connect,
  findRedis,
  spawnGateway,
  startTestGateway,
  uniquePrefix,
  type ConnectResult,
  type GatewayProcess,
  type TestGateway,
  type TestRedis,
} from '@wsgw/testkit';

/** libfaketime, as Debian's `faketime` package installs it. */
const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const SECRET = 'the-real-secret-the-real-secret-0123456789';
const WRONG = new TextEncoder().encode('an-attacker-guess-an-attacker-guess-0123456789');
const BUDGET = 3;

const sign = (subject: string, key: Uint8Array) =>
  new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(subject).setExpirationTime('1h').sign(key);
const guess = (i: number) => sign(`guess-${i}`, WRONG);
const statusOf = (r: ConnectResult) => (r.opened ? 101 : r.rejected.status);
const retryAfterOf = (r: ConnectResult) => (r.opened ? undefined : Number(r.rejected.headers['retry-after']));

const throttledEnv = { SESSION_VALIDATOR: 'jwt', SESSION_JWT_SECRET: SECRET, WEBSOCKET_SESSION_FAILURES_PER_MINUTE: String(BUDGET) };

describe('failed-session throttle: upgrades sent in parallel (embedded mode)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway(throttledEnv);
  });
  afterAll(() => gw?.stop());

  it('40 bad tokens from one address at once: at most the budget is validated, the rest get 429', async () => {
    // Before the fix every check in flight passed the throttle: all 40 were validated (401).
    const tokens = await Promise.all(Array.from({ length: 40 }, (_, i) => guess(i)));
    const statuses = (await Promise.all(tokens.map((t) => connect(gw.wsUrl(t))))).map(statusOf);
    expect(statuses.filter((s) => s === 401)).toHaveLength(BUDGET);
    expect(statuses.filter((s) => s === 429)).toHaveLength(40 - BUDGET);
  });

  it('a storm of valid tokens from one address is only queued, never refused', async () => {
    const storm = await startTestGateway({ ...throttledEnv, WEBSOCKET_MAX_CONNECTIONS_PER_USER: '100' });
    try {
      const tokens = await Promise.all(Array.from({ length: 60 }, (_, i) => sign(`user-${i}`, new TextEncoder().encode(SECRET))));
      const results = await Promise.all(tokens.map((t) => connect(storm.wsUrl(t))));
      expect(results.map(statusOf)).toEqual(tokens.map(() => 101));
      await Promise.all(results.map((r) => (r.opened ? r.client.close() : undefined)));
    } finally {
      await storm.stop();
    }
  });
});

describe('failed-session throttle: upgrades sent in parallel to two replicas (Redis mode)', () => {
  let redis: TestRedis;
  let replicas: GatewayProcess[] = [];

  beforeAll(async () => {
    redis = await findRedis();
    const env = { REDIS_URL: redis.url, REDIS_KEY_PREFIX: uniquePrefix('throttle'), SESSION_VALIDATOR: 'redis' };
    const throttled = { ...env, WEBSOCKET_SESSION_FAILURES_PER_MINUTE: String(BUDGET) };
    replicas = await Promise.all([spawnGateway(throttled), spawnGateway(throttled)]);
  });
  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await redis?.stop();
  });

  it('each replica validates at most the budget of one address\'s tokens sent at once', async () => {
    // Each replica hears of the others' failures only from its own: R x budget at most in parallel.
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => connect(replicas[i % 2]!.wsUrl(`guess-${i}`))),
    );
    const statuses = results.map(statusOf);
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(2 * BUDGET);
    expect(statuses.filter((s) => s === 401).length).toBeGreaterThanOrEqual(BUDGET);
    expect(statuses.filter((s) => s === 401 || s === 429)).toHaveLength(40);
  });
});

/**
 * A real gateway process under libfaketime: only CLOCK_REALTIME is shifted (as an NTP step does),
 * monotonic time and timers are not.
 */
describe('failed-session throttle: Retry-After across a wall-clock step (embedded process)', () => {
  let gw: GatewayProcess;
  let dir: string;
  let rc: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wsgw-throttle-ft-'));
    rc = join(dir, 'faketimerc');
    writeFileSync(rc, '+0\n');
    gw = await spawnGateway({
      ...throttledEnv,
      LD_PRELOAD: LIBFAKETIME,
      FAKETIME_TIMESTAMP_FILE: rc,
      FAKETIME_NO_CACHE: '1',
      FAKETIME_DONT_FAKE_MONOTONIC: '1',
    });
  });
  afterAll(async () => {
    await gw?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('stays within the one-minute window after the wall clock steps back an hour', async () => {
    for (let i = 0; i < BUDGET; i++) expect(statusOf(await connect(gw.wsUrl(await guess(i))))).toBe(401);
    const before = await connect(gw.wsUrl(await guess(10)));
    expect(statusOf(before)).toBe(429);
    expect(retryAfterOf(before)).toBeLessThanOrEqual(60);

    writeFileSync(rc, '-3600\n'); // read on every clock call (FAKETIME_NO_CACHE)
    const after = await connect(gw.wsUrl(await guess(11)));
    expect(statusOf(after)).toBe(429);
    // Before the fix: 3660 (the wall-clock window) for a block that ends within the minute.
    expect(retryAfterOf(after)).toBeLessThanOrEqual(60);
  });
});
