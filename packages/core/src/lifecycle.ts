import type { ConnectionHub } from './hub.js';
import type { Logger } from './ports.js';

export type Phase = 'starting' | 'ready' | 'draining' | 'stopped';

/** Something to close at shutdown, in registration order (after sockets are gone). */
export interface Closable {
  name: string;
  close(): Promise<void>;
}

/**
 * The replica's phase and its orderly shutdown (CONTRACT §1): readiness off and upgrades refused
 * at once; in-flight messages get up to `drainMs` to be answered; then the remaining sockets
 * are closed with 1001, slots released, and every resource closed in order.
 */
export class Lifecycle {
  private phase: Phase = 'starting';
  private readonly unavailableChecks: Array<() => boolean> = [];
  private shutdownPromise: Promise<void> | undefined;

  constructor(
    private readonly hub: ConnectionHub,
    private readonly log: Logger,
    private readonly drainMs: number,
  ) {}

  get current(): Phase {
    return this.phase;
  }

  markReady(): void {
    if (this.phase === 'starting') this.phase = 'ready';
  }

  isDraining(): boolean {
    return this.phase === 'draining' || this.phase === 'stopped';
  }

  /** Adds a reason to report not-ready and refuse upgrades with `unavailable`. */
  addUnavailableCheck(check: () => boolean): void {
    this.unavailableChecks.push(check);
  }

  /**
   * True while upgrades must be refused with `unavailable`: until the stores are ready (the first
   * Redis connection attempt has finished) and whenever a check says so. A replica restarted on the
   * same address can get upgrades before its readiness probe is even asked (a load balancer that
   * never saw it go down); deciding those from memory before Redis is connected let a user past
   * the shared connection limit in the rolling-restart test.
   */
  isUnavailable(): boolean {
    if (this.phase === 'starting') return true;
    // A loop, not `some` with an arrow: asked on every upgrade, and a closure each time is garbage.
    for (const check of this.unavailableChecks) if (check()) return true;
    return false;
  }

  isReady(): boolean {
    return this.phase === 'ready' && !this.isUnavailable();
  }

  /** Idempotent: a second signal waits for the first shutdown. */
  shutdown(closables: readonly Closable[], beforeClose?: () => Promise<void>): Promise<void> {
    this.shutdownPromise ??= this.runShutdown(closables, beforeClose);
    return this.shutdownPromise;
  }

  private async runShutdown(closables: readonly Closable[], beforeClose?: () => Promise<void>): Promise<void> {
    this.phase = 'draining';
    this.log.info({ open: this.hub.openCount, pending: this.hub.pendingCount, drain_ms: this.drainMs }, 'draining');
    // On the monotonic clock: a wall-clock step during the drain must not stretch or cut it.
    const deadline = performance.now() + this.drainMs;
    while (this.hub.openCount > 0 && this.hub.unanswered > 0 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    this.hub.closeAll(1001, 'server shutting down');
    this.hub.stop();
    if (beforeClose) await beforeClose();
    for (const c of closables) {
      try {
        await c.close();
      } catch (err) {
        this.log.warn({ err, resource: c.name }, 'close failed during shutdown');
      }
    }
    this.phase = 'stopped';
    this.log.info({}, 'stopped');
  }
}
