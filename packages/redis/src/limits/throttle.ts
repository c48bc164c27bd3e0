import { RateLimiterMemory, RateLimiterRedis } from 'rate-limiter-flexible';
import { FailureWindows, type Logger, type ThrottleVerdict, type UpgradeThrottle } from '@wsgw/core';
import type { RedisClient } from '../client.js';
import type { RedisKeys } from '../keys.js';

export interface RedisThrottleOptions {
  keys: RedisKeys;
  /** Failed session checks allowed per address per window, across replicas. */
  failures: number;
  windowSeconds: number;
}

/**
 * Failed session checks per client address, counted in Redis by rate-limiter-flexible so the
 * budget holds across replicas; its insurance limiter counts in memory while Redis is down.
 *
 * Only failures cost a Redis call. Each failure returns the address's count, which is kept here
 * (core's FailureWindows, on the monotonic clock) until its window ends: `verdict` answers from it
 * without a call, and the admission runs no more checks at once than the failures left. So a
 * replica checks at most `failures` failing tokens of an address per window, and learns the budget
 * is spent from its own failures: across R replicas an address gets at most `failures + R - 1`
 * session checks per window one at a time, at most `R * failures` when it sends them in parallel
 * to every replica.
 */
export class RedisUpgradeThrottle implements UpgradeThrottle {
  private readonly limiter: RateLimiterRedis;
  private readonly heard: FailureWindows;

  constructor(
    client: RedisClient,
    private readonly log: Logger,
    options: RedisThrottleOptions,
  ) {
    this.limiter = new RateLimiterRedis({
      storeClient: client,
      keyPrefix: options.keys.throttlePrefix(),
      points: options.failures,
      duration: options.windowSeconds,
      rejectIfRedisNotReady: true,
      insuranceLimiter: new RateLimiterMemory({ points: options.failures, duration: options.windowSeconds }),
    });
    this.heard = new FailureWindows(options.failures, options.windowSeconds * 1000);
  }

  verdict(remoteAddress: string): ThrottleVerdict {
    return this.heard.verdict(remoteAddress);
  }

  async failed(remoteAddress: string): Promise<void> {
    try {
      // penalty() records without rejecting when the budget is spent: a denial is not an error.
      const res = await this.limiter.penalty(remoteAddress, 1);
      this.heard.heard(remoteAddress, res.consumedPoints, res.msBeforeNext);
    } catch (err) {
      this.log.warn({ err: { message: (err as Error).message } }, 'upgrade throttle could not count a failure');
    }
  }
}
