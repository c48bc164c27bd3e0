import { performance } from 'node:perf_hooks';
import { RateLimiterMemory, RateLimiterRedis } from 'rate-limiter-flexible';
import type { Logger, UpgradeThrottle } from '@wsgw/core';
import type { RedisClient } from '../client.js';
import type { RedisKeys } from '../keys.js';

export interface RedisThrottleOptions {
  keys: RedisKeys;
  /** Failed session checks allowed per address per window, across replicas. */
  failures: number;
  windowSeconds: number;
}

const ALLOWED: Promise<{ allowed: true }> = Promise.resolve(Object.freeze({ allowed: true }));

/**
 * Failed session checks per client address, counted in Redis by rate-limiter-flexible so the
 * budget holds across replicas; its insurance limiter counts in memory while Redis is down.
 *
 * Only failures cost a Redis call. An address learns it is over budget from the count its own
 * failure returns and is then refused here without a call until the window ends; so across R
 * replicas an address gets at most `failures + R - 1` session checks per window.
 */
export class RedisUpgradeThrottle implements UpgradeThrottle {
  private readonly limiter: RateLimiterRedis;
  private readonly blockedUntil = new Map<string, number>();

  constructor(
    client: RedisClient,
    private readonly log: Logger,
    private readonly options: RedisThrottleOptions,
  ) {
    this.limiter = new RateLimiterRedis({
      storeClient: client,
      keyPrefix: options.keys.throttlePrefix(),
      points: options.failures,
      duration: options.windowSeconds,
      rejectIfRedisNotReady: true,
      insuranceLimiter: new RateLimiterMemory({ points: options.failures, duration: options.windowSeconds }),
    });
  }

  /** Asked on every upgrade: an address not blocked gets one settled promise shared by all calls. */
  allows(remoteAddress: string): Promise<{ allowed: true } | { allowed: false; retryAfterMs: number }> {
    const until = this.blockedUntil.get(remoteAddress);
    if (until === undefined) return ALLOWED;
    const left = until - performance.now();
    if (left > 0) return Promise.resolve({ allowed: false, retryAfterMs: Math.ceil(left) });
    this.blockedUntil.delete(remoteAddress);
    return ALLOWED;
  }

  async failed(remoteAddress: string): Promise<void> {
    try {
      // penalty() records without rejecting when the budget is spent: a denial is not an error.
      const res = await this.limiter.penalty(remoteAddress, 1);
      if (res.consumedPoints >= this.options.failures) {
        this.blockedUntil.set(remoteAddress, performance.now() + Math.max(1, res.msBeforeNext));
        if (this.blockedUntil.size > 100_000) this.forgetExpired();
      }
    } catch (err) {
      this.log.warn({ err: { message: (err as Error).message } }, 'upgrade throttle could not count a failure');
    }
  }

  private forgetExpired(): void {
    const now = performance.now();
    for (const [address, until] of this.blockedUntil) if (until <= now) this.blockedUntil.delete(address);
  }
}
