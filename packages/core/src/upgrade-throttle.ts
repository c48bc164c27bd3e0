/** What the failed-session throttle says about an address right now. */
export type ThrottleVerdict =
  /** `remaining`: failed session checks the address may still make in this window (at least 1). */
  | { allowed: true; remaining: number }
  | { allowed: false; retryAfterMs: number };

/** Guards token guessing: failed session checks per address, denied before validating. */
export interface UpgradeThrottle {
  /** May this address try a session now, and how many failures has it left? */
  allows(remoteAddress: string): Promise<ThrottleVerdict>;
  /** Records a failed session check from this address. */
  failed(remoteAddress: string): Promise<void>;
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

/** One address's session checks running now and the upgrades waiting for one of them to settle. */
interface AddressChecks {
  running: number;
  waiting: Array<() => void>;
}

const ENTERED: SessionCheckTurn = Object.freeze({ kind: 'entered' });
const ABORTED: SessionCheckTurn = Object.freeze({ kind: 'aborted' });

/**
 * Keeps the session checks in flight per address below the failures that address may still make.
 *
 * The throttle learns of a failure only once the validator has answered, so without this every
 * check already under way would pass `allows()`: forty guesses sent at once were all validated
 * against a budget of three. Here an address never has more checks running than failures left,
 * so it can fail at most its budget per window; further upgrades wait (microseconds, for valid
 * tokens) until one of its checks settles, then ask the throttle again.
 */
export class SessionCheckGate {
  private readonly byAddress = new Map<string, AddressChecks>();

  constructor(
    private readonly throttle: UpgradeThrottle,
    private readonly limits: SessionCheckGateLimits = DEFAULT_GATE_LIMITS,
  ) {}

  /** Addresses with checks running or waiting (for tests: the map must not keep idle ones). */
  get addresses(): number {
    return this.byAddress.size;
  }

  async enter(address: string, abort: { readonly aborted: boolean }): Promise<SessionCheckTurn> {
    let waitedMs = 0;
    let woken = false;
    for (;;) {
      const verdict = await this.throttle.allows(address);
      const checks = this.byAddress.get(address);
      if (abort.aborted || !verdict.allowed) {
        // A woken upgrade that takes no turn hands the wake-up on, or the next waiter would sleep
        // until its deadline (nothing else may be running to wake it).
        if (woken && checks) this.wakeNext(address, checks);
        if (abort.aborted || verdict.allowed) return ABORTED;
        return { kind: 'refused', reason: 'too_many_failures', retryAfterMs: verdict.retryAfterMs };
      }
      const own = checks ?? this.track(address);
      // An allowed address may run at least one check, or nothing would ever wake its waiters.
      const remaining = verdict.remaining >= 1 ? verdict.remaining : 1;
      if (own.running < remaining) {
        own.running++;
        if (own.running < remaining) this.wakeNext(address, own);
        return ENTERED;
      }
      if (own.waiting.length >= this.limits.maxWaiting || waitedMs >= this.limits.maxWaitMs) {
        if (woken) this.wakeNext(address, own);
        else this.forgetIfIdle(address, own);
        return { kind: 'refused', reason: 'too_many_waiting', retryAfterMs: 1000 };
      }
      const started = performance.now();
      woken = await this.waitForTurn(own, this.limits.maxWaitMs - waitedMs);
      waitedMs += performance.now() - started;
      if (!woken) {
        this.forgetIfIdle(address, own);
        return abort.aborted ? ABORTED : { kind: 'refused', reason: 'too_many_waiting', retryAfterMs: 1000 };
      }
    }
  }

  /** A check that `enter` let in has settled (failure recorded, if any). */
  leave(address: string): void {
    const checks = this.byAddress.get(address);
    if (!checks) return;
    checks.running--;
    this.wakeNext(address, checks);
  }

  private track(address: string): AddressChecks {
    const checks: AddressChecks = { running: 0, waiting: [] };
    this.byAddress.set(address, checks);
    return checks;
  }

  /** Resolves true when woken, false when `ms` pass first. */
  private waitForTurn(checks: AddressChecks, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const at = checks.waiting.indexOf(wake);
        if (at >= 0) checks.waiting.splice(at, 1);
        resolve(false);
      }, ms);
      timer.unref();
      checks.waiting.push(wake);
    });
  }

  private wakeNext(address: string, checks: AddressChecks): void {
    const next = checks.waiting.shift();
    if (next) next();
    else this.forgetIfIdle(address, checks);
  }

  private forgetIfIdle(address: string, checks: AddressChecks): void {
    if (checks.running === 0 && checks.waiting.length === 0 && this.byAddress.get(address) === checks) {
      this.byAddress.delete(address);
    }
  }
}
