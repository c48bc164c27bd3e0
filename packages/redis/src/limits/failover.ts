import {
  SharedStateUnavailableError,
  type ConnectionLeases,
  type GatewayMetrics,
  type Logger,
  type MessageRateLimiter,
  type RateCallback,
  type SlotDecision,
} from '@wsgw/core';
import type { MemoryConnectionLeases, MemoryRateLimiter } from '@wsgw/memory';
import { isTimeout, type RedisHealth } from './health.js';
import type { RedisConnectionLeases } from './leases.js';
import type { RedisRateLimiter } from './rate.js';

/** WEBSOCKET_LIMITS_FAILURE_MODE: what limits do while Redis does not answer. */
export type FailureMode = 'local' | 'closed';

/** Thrown for a message while Redis is unreachable in `closed` mode (the client gets `unavailable`). */
export class LimitsUnavailableError extends SharedStateUnavailableError {
  override readonly name = 'LimitsUnavailableError';
}

/**
 * Redis answers (a PING got through) but not a limit decision, even asked twice: this process or
 * Redis is overloaded, not unreachable. Such a decision is refused (`unavailable`, retryable) in
 * both failure modes: a per-replica guess while every other replica still decides in Redis would
 * let a user past the shared limits (seen as 3 slots for a limit of 2 on a starved machine).
 */
export class RedisTooSlowError extends SharedStateUnavailableError {
  override readonly name = 'RedisTooSlowError';
}

/**
 * Connection slots in Redis, with the failure mode applied: while Redis is down (or a call to it
 * fails) `local` decides with the same limits in this replica's memory and keeps the slot for
 * the restore; `closed` refuses.
 *
 * The memory twin counts this replica's slots only while it decides: the first decision without
 * Redis fills it from the slots the Redis leases hold (granted or adopted, the same set the
 * heartbeat renews), so its per-replica counts are right from that moment; it follows every grant
 * and release from then on, and the next decision Redis takes empties it again. While Redis
 * answers, a socket costs no entries in it (two Map entries per idle socket, ~80 B).
 */
export class FailoverConnectionLeases implements ConnectionLeases {
  /** Whether `local` holds this replica's slots (from the first fallback decision until Redis decides again). */
  private mirrored = false;

  constructor(
    private readonly redis: RedisConnectionLeases,
    private readonly local: MemoryConnectionLeases,
    private readonly health: RedisHealth,
    private readonly mode: FailureMode,
    private readonly metrics: GatewayMetrics,
    private readonly log: Logger,
  ) {}

  /**
   * No async frame when Redis answers (every frame of an upgrade is garbage that a burst of
   * upgrades promotes): the retry and the fallback, which need one, run only after a failed call.
   */
  acquire(connectionId: string, userId: string): Promise<SlotDecision> {
    if (this.health.isDown()) return Promise.resolve(this.fallback(connectionId, userId));
    return this.redis.acquire(connectionId, userId).then(
      (decision) => {
        this.decidedByRedis(connectionId, userId, decision);
        return decision;
      },
      (err: unknown) => this.acquireAfterFailure(connectionId, userId, err),
    );
  }

  /**
   * A script call failed. If it timed out while Redis still answers PINGs (this process was slow,
   * not Redis), once more: the call is idempotent by connection id, and an exact answer is worth a
   * few hundred milliseconds more than a per-replica guess.
   */
  private async acquireAfterFailure(connectionId: string, userId: string, first: unknown): Promise<SlotDecision> {
    let err = first;
    if (isTimeout(first) && (await this.health.verify())) {
      try {
        const decision = await this.redis.acquire(connectionId, userId);
        this.decidedByRedis(connectionId, userId, decision);
        return decision;
      } catch (again) {
        if (isTimeout(again) && !this.health.isDown()) {
          this.log.warn({ connection_id: connectionId }, 'slot decision refused: redis answers, but too slowly');
          this.metrics.fallbackDecision('leases', 'refused');
          // The calls may have taken the slot before their replies were lost: give it back by id.
          await this.redis.release(connectionId, userId);
          return { granted: false, reason: 'unavailable', retryAfterMs: 1000 };
        }
        err = again;
      }
    }
    this.log.warn({ err: { message: (err as Error).message }, connection_id: connectionId }, 'slot decision falls back: redis did not answer');
    const decision = this.fallback(connectionId, userId);
    // The failed call may have taken the slot before its reply was lost: give it back (by id,
    // once Redis answers) unless the fallback granted it, which the restore registers anyway.
    if (!decision.granted) await this.redis.release(connectionId, userId);
    return decision;
  }

