import { performance } from 'node:perf_hooks';
import { RateLimiterMemory, RateLimiterRedis } from 'rate-limiter-flexible';
import type { Logger, ThrottleVerdict, UpgradeThrottle } from '@wsgw/core';
import type { RedisClient } from '../client.js';
import type { RedisKeys } from '../keys.js';

export interface RedisThrottleOptions {
  keys: RedisKeys;
  /** Failed session checks allowed per address per window, across replicas. */
  failures: number;
  windowSeconds: number;
}

/** What this replica last heard from Redis about an address's window. */
interface Heard {
  failures: number;
  endsAt: number;
}

/**
 * Failed session checks per client address, counted in Redis by rate-limiter-flexible so the
 * budget holds across replicas; its insurance limiter counts in memory while Redis is down.
 *
 * Only failures cost a Redis call. Each failure returns the address's count, which is kept here
 * (on the monotonic clock) until its window ends: `allows` answers from it without a call, and the
 * admission runs no more checks at once than the failures left. So a replica checks at most
 * `failures` failing tokens of an address per window, and learns the budget is spent from its own
 * failures: across R replicas an address gets at most `failures + R - 1` session checks per window
 * one at a time, at most `R * failures` when it sends them in parallel to every replica.
 */
export class RedisUpgradeThrottle implements UpgradeThrottle {
  private readonly limiter: RateLimiterRedis;
  private readonly heard = new Map<string, Heard>();
  private readonly unlimited: ThrottleVerdict;
  private readonly windowMs: number;
  /** Map size at which ended windows are swept next: doubles with the live ones, so O(1) a failure. */
  private sweepAt = 1024;

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
    this.unlimited = Object.freeze({ allowed: true, remaining: options.failures });
    this.windowMs = options.windowSeconds * 1000;
  }

  /** Asked on every upgrade with a token: an address with no failure heard of costs no allocation. */
  allows(remoteAddress: string): Promise<ThrottleVerdict> {
    const heard = this.heard.get(remoteAddress);
    if (heard === undefined) return Promise.resolve(this.unlimited);
    const left = heard.endsAt - performance.now();
    if (left <= 0) {
      this.heard.delete(remoteAddress);
      return Promise.resolve(this.unlimited);
    }
    if (heard.failures >= this.options.failures) return Promise.resolve({ allowed: false, retryAfterMs: Math.ceil(left) });
    return Promise.resolve({ allowed: true, remaining: this.options.failures - heard.failures });
  }

  async failed(remoteAddress: string): Promise<void> {
    try {
      // penalty() records without rejecting when the budget is spent: a denial is not an error.
      const res = await this.limiter.penalty(remoteAddress, 1);
      const now = performance.now();
      // Answers may arrive out of order: keep the highest count of the window.
      const known = this.heard.get(remoteAddress);
      if (known && known.endsAt > now && known.failures >= res.consumedPoints) return;
      const endsAt = now + Math.min(this.windowMs, Math.max(1, res.msBeforeNext));
      this.heard.set(remoteAddress, { failures: res.consumedPoints, endsAt });
      if (this.heard.size >= this.sweepAt) this.forgetEnded(now);
    } catch (err) {
      this.log.warn({ err: { message: (err as Error).message } }, 'upgrade throttle could not count a failure');
    }
  }

  private forgetEnded(now: number): void {
    for (const [address, heard] of this.heard) if (heard.endsAt <= now) this.heard.delete(address);
    this.sweepAt = Math.max(1024, this.heard.size * 2);
  }
}
