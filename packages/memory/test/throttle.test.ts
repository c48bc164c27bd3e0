import { describe, expect, it, vi } from 'vitest';
import { MemoryUpgradeThrottle } from '@wsgw/memory';

class FakeClock {
  t = 1_000_000;
  now = () => this.t;
}

describe('MemoryUpgradeThrottle: failed session checks per address', () => {
  it('tells how many failures are left, then refuses until the window ends', async () => {
    const clock = new FakeClock();
    const throttle = new MemoryUpgradeThrottle({ failures: 3, windowSeconds: 60 }, clock);
    expect(throttle.verdict('a')).toEqual({ allowed: true, remaining: 3 });
    await throttle.failed('a');
    clock.t += 10_000;
    await throttle.failed('a');
    expect(throttle.verdict('a')).toEqual({ allowed: true, remaining: 1 });
    await throttle.failed('a');
    expect(throttle.verdict('a')).toEqual({ allowed: false, retryAfterMs: 50_000 });
    expect(throttle.verdict('b')).toEqual({ allowed: true, remaining: 3 });
    clock.t += 50_000;
    expect(throttle.verdict('a')).toEqual({ allowed: true, remaining: 3 });
  });

  // Documented (README, docs/REDIS.md): N per fixed window opening at the address's first failure,
  // as the Redis twin counts; across a window's edge an address can fail up to 2N - 1 times in
  // less than one window.
  it('counts in a fixed window that opens at the first failure', async () => {
    const clock = new FakeClock();
    const throttle = new MemoryUpgradeThrottle({ failures: 3, windowSeconds: 1 }, clock);
    await throttle.failed('a');
    clock.t += 900;
    await throttle.failed('a');
    await throttle.failed('a');
    expect(throttle.verdict('a')).toEqual({ allowed: false, retryAfterMs: 100 });
    clock.t += 100;
    expect(throttle.verdict('a')).toEqual({ allowed: true, remaining: 3 });
  });

  it('measures on a monotonic clock by default: Retry-After never exceeds the window after a wall-clock step', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(new Date('2026-12-06T12:00:00Z'));
      const throttle = new MemoryUpgradeThrottle({ failures: 2, windowSeconds: 60 });
      await throttle.failed('a');
      // NTP or an operator steps the host clock back by an hour between two failures. Before:
      // Retry-After 3660 for a block that ends within the minute.
      vi.setSystemTime(new Date('2026-12-06T11:00:00Z'));
      await throttle.failed('a');
      const verdict = throttle.verdict('a');
      expect(verdict.allowed).toBe(false);
      if (!verdict.allowed) expect(verdict.retryAfterMs).toBeLessThanOrEqual(60_000);
    } finally {
      vi.useRealTimers();
    }
  });
});
