import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consumeRate, noopMetrics, type Logger } from '@wsgw/core';
import { MemoryConnectionLeases, MemoryRateLimiter } from '@wsgw/memory';
import {
  createRedisClient,
  FailoverConnectionLeases,
  FailoverRateLimiter,
  LimitsUnavailableError,
  RedisConnectionLeases,
  RedisHealth,
  redisKeys,
  RedisRateLimiter,
  RedisTooSlowError,
  RedisUpgradeThrottle,
  type RedisClient,
} from '@wsgw/redis';
import { findRedis, uniquePrefix, waitFor, type TestRedis } from '@wsgw/testkit';
import { leasesContract, rateContract } from './limits-contract.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

let redis: TestRedis;
const clients: RedisClient[] = [];
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  redis = await findRedis();
});
afterAll(async () => {
  for (const close of closers.splice(0)) await close();
  for (const c of clients.splice(0)) c.disconnect();
  await redis.stop();
});

async function client(): Promise<RedisClient> {
  const c = createRedisClient(redis.url);
  clients.push(c);
  await c.connect();
  return c;
}

async function redisLeases(prefix: string, leaseMs = 30_000) {
  const c = await client();
  const health = new RedisHealth(c, quiet);
  const leases = new RedisConnectionLeases(c, health, quiet, {
    keys: redisKeys(prefix),
    maxPerUser: 2,
    maxGlobal: 3,
    leaseMs,
  });
  closers.push(async () => {
    await leases.close();
    health.close();
  });
  return { leases, health, client: c };
}

async function redisRates(prefix: string, perSecond = 5, perMinute = 8) {
  const c = await client();
  const health = new RedisHealth(c, quiet);
  const rates = new RedisRateLimiter(c, health, { keys: redisKeys(prefix), perSecond, perMinute });
  closers.push(async () => {
    await rates.close();
    health.close();
  });
  return rates;
}

describe('MemoryConnectionLeases (the contract every slot store keeps)', () => {
  leasesContract(async () => ({ leases: new MemoryConnectionLeases({ maxPerUser: 2, maxGlobal: 3 }) }));
});

