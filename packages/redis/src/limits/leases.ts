import { performance } from 'node:perf_hooks';
import type { ConnectionLeases, Logger, SlotDecision } from '@wsgw/core';
import type { RedisClient } from '../client.js';
import type { RedisKeys } from '../keys.js';
import type { RedisHealth } from './health.js';
import { defineLimitScripts } from './scripts.js';

export interface RedisLeasesOptions {
  keys: RedisKeys;
  maxPerUser: number;
  maxGlobal: number;
  leaseMs: number;
  /** Entries per heartbeat script call. */
  batchSize?: number;
}

/** Retry-After for a full limit: when a slot frees is unknown, a socket may close any moment. */
const LIMIT_RETRY_MS = 1000;

// Decisions are read, never changed, by their callers: one object of each kind for all calls.
const GRANTED: SlotDecision = Object.freeze({ granted: true });
const GLOBAL_LIMIT: SlotDecision = Object.freeze({ granted: false, reason: 'global_connection_limit', retryAfterMs: LIMIT_RETRY_MS });
const USER_LIMIT: SlotDecision = Object.freeze({ granted: false, reason: 'user_connection_limit', retryAfterMs: LIMIT_RETRY_MS });

/**
 * Connection slots as leases in Redis (docs/REDIS.md): a slot is a member of two sorted sets
 * (all slots, the user's slots) scored by its expiry in Redis TIME. `slots_acquire` reaps expired
 * members, checks both limits and takes the slot in one step, keyed by connection id. This
 * replica renews what it holds every third of a lease, so a crashed replica's slots run out by
 * themselves; a renewal that finds a slot gone (it was paused past its lease and the slot was
 * reaped) reports the connection as lost.
 *
 * Errors are thrown to the caller (the failover wrapper decides what a failure means) and
 * reported to `health`.
 */
