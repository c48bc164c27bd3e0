import type { Clock, ThrottleVerdict, UpgradeThrottle } from '@wsgw/core';

export interface ThrottleOptions {
  /** Failed session checks allowed per address per window. */
  failures: number;
  windowSeconds: number;
}

/**
 * A window is a duration, so it is measured on a clock that only goes forward: on the wall clock
 * a step back of an hour told a throttled address `Retry-After: 3660` for a block ending within
 * the minute.
 */
const monotonicClock: Clock = { now: () => performance.now() };

/** One address's failures in its current window. */
interface Window {
  failures: number;
  endsAt: number;
}

/**
 * Counts failed session checks per client address; past the budget the address is refused
 * before its token is even looked at, so tokens cannot be guessed at line rate.
 *
 * The window is fixed: it opens at the address's first failure and closes `windowSeconds` later,
 * whatever happened in it (the same as the Redis twin, rate-limiter-flexible's fixed window).
 */
export class MemoryUpgradeThrottle implements UpgradeThrottle {
  private readonly windows = new Map<string, Window>();
  private readonly windowMs: number;
  private readonly unlimited: ThrottleVerdict;
  /** Map size at which expired windows are swept next: doubles with the live ones, so O(1) a failure. */
  private sweepAt = 1024;

  constructor(
    private readonly options: ThrottleOptions,
    private readonly clock: Clock = monotonicClock,
  ) {
    this.windowMs = options.windowSeconds * 1000;
    this.unlimited = Object.freeze({ allowed: true, remaining: options.failures });
  }

  allows(remoteAddress: string): Promise<ThrottleVerdict> {
    return Promise.resolve(this.verdict(remoteAddress));
  }

  async failed(remoteAddress: string): Promise<void> {
    const now = this.clock.now();
    const window = this.current(remoteAddress, now);
    if (window) {
      window.failures++;
      return;
    }
    this.windows.set(remoteAddress, { failures: 1, endsAt: now + this.windowMs });
    if (this.windows.size >= this.sweepAt) this.forgetExpired(now);
  }

  private verdict(remoteAddress: string): ThrottleVerdict {
    const now = this.clock.now();
    const window = this.current(remoteAddress, now);
    if (!window) return this.unlimited;
    if (window.failures >= this.options.failures) {
      return { allowed: false, retryAfterMs: Math.max(1, Math.ceil(window.endsAt - now)) };
    }
    return { allowed: true, remaining: this.options.failures - window.failures };
  }

  /** The address's open window; an ended one is forgotten. */
  private current(remoteAddress: string, now: number): Window | undefined {
    const window = this.windows.get(remoteAddress);
    if (window && window.endsAt <= now) {
      this.windows.delete(remoteAddress);
      return undefined;
    }
    return window;
  }

  private forgetExpired(now: number): void {
    for (const [address, window] of this.windows) if (window.endsAt <= now) this.windows.delete(address);
    this.sweepAt = Math.max(1024, this.windows.size * 2);
  }
}