  private fallback(connectionId: string, userId: string): SlotDecision {
    if (this.mode === 'closed') {
      this.metrics.fallbackDecision('leases', 'refused');
      return { granted: false, reason: 'unavailable', retryAfterMs: 1000 };
    }
    if (!this.mirrored) {
      this.mirrored = true;
      for (const [id, user] of this.redis.heldEntries()) this.local.hold(id, user);
    }
    const decision = this.local.acquireNow(connectionId, userId);
    this.metrics.fallbackDecision('leases', decision.granted ? 'local_allowed' : 'local_denied');
    if (decision.granted) this.redis.adopt(connectionId, userId);
    return decision;
  }

  /**
   * Redis decided again: the memory twin empties until the next fallback (every slot it counted is
   * in the Redis leases' set, adopted ones included). A grant that Redis gave while the twin still
   * counts (a call sent before the outage was noticed) is counted there too.
   */
  private decidedByRedis(connectionId: string, userId: string, decision: SlotDecision): void {
    if (!this.mirrored) return;
    if (this.health.isDown()) {
      if (decision.granted) this.local.hold(connectionId, userId);
      return;
    }
    this.mirrored = false;
    this.local.releaseAllNow();
  }

  async release(connectionId: string, userId: string): Promise<void> {
    this.local.releaseNow(connectionId);
    await this.redis.release(connectionId, userId);
  }

  onLost(handler: (connectionIds: string[]) => void): void {
    this.redis.onLost((ids) => {
      for (const id of ids) this.local.releaseNow(id);
      handler(ids);
    });
  }

  async releaseAll(): Promise<void> {
    await this.local.releaseAll();
    await this.redis.releaseAll();
  }

  async close(): Promise<void> {
    await this.redis.close();
    await this.local.close();
  }
}

/**
 * Message windows in Redis, with the failure mode applied: `local` decides with the same limits
 * per replica in memory, `closed` fails the decision (the client gets `unavailable`).
 */
export class FailoverRateLimiter implements MessageRateLimiter {
  constructor(
    private readonly redis: RedisRateLimiter,
    private readonly local: MemoryRateLimiter,
    private readonly health: RedisHealth,
    private readonly mode: FailureMode,
    private readonly metrics: GatewayMetrics,
  ) {}

  consume(userId: string, done: RateCallback): void {
    // A failed call was reported to health by the limiter; it is then decided without Redis,
    // unless Redis still answers (the limiter asked again after a PING, and timed out again).
    if (this.health.isDown()) {
      this.withoutRedis(userId, done);
      return;
    }
    this.redis.consume(userId, (decision, err) => {
      if (decision !== null) done(decision);
      else this.afterFailure(userId, err, done);
    });
  }

  private afterFailure(userId: string, err: unknown, done: RateCallback): void {
    if (isTimeout(err) && !this.health.isDown()) {
      this.metrics.fallbackDecision('rates', 'refused');
      done(null, new RedisTooSlowError('message limit decision timed out twice while redis answers'));
      return;
    }
    this.withoutRedis(userId, done);
  }

  private withoutRedis(userId: string, done: RateCallback): void {
    if (this.mode === 'closed') {
      this.metrics.fallbackDecision('rates', 'refused');
      done(null, new LimitsUnavailableError('message limits unavailable: redis does not answer'));
      return;
    }
    const decision = this.local.decide(userId);
    this.metrics.fallbackDecision('rates', decision.allowed ? 'local_allowed' : 'local_denied');
    done(decision);
  }

  async close(): Promise<void> {
    await this.redis.close();
    await this.local.close();
  }
}
