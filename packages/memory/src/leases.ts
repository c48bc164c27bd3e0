import type { ConnectionLeases, SlotDecision } from '@wsgw/core';

export interface ConnectionLimits {
  maxPerUser: number;
  maxGlobal: number;
}

/**
 * Connection slots in this process (embedded mode, and the per-replica fallback while Redis is
 * unreachable). Synchronous underneath, so check-and-take is atomic by construction.
 */
export class MemoryConnectionLeases implements ConnectionLeases {
  /** Slots held per user: a count, since `owners` already says which (a Set per user cost ~150 B). */
  private readonly byUser = new Map<string, number>();
  private readonly owners = new Map<string, string>();

  constructor(private readonly limits: ConnectionLimits) {}

  get size(): number {
    return this.owners.size;
  }

  countFor(userId: string): number {
    return this.byUser.get(userId) ?? 0;
  }

  /** The connection ids held right now (re-registered into Redis when it comes back). */
  held(): Array<{ connectionId: string; userId: string }> {
    return [...this.owners].map(([connectionId, userId]) => ({ connectionId, userId }));
  }

  acquireNow(connectionId: string, userId: string): SlotDecision {
    if (this.owners.has(connectionId)) return { granted: true };
    if (this.owners.size >= this.limits.maxGlobal) {
      return { granted: false, reason: 'global_connection_limit', retryAfterMs: 1000 };
    }
    const mine = this.byUser.get(userId) ?? 0;
    if (mine >= this.limits.maxPerUser) {
      return { granted: false, reason: 'user_connection_limit', retryAfterMs: 1000 };
    }
    this.add(connectionId, userId, mine);
    return { granted: true };
  }

  /**
   * Records a slot granted elsewhere (Redis) without checking the limits: the failover fills its
   * per-replica mirror with what this replica holds when Redis stops answering.
   */
  hold(connectionId: string, userId: string): void {
    if (!this.owners.has(connectionId)) this.add(connectionId, userId, this.byUser.get(userId) ?? 0);
  }

  /** Takes a slot not held yet; `mine` is what the user holds before it. */
  private add(connectionId: string, userId: string, mine: number): void {
    this.byUser.set(userId, mine + 1);
    this.owners.set(connectionId, userId);
  }

  releaseNow(connectionId: string): void {
    const userId = this.owners.get(connectionId);
    if (userId === undefined) return;
    this.owners.delete(connectionId);
    const mine = this.byUser.get(userId) ?? 0;
    if (mine <= 1) this.byUser.delete(userId);
    else this.byUser.set(userId, mine - 1);
  }

  async acquire(connectionId: string, userId: string): Promise<SlotDecision> {
    return this.acquireNow(connectionId, userId);
  }

  async release(connectionId: string): Promise<void> {
    this.releaseNow(connectionId);
  }

  onLost(): void {
    // Nothing can take a slot away from this process.
  }

  async releaseAll(): Promise<void> {
    this.releaseAllNow();
  }

  releaseAllNow(): void {
    this.owners.clear();
    this.byUser.clear();
  }

  async close(): Promise<void> {}
}