describe('RedisConnectionLeases, two replicas on one Redis', () => {
  leasesContract(async () => {
    const prefix = uniquePrefix('leases');
    const a = await redisLeases(prefix);
    const b = await redisLeases(prefix);
    return { leases: a.leases, peer: b.leases };
  });

  it('frees the slots of a replica that stops heartbeating once its lease runs out', async () => {
    const prefix = uniquePrefix('expiry');
    const crashed = await redisLeases(prefix, 1000);
    const alive = await redisLeases(prefix, 1000);
    await crashed.leases.acquire('c1', 'u');
    await crashed.leases.acquire('c2', 'u');
    await alive.leases.acquire('a1', 'v');
    await crashed.leases.close(); // no more heartbeats, nothing released: a crash
    expect(await alive.leases.acquire('a2', 'u')).toMatchObject({ granted: false, reason: 'global_connection_limit' });
    await new Promise((r) => setTimeout(r, 1100));
    expect(await alive.leases.acquire('a2', 'u')).toEqual({ granted: true });
    expect(await alive.leases.acquire('a3', 'u')).toEqual({ granted: true });
    // The live replica's own slot survived many lease lengths thanks to its heartbeat.
    const admin = redis.admin();
    expect(await admin.zscore(redisKeys(prefix).slotsAll(), 'a1')).not.toBeNull();
  });

  it('decides a turn of acquisitions in one script call, in order, against both limits (a repeated id only renews), and releases a turn in one call', async () => {
    const prefix = uniquePrefix('acquire-batch');
    const keys = redisKeys(prefix);
    const { leases } = await redisLeases(prefix); // 2 per user, 3 in all
    const asked: Array<[string, string]> = [
      ['x1', 'u'],
      ['x2', 'u'],
      ['x3', 'u'],
      ['x4', 'v'],
      ['x5', 'w'],
      ['x1', 'u'],
    ];
    const decisions = await Promise.all(asked.map(([id, user]) => leases.acquire(id, user)));
    expect(leases.stats).toMatchObject({ acquireCalls: 1, acquisitions: 6 });
    expect(decisions.map((d) => (d.granted ? 'granted' : d.reason))).toEqual([
      'granted',
      'granted',
      'user_connection_limit',
      'granted',
      'global_connection_limit',
      'granted',
    ]);
    const admin = redis.admin();
    expect((await admin.zrange(keys.slotsAll(), 0, -1)).sort()).toEqual(['x1', 'x2', 'x4']);
    expect((await admin.zrange(keys.slotsOfUser('u'), 0, -1)).sort()).toEqual(['x1', 'x2']);
    expect(await admin.pttl(keys.slotsOfUser('v'))).toBeGreaterThan(29_000);
    expect(leases.heldCount).toBe(3);

    // The turn's releases go in one call too (x3 was never granted: releasing it is harmless).
    await Promise.all([leases.release('x1', 'u'), leases.release('x3', 'u'), leases.release('x4', 'v')]);
    expect(leases.stats).toMatchObject({ releaseCalls: 1, releases: 3 });
    expect(await admin.zrange(keys.slotsAll(), 0, -1)).toEqual(['x2']);
    expect(await admin.zrange(keys.slotsOfUser('u'), 0, -1)).toEqual(['x2']);
    expect(await admin.exists(keys.slotsOfUser('v'))).toBe(0);
    expect(leases.heldCount).toBe(1);
  });

  it('reports slots it lost to a takeover after a stall past its lease, and re-registers everything after Redis forgot it', async () => {
    const prefix = uniquePrefix('lost');
    const keys = redisKeys(prefix);
    const { leases } = await redisLeases(prefix, 1500);
    const lost: string[][] = [];
    leases.onLost((ids) => lost.push(ids));
    await leases.acquire('l1', 'u');
    await leases.acquire('l2', 'u');
    const admin = redis.admin();
    // This replica was paused past its lease (its timer fired far too late) and l1 was reaped.
    await admin.zrem(keys.slotsAll(), 'l1');
    (leases as unknown as { stalled: boolean }).stalled = true;
    await leases.sync();
    expect(lost).toEqual([['l1']]);
    expect(leases.heldCount).toBe(1);

    // Redis restarted empty: after an outage the replica puts back what it holds.
    await admin.del(keys.slotsAll(), keys.slotsOfUser('u'));
    (leases as unknown as { mustRestore: boolean }).mustRestore = true;
    await leases.sync();
    expect(await admin.zrange(keys.slotsAll(), 0, -1)).toEqual(['l2']);
    expect(await admin.zrange(keys.slotsOfUser('u'), 0, -1)).toEqual(['l2']);
    expect(lost).toHaveLength(1);
  });

  it('calls a slot lost when its last renewal went out a lease before, even with no stall noticed', async () => {
    const prefix = uniquePrefix('lapsed');
    const { leases } = await redisLeases(prefix, 1500);
    const lost: string[][] = [];
    leases.onLost((ids) => lost.push(ids));
    await leases.acquire('p1', 'u');
    await redis.admin().zrem(redisKeys(prefix).slotsAll(), 'p1');
    // Paused between its timer and its call: the timer was on time, the renewal was not.
    (leases as unknown as { renewedAt: number }).renewedAt -= 1500;
    await leases.sync();
    expect(lost).toEqual([['p1']]);
    expect(leases.heldCount).toBe(0);
  });

  it('puts back, not calls lost, slots Redis dropped before their leases ended (a master restarted empty between health checks)', async () => {
    const prefix = uniquePrefix('dropped');
    const keys = redisKeys(prefix);
    const { leases } = await redisLeases(prefix, 30_000);
    const lost: string[][] = [];
    leases.onLost((ids) => lost.push(ids));
    await leases.acquire('d1', 'u');
    await leases.acquire('d2', 'v');
    const admin = redis.admin();
    // No failed call, no stall: only the next heartbeat can find out.
    await admin.del(keys.slotsAll(), keys.slotsOfUser('u'), keys.slotsOfUser('v'));
    await leases.sync();
    expect(lost).toEqual([]);
    expect(leases.heldCount).toBe(2);
    expect((await admin.zrange(keys.slotsAll(), 0, -1)).sort()).toEqual(['d1', 'd2']);
    expect(await admin.zrange(keys.slotsOfUser('u'), 0, -1)).toEqual(['d1']);
    expect(await admin.pttl(keys.slotsAll())).toBeGreaterThan(29_000);
  });

  it('never shortens the TTL of keys that a replica with a longer lease relies on (a rolling change of WEBSOCKET_LEASE_SECONDS)', async () => {
    const prefix = uniquePrefix('lease-mix');
    const keys = redisKeys(prefix);
    const long = await redisLeases(prefix, 30_000);
    const short = await redisLeases(prefix, 1000);
    const admin = redis.admin();
    const ttls = async () => [await admin.pttl(keys.slotsAll()), await admin.pttl(keys.slotsOfUser('u'))];
    await long.leases.acquire('long1', 'u');
    // The short-lease replica takes, renews and restores slots of the same user, in the same set...
    await short.leases.acquire('short1', 'u');
    for (const ttl of await ttls()) expect(ttl).toBeGreaterThan(29_000);
    await short.leases.sync();
    for (const ttl of await ttls()) expect(ttl).toBeGreaterThan(29_000);
    (short.leases as unknown as { mustRestore: boolean }).mustRestore = true;
    await short.leases.sync();
    for (const ttl of await ttls()) expect(ttl).toBeGreaterThan(29_000);
    // ...then holds nothing and stops heartbeating: the long lease's slot still counts after its lease.
    await short.leases.release('short1', 'u');
    await short.leases.close();
    await new Promise((r) => setTimeout(r, 1200));
    expect(await admin.zrange(keys.slotsAll(), 0, -1)).toEqual(['long1']);
    expect(await admin.zrange(keys.slotsOfUser('u'), 0, -1)).toEqual(['long1']);
    // A key only the short-lease replica writes still gets a TTL (not none), its own lease.
    await short.leases.acquire('short2', 'w');
    const fresh = await admin.pttl(keys.slotsOfUser('w'));
    expect(fresh).toBeGreaterThan(0);
    expect(fresh).toBeLessThanOrEqual(1000);
  });

  it('does not put back a slot released while a restore works through its batches', async () => {
    const c = await client();
    const keys = redisKeys(uniquePrefix('restore-release'));
    const health = new RedisHealth(c, quiet);
    // batchSize 1 stands for a replica holding more than 500 sockets (the default batch).
    const leases = new RedisConnectionLeases(c, health, quiet, { keys, maxPerUser: 1000, maxGlobal: 10_000, leaseMs: 30_000, batchSize: 1 });
    closers.push(async () => {
      await leases.close();
      health.close();
    });
    const ids = Array.from({ length: 300 }, (_, i) => `r${i}`);
    const decisions = await Promise.all(ids.map((id) => leases.acquire(id, 'u')));
    expect(decisions.every((d) => d.granted)).toBe(true);

    // A call timed out while Redis still answers PING: the next sync restores rather than renews.
    health.failed(new Error('Command timed out'));
    const syncing = leases.sync();
    await new Promise((r) => setImmediate(r));
    // The last socket closes while the restore is at its first batches.
    await leases.release('r299', 'u');
    await syncing;
    expect(health.isDown()).toBe(false);
    expect(leases.heldCount).toBe(299);
    // Released, and renewed by nobody: it must not count for a whole lease.
    const admin = redis.admin();
    expect(await admin.zscore(keys.slotsAll(), 'r299')).toBeNull();
    expect(await admin.zscore(keys.slotsOfUser('u'), 'r299')).toBeNull();
    expect(await admin.zcard(keys.slotsAll())).toBe(299);
  });

  it('frees at shutdown the slots of acquisitions and releases still on their way', async () => {
    const prefix = uniquePrefix('release-all');
    const keys = redisKeys(prefix);
    const { leases } = await redisLeases(prefix);
    expect(await leases.acquire('s1', 'u')).toEqual({ granted: true });
    // In the turn shutdown starts, s1's socket closes and an upgrade still in its checks asks for s2.
    void leases.release('s1', 'u');
    const late = leases.acquire('s2', 'v');
    await leases.releaseAll();
    expect(await late).toEqual({ granted: true });
    expect(leases.heldCount).toBe(0);
    expect(await redis.admin().zcard(keys.slotsAll())).toBe(0);
  });
});

