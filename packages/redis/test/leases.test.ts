import { describe, expect, it } from 'vitest';
import { MemoryConnectionLeases } from '@wsgw/memory';
import { RedisConnectionLeases, RedisHealth, redisKeys } from '@wsgw/redis';
import { uniquePrefix } from '@wsgw/testkit';
import { leasesContract } from './limits-contract.js';
import { client, closers, quiet, redisAdmin, redisLeases, useLimitsRedis } from './limits-fixture.js';

useLimitsRedis();

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
    const admin = redisAdmin();
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
    const admin = redisAdmin();
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
    const admin = redisAdmin();
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
    await redisAdmin().zrem(redisKeys(prefix).slotsAll(), 'p1');
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
    const admin = redisAdmin();
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
    const admin = redisAdmin();
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
    const admin = redisAdmin();
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
    expect(await redisAdmin().zcard(keys.slotsAll())).toBe(0);
  });
});
