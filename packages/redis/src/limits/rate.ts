import { performance } from 'node:perf_hooks';
import type { MessageRateLimiter, RateCallback, RateDecision } from '@wsgw/core';
import type { RedisClient } from '../client.js';
import type { RedisKeys } from '../keys.js';
import { isTimeout, type RedisHealth } from './health.js';
import { defineLimitScripts } from './scripts.js';

export interface RedisRateOptions {
  keys: RedisKeys;
  perSecond: number;
  perMinute: number;
  /** Decisions per script call at most; more wait for the next call. */
  maxBatch?: number;
}

/** A local block: denials without Redis until `until`; clients told to retry at `retryAt` (performance.now()). */
interface Block {
  until: number;
  retryAt: number;
}

interface Pending {
  userId: string;
  /** Sent once already, in a call that timed out. */
  retried?: boolean;
  done: RateCallback;
}

interface Shard {
  index: number;
  queue: Pending[];
  busy: boolean;
}

/** Counters a test or benchmark can read: script calls versus decisions. */
export interface RateLimiterStats {
  calls: number;
  decisions: number;
  localDenials: number;
}

/**
 * Exact per-user 1 s and 60 s windows shared by every replica (src/lua/rate_consume.lua),
 * decided in batches: the decisions asked for during one event-loop turn go to Redis in one
 * script call, which applies them in order, atomically; while a call is out, new decisions wait
 * and go together in the next one. Under load that is one round trip for many messages; alone,
 * a message waits for one round trip.
 *
 * A user who was denied is denied here, with no Redis call, until the retry time the script
 * gave: denials change nothing in Redis and other replicas can only fill the window further, so
 * this local answer is the one Redis would give.
 */
export class RedisRateLimiter implements MessageRateLimiter {
  private readonly shards: Shard[];
  /** Users over a limit, answered here without Redis until their block ends. */
  private readonly blocked = new Map<string, Block>();
  private readonly maxBatch: number;
  private scheduled = false;
  private readonly sweeper: NodeJS.Timeout;
  readonly stats: RateLimiterStats = { calls: 0, decisions: 0, localDenials: 0 };

  constructor(
    private readonly client: RedisClient,
    private readonly health: RedisHealth,
    private readonly options: RedisRateOptions,
  ) {
    defineLimitScripts(client);
    this.maxBatch = options.maxBatch ?? 2000;
    this.shards = Array.from({ length: options.keys.rateShards }, (_, index) => ({ index, queue: [], busy: false }));
    this.sweeper = setInterval(() => this.forgetExpiredBlocks(), 10_000);
    this.sweeper.unref();
  }

  consume(userId: string, done: RateCallback): void {
    const block = this.blocked.get(userId);
    if (block !== undefined) {
      const now = performance.now();
      if (block.until > now) {
        this.stats.localDenials++;
        done({ allowed: false, retryAfterMs: Math.max(1, Math.ceil(block.retryAt - now)) });
        return;
      }
      this.blocked.delete(userId);
    }
    const shard = this.shards[this.options.keys.rateShardOf(userId)] as Shard;
    shard.queue.push({ userId, done });
    if (!this.scheduled) {
      this.scheduled = true;
      // After the I/O callbacks of this turn: every message read in it joins the batch.
      setImmediate(() => this.flush());
    }
  }

  /** Decisions waiting for a script call, in every shard. */
  get queued(): number {
    return this.shards.reduce((n, s) => n + s.queue.length, 0);
  }

  private flush(): void {
    this.scheduled = false;
    for (const shard of this.shards) {
      if (!shard.busy && shard.queue.length > 0) void this.send(shard);
    }
  }

  private async send(shard: Shard): Promise<void> {
    shard.busy = true;
    const batch = shard.queue.splice(0, this.maxBatch);
    const { keys, perSecond, perMinute } = this.options;
    // One key and one count per distinct user; `order` remembers whose each decision is.
    const keyIndex = new Map<string, number>();
    const userKeys: string[] = [];
    const counts: number[] = [];
    const order: number[] = [];
    for (const p of batch) {
      let k = keyIndex.get(p.userId);
      if (k === undefined) {
        k = userKeys.length;
        userKeys.push(keys.rateLog(shard.index, p.userId, this.options));
        counts.push(0);
        keyIndex.set(p.userId, k);
      }
      counts[k]!++;
      order.push(k);
    }
    const sentAt = performance.now();
    this.stats.calls++;
    this.stats.decisions += batch.length;
    try {
      const results = await this.client.wsgwRateConsume(userKeys.length, ...userKeys, perSecond, perMinute, ...counts);
      const receivedAt = performance.now();
      // Per user: the first `allowed` of its decisions (in arrival order) pass, the rest wait.
      // `counts` is reused as what is left to allow of each user.
      for (let k = 0; k < counts.length; k++) counts[k] = Number(results[2 * k] ?? 0);
      for (let i = 0; i < batch.length; i++) {
        const p = batch[i] as Pending;
        const k = order[i] as number;
        if ((counts[k] as number) > 0) {
          counts[k]!--;
          settle(p, ALLOWED);
          continue;
        }
        const wait = Number(results[2 * k + 1] ?? 0);
        // The script measured `wait` at some moment between the call leaving and its reply. The
        // block ends as if it was when the call left: never later than the window really frees.
        // A client is told to wait as if it was when the reply came: never too short to get
        // through (one that waits as told and is refused again gets closer to a 1008).
        const until = sentAt + wait;
        const block = this.blocked.get(p.userId);
        if (block === undefined || block.until < until) this.blocked.set(p.userId, { until, retryAt: receivedAt + wait });
        settle(p, { allowed: false, retryAfterMs: wait });
      }
    } catch (err) {
      this.health.failed(err);
      // A timeout while Redis still answers PINGs means this process was slow: ask again, once.
      // (The first call may have run: its acceptances then count twice, which can only deny more,
      // never let more through.)
      const fresh = batch.filter((p) => !p.retried);
      if (isTimeout(err) && fresh.length > 0 && (await this.health.verify())) {
        for (const p of fresh) p.retried = true;
        shard.queue.unshift(...fresh);
        for (const p of batch.filter((q) => !fresh.includes(q))) settle(p, null, err);
      } else {
        // If Redis is known down, what waits behind this call would only wait for the same timeout.
        const waiting = this.health.isDown() ? shard.queue.splice(0) : [];
        for (const p of batch.concat(waiting)) settle(p, null, err);
      }
    } finally {
      shard.busy = false;
    }
    // What queued up while the call was out goes now, as one call.
    if (shard.queue.length > 0) void this.send(shard);
  }

  private forgetExpiredBlocks(): void {
    const now = performance.now();
    for (const [userId, block] of this.blocked) if (block.until <= now) this.blocked.delete(userId);
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }
}

/** One shared answer for every allowed message: the common case allocates nothing. */
const ALLOWED: RateDecision = Object.freeze({ allowed: true as const });

/**
 * Hands a decision over. Callbacks must not throw (the hub's does not); one that does is reported
 * as a process warning and must not keep the rest of the batch from their decisions.
 */
function settle(p: Pending, decision: RateDecision | null, err?: unknown): void {
  try {
    p.done(decision, err);
  } catch (thrown) {
    process.emitWarning(thrown instanceof Error ? thrown : String(thrown), 'RateCallbackError');
  }
}