describe('FailoverConnectionLeases with Redis unreachable', () => {
  it('decides from memory in local mode, at once, and registers those slots when Redis is back', async () => {
    const prefix = uniquePrefix('failover');
    const c = createRedisClient('redis://127.0.0.1:1'); // nothing listens on port 1
    clients.push(c);
    const health = new RedisHealth(c, quiet);
    health.startDown();
    const redisLeasesOnly = new RedisConnectionLeases(c, health, quiet, {
      keys: redisKeys(prefix),
      maxPerUser: 2,
      maxGlobal: 3,
      leaseMs: 30_000,
    });
    const decisions: string[] = [];
    const metrics = { ...noopMetrics, fallbackDecision: (_s: string, d: string) => void decisions.push(d) };
    const leases = new FailoverConnectionLeases(
      redisLeasesOnly,
      new MemoryConnectionLeases({ maxPerUser: 2, maxGlobal: 3 }),
      health,
      'local',
      metrics,
      quiet,
    );
    closers.push(async () => {
      await leases.close();
      health.close();
    });
    expect(await leases.acquire('f1', 'u')).toEqual({ granted: true });
    expect(await leases.acquire('f2', 'u')).toEqual({ granted: true });
    expect(await leases.acquire('f3', 'u')).toMatchObject({ granted: false, reason: 'user_connection_limit' });
    expect(decisions).toEqual(['local_allowed', 'local_allowed', 'local_denied']);
    expect(redisLeasesOnly.heldCount).toBe(2);

    const closed = new FailoverConnectionLeases(
      redisLeasesOnly,
      new MemoryConnectionLeases({ maxPerUser: 2, maxGlobal: 3 }),
      health,
      'closed',
      metrics,
      quiet,
    );
    expect(await closed.acquire('f4', 'v')).toMatchObject({ granted: false, reason: 'unavailable' });
    await waitFor(() => health.isDown());
  });
});

