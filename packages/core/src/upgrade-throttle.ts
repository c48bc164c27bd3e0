import { systemClock, type Clock } from './ports.js';

/** What the failed-session throttle says about an address right now. */
export type ThrottleVerdict =
  /** `remaining`: failed session checks the address may still make in this window (at least 1). */
  | { allowed: true; remaining: number }
  | { allowed: false; retryAfterMs: number };

/** Guards token guessing: failed session checks per address, denied before validating. */
export interface UpgradeThrottle {
  /**
   * May this address try a session now, and how many failures has it left? Answered from what
   * this replica knows, without I/O: it is asked on every upgrade that carries a token.
   */
  verdict(remoteAddress: string): ThrottleVerdict;
  /** Records a failed session check from this address. */
  failed(remoteAddress: string): Promise<void>;
}

/** One address's failures in its current window. */
interface FailureWindow {
  failures: number;
  endsAt: number;
}

/**
 * Failed session checks per address in fixed windows: a window opens at the address's first
 * failure and closes `windowMs` later, whatever happened in it (rate-limiter-flexible's fixed
 * window, which the Redis throttle counts with). The bookkeeping of both throttles: the embedded
 * one counts here itself (`add`), the Redis one keeps what Redis counted across replicas (`heard`).
 *
 * Durations run on a monotonic clock: on the wall clock a step back of an hour told a throttled
 * address `Retry-After: 3660` for a block ending within the minute.
 */
export class FailureWindows {
  private readonly windows = new Map<string, FailureWindow>();
  /** The verdict of an address with no failure in an open window: one object for all of them. */
  private readonly unlimited: ThrottleVerdict;
  /** Map size at which ended windows are swept next: doubles with the live ones, so O(1) a failure. */
  private sweepAt = 1024;

  /** @param budget failed checks an address may make per window */
  constructor(
    private readonly budget: number,
    private readonly windowMs: number,
    private readonly clock: Clock = systemClock,
  ) {
    this.unlimited = Object.freeze({ allowed: true, remaining: budget });
  }

  /** Addresses with a window kept (ended ones go as new ones come). */
  get size(): number {
    return this.windows.size;
  }

  /** An address with no failure in an open window costs no allocation. */
  verdict(address: string): ThrottleVerdict {
    const now = this.clock.now();
    const window = this.open(address, now);
    if (window === undefined) return this.unlimited;
    if (window.failures >= this.budget) return { allowed: false, retryAfterMs: Math.max(1, Math.ceil(window.endsAt - now)) };
    return { allowed: true, remaining: this.budget - window.failures };
  }

  /** One more failure of the address, in its open window or in a new one. */
  add(address: string): void {
    const now = this.clock.now();
    const window = this.open(address, now);
    if (window) window.failures++;
    else this.start(address, 1, now + this.windowMs, now);
  }

  /**
   * What a shared store counted for the address's window, which ends in `msLeft`. Answers may
   * arrive out of order: the highest count of the open window is kept.
   */
  heard(address: string, failures: number, msLeft: number): void {
    const now = this.clock.now();
    const window = this.open(address, now);
    if (window && window.failures >= failures) return;
    this.start(address, failures, now + Math.min(this.windowMs, Math.max(1, msLeft)), now);
  }

  private start(address: string, failures: number, endsAt: number, now: number): void {
    this.windows.set(address, { failures, endsAt });
    if (this.windows.size >= this.sweepAt) this.forgetEnded(now);
  }

  /** The address's open window; an ended one is forgotten. */
  private open(address: string, now: number): FailureWindow | undefined {
    const window = this.windows.get(address);
    if (window && window.endsAt <= now) {
      this.windows.delete(address);
      return undefined;
    }
    return window;
  }

  private forgetEnded(now: number): void {
    for (const [address, window] of this.windows) if (window.endsAt <= now) this.windows.delete(address);
    this.sweepAt = Math.max(1024, this.windows.size * 2);
  }
}

export interface SessionCheckGateLimits {
  /** Upgrades of one address that may wait for a turn; past this they are refused. */
  maxWaiting: number;
  /** How long one upgrade may wait for a turn before it is refused. */
  maxWaitMs: number;
}

export const DEFAULT_GATE_LIMITS: SessionCheckGateLimits = Object.freeze({ maxWaiting: 1000, maxWaitMs: 10_000 });

/** The outcome of `SessionCheckGate.enter`; after `entered`, `leave` must follow. */
export type SessionCheckTurn =
  | { kind: 'entered' }
  | { kind: 'refused'; reason: 'too_many_failures' | 'too_many_waiting'; retryAfterMs: number }
  | { kind: 'aborted' };

