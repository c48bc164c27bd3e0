import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Cluster, Redis } from 'ioredis';
import { redisKeys } from '@wsgw/redis';
import { open, spawnGateway, uniquePrefix, withGatewayReport, type GatewayProcess, type OpenClient } from '@wsgw/testkit';
import { devUserId, redisNow, topologies, type Topology } from './redis-topologies.js';

// Real replicas on a machine shared with other work: generous per-test time (waits inside are bounded).
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

/** libfaketime, as Debian's `faketime` package installs it. */
const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const hasFaketime = existsSync(LIBFAKETIME);

/** Sends `count` echo messages at once and counts what came back: accepted replies and denials. */
async function burst(
  client: OpenClient,
  count: number,
  tag: string,
  kind: 'echo' | 'invalid' = 'echo',
): Promise<{ accepted: number; denied: Array<Record<string, unknown>> }> {
  for (let i = 0; i < count; i++) {
    // An invalid frame still counts toward the limit (CONTRACT §5) and never reaches an agent.
    if (kind === 'invalid') client.send({ id: `${tag}-${i}` });
    else client.send({ agent_type: 'echo', message: `${tag}-${i}`, id: `${tag}-${i}` });
  }
  let accepted = 0;
  const denied: Array<Record<string, unknown>> = [];
  for (let i = 0; i < count; i++) {
    const frame = await client.next(30_000);
    if (frame['type'] === 'response' || frame['code'] === 'invalid_message') accepted++;
    else if (frame['code'] === 'rate_limited') denied.push(frame);
    else throw new Error(`unexpected frame ${JSON.stringify(frame)}`);
  }
  return { accepted, denied };
}

/** Waits until Redis' clock (the one every replica uses) shows `ms` past a whole second. */
async function untilRedisMsOfSecond(admin: Redis | Cluster, ms: number): Promise<number> {
  const now = await redisNow(admin);
  const target = now - (now % 1000) + ms + (now % 1000 >= ms - 50 ? 1000 : 0);
  await new Promise((r) => setTimeout(r, target - now));
  return target;
}

/** Issue 3 §4 and §5: one user's windows are shared by every replica, on Redis' clock, cheaply. */
describe.each(topologies)('message rate across replicas ($name)', ({ name, start }) => {
  let redis: Topology;
  let admin: Redis | Cluster;
  let replicas: GatewayProcess[] = [];
  const prefix = uniquePrefix('rate');

  beforeAll(async () => {
    redis = await start();
    admin = redis.admin;
    const env = {
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: prefix,
      WEBSOCKET_MAX_MESSAGES_PER_SECOND: '5',
      WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '12',
      WEBSOCKET_MAX_CONNECTIONS_PER_USER: '10',
      WEBSOCKET_LEASE_SECONDS: '60',
    };
    // The third replica's clock is 30 s ahead (libfaketime); limits must not notice.
    const skewed = hasFaketime
      ? // libfaketime preloaded straight into node (not through the `faketime` command, which runs the
        // program as its own child: stopping the wrapper by PID would orphan the gateway).
        spawnGateway({ ...env, LD_PRELOAD: LIBFAKETIME, FAKETIME: '+30s', FAKETIME_DONT_FAKE_MONOTONIC: '1' })
      : spawnGateway(env);
    replicas = await Promise.all([spawnGateway(env), spawnGateway(env), skewed]);
  });
  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await redis?.stop();
  });

  it('runs the third replica 30 s in the future (faketime)', async () => {
    expect(hasFaketime, 'libfaketime is not installed (apt-get install -y faketime)').toBe(true);
    const line = replicas[2]!.logs().find((l) => l['msg'] === 'gateway listening');
    const skew = Date.parse(String(line?.['time'])) - Date.now();
    // The line was written a moment ago on a clock 30 s ahead (the moment may be long on a busy box).
    expect(skew).toBeGreaterThan(15_000);
    expect(skew).toBeLessThan(31_000);
  });

  it('shares one sliding 1 s window: bursts on both sides of a second boundary get 5 in total', async () => {
    const [a, b, c] = replicas as [GatewayProcess, GatewayProcess, GatewayProcess];
    const token = 'boundary';
    const onA = await open(a.wsUrl(token));
    const onB = await open(b.wsUrl(token));
    const onC = await open(c.wsUrl(token));

    // x.800: 4 + 4 from two replicas (one of them 30 s off) at once.
    await untilRedisMsOfSecond(admin, 800);
    const [fromA, fromC] = await Promise.all([burst(onA, 4, 'a1'), burst(onC, 4, 'c1')]);
    expect(fromA.accepted + fromC.accepted).toBe(5);
    const keys = redisKeys(prefix, { rateShards: name.includes('Cluster') ? 16 : 1 });
    const user = devUserId(token);
    const logOf = async () => (await admin.lrange(keys.rateLog(keys.rateShardOf(user), user, { perSecond: 5, perMinute: 12 }), 0, -1)).map(Number);
    const firstAccepted = Math.min(...(await logOf()));
    // (x+1).100: a new second on every wall clock, but not 1 s since those 5: nothing passes.
    await untilRedisMsOfSecond(admin, 100);
    const sentAt = await redisNow(admin);
    const [fromB, fromA2] = await Promise.all([burst(onB, 4, 'b2'), burst(onA, 4, 'a2')]);
    const answeredAt = await redisNow(admin);
    if (answeredAt - firstAccepted < 1000) {
      expect(fromB.accepted + fromA2.accepted).toBe(0);
      for (const d of [...fromB.denied, ...fromA2.denied]) {
        expect(Number(d['retry_after_ms'])).toBeGreaterThan(0);
        expect(Number(d['retry_after_ms'])).toBeLessThanOrEqual(1000);
      }
    }
    // (On a machine so busy that the second burst came a full second after the first, the window
    // really had moved on; the exact check below still holds.)
    expect(sentAt).toBeGreaterThan(firstAccepted);

    // Redis' record of accepted messages, on its clock: never more than 5 in any 1000 ms, and it
    // holds exactly what the clients saw accepted.
    const log = await logOf();
    expect(log).toHaveLength(5 + fromB.accepted + fromA2.accepted);
    for (let i = 0; i + 5 < log.length; i++) expect((log[i] as number) - (log[i + 5] as number)).toBeGreaterThanOrEqual(1000);
    await Promise.all([onA.close(), onB.close(), onC.close()]);
  });

  it('shares the 60 s window: 12 a minute over three replicas, then a denial for most of a minute', async () => {
    const [a, b, c] = replicas as [GatewayProcess, GatewayProcess, GatewayProcess];
    const token = 'minute';
    const sockets = await Promise.all([open(a.wsUrl(token)), open(b.wsUrl(token)), open(c.wsUrl(token))]);
    let accepted = 0;
    const denied: Array<Record<string, unknown>> = [];
    for (const [i, socket] of sockets.entries()) {
      if (i > 0) await new Promise((r) => setTimeout(r, 1050));
      const r = await burst(socket, 5, `m${i}`);
      accepted += r.accepted;
      denied.push(...r.denied);
    }
    expect(accepted).toBe(12);
    expect(denied).toHaveLength(3);
    for (const d of denied) expect(Number(d['retry_after_ms'])).toBeGreaterThan(55_000);
    await Promise.all(sockets.map((s) => s.close()));
  });

  it('costs no Redis call per message from a user already over the limit', async () => {
    const [a] = replicas as [GatewayProcess];
    const flooder = await open(a.wsUrl('flooder'));
    // 12 a minute (5 a second): after 5 + 5 + 2 the user is limited for most of a minute.
    let accepted = 0;
    for (const [i, n] of [5, 5, 4].entries()) {
      if (i > 0) await new Promise((r) => setTimeout(r, 1050));
      accepted += (await burst(flooder, n, `f1-${i}`)).accepted;
    }
    expect(accepted).toBe(12);
    // More sockets of the same user (each may take 12 denials a minute before it is closed with 1008).
    const more = await Promise.all([0, 1, 2, 3].map(() => open(a.wsUrl('flooder'))));
    const before = await redis.commandStats();
    const floods = await Promise.all([flooder, ...more].map((s, i) => burst(s, 10, `f2-${i}`)));
    expect(floods.reduce((n, f) => n + f.denied.length, 0)).toBe(50);
    const after = await redis.commandStats();
    // No decision reached Redis (LRANGE runs only inside rate_consume, once per user and call),
    // and no script call was made for them (one heartbeat of the 60 s leases could fall in this window).
    expect((after['lrange'] ?? 0) - (before['lrange'] ?? 0)).toBe(0);
    const scripts = (s: Record<string, number>) => (s['evalsha'] ?? 0) + (s['eval'] ?? 0);
    expect(scripts(after) - scripts(before)).toBeLessThanOrEqual(1);
    await Promise.all([flooder, ...more].map((s) => s.close()));
  });
});

