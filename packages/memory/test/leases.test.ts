import { describe, expect, it } from 'vitest';
import { MemoryConnectionLeases } from '@wsgw/memory';

describe('MemoryConnectionLeases', () => {
  it('grants up to the per-user limit, then refuses with user_connection_limit', async () => {
    const leases = new MemoryConnectionLeases({ maxPerUser: 2, maxGlobal: 10 });
    expect(await leases.acquire('c1', 'u')).toEqual({ granted: true });
    expect(await leases.acquire('c2', 'u')).toEqual({ granted: true });
    expect(await leases.acquire('c3', 'u')).toMatchObject({ granted: false, reason: 'user_connection_limit' });
    expect(await leases.acquire('c4', 'other')).toEqual({ granted: true });
  });

  it('checks the global limit before the user limit', async () => {
    const leases = new MemoryConnectionLeases({ maxPerUser: 1, maxGlobal: 2 });
    await leases.acquire('c1', 'a');
    await leases.acquire('c2', 'b');
    expect(await leases.acquire('c3', 'a')).toMatchObject({ granted: false, reason: 'global_connection_limit' });
  });

  it('is idempotent per connection id', async () => {
    const leases = new MemoryConnectionLeases({ maxPerUser: 1, maxGlobal: 10 });
    expect(await leases.acquire('c1', 'u')).toEqual({ granted: true });
    expect(await leases.acquire('c1', 'u')).toEqual({ granted: true });
    expect(leases.size).toBe(1);
    await leases.release('c1');
    await leases.release('c1');
    expect(leases.size).toBe(0);
    expect(leases.countFor('u')).toBe(0);
  });

  it('frees everything on releaseAll', async () => {
    const leases = new MemoryConnectionLeases({ maxPerUser: 5, maxGlobal: 10 });
    await leases.acquire('c1', 'u');
    await leases.acquire('c2', 'v');
    expect(leases.held()).toHaveLength(2);
    await leases.releaseAll();
    expect(leases.size).toBe(0);
  });
});
