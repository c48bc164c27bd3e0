import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryRateLimiter } from '@wsgw/memory';

class FakeClock {
  t = 1_000_000;
  now = () => this.t;
}

describe('MemoryRateLimiter: exact sliding windows', () => {
  let limiter: MemoryRateLimiter | undefined;
  afterEach(async () => {
    await limiter?.close();
  });

  it('allows N in any 1 s and no more, then frees exactly as the oldest leaves', () => {
    const clock = new FakeClock();
    limiter = new MemoryRateLimiter({ perSecond: 3, perMinute: 100 }, clock);
    expect([1, 2, 3].map(() => limiter!.decide('u').allowed)).toEqual([true, true, true]);
    clock.t += 400;
    const denied = limiter.decide('u');
    expect(denied).toEqual({ allowed: false, retryAfterMs: 600 });
    clock.t += 599;
    expect(limiter.decide('u').allowed).toBe(false);
    clock.t += 1;
    // All three left the (now - 1 s, now] window together: three more fit, not four.
    expect([1, 2, 3, 4].map(() => limiter!.decide('u').allowed)).toEqual([true, true, true, false]);
  });

  it('measures windows on a monotonic clock by default: a wall clock stepped back does not lock users out', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(new Date('2026-12-06T12:00:00Z'));
      limiter = new MemoryRateLimiter({ perSecond: 2, perMinute: 100 });
      expect([1, 2].map(() => limiter!.decide('u').allowed)).toEqual([true, true]);
      // NTP or an operator steps the host clock back by an hour. Before: every later decision
      // was refused for an hour (retry_after_ms ~3,600,000).
      vi.setSystemTime(new Date('2026-12-06T11:00:00Z'));
      const denied = limiter.decide('u');
      expect(denied.allowed).toBe(false);
      if (!denied.allowed) expect(denied.retryAfterMs).toBeLessThanOrEqual(1000);
      await new Promise((resolve) => setTimeout(resolve, 1050));
      expect(limiter.decide('u').allowed).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it('holds across a second boundary: no fixed-window double burst', () => {
    const clock = new FakeClock();
    clock.t = 10_900; // 100 ms before a "second" boundary
    limiter = new MemoryRateLimiter({ perSecond: 5, perMinute: 100 }, clock);
    let allowed = 0;
    for (let i = 0; i < 10; i++) if (limiter.decide('u').allowed) allowed++;
    clock.t = 11_050; // just after the boundary, still within 1 s of the burst
    for (let i = 0; i < 10; i++) if (limiter.decide('u').allowed) allowed++;
    expect(allowed).toBe(5);
  });

  it('enforces the minute window independently of the second window', () => {
    const clock = new FakeClock();
    limiter = new MemoryRateLimiter({ perSecond: 10, perMinute: 25 }, clock);
    let allowed = 0;
    for (let s = 0; s < 10; s++) {
      for (let i = 0; i < 10; i++) if (limiter.decide('u').allowed) allowed++;
      clock.t += 1000;
    }
    expect(allowed).toBe(25);
    // The first 10 were accepted at t0; they leave the minute window 60 s after t0.
    const denied = limiter.decide('u');
    expect(denied.allowed).toBe(false);
    if (!denied.allowed) expect(denied.retryAfterMs).toBe(50_000);
    clock.t += 50_000;
    expect(limiter.decide('u').allowed).toBe(true);
  });

  it('denied messages do not use up the window', () => {
    const clock = new FakeClock();
    limiter = new MemoryRateLimiter({ perSecond: 2, perMinute: 100 }, clock);
    limiter.decide('u');
    limiter.decide('u');
    for (let i = 0; i < 50; i++) expect(limiter.decide('u').allowed).toBe(false);
    clock.t += 1000;
    expect(limiter.decide('u').allowed).toBe(true);
  });

  it('counts users separately', () => {
    const clock = new FakeClock();
    limiter = new MemoryRateLimiter({ perSecond: 1, perMinute: 100 }, clock);
    expect(limiter.decide('a').allowed).toBe(true);
    expect(limiter.decide('b').allowed).toBe(true);
    expect(limiter.decide('a').allowed).toBe(false);
  });

  it('never allows more than N in any 1 s window under random traffic', () => {
    const clock = new FakeClock();
    limiter = new MemoryRateLimiter({ perSecond: 7, perMinute: 40 }, clock);
    const accepted: number[] = [];
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 5000; i++) {
      clock.t += Math.floor(rand() * 120);
      if (limiter.decide('u').allowed) accepted.push(clock.t);
    }
    for (let i = 0; i < accepted.length; i++) {
      const t = accepted[i]!;
      expect(accepted.filter((x) => x > t - 1000 && x <= t).length).toBeLessThanOrEqual(7);
      expect(accepted.filter((x) => x > t - 60_000 && x <= t).length).toBeLessThanOrEqual(40);
    }
    expect(accepted.length).toBeGreaterThan(100);
  });
});

describe('MemoryRateLimiter: memory follows traffic', () => {
  it('stays exact while its ring grows, with limits far above the traffic', async () => {
    const clock = new FakeClock();
    const limiter = new MemoryRateLimiter({ perSecond: 50, perMinute: 1_000_000_000 }, clock);
    let allowed = 0;
    for (let i = 0; i < 120; i++) if (limiter.decide('u').allowed) allowed++;
    expect(allowed).toBe(50);
    clock.t += 1000;
    for (let i = 0; i < 120; i++) if (limiter.decide('u').allowed) allowed++;
    expect(allowed).toBe(100);
    await limiter.close();
  });

  it('grows past its first size without losing order (minute window)', async () => {
    const clock = new FakeClock();
    const limiter = new MemoryRateLimiter({ perSecond: 1000, perMinute: 37 }, clock);
    const accepted: number[] = [];
    for (let i = 0; i < 200; i++) {
      clock.t += 500;
      if (limiter.decide('u').allowed) accepted.push(clock.t);
    }
    for (const t of accepted) expect(accepted.filter((x) => x > t - 60_000 && x <= t).length).toBeLessThanOrEqual(37);
    // 37 at 0.5..18.5 s; each frees at +60 s, so 37 more at 60.5..78.5 s; none before 100 s.
    expect(accepted.length).toBe(74);
    expect(accepted[37]).toBe(accepted[0]! + 60_000);
    await limiter.close();
  });
});

describe('MemoryRateLimiter: a window the other implies is not checked', () => {
  it('decides like checking both windows, whichever limit is larger', async () => {
    // Against a brute-force check of both windows over every acceptance so far, with arrival
    // gaps from 0 to 3 s (a deterministic sequence), for limits where either window is implied.
    for (const [perSecond, perMinute] of [[3, 2], [5, 5], [2, 120], [2, 200], [4, 10]] as const) {
      const clock = new FakeClock();
      const limiter = new MemoryRateLimiter({ perSecond, perMinute }, clock);
      const accepted: number[] = [];
      let seed = 7;
      for (let i = 0; i < 3000; i++) {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        clock.t += seed % 5 === 0 ? 0 : seed % 3000;
        const now = clock.t;
        const expected =
          accepted.filter((t) => t > now - 1000).length < perSecond && accepted.filter((t) => t > now - 60_000).length < perMinute;
        const decision = limiter.decide('u');
        expect(decision.allowed, `${perSecond}/s ${perMinute}/min, message ${i}`).toBe(expected);
        if (decision.allowed) accepted.push(now);
      }
      await limiter.close();
    }
  });
});
