import { describe, expect, it } from 'vitest';
import { redisKeys, RedisUpgradeThrottle } from '@wsgw/redis';
import { uniquePrefix } from '@wsgw/testkit';
import { client, quiet, useLimitsRedis } from './limits-fixture.js';

useLimitsRedis();

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
