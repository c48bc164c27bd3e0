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
  /** Entries per script call (heartbeats, acquisitions, releases). */
  batchSize?: number;
}

/** Retry-After for a full limit: when a slot frees is unknown, a socket may close any moment. */
const LIMIT_RETRY_MS = 1000;

// Decisions are read, never changed, by their callers: one object of each kind for all calls.
const GRANTED: SlotDecision = Object.freeze({ granted: true });
const GLOBAL_LIMIT: SlotDecision = Object.freeze({ granted: false, reason: 'global_connection_limit', retryAfterMs: LIMIT_RETRY_MS });
const USER_LIMIT: SlotDecision = Object.freeze({ granted: false, reason: 'user_connection_limit', retryAfterMs: LIMIT_RETRY_MS });

interface PendingSlot {
  connectionId: string;
  userId: string;
  resolve: (decision: SlotDecision) => void;
  reject: (err: unknown) => void;
}

/**
 * Connection slots as leases in Redis (docs/REDIS.md): a slot is a member of two sorted sets
 * (all slots, the user's slots) scored by its expiry in Redis TIME. `slots_acquire` reaps expired
 * members, checks both limits and takes the slot in one step, keyed by connection id, for every
 * acquisition of an event-loop turn at once. This
 * replica renews what it holds every third of a lease, so a crashed replica's slots run out by
 * themselves. A renewal that finds a slot gone tells why: if this replica renewed it too late for
 * its lease (it was paused past it), the slot was reaped and may be someone else's, so the
 * connection is reported lost; otherwise Redis lost it (restarted empty, failed over) and it is
 * put back.
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
  /** Acquisitions waiting for this turn's `slots_acquire` call. */
  private acquiring: PendingSlot[] = [];
  /** Releases waiting for this turn's `slots_release` call, and that call's promise. */
  private releasing: Array<[string, string]> = [];
  private releaseTurn: Promise<void> | undefined;
  /** Acquisition and release calls sent and not answered yet: `releaseAll` lets them land first. */
  private readonly inFlight = new Set<Promise<void>>();
  /** Counters a test or benchmark can read: script calls versus acquisitions and releases. */
  readonly stats = { acquireCalls: 0, acquisitions: 0, releaseCalls: 0, releases: 0 };
  private timer: NodeJS.Timeout | undefined;
  private expectedAt = 0;
  /**
   * When the last renewal of every registered slot was sent (performance.now()): each of their
   * leases ends a lease after that or later, so none can have run out before then.
   */
  private renewedAt = performance.now();
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
    // After any failed call our renewals may not have landed: if Redis was away longer than a
    // lease, our slots were reaped by no fault of ours. Put them back rather than call them lost
    // (only a stall of this very process makes missing slots "lost").
    health.onTrouble(() => {
      this.mustRestore = true;
    });
    health.onRecover(() => this.sync());
    health.onUp(this.syncLeftovers);
    // Redis answers, but a node of it may have restarted empty meanwhile: put everything back now,
    // not at the next heartbeat (CONTRACT §2: within 5 s).
    health.onResync(() => {
      this.mustRestore = true;
      this.syncAfterRunning();
    });
    this.schedule();
  }

  /** Connections this replica holds (granted by Redis or adopted during an outage). */
  get heldCount(): number {
    return this.held.size;
  }

  /** Those connections, as connection id -> user id. */
  heldEntries(): IterableIterator<[string, string]> {
    return this.held.entries();
  }

  /**
   * Acquisitions asked for during one event-loop turn go to Redis in one `slots_acquire` call,
   * decided in the order asked (an upgrade storm costs a round trip per turn, not per upgrade).
   */
  acquire(connectionId: string, userId: string): Promise<SlotDecision> {
    return new Promise((resolve, reject) => {
      this.acquiring.push({ connectionId, userId, resolve, reject });
      if (this.acquiring.length === 1) setImmediate(this.flushAcquisitions);
    });
  }

  private readonly flushAcquisitions = (): void => {
    const pending = this.acquiring;
    this.acquiring = [];
    for (const batch of this.batches(pending)) this.track(this.acquireBatch(batch));
  };

  private async acquireBatch(batch: PendingSlot[]): Promise<void> {
    const { keys, leaseMs, maxPerUser, maxGlobal } = this.options;
    // The arguments in one array (the shape of `batchArgs`): no pair, key list or id list per call.
    const n = batch.length;
    const args: Array<string | number> = new Array<string | number>(2 * n + 4);
    args[0] = keys.slotsAll();
    for (let i = 0; i < n; i++) {
      const p = batch[i] as PendingSlot;
      args[1 + i] = keys.slotsOfUser(p.userId);
      args[n + 4 + i] = p.connectionId;
    }
    args[n + 1] = leaseMs;
    args[n + 2] = maxPerUser;
    args[n + 3] = maxGlobal;
    this.stats.acquireCalls++;
    this.stats.acquisitions += n;
    let codes: number[];
    try {
      codes = await this.client.wsgwSlotsAcquire(1 + n, ...args);
    } catch (err) {
      // Every acquisition of the call fails alike; the failover wrapper decides for each.
      this.health.failed(err);
      for (const p of batch) p.reject(err);
      return;
    }
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i] as PendingSlot;
      const code = Number(codes[i]);
      if (code === 0) {
        this.held.set(p.connectionId, p.userId);
        p.resolve(GRANTED);
      } else {
        p.resolve(code === 1 ? GLOBAL_LIMIT : USER_LIMIT);
      }
    }
  }

  /** Holds a slot granted while Redis was unreachable; the next restore registers it. */
  adopt(connectionId: string, userId: string): void {
    this.held.set(connectionId, userId);
    this.adopted.add(connectionId);
  }

  /**
   * Releases of one event-loop turn go to Redis in one `slots_release` call. Never rejects: a
   * release that cannot reach Redis is kept and retried by the next sync (the lease would free the
   * slot anyway).
   */
  release(connectionId: string, userId: string): Promise<void> {
    this.held.delete(connectionId);
    this.adopted.delete(connectionId);
    if (this.health.isDown()) {
      this.unreleased.set(connectionId, userId);
      return Promise.resolve();
    }
    this.releasing.push([connectionId, userId]);
    this.releaseTurn ??= new Promise((resolve) => {
      setImmediate(() => {
        this.releaseTurn = undefined;
        const sent = this.releaseQueued();
        this.track(sent);
        resolve(sent);
      });
    });
    return this.releaseTurn;
  }

  private async releaseQueued(): Promise<void> {
    const entries = this.releasing;
    this.releasing = [];
    await Promise.all(
      [...this.batches(entries)].map(async (batch) => {
        this.stats.releaseCalls++;
        this.stats.releases += batch.length;
        try {
          await this.client.wsgwSlotsRelease(...this.batchArgs(batch));
        } catch (err) {
          for (const [id, userId] of batch) this.unreleased.set(id, userId);
          this.health.failed(err);
        }
      }),
    );
  }

  private track(call: Promise<void>): void {
    this.inFlight.add(call);
    const forget = (): void => {
      this.inFlight.delete(call);
    };
    void call.then(forget, forget);
  }

  onLost(handler: (connectionIds: string[]) => void): void {
    this.lostHandlers.push(handler);
  }

  async releaseAll(): Promise<void> {
    // Shutdown closes every socket just before: their releases may still wait for their turn, and
    // an upgrade still in its checks may have an acquisition out. Let those calls go out and land,
    // so that `held` and `unreleased` name every slot left to free (a failed release lands there).
    if (this.acquiring.length > 0 || this.releaseTurn) await new Promise<void>((resolve) => setImmediate(resolve));
    await Promise.all(this.inFlight);
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

  /**
   * Health just turned `up`: from now on no slot is granted from memory and releases go straight to
   * Redis. What the recovery sync could not see (slots adopted, releases queued after it took its
   * snapshots) is registered by one more sync now rather than by the next heartbeat, a third of a
   * lease away (CONTRACT §2: within 5 s). It starts after any sync still running, whose snapshots
   * may predate the change; syncs never overlap, so a release cannot pass a restore.
   */
  private readonly syncLeftovers = (): void => {
    if (this.adopted.size === 0 && this.unreleased.size === 0) return;
    this.syncAfterRunning();
  };

  /** One more sync, after any sync still running (whose snapshots may predate what asks for it). */
  private syncAfterRunning(): void {
    if (this.stopped) return;
    const running = this.syncing?.catch(() => undefined) ?? Promise.resolve();
    void running
      .then(() => (this.stopped ? undefined : this.sync()))
      .catch(() => {
        // Reported to health by runSync: Redis is away again, and its recovery syncs everything.
      });
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
        const sentAt = performance.now();
        await this.restore([...this.held]);
        this.renewedAt = sentAt;
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

  /**
   * Renews every registered slot. A slot Redis no longer has is lost only if its lease may have run
   * out: this process stalled (its timer fired far too late), or its last renewal went out a lease
   * or more before this one's reply. Then another replica may have been given the slot, and its
   * socket must close. Otherwise Redis dropped a live lease (a master restarted empty before any
   * health check noticed, a failover that lost writes): the slot is put back, like any restore.
   */
  private async refresh(): Promise<void> {
    const sentAt = performance.now();
    const missing: Array<[string, string]> = [];
    // Adopted slots are not in Redis yet: absent there means "not registered", not "lost".
    const registered = [...this.held].filter(([id]) => !this.adopted.has(id));
    for (const batch of this.batches(registered)) {
      const ids = await this.client.wsgwSlotsRefresh(...this.batchArgs(batch, this.options.leaseMs));
      for (const id of ids) {
        // Released while the call was out: not missing, just gone.
        const userId = this.held.get(id);
        if (userId !== undefined) missing.push([id, userId]);
      }
    }
    const mayHaveLapsed = this.stalled || performance.now() - this.renewedAt >= this.options.leaseMs;
    this.renewedAt = sentAt;
    if (missing.length === 0) return;
    if (!mayHaveLapsed) {
      this.log.warn({ missing: missing.length }, 'connection slots missing from redis before their leases ended (redis lost them); putting them back');
      await this.restore(missing);
      return;
    }
    // A slot released while a later batch was out is gone, not lost.
    const lost = missing.map(([id]) => id).filter((id) => this.held.delete(id));
    if (lost.length === 0) return;
    this.log.warn({ lost: lost.length }, 'connection slots were taken over while this replica was away');
    for (const handler of this.lostHandlers) handler(lost);
  }

  /**
   * Puts slots back, a batch per call. Each batch keeps only what is still held when it is sent: a
   * release takes its id out of `held` before its own call goes out, and calls on one connection
   * run in order, so a slot released meanwhile is left out or released after it is put back, never
   * put back after its release (where it would count for a whole lease).
   */
  private async restore(entries: Array<[string, string]>): Promise<void> {
    let missing = 0;
    let restored = 0;
    for (const batch of this.batches(entries)) {
      const live = batch.filter(([id, userId]) => this.held.get(id) === userId);
      if (live.length === 0) continue;
      missing += await this.client.wsgwSlotsRestore(...this.batchArgs(live, this.options.leaseMs));
      restored += live.length;
      // Registered now; an id left out was released, which forgot it as adopted already.
      for (const [id] of live) this.adopted.delete(id);
    }
    this.log.info({ held: this.held.size, restored, missing }, 'connection slots re-registered in redis');
  }

  private async flushReleases(): Promise<void> {
    for (const batch of this.batches([...this.unreleased])) {
      await this.client.wsgwSlotsRelease(...this.batchArgs(batch));
      for (const [id] of batch) this.unreleased.delete(id);
    }
  }

  private *batches<T>(entries: T[]): Generator<T[]> {
    for (let i = 0; i < entries.length; i += this.batchSize) yield entries.slice(i, i + this.batchSize);
  }

  /** Key count, every slot, one user key per entry, then `before` and one connection id per entry. */
  private batchArgs(batch: Array<[string, string]>, ...before: number[]): [number, ...Array<string | number>] {
    const { keys } = this.options;
    const userKeys = batch.map(([, userId]) => keys.slotsOfUser(userId));
    const ids = batch.map(([id]) => id);
    return [1 + batch.length, keys.slotsAll(), ...userKeys, ...before, ...ids];
  }
}
