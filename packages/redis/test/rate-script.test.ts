import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisClient, type RedisClient } from '@wsgw/redis';
import { findRedis, uniquePrefix, type TestRedis } from '@wsgw/testkit';

/**
 * src/lua/rate_consume.lua against a brute-force model of CONTRACT §2's windows (every acceptance
 * kept, counted per window), over random batches, limits and clock steps. The script reads the
 * clock from Redis TIME; here that one statement is swapped for a time passed as the last
 * argument, so the test chooses `now` and the comparison is exact.
 */
const source = readFileSync(new URL('../src/lua/rate_consume.lua', import.meta.url), 'utf8');
const CLOCK = /local t = redis\.call\('TIME'\)\nlocal now = [^\n]+\n/;
const script = source.replace(CLOCK, 'local now = tonumber(ARGV[#ARGV])\n');

let redis: TestRedis;
let client: RedisClient;

beforeAll(async () => {
  redis = await findRedis();
  client = createRedisClient(redis.url);
  await client.connect();
});
afterAll(async () => {
  client.disconnect();
  await redis.stop();
});

/** Every acceptance of one user, and the decisions the windows give (CONTRACT §2). */
class Model {
  private readonly accepted: number[] = [];

  constructor(
    private readonly perSecond: number,
    private readonly perMinute: number,
  ) {}

  /** `count` decisions at `now`: how many pass (the first ones), and the wait of the others. */
  decide(count: number, now: number): [number, number] {
    for (let a = 0; a < count; a++) {
      const wait = Math.max(this.waitFor(this.perSecond, 1000, now), this.waitFor(this.perMinute, 60_000, now));
      if (wait > 0) return [a, wait];
      this.accepted.push(now);
    }
    return [count, 0];
  }

  /** 0 when the window has room at `now`, else the ms until its limit-th latest acceptance leaves it. */
  private waitFor(limit: number, span: number, now: number): number {
    const nth = this.accepted[this.accepted.length - limit];
    return nth !== undefined && nth > now - span ? nth + span - now : 0;
  }
}

/** A small deterministic generator, so a failure can be replayed from its seed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('rate_consume.lua', () => {
  it('reads its clock from the one statement this test replaces', () => {
    expect(CLOCK.test(source)).toBe(true);
  });

  it('decides exactly as the windows do, batch after batch, for random limits, loads and clock steps', async () => {
    const limits: Array<[number, number]> = [
      [3, 10], // both windows bind
      [5, 5], // the 60 s window implies the 1 s one
      [2, 500], // the 1 s window implies the 60 s one
      [1, 2],
      [4, 30],
    ];
    for (const [seedOffset, [perSecond, perMinute]] of limits.entries()) {
      const next = random(17 + seedOffset);
      const prefix = uniquePrefix('rate-script');
      const users = ['a', 'b', 'c', 'd'];
      const models = new Map(users.map((u) => [u, new Model(perSecond, perMinute)]));
      const cap = Math.max(perSecond < perMinute ? perSecond : 0, perMinute < 60 * perSecond ? perMinute : 0);
      let now = 1_700_000_000_000;
      for (let step = 0; step < 300; step++) {
        // Mostly short steps (the 1 s window), sometimes long ones (the 60 s window, stale logs).
        const r = next();
        now += r < 0.05 ? Math.floor(next() * 70_000) : r < 0.15 ? 0 : Math.floor(next() * 700);
        const batch = users.filter(() => next() < 0.6).map((u) => [u, 1 + Math.floor(next() * 6)] as const);
        if (batch.length === 0) continue;
        const keys = batch.map(([u]) => `${prefix}{rate:0}:log:${u}`);
        const reply = (await client.eval(
          script,
          keys.length,
          ...keys,
          perSecond,
          perMinute,
          ...batch.map(([, n]) => n),
          now,
        )) as number[];
        const where = `limits ${perSecond}/${perMinute}, step ${step}`;
        batch.forEach(([u, n], k) => {
          expect([reply[2 * k], reply[2 * k + 1]], `${where}, user ${u}, ${n} decisions`).toEqual(models.get(u)!.decide(n, now));
        });
        for (const key of keys) expect(await client.llen(key), `${where}: the log stays within its cap`).toBeLessThanOrEqual(cap);
      }
    }
  });

  it('pushes a user with more than 1,000 decisions in one batch in chunks, and the users after it as many as theirs', async () => {
    const prefix = uniquePrefix('rate-chunks');
    const batch = [['a', 2_500], ['b', 3], ['c', 1_200], ['d', 1]] as const;
    const keys = batch.map(([u]) => `${prefix}{rate:0}:log:${u}`);
    const now = 1_700_000_000_000;
    const reply = (await client.eval(script, keys.length, ...keys, 2_000, 100_000, ...batch.map(([, n]) => n), now)) as number[];
    batch.forEach(([, n], k) => expect([reply[2 * k], reply[2 * k + 1]]).toEqual(new Model(2_000, 100_000).decide(n, now)));
    // Refused stamps are trimmed away: what stays is what was accepted.
    expect(await Promise.all(keys.map((key) => client.llen(key)))).toEqual([2_000, 3, 1_200, 1]);
  });

  it('drops the entries older than the longer window that a read comes across, and every older one', async () => {
    const key = `${uniquePrefix('rate-stale')}{rate:0}:log:u`;
    const consume = async (n: number, now: number) => (await client.eval(script, 1, key, 3, 10, n, now)) as number[];
    const t0 = 1_700_000_000_000;
    expect(await consume(3, t0)).toEqual([3, 0]);
    expect(await consume(3, t0 + 1500)).toEqual([3, 0]);
    expect(await client.llen(key)).toBe(6);
    // A minute later the 1 s window reads the log's three newest entries: all older than 60 s, so
    // the three behind them are too, and only this batch's stamps stay.
    const later = t0 + 62_000;
    expect(await consume(3, later)).toEqual([3, 0]);
    expect(await client.lrange(key, 0, -1)).toEqual([String(later), String(later), String(later)]);
    expect(await client.pttl(key)).toBeGreaterThan(59_000);
  });
});