describe('FailoverConnectionLeases: the per-replica twin', () => {
  it('counts nothing while Redis decides, counts every slot this replica holds from the first fallback decision, and empties when Redis decides again', async () => {
    const c = await client();
    const health = new RedisHealth(c, quiet, { probeIntervalMs: 300 });
    const redisLeases = new RedisConnectionLeases(c, health, quiet, { keys: redisKeys(uniquePrefix('twin')), maxPerUser: 3, maxGlobal: 10, leaseMs: 30_000 });
    const twin = new MemoryConnectionLeases({ maxPerUser: 3, maxGlobal: 10 });
    const decisions: string[] = [];
    const metrics = { ...noopMetrics, fallbackDecision: (_s: string, d: string) => void decisions.push(d) };
    const leases = new FailoverConnectionLeases(redisLeases, twin, health, 'local', metrics, quiet);
    closers.push(async () => {
      await leases.close();
      health.close();
    });
    expect(await leases.acquire('t1', 'u')).toEqual({ granted: true });
    expect(await leases.acquire('t2', 'u')).toEqual({ granted: true });
    expect(await leases.acquire('t3', 'v')).toEqual({ granted: true });
    await leases.release('t3', 'v');
    expect(twin.size).toBe(0);

    // Redis taken for away (the probe finds it again shortly): the two slots of u count here at once.
    health.startDown();
    expect(await leases.acquire('t4', 'u')).toEqual({ granted: true });
    expect(await leases.acquire('t5', 'u')).toMatchObject({ granted: false, reason: 'user_connection_limit' });
    expect(decisions).toEqual(['local_allowed', 'local_denied']);
    expect([twin.size, twin.countFor('u'), twin.countFor('v')]).toEqual([3, 3, 0]);
    await leases.release('t1', 'u');
    expect(twin.countFor('u')).toBe(2);

    // Back: Redis decides again (t4, adopted, is registered by the restore) and the twin lets go.
    await waitFor(() => !health.isDown(), 5000);
    expect(await leases.acquire('t6', 'u')).toEqual({ granted: true });
    expect(await leases.acquire('t7', 'u')).toMatchObject({ granted: false, reason: 'user_connection_limit' });
    expect(twin.size).toBe(0);
    expect(redisLeases.heldCount).toBe(3);
  });
});