export class RedisConnectionLeases implements ConnectionLeases {
  private readonly held = new Map<string, string>();
  /** Slots granted without Redis (fallback) and not registered there yet; the next sync does it. */
  private readonly adopted = new Set<string>();
  /** Releases that could not reach Redis; retried by the next sync. */
  private readonly unreleased = new Map<string, string>();
  private readonly lostHandlers: Array<(ids: string[]) => void> = [];
  private readonly intervalMs: number;
  private readonly batchSize: number;
  /** slots_acquire's ARGV after the connection id (lease ms, per-user and global limits), as sent. */
  private readonly acquireLimits: [string, string, string];
  private timer: NodeJS.Timeout | undefined;
  private expectedAt = 0;
  /** This process stopped running long enough that its leases may have run out (SIGSTOP, stall). */
  private stalled = false;
  /** Redis was unreachable since the last sync: it may have lost our slots, put them back. */
  private mustRestore = false;
  private syncing: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly client: RedisClient,
    private readonly health: RedisHealth,
    private readonly log: Logger,
    private readonly options: RedisLeasesOptions,
  ) {
    defineLimitScripts(client);
    this.intervalMs = Math.max(100, Math.floor(options.leaseMs / 3));
    this.batchSize = options.batchSize ?? 500;
    this.acquireLimits = [String(options.leaseMs), String(options.maxPerUser), String(options.maxGlobal)];
    // After any failed call our renewals may not have landed: if Redis was away longer than a
    // lease, our slots were reaped by no fault of ours. Put them back rather than call them lost
    // (only a stall of this very process makes missing slots "lost").
    health.onTrouble(() => {
      this.mustRestore = true;
    });
    health.onRecover(() => this.sync());
    this.schedule();
  }

  /** Connections this replica holds (granted by Redis or adopted during an outage). */
  get heldCount(): number {
    return this.held.size;
  }

  /**
   * Not an async function: one `then` (and one closure) per upgrade instead of an async frame,
   * a throwaway await promise and a numeric-argument conversion per call (see docs/BENCHMARKS.md,
   * "Memory per idle socket": what an upgrade allocates makes the heap grow).
   */
  acquire(connectionId: string, userId: string): Promise<SlotDecision> {
    const { keys } = this.options;
    let call: Promise<number>;
    try {
      call = this.client.wsgwSlotsAcquire(keys.slotsAll(), keys.slotsOfUser(userId), connectionId, ...this.acquireLimits);
    } catch (err) {
      return this.failedCall(err);
    }
    return call.then((code) => {
      if (code !== 0) return code === 1 ? GLOBAL_LIMIT : USER_LIMIT;
      this.held.set(connectionId, userId);
      return GRANTED;
    }, this.failedCall);
  }

  /** Reports a failed call to health and fails with its error (the failover wrapper decides). */
  private readonly failedCall = (err: unknown): Promise<never> => {
    this.health.failed(err);
    return Promise.reject(err);
  };

  /** Holds a slot granted while Redis was unreachable; the next restore registers it. */
  adopt(connectionId: string, userId: string): void {
    this.held.set(connectionId, userId);
    this.adopted.add(connectionId);
  }

  async release(connectionId: string, userId: string): Promise<void> {
    this.held.delete(connectionId);
    this.adopted.delete(connectionId);
    if (this.health.isDown()) {
      this.unreleased.set(connectionId, userId);
      return;
    }
    const { keys } = this.options;
    try {
      await this.client.wsgwSlotsRelease(keys.slotsAll(), keys.slotsOfUser(userId), connectionId);
    } catch (err) {
      this.unreleased.set(connectionId, userId);
      this.health.failed(err);
    }
  }

  onLost(handler: (connectionIds: string[]) => void): void {
    this.lostHandlers.push(handler);
  }

  async releaseAll(): Promise<void> {
    const entries = [...this.held];
    this.held.clear();
    for (const [id, userId] of entries) this.unreleased.set(id, userId);
    try {
      await this.flushReleases();
    } catch (err) {
      this.log.warn({ err, left: this.unreleased.size }, 'could not release every slot; their leases will expire');
    }
  }

  async close(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.syncing;
  }

  /** Renews (or after an outage re-registers) every held slot now; one at a time. */
  sync(): Promise<void> {
    this.syncing ??= this.runSync().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.expectedAt = performance.now() + this.intervalMs;
    this.timer = setTimeout(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  private tick(): void {
    // A timer that fires far too late means this process did not run (SIGSTOP, VM pause): its
    // leases may have run out meanwhile, so the next sync must report lost slots, not restore them.
    const lateness = performance.now() - this.expectedAt;
    if (lateness > this.options.leaseMs / 2) {
      this.stalled = true;
      this.log.warn({ late_ms: Math.round(lateness) }, 'process was not running for a while; checking its leases');
    }
    if (this.health.isDown() && !this.stalled) {
      // The health probe syncs as soon as Redis answers.
      this.schedule();
      return;
    }
    this.sync()
      .catch(() => {
        // Reported to health by runSync; the next tick tries again.
      })
      .finally(() => this.schedule());
  }

  private async runSync(): Promise<void> {
    try {
      if (this.stalled) {
        await this.refresh();
        this.stalled = false;
      }
      await this.flushReleases();
      if (this.mustRestore) {
        // Cleared first: a failure during the restore sets it again (health's trouble hook).
        this.mustRestore = false;
        await this.restore([...this.held]);
      } else {
        // Slots a fallback granted while Redis only seemed away: register them, then renew the rest.
        if (this.adopted.size > 0) {
          await this.restore([...this.adopted].flatMap((id) => this.entry(id)));
        }
        await this.refresh();
      }
    } catch (err) {
      this.health.failed(err);
      throw err;
    }
  }

  private entry(id: string): Array<[string, string]> {
    const userId = this.held.get(id);
    return userId === undefined ? [] : [[id, userId]];
  }

  private async refresh(): Promise<void> {
    const lost: string[] = [];
    // Adopted slots are not in Redis yet: absent there means "not registered", not "lost".
    const registered = [...this.held].filter(([id]) => !this.adopted.has(id));
    for (const batch of this.batches(registered)) {
      const ids = await this.client.wsgwSlotsRefresh(...this.batchArgs(batch));
      for (const id of ids) {
        // Released while the call was out: not lost, just gone.
        if (this.held.delete(id)) lost.push(id);
      }
    }
    if (lost.length > 0) {
      this.log.warn({ lost: lost.length }, 'connection slots were taken over while this replica was away');
      for (const handler of this.lostHandlers) handler(lost);
    }
  }

  private async restore(entries: Array<[string, string]>): Promise<void> {
    let missing = 0;
    for (const batch of this.batches(entries)) {
      missing += await this.client.wsgwSlotsRestore(...this.batchArgs(batch));
      for (const [id] of batch) this.adopted.delete(id);
    }
    this.log.info({ held: this.held.size, restored: entries.length, missing }, 'connection slots re-registered in redis');
  }

  private async flushReleases(): Promise<void> {
    const { keys } = this.options;
    const entries = [...this.unreleased];
    await Promise.all(
      entries.map(async ([id, userId]) => {
        await this.client.wsgwSlotsRelease(keys.slotsAll(), keys.slotsOfUser(userId), id);
        this.unreleased.delete(id);
      }),
    );
  }

  private *batches(entries: Array<[string, string]>): Generator<Array<[string, string]>> {
    for (let i = 0; i < entries.length; i += this.batchSize) yield entries.slice(i, i + this.batchSize);
  }

  private batchArgs(batch: Array<[string, string]>): [number, ...Array<string | number>] {
    const { keys } = this.options;
    const userKeys = batch.map(([, userId]) => keys.slotsOfUser(userId));
    const ids = batch.map(([id]) => id);
    return [1 + batch.length, keys.slotsAll(), ...userKeys, this.options.leaseMs, ...ids];
  }
}
