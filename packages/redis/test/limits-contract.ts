import { randomUUID } from 'node:crypto';
import { expect, it } from 'vitest';
import { consumeRate, type ConnectionLeases, type MessageRateLimiter } from '@wsgw/core';

/**
 * What every ConnectionLeases must do, Memory or Redis (single or Cluster). `make` builds a fresh
 * store (own key prefix) with 2 per user and 3 in total; `peer` a second replica on the same state
 * (the memory twin has none: it is one process).
 */
export function leasesContract(make: () => Promise<{ leases: ConnectionLeases; peer?: ConnectionLeases }>): void {
  it('grants up to the per-user limit, then refuses with user_connection_limit', async () => {
    const { leases } = await make();
    const user = `u-${randomUUID()}`;
    expect(await leases.acquire('a', user)).toEqual({ granted: true });
    expect(await leases.acquire('b', user)).toEqual({ granted: true });
    const third = await leases.acquire('c', user);
    expect(third).toMatchObject({ granted: false, reason: 'user_connection_limit' });
    await leases.release('a', user);
    expect(await leases.acquire('c', user)).toEqual({ granted: true });
  });

  it('refuses with global_connection_limit when the whole cluster is full', async () => {
    const { leases, peer } = await make();
    const other = peer ?? leases;
    expect(await leases.acquire('g1', 'u1')).toEqual({ granted: true });
    expect(await other.acquire('g2', 'u2')).toEqual({ granted: true });
    expect(await leases.acquire('g3', 'u3')).toEqual({ granted: true });
    expect(await other.acquire('g4', 'u4')).toMatchObject({ granted: false, reason: 'global_connection_limit' });
    await other.release('g2', 'u2');
    expect(await other.acquire('g4', 'u4')).toEqual({ granted: true });
  });

  it('is idempotent by connection id: a retried acquire neither fails nor counts twice', async () => {
    const { leases, peer } = await make();
    expect(await leases.acquire('x', 'u')).toEqual({ granted: true });
    expect(await leases.acquire('x', 'u')).toEqual({ granted: true });
    expect(await (peer ?? leases).acquire('y', 'u')).toEqual({ granted: true });
    expect(await leases.acquire('z', 'u')).toMatchObject({ granted: false, reason: 'user_connection_limit' });
    await leases.release('x', 'u');
    await leases.release('x', 'u');
    expect(await leases.acquire('z', 'u')).toEqual({ granted: true });
    expect(await leases.acquire('w', 'u')).toMatchObject({ granted: false });
  });

  it('frees everything this replica holds with releaseAll', async () => {
    const { leases, peer } = await make();
    await leases.acquire('r1', 'u1');
    await leases.acquire('r2', 'u1');
    await leases.acquire('r3', 'u2');
    await leases.releaseAll();
    const other = peer ?? leases;
    expect(await other.acquire('s1', 'u1')).toEqual({ granted: true });
    expect(await other.acquire('s2', 'u1')).toEqual({ granted: true });
    expect(await other.acquire('s3', 'u2')).toEqual({ granted: true });
  });
}

/**
 * What every MessageRateLimiter must do with 5 per second and 8 per minute. `peer` is a second
 * replica sharing the windows, when the implementation has one.
 */
export function rateContract(make: () => Promise<{ rates: MessageRateLimiter; peer?: MessageRateLimiter }>): void {
  it('allows 5 in a second, then denies with the time until the oldest leaves the window', async () => {
    const { rates } = await make();
    const user = `u-${randomUUID()}`;
    const decisions = await Promise.all(Array.from({ length: 7 }, () => consumeRate(rates, user)));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(5);
    const denied = decisions.filter((d) => !d.allowed);
    expect(denied).toHaveLength(2);
    for (const d of denied) {
      expect(d.allowed).toBe(false);
      if (!d.allowed) {
        expect(d.retryAfterMs).toBeGreaterThan(0);
        expect(d.retryAfterMs).toBeLessThanOrEqual(1000);
      }
    }
    // Other users have their own windows.
    expect(await consumeRate(rates, `v-${randomUUID()}`)).toEqual({ allowed: true });
  });

  it('applies decisions in order and lets a user through once the second has passed, up to the minute limit', async () => {
    const { rates, peer } = await make();
    const user = `u-${randomUUID()}`;
    const first = await Promise.all(Array.from({ length: 5 }, () => consumeRate(rates, user)));
    expect(first.every((d) => d.allowed)).toBe(true);
    const denied = await consumeRate(peer ?? rates, user);
    expect(denied.allowed).toBe(false);
    await new Promise((r) => setTimeout(r, denied.allowed ? 0 : denied.retryAfterMs + 20));
    // 3 more fit the minute (8), then the minute window refuses for most of a minute.
    const second = await Promise.all(Array.from({ length: 5 }, (_, i) => consumeRate(i % 2 ? (peer ?? rates) : rates, user)));
    expect(second.filter((d) => d.allowed)).toHaveLength(3);
    for (const d of second) if (!d.allowed) expect(d.retryAfterMs).toBeGreaterThan(55_000);
  });
}
