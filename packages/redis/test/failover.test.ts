import { describe, expect, it } from 'vitest';
import { consumeRate, noopMetrics } from '@wsgw/core';
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
} from '@wsgw/redis';
import { uniquePrefix, waitFor } from '@wsgw/testkit';
import { client, clients, closers, quiet, useLimitsRedis } from './limits-fixture.js';

useLimitsRedis();

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
    const stream = (c as unknown as { stream: { write: (...args: unknown[]) => boolean } }).stream;
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