describe.each(topologies)('message rate cost under load ($name, INFO commandstats)', ({ start }) => {
  let redis: Topology;
  let replicas: GatewayProcess[] = [];

  beforeAll(async () => {
    redis = await start();
    const env = {
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: uniquePrefix('cost'),
      WEBSOCKET_MAX_MESSAGES_PER_SECOND: '100000',
      WEBSOCKET_MAX_MESSAGES_PER_MINUTE: '1000000',
      WEBSOCKET_LEASE_SECONDS: '60',
    };
    replicas = await Promise.all([spawnGateway(env), spawnGateway(env)]);
  });
  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await redis?.stop();
  });

  it('makes at most 0.1 Redis round trips per accepted message', async () => {
    const clients = await Promise.all(
      Array.from({ length: 40 }, (_, i) => open((replicas[i % 2] as GatewayProcess).wsUrl(`loader-${i % 20}`))),
    );
    const before = await redis.commandStats();
    const perClient = 250;
    // Frames that pass the limiter and stop there (invalid_message): only the limits talk to Redis.
    const results = await withGatewayReport(replicas, () =>
      Promise.all(clients.map((c, i) => burst(c, perClient, `l${i}`, 'invalid'))),
    );
    const after = await redis.commandStats();
    const accepted = results.reduce((n, r) => n + r.accepted, 0);
    expect(accepted).toBe(40 * perClient);
    // Every script call counts (rate batches, and any heartbeat), and any other command too.
    const total = (s: Record<string, number>) =>
      Object.entries(s)
        .filter(([cmd]) => ['evalsha', 'eval', 'ping', 'get', 'set', 'multi', 'exec'].includes(cmd))
        .reduce((n, [, v]) => n + v, 0);
    const roundTrips = total(after) - total(before);
    const perMessage = roundTrips / accepted;
    console.log(`rate cost: ${roundTrips} Redis calls for ${accepted} accepted messages = ${perMessage.toFixed(4)} per message`);
    expect(perMessage).toBeLessThanOrEqual(0.1);
    await Promise.all(clients.map((c) => c.close()));
  });
});
