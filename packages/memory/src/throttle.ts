import { RateLimiterMemory } from 'rate-limiter-flexible';
import type { UpgradeThrottle } from '@wsgw/core';

export interface ThrottleOptions {
  /** Failed session checks allowed per address per window. */
  failures: number;
  windowSeconds: number;
}

/**
 * Counts failed session checks per client address; past the budget the address is refused
 * before its token is even looked at, so tokens cannot be guessed at line rate.
 */
export class MemoryUpgradeThrottle implements UpgradeThrottle {
  private readonly limiter: RateLimiterMemory;

  constructor(private readonly options: ThrottleOptions) {
    this.limiter = new RateLimiterMemory({ points: options.failures, duration: options.windowSeconds });
  }

  async allows(remoteAddress: string): Promise<{ allowed: true } | { allowed: false; retryAfterMs: number }> {
    const res = await this.limiter.get(remoteAddress);
    if (res && res.consumedPoints >= this.options.failures) {
      return { allowed: false, retryAfterMs: Math.max(1, res.msBeforeNext) };
    }
    return { allowed: true };
  }

  async failed(remoteAddress: string): Promise<void> {
    // penalty() records without rejecting when the budget is spent (a denial is not an error here).
    await this.limiter.penalty(remoteAddress, 1);
  }
}