describe('FailoverConnectionLeases: sockets that come and go while Redis is being recovered', () => {
  /**
   * Redis is taken for away (a dropped link) and answers again; while the recovery restore works
   * through its batches (batchSize 1 stands for a replica holding thousands of sockets), sockets
   * open (granted from memory) or close, one every millisecond or so. Resolves when health is up.
   */
  async function recoverWithChurn(name: string, during: 'acquire' | 'release') {
    const c = await client();
    const keys = redisKeys(uniquePrefix(name));
    const health = new RedisHealth(c, quiet, { probeIntervalMs: 300 });
    // A lease of a minute: the heartbeat (every 20 s) comes long after the checks below.
    const redisLeases = new RedisConnectionLeases(c, health, quiet, { keys, maxPerUser: 1000, maxGlobal: 10_000, leaseMs: 60_000, batchSize: 1 });
    const twin = new MemoryConnectionLeases({ maxPerUser: 1000, maxGlobal: 10_000 });
    const leases = new FailoverConnectionLeases(redisLeases, twin, health, 'local', noopMetrics, quiet);
    closers.push(async () => {
      await leases.close();
      health.close();
    });
    const ids = Array.from({ length: 400 }, (_, i) => `h${i}`);
    await Promise.all(ids.map((id) => leases.acquire(id, `user-${id}`)));

    health.failed(new Error('connection to Redis closed'));
    expect(health.isDown()).toBe(true);
    for (let n = 0; health.isDown(); n++) {
      if (during === 'acquire') {
        expect((await leases.acquire(`late${n}`, `late-user-${n}`)).granted).toBe(true);
      } else if (n < ids.length) {
        await leases.release(ids[n] as string, `user-${ids[n]}`);
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    const redisCountsWhatIsHeld = async () => {
      const held = [...redisLeases.heldEntries()].map(([id]) => id).sort();
      const inRedis = (await c.zrange(keys.slotsAll(), 0, -1)).sort();
      return held.length === inRedis.length && held.every((id, i) => id === inRedis[i]);
    };
    return { redisCountsWhatIsHeld };
  }

  // CONTRACT §2: within 5 s of Redis answering again, the replica's slots are what Redis counts.
  it('registers slots granted from memory during the recovery restore within 5 s of Redis answering', async () => {
    const { redisCountsWhatIsHeld } = await recoverWithChurn('recover-acquire', 'acquire');
    await waitFor(redisCountsWhatIsHeld, 5000);
  });

  it('releases slots of sockets closed during the recovery restore within 5 s of Redis answering', async () => {
    const { redisCountsWhatIsHeld } = await recoverWithChurn('recover-release', 'release');
    await waitFor(redisCountsWhatIsHeld, 5000);
  });
});

describe('FailoverRateLimiter with Redis unreachable', () => {
  it('decides from memory with the same windows in local mode and refuses in closed mode, counting each', async () => {
    const c = createRedisClient('redis://127.0.0.1:1'); // nothing listens on port 1
    clients.push(c);
    const health = new RedisHealth(c, quiet);
    health.startDown();
    const redisRates = new RedisRateLimiter(c, health, { keys: redisKeys(uniquePrefix('rf')), perSecond: 2, perMinute: 10 });
    const decisions: string[] = [];
    const metrics = { ...noopMetrics, fallbackDecision: (store: string, d: string) => void decisions.push(`${store}:${d}`) };
    const local = new FailoverRateLimiter(redisRates, new MemoryRateLimiter({ perSecond: 2, perMinute: 10 }), health, 'local', metrics);
    const closed = new FailoverRateLimiter(redisRates, new MemoryRateLimiter({ perSecond: 2, perMinute: 10 }), health, 'closed', metrics);
    closers.push(async () => {
      await local.close();
      await closed.close();
      health.close();
    });
    const started = Date.now();
    const answers = [await consumeRate(local, 'u'), await consumeRate(local, 'u'), await consumeRate(local, 'u')];
    expect(answers.map((a) => a.allowed)).toEqual([true, true, false]);
    await expect(consumeRate(closed, 'u')).rejects.toBeInstanceOf(LimitsUnavailableError);
    expect(Date.now() - started).toBeLessThan(500);
    expect(decisions).toEqual(['rates:local_allowed', 'rates:local_allowed', 'rates:local_denied', 'rates:refused']);
  });
});

describe('limits while this process is too starved to read script replies in time', () => {
  it('refuses (unavailable) instead of guessing from memory, in local mode too, and decides in Redis again after', async () => {
    const c = await client();
    const health = new RedisHealth(c, quiet);
    const prefix = uniquePrefix('starved');
    const keys = redisKeys(prefix);
    const decisions: string[] = [];
    const metrics = { ...noopMetrics, fallbackDecision: (store: string, d: string) => void decisions.push(`${store}:${d}`) };
    const redisLeasesOnly = new RedisConnectionLeases(c, health, quiet, { keys, maxPerUser: 2, maxGlobal: 10, leaseMs: 30_000 });
    const leases = new FailoverConnectionLeases(redisLeasesOnly, new MemoryConnectionLeases({ maxPerUser: 2, maxGlobal: 10 }), health, 'local', metrics, quiet);
    const rates = new FailoverRateLimiter(
      new RedisRateLimiter(c, health, { keys, perSecond: 5, perMinute: 8 }),
      new MemoryRateLimiter({ perSecond: 5, perMinute: 8 }),
      health,
      'local',
      metrics,
    );
    closers.push(async () => {
      await leases.close();
      await rates.close();
      health.close();
    });
    // Another replica holds one of the user's two slots; this replica's memory cannot see it.
    const until = Date.now() + 60_000;
    await c.zadd(keys.slotsAll(), until, 'elsewhere');
    await c.zadd(keys.slotsOfUser('u'), until, 'elsewhere');

    // A starved event loop: right after each script call is written, the process does not run for
    // 1.2 s, so the call's 1 s timeout fires before its reply is read (timers run before I/O). A
    // PING in between gets through: Redis answers, this process is the slow one.
    let starve = 0; // script calls still to starve
    const stream = c.stream as unknown as { write: (...args: unknown[]) => boolean };
    const write = stream.write.bind(stream);
    stream.write = (...args: unknown[]) => {
      const written = write(...args);
      if (starve > 0 && /\r\neval(sha)?\r\n/i.test(String(args[0]))) {
        starve--;
        const end = Date.now() + 1200;
        while (Date.now() < end) {
          // not running
        }
      }
      return written;
    };
    // The decision is asked twice (the second time after the PING); both calls starve.
    starve = 2;
    const slot = await leases.acquire('here-1', 'u');
    starve = 2;
    const message = await consumeRate(rates, 'u').catch((err: unknown) => err);
    expect(slot).toMatchObject({ granted: false, reason: 'unavailable' });
    expect(message).toBeInstanceOf(RedisTooSlowError);
    expect(health.isDown()).toBe(false);
    expect(decisions).toEqual(['leases:refused', 'rates:refused']);

    // Redis did run the timed-out acquire; the refusal gave that slot back by id.
    await waitFor(async () => (await c.zscore(keys.slotsAll(), 'here-1')) === null);
    // Exact shared decisions again: one more slot for the user, then its limit.
    expect(await leases.acquire('here-2', 'u')).toEqual({ granted: true });
    expect(await leases.acquire('here-3', 'u')).toMatchObject({ granted: false, reason: 'user_connection_limit' });
    expect(await consumeRate(rates, 'u')).toEqual({ allowed: true });
  });
});

describe('MemoryRateLimiter (the contract every message limiter keeps)', () => {
  rateContract(async () => ({ rates: new MemoryRateLimiter({ perSecond: 5, perMinute: 8 }) }));
});

describe('RedisRateLimiter, two replicas sharing the windows', () => {
  rateContract(async () => {
    const prefix = uniquePrefix('rate');
    return { rates: await redisRates(prefix), peer: await redisRates(prefix) };
  });

  it('decides a turn of messages in one script call and denies a limited user locally', async () => {
    const rates = await redisRates(uniquePrefix('batch'));
    const users = Array.from({ length: 50 }, (_, i) => `user-${i}`);
    const first = await Promise.all(users.flatMap((u) => [consumeRate(rates, u), consumeRate(rates, u)]));
    expect(first.every((d) => d.allowed)).toBe(true);
    expect(rates.stats.calls).toBe(1);
    // One user over the limit: the first denial comes from Redis, the rest cost nothing.
    await Promise.all(Array.from({ length: 6 }, () => consumeRate(rates, 'flooder')));
    const calls = rates.stats.calls;
    const later = await Promise.all(Array.from({ length: 100 }, () => consumeRate(rates, 'flooder')));
    expect(later.every((d) => !d.allowed)).toBe(true);
    expect(rates.stats.calls).toBe(calls);
    expect(rates.stats.localDenials).toBe(100);
  });

  it('decides interleaved users in one script call, in arrival order, each against its own windows', async () => {
    const prefix = uniquePrefix('interleaved');
    const rates = await redisRates(prefix); // 5 per second, 8 per minute
    const order = 'abacbaabaaccbaaab'.split('');
    const decisions = await Promise.all(order.map((u) => consumeRate(rates, u)));
    expect(rates.stats.calls).toBe(1);
    // Each user's first five are allowed, the rest denied until the 1 s window frees.
    const seen = new Map<string, number>();
    order.forEach((u, i) => {
      const n = (seen.get(u) ?? 0) + 1;
      seen.set(u, n);
      const d = decisions[i]!;
      expect(d.allowed, `${u} #${n}`).toBe(n <= 5);
      if (!d.allowed) expect(d.retryAfterMs).toBeGreaterThan(900);
    });
    // Redis holds one entry per accepted message.
    const admin = await client();
    const keys = redisKeys(prefix);
    const lengths = await Promise.all(['a', 'b', 'c'].map((u) => admin.llen(keys.rateLog(keys.rateShardOf(u), u, { perSecond: 5, perMinute: 8 }))));
    expect(lengths).toEqual([5, 5, 3]);
  });

  it('answers the wait of the first window that refuses, not the longer one of a later decision', async () => {
    // 1 per second, 2 per minute, three at once: the 1 s window refuses the second message (for
    // ~1 s); the 60 s window would only refuse the third. Both denials wait for the 1 s window.
    const rates = await redisRates(uniquePrefix('first-refusal'), 1, 2);
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => consumeRate(rates, 'u')));
    expect(rates.stats.calls).toBe(1);
    expect(a).toEqual({ allowed: true });
    for (const d of [b, c]) {
      expect(d?.allowed).toBe(false);
      if (d?.allowed === false) expect(d.retryAfterMs).toBeLessThanOrEqual(1000);
    }
  });

  it('reads and keeps only the window that can bind when the other one implies it', async () => {
    const c = await client();
    const keys = redisKeys(uniquePrefix('implied'));
    const logLength = (user: string, perSecond: number, perMinute: number) =>
      c.llen(keys.rateLog(keys.rateShardOf(user), user, { perSecond, perMinute }));
    // 3 per second and 180 per minute: sixty 1 s windows hold at most 180, so only the 1 s window
    // decides, and the log keeps 3 entries (not 180).
    const perSecondOnly = await redisRates(keys.prefix, 3, 180);
    const first = await Promise.all([1, 2, 3, 4].map(() => consumeRate(perSecondOnly, 's')));
    expect(first.map((d) => d.allowed)).toEqual([true, true, true, false]);
    const denied = first[3]!;
    if (!denied.allowed) expect(denied.retryAfterMs).toBeLessThanOrEqual(1000);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const second = await Promise.all([1, 2, 3, 4].map(() => consumeRate(perSecondOnly, 's')));
    expect(second.map((d) => d.allowed)).toEqual([true, true, true, false]);
    expect(await logLength('s', 3, 180)).toBe(3);
    // 9 per second and 4 per minute: the 60 s window decides alone; the log keeps 4 entries.
    const perMinuteOnly = await redisRates(keys.prefix, 9, 4);
    const minute = await Promise.all([1, 2, 3, 4, 5, 6].map(() => consumeRate(perMinuteOnly, 'm')));
    expect(minute.map((d) => d.allowed)).toEqual([true, true, true, true, false, false]);
    const refused = minute[4]!;
    if (!refused.allowed) expect(refused.retryAfterMs).toBeGreaterThan(59_000);
    expect(await logLength('m', 9, 4)).toBe(4);
  });

  it('tells a locally denied client a wait after which it gets through, however late the script ran', async () => {
    const prefix = uniquePrefix('local-retry');
    const rates = await redisRates(prefix, 1, 100);
    const blocker = await client();
    expect(await consumeRate(rates, 'u')).toEqual({ allowed: true });
    // Redis is busy for ~300 ms with another client's script when the next decision is sent: the
    // script runs, and measures its wait, ~300 ms after the call left.
    const busy = blocker.eval(
      "local t = redis.call('TIME'); local s = t[1] * 1000000 + t[2]; " +
        "while true do local n = redis.call('TIME'); if n[1] * 1000000 + n[2] - s > 300000 then break end end; return 1",
      0,
    );
    await new Promise((resolve) => setTimeout(resolve, 5));
    const denied = await consumeRate(rates, 'u');
    await busy;
    expect(denied.allowed).toBe(false);
    const local = await consumeRate(rates, 'u');
    expect(rates.stats.localDenials).toBe(1);
    if (local.allowed) throw new Error('expected a local denial');
    // Before: the local answer counted from when the call left, ~300 ms short, and a client that
    // waited as told was refused again.
    await new Promise((resolve) => setTimeout(resolve, local.retryAfterMs + 5));
    expect(await consumeRate(rates, 'u')).toEqual({ allowed: true });
  });

  it('never asks for a wait longer than the window, even for entries stamped ahead of Redis TIME', async () => {
    const prefix = uniquePrefix('rate-skew');
    const rates = await redisRates(prefix, 2, 100);
    const c = await client();
    const keys = redisKeys(prefix);
    // Two acceptances stamped by a Redis whose clock was an hour ahead (a failover to a replica
    // whose clock is behind): before, the denial said to come back in an hour.
    const [sec, usec] = (await c.time()) as unknown as [string, string];
    const ahead = String(Number(sec) * 1000 + Math.floor(Number(usec) / 1000) + 3_600_000);
    await c.lpush(keys.rateLog(keys.rateShardOf('u'), 'u', { perSecond: 2, perMinute: 100 }), ahead, ahead);
    const denied = await consumeRate(rates, 'u');
    expect(denied.allowed).toBe(false);
    if (!denied.allowed) expect(denied.retryAfterMs).toBeLessThanOrEqual(1000);
  });

  it("keeps each replica's windows when replicas run with different limits (a rolling change of them)", async () => {
    const prefix = uniquePrefix('mixed-limits');
    // Old replicas: 10 per minute; new ones: 20. Before, the old replica's trim (to its 10) handed
    // the new one a fresh allowance each time the user sent it a frame: 30 in a second.
    const oldReplica = await redisRates(prefix, 1000, 10);
    const newReplica = await redisRates(prefix, 1000, 20);
    let acceptedByNew = 0;
    for (let round = 0; round < 3; round++) {
      const batch = await Promise.all(Array.from({ length: 20 }, () => consumeRate(newReplica, 'u')));
      acceptedByNew += batch.filter((d) => d.allowed).length;
      await consumeRate(oldReplica, 'u');
    }
    expect(acceptedByNew).toBe(20);
  });

  it('records over a thousand acceptances of one user from one call (pushed in chunks)', async () => {
    const c = await client();
    const health = new RedisHealth(c, quiet);
    const prefix = uniquePrefix('bulk');
    const rates = new RedisRateLimiter(c, health, { keys: redisKeys(prefix), perSecond: 1600, perMinute: 1500 });
    closers.push(async () => {
      await rates.close();
      health.close();
    });
    const decisions = await Promise.all(Array.from({ length: 1700 }, () => consumeRate(rates, 'bulk')));
    expect(rates.stats.calls).toBe(1);
    expect(decisions.filter((d) => d.allowed)).toHaveLength(1500);
    expect(decisions.slice(0, 1500).every((d) => d.allowed)).toBe(true);
    expect(decisions[1500]!.retryAfterMs).toBeGreaterThan(59_000);
    const keys = redisKeys(prefix);
    expect(await c.llen(keys.rateLog(keys.rateShardOf('bulk'), 'bulk', { perSecond: 1600, perMinute: 1500 }))).toBe(1500);
  });
});

