import { FailureWindows, systemClock, type Clock, type ThrottleVerdict, type UpgradeThrottle } from '@wsgw/core';

export interface ThrottleOptions {
  /** Failed session checks allowed per address per window. */
  failures: number;
  windowSeconds: number;
}

/**
 * Counts failed session checks per client address in this process; past the budget the address
 * is refused before its token is even looked at, so tokens cannot be guessed at line rate. The
 * window is fixed (core's FailureWindows, the same bookkeeping as the Redis twin).
 */
export class MemoryUpgradeThrottle implements UpgradeThrottle {
  private readonly windows: FailureWindows;

  constructor(options: ThrottleOptions, clock: Clock = systemClock) {
    this.windows = new FailureWindows(options.failures, options.windowSeconds * 1000, clock);
  }

  verdict(remoteAddress: string): ThrottleVerdict {
    return this.windows.verdict(remoteAddress);
  }

  async failed(remoteAddress: string): Promise<void> {
    this.windows.add(remoteAddress);
  }
}
