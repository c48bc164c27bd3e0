import type { Clock, MessageRateLimiter, RateCallback, RateDecision } from '@wsgw/core';

export interface RateLimits {
  perSecond: number;
  perMinute: number;
}

const SECOND = 1_000;
const MINUTE = 60_000;

/**
 * Windows are durations, so they are measured on a clock that only goes forward: with the wall
 * clock, a step back (NTP, an operator) of an hour would refuse every active user for an hour.
 */
const monotonicClock: Clock = { now: () => performance.now() };

/**
 * The times of one user's last accepted messages, newest last, in a ring that holds at most
 * `limit` of them: enough to answer "how many in the last 1 s / 60 s" exactly. The ring starts
 * small and doubles as the user sends more, so memory follows real traffic, not the configured
 * limits (a limit of a million must not cost megabytes per user).
 */
class AcceptLog {
  private times: Float64Array;
  private next = 0;
  private count = 0;

  constructor(private readonly limit: number) {
    this.times = new Float64Array(Math.min(limit, 16));
  }

  /** The time of the k-th most recent accepted message (k = 1 is the newest), if any. */
  recent(k: number): number | undefined {
    if (k > this.count) return undefined;
    const cap = this.times.length;
    return this.times[(this.next - k + cap * 2) % cap];
  }

  push(t: number): void {
    if (this.count === this.times.length && this.times.length < this.limit) this.grow();
    this.times[this.next] = t;
    this.next = (this.next + 1) % this.times.length;
    if (this.count < this.times.length) this.count++;
  }

  newest(): number | undefined {
    return this.recent(1);
  }

  /** Unrolls the full ring, oldest first, into one twice its size. */
  private grow(): void {
    const bigger = new Float64Array(Math.min(this.times.length * 2, this.limit));
    for (let k = this.count; k >= 1; k--) bigger[this.count - k] = this.recent(k) as number;
    this.times = bigger;
    this.next = this.count;
  }
}

/**
 * Exact sliding windows in memory: a message is allowed when fewer than N were accepted in the
 * last 1 s and fewer than M in the last 60 s. Denied messages do not count, so a client that
 * backs off as told gets through. O(1) per message; one small ring per active user.
 */
export class MemoryRateLimiter implements MessageRateLimiter {
  private readonly logs = new Map<string, AcceptLog>();
  private readonly capacity: number;
  private readonly checkSecond: boolean;
  private readonly checkMinute: boolean;
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly limits: RateLimits,
    private readonly clock: Clock = monotonicClock,
  ) {
    // A window the other implies is not checked, and the log only holds what the others need
    // (the same rule as src/lua/rate_consume.lua in @wsgw/redis): with perSecond >= perMinute
    // the 60 s window decides alone; with perMinute >= 60 * perSecond the 1 s window does.
    this.checkSecond = limits.perSecond < limits.perMinute;
    this.checkMinute = limits.perMinute < 60 * limits.perSecond;
    this.capacity = Math.max(this.checkSecond ? limits.perSecond : 0, this.checkMinute ? limits.perMinute : 0, 1);
    // Forget users idle for a minute, so memory follows active users, not all users ever seen.
    this.sweeper = setInterval(() => this.forgetIdle(), MINUTE);
    this.sweeper.unref();
  }

  decide(userId: string): RateDecision {
    const now = this.clock.now();
    let log = this.logs.get(userId);
    if (!log) {
      log = new AcceptLog(this.capacity);
      this.logs.set(userId, log);
    }
    let retryAfterMs = 0;
    const { perSecond, perMinute } = this.limits;
    // The perSecond-th most recent acceptance must have left the 1 s window, likewise per minute.
    if (this.checkSecond) {
      const nthSecond = log.recent(perSecond);
      if (perSecond <= 0) retryAfterMs = SECOND;
      else if (nthSecond !== undefined && nthSecond > now - SECOND) retryAfterMs = nthSecond + SECOND - now;
    }
    if (this.checkMinute) {
      const nthMinute = log.recent(perMinute);
      if (perMinute <= 0) retryAfterMs = Math.max(retryAfterMs, MINUTE);
      else if (nthMinute !== undefined && nthMinute > now - MINUTE) {
        retryAfterMs = Math.max(retryAfterMs, nthMinute + MINUTE - now);
      }
    }
    if (retryAfterMs > 0) return { allowed: false, retryAfterMs };
    log.push(now);
    return { allowed: true };
  }

  consume(userId: string, done: RateCallback): void {
    done(this.decide(userId));
  }

  private forgetIdle(): void {
    const horizon = this.clock.now() - MINUTE;
    for (const [userId, log] of this.logs) {
      if ((log.newest() ?? 0) <= horizon) this.logs.delete(userId);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }
}
