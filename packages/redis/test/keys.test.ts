import { readdirSync, readFileSync } from 'node:fs';
import calculateSlot from 'cluster-key-slot';
import { describe, expect, it } from 'vitest';
import { redisKeys } from '@wsgw/redis';

describe('key layout (docs/REDIS.md)', () => {
  const keys = redisKeys('wsgw:', { rateShards: 16 });
  const limits = { perSecond: 10, perMinute: 100 };

  it('starts every key with REDIS_KEY_PREFIX', () => {
    for (const key of [keys.slotsAll(), keys.slotsOfUser('u'), keys.rateLog(3, 'u', limits), keys.session('t'), keys.throttlePrefix()]) {
      expect(key.startsWith('wsgw:')).toBe(true);
    }
  });

  it('puts the keys one script touches in one Redis Cluster slot', () => {
    // slots_*: all slots and any user's slots; user ids may hold braces of their own.
    const slot = calculateSlot(keys.slotsAll());
    for (const user of ['u1', 'someone-else', '{weird}', 'x}{y']) expect(calculateSlot(keys.slotsOfUser(user))).toBe(slot);
    // rate_consume: one call per shard, every user of the shard in the shard's slot.
    for (let shard = 0; shard < keys.rateShards; shard++) {
      const rateSlot = calculateSlot(keys.rateLog(shard, 'a', limits));
      for (const user of ['b', '{c}', 'd}']) expect(calculateSlot(keys.rateLog(shard, user, limits))).toBe(rateSlot);
      // Replicas with other limits (a rolling change) keep their own logs, in the same slot.
      expect(calculateSlot(keys.rateLog(shard, 'a', { perSecond: 1, perMinute: 2 }))).toBe(rateSlot);
    }
  });

  it('spreads users over the rate shards', () => {
    const used = new Set(Array.from({ length: 1000 }, (_, i) => keys.rateShardOf(`user-${i}`)));
    expect(used.size).toBe(16);
    expect(redisKeys('p:').rateShardOf('anyone')).toBe(0);
  });

  it('documents KEYS, ARGV and the return value at the top of every script', () => {
    const dir = new URL('../src/lua/', import.meta.url);
    for (const file of readdirSync(dir).filter((f) => /^(slots|rate)_/.test(f))) {
      const head = readFileSync(new URL(file, dir), 'utf8').split('\n').slice(0, 30).join('\n');
      expect(head, file).toMatch(/KEYS\[1/);
      expect(head, file).toMatch(/ARGV\[1\]/);
      expect(head, file).toMatch(/returns/);
    }
  });
});