const ENTERED: SessionCheckTurn = Object.freeze({ kind: 'entered' });
const ABORTED: SessionCheckTurn = Object.freeze({ kind: 'aborted' });
const TOO_MANY_WAITING: SessionCheckTurn = Object.freeze({ kind: 'refused', reason: 'too_many_waiting', retryAfterMs: 1000 });

/**
 * Keeps the session checks in flight per address below the failures that address may still make.
 *
 * The throttle learns of a failure only once the validator has answered, so without this every
 * check already under way would pass its verdict: forty guesses sent at once were all validated
 * against a budget of three. Here an address never has more checks running than failures left,
 * so it can fail at most its budget per window; further upgrades wait (microseconds, for valid
 * tokens) until one of its checks settles, then ask the throttle again.
 *
 * An address with room and nobody waiting gets its turn at once, as a value: no promise, no
 * object, only a count in a map (the path of nearly every upgrade).
 */
export class SessionCheckGate {
  /** Checks running per address; an address with none has no entry. */
  private readonly running = new Map<string, number>();
  /** Upgrades waiting per address for a check to settle; only while some wait. */
  private readonly waiting = new Map<string, Array<() => void>>();

  constructor(
    private readonly throttle: UpgradeThrottle,
    private readonly limits: SessionCheckGateLimits = DEFAULT_GATE_LIMITS,
  ) {}

  /** Addresses with checks running or waiting (for tests: the maps must not keep idle ones). */
  get addresses(): number {
    let n = this.running.size;
    for (const address of this.waiting.keys()) if (!this.running.has(address)) n++;
    return n;
  }

  /** A turn now (a value) or once a check of the address settles (a promise). */
  enter(address: string, abort: { readonly aborted: boolean }): SessionCheckTurn | Promise<SessionCheckTurn> {
    const verdict = this.throttle.verdict(address);
    if (!verdict.allowed) return tooManyFailures(verdict.retryAfterMs);
    if (!this.waiting.has(address) && this.take(address, verdict.remaining)) return ENTERED;
    return this.wait(address, abort);
  }

  /** A check that `enter` let in has settled (failure recorded, if any). */
  leave(address: string): void {
    const n = this.running.get(address);
    if (n === undefined) return;
    if (n > 1) this.running.set(address, n - 1);
    else this.running.delete(address);
    this.wakeNext(address);
  }

  /** Counts one more check of the address if it has failures left beyond those running. */
  private take(address: string, remaining: number): boolean {
    const n = this.running.get(address) ?? 0;
    // An allowed address may run at least one check, or nothing would ever wake its waiters.
    if (n >= Math.max(1, remaining)) return false;
    this.running.set(address, n + 1);
    // Room left: the next waiter need not wait for a check to settle.
    if (n + 1 < remaining) this.wakeNext(address);
    return true;
  }

  private async wait(address: string, abort: { readonly aborted: boolean }): Promise<SessionCheckTurn> {
    let waitedMs = 0;
    let woken = false;
    for (;;) {
      const queued = this.waiting.get(address)?.length ?? 0;
      if (queued >= this.limits.maxWaiting || waitedMs >= this.limits.maxWaitMs) {
        // A woken upgrade that takes no turn hands the wake-up on, or the next waiter would sleep
        // until its deadline (nothing else may be running to wake it).
        if (woken) this.wakeNext(address);
        return TOO_MANY_WAITING;
      }
      const started = performance.now();
      woken = await this.waitForTurn(address, this.limits.maxWaitMs - waitedMs);
      waitedMs += performance.now() - started;
      if (!woken) return abort.aborted ? ABORTED : TOO_MANY_WAITING;
      if (abort.aborted) {
        this.wakeNext(address);
        return ABORTED;
      }
      const verdict = this.throttle.verdict(address);
      if (!verdict.allowed) {
        this.wakeNext(address);
        return tooManyFailures(verdict.retryAfterMs);
      }
      if (this.take(address, verdict.remaining)) return ENTERED;
    }
  }

  /** Resolves true when woken, false when `ms` pass first. */
  private waitForTurn(address: string, ms: number): Promise<boolean> {
    let queue = this.waiting.get(address);
    if (queue === undefined) {
      queue = [];
      this.waiting.set(address, queue);
    }
    const own = queue;
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const at = own.indexOf(wake);
        if (at >= 0) own.splice(at, 1);
        if (own.length === 0 && this.waiting.get(address) === own) this.waiting.delete(address);
        resolve(false);
      }, ms);
      timer.unref();
      own.push(wake);
    });
  }

  private wakeNext(address: string): void {
    const queue = this.waiting.get(address);
    if (queue === undefined) return;
    const next = queue.shift();
    if (queue.length === 0) this.waiting.delete(address);
    next?.();
  }
}

function tooManyFailures(retryAfterMs: number): SessionCheckTurn {
  return { kind: 'refused', reason: 'too_many_failures', retryAfterMs };
}