describe('RedisUpgradeThrottle, two replicas sharing the failures of an address', () => {
  async function throttle(prefix: string) {
    return new RedisUpgradeThrottle(await client(), quiet, { keys: redisKeys(prefix), failures: 3, windowSeconds: 60 });
  }

  it('answers from the count its own failures returned: failures left, then a refusal within the window', async () => {
    const prefix = uniquePrefix('throttle');
    const [a, b] = [await throttle(prefix), await throttle(prefix)];
    expect(a.verdict('198.51.100.7')).toEqual({ allowed: true, remaining: 3 });
    await a.failed('198.51.100.7');
    expect(a.verdict('198.51.100.7')).toEqual({ allowed: true, remaining: 2 });
    // The other replica has heard nothing yet (no Redis call per upgrade); its own failure tells it.
    expect(b.verdict('198.51.100.7')).toEqual({ allowed: true, remaining: 3 });
    await b.failed('198.51.100.7');
    expect(b.verdict('198.51.100.7')).toEqual({ allowed: true, remaining: 1 });
    await a.failed('198.51.100.7');
    const refused = a.verdict('198.51.100.7');
    expect(refused.allowed).toBe(false);
    if (!refused.allowed) expect(refused.retryAfterMs).toBeLessThanOrEqual(60_000);
    expect(a.verdict('203.0.113.9')).toEqual({ allowed: true, remaining: 3 });
  });
});
