import { describe, expect, it } from 'vitest';
import { consumeRate } from '@wsgw/core';
import { MemoryRateLimiter } from '@wsgw/memory';
import { RedisHealth, redisKeys, RedisRateLimiter } from '@wsgw/redis';
import { uniquePrefix } from '@wsgw/testkit';
import { rateContract } from './limits-contract.js';
import { client, closers, quiet, redisRates, useLimitsRedis } from './limits-fixture.js';

useLimitsRedis();

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
    const denied = decisions[1500]!;
    expect(denied.allowed ? 0 : denied.retryAfterMs).toBeGreaterThan(59_000);
    const keys = redisKeys(prefix);
    expect(await c.llen(keys.rateLog(keys.rateShardOf('bulk'), 'bulk', { perSecond: 1600, perMinute: 1500 }))).toBe(1500);
  });
});
