import { afterAll, beforeAll } from 'vitest';
import type { Logger } from '@wsgw/core';
import { createRedisClient, RedisConnectionLeases, RedisHealth, redisKeys, RedisRateLimiter, type RedisClient } from '@wsgw/redis';
import { findRedis, type TestRedis } from '@wsgw/testkit';

export const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

let redis: TestRedis;
/** Clients and closers of what a test made itself: disconnected and run after the file. */
export const clients: RedisClient[] = [];
export const closers: Array<() => Promise<void>> = [];

/**
 * The Redis of one limits test file, for the helpers below: a file calls this once, and what the
 * helpers made is closed after its last test. (Each test file runs in a process of its own, so
 * this module's state is that file's.)
 */
export function useLimitsRedis(): void {
  beforeAll(async () => {
    redis = await findRedis();
  });
  afterAll(async () => {
    for (const close of closers.splice(0)) await close();
    for (const c of clients.splice(0)) c.disconnect();
    await redis.stop();
  });
}

/** A client of the file's Redis for looking at keys behind the stores' backs. */
export function redisAdmin(): ReturnType<TestRedis['admin']> {
  return redis.admin();
}

export async function client(): Promise<RedisClient> {
  const c = createRedisClient(redis.url);
  clients.push(c);
  await c.connect();
  return c;
}

export async function redisLeases(prefix: string, leaseMs = 30_000) {
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

export async function redisRates(prefix: string, perSecond = 5, perMinute = 8) {
  const c = await client();
  const health = new RedisHealth(c, quiet);
  const rates = new RedisRateLimiter(c, health, { keys: redisKeys(prefix), perSecond, perMinute });
  closers.push(async () => {
    await rates.close();
    health.close();
  });
  return rates;
}
