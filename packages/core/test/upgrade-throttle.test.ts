import { describe, expect, it } from 'vitest';
import {
  FailureWindows,
  noopMetrics,
  OriginPolicy,
  SessionBackendUnavailableError,
  SessionCheckGate,
  UpgradeAdmission,
  type SessionResult,
  type ThrottleVerdict,
  type UpgradeRequest,
  type UpgradeThrottle,
} from '@wsgw/core';
import { FakeClock, FakeLeases, FakeSessions, RecordingLogger } from './fakes.js';

/** A fixed budget of failures per address that never resets (the window outlasts the test). */
class CountingThrottle implements UpgradeThrottle {
  readonly failures = new Map<string, number>();
  constructor(private readonly budget: number) {}
  verdict(address: string): ThrottleVerdict {
    const spent = this.failures.get(address) ?? 0;
    return spent >= this.budget ? { allowed: false, retryAfterMs: 30_000 } : { allowed: true, remaining: this.budget - spent };
  }
  async failed(address: string): Promise<void> {
    this.failures.set(address, (this.failures.get(address) ?? 0) + 1);
  }
}

/** A validator whose answers the test releases, counting how many checks run at once. */
class HeldSessions extends FakeSessions {
  running = 0;
  mostAtOnce = 0;
  private readonly held: Array<() => void> = [];
  constructor(answer: (token: string) => SessionResult | Error) {
    super(async (token) => {
      this.running++;
      this.mostAtOnce = Math.max(this.mostAtOnce, this.running);
      await new Promise<void>((resolve) => this.held.push(resolve));
      this.running--;
      const r = answer(token);
      if (r instanceof Error) throw r;
      return r;
    });
  }
  /** Lets every held check answer, until none is left (waiters enter as others settle). */
  async drain(): Promise<void> {
    for (let idle = 0; idle < 5; ) {
      const next = this.held.shift();
      if (next) {
        idle = 0;
        next();
      } else {
        idle++;
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

const req = (token: string, remoteAddress = '198.51.100.7'): UpgradeRequest => ({
  path: '/api/ws/agent',
  origin: undefined,
  token,
  remoteAddress,
});
const live = { aborted: false };

function setup(budget: number, answer: (token: string) => SessionResult | Error) {
  const sessions = new HeldSessions(answer);
  const throttle = new CountingThrottle(budget);
  const admission = new UpgradeAdmission({
    origins: OriginPolicy.fromList(['*']),
    sessions,
    leases: new FakeLeases(),
    isDraining: () => false,
    isUnavailable: () => false,
    throttle,
    metrics: noopMetrics,
    log: new RecordingLogger(),
  });
  return { admission, sessions, throttle };
}

const bad = (): SessionResult => ({ valid: false, reason: 'bad_signature' });
const good = (token: string): SessionResult => ({ valid: true, session: { userId: token } });
const codes = (results: Array<{ admitted: boolean; rejection?: { code: string } | null }>) =>
  results.map((r) => (r.admitted ? 'admitted' : (r.rejection?.code ?? 'aborted')));

describe('UpgradeAdmission with a throttle: session checks in flight stay within the failures left', () => {
  it('parallel bad tokens from one address: only the budget is validated, the rest are 429', async () => {
    const { admission, sessions, throttle } = setup(3, bad);
    const pending = Array.from({ length: 40 }, (_, i) => admission.admit(req(`guess-${i}`), live));
    await sessions.drain();
    const results = codes(await Promise.all(pending));
    expect(sessions.calls).toBe(3);
    expect(sessions.mostAtOnce).toBe(3);
    expect(results.filter((c) => c === 'session_invalid')).toHaveLength(3);
    expect(results.filter((c) => c === 'too_many_upgrades')).toHaveLength(37);
    expect(throttle.failures.get('198.51.100.7')).toBe(3);
  });

  it('one guess at a time: past the budget the address gets 429 with its window\'s Retry-After, unvalidated', async () => {
    const { admission, sessions } = setup(2, bad);
    for (const token of ['guess-1', 'guess-2']) {
      const pending = admission.admit(req(token), live);
      await sessions.drain();
      expect(codes([await pending])).toEqual(['session_invalid']);
    }
    expect(await admission.admit(req('guess-3'), live)).toMatchObject({
      rejection: { status: 429, code: 'too_many_upgrades', retryAfterSeconds: 30 },
    });
    expect(sessions.calls).toBe(2);
  });

  it('as failures are spent, fewer checks run at once: never more than the failures left', async () => {
    const { admission, sessions, throttle } = setup(3, bad);
    await throttle.failed('198.51.100.7');
    await throttle.failed('198.51.100.7');
    const pending = Array.from({ length: 5 }, (_, i) => admission.admit(req(`guess-${i}`), live));
    await sessions.drain();
    expect(codes(await Promise.all(pending))).toEqual(['session_invalid', ...Array(4).fill('too_many_upgrades')]);
    expect(sessions.mostAtOnce).toBe(1);
  });

  it('valid tokens from one address are queued, never refused; other addresses do not wait', async () => {
    const { admission, sessions } = setup(2, good);
    const pending = Array.from({ length: 20 }, (_, i) => admission.admit(req(`user-${i}`), live));
    const other = admission.admit(req('user-elsewhere', '203.0.113.9'), live);
    await sessions.drain();
    expect(codes(await Promise.all([...pending, other]))).toEqual(Array(21).fill('admitted'));
    expect(sessions.calls).toBe(21);
    expect(sessions.mostAtOnce).toBe(3); // two from the busy address, one from the other
  });

  it('a check that throws, or whose client leaves, gives its turn back', async () => {
    const { admission, sessions } = setup(1, (token) =>
      token === 'outage' ? new SessionBackendUnavailableError('down') : good(token),
    );
    const gone = { aborted: false };
    const first = admission.admit(req('outage'), live);
    const leaving = admission.admit(req('user-a'), gone);
    const last = admission.admit(req('user-b'), live);
    gone.aborted = true; // leaves while waiting for the first check
    await sessions.drain();
    expect(codes(await Promise.all([first, leaving, last]))).toEqual(['unavailable', 'aborted', 'admitted']);
    expect(sessions.mostAtOnce).toBe(1);
  });
});

describe('SessionCheckGate', () => {
  it('forgets an address once its checks have settled', async () => {
    const gate = new SessionCheckGate(new CountingThrottle(2));
    const turns = await Promise.all([gate.enter('a', live), gate.enter('a', live), gate.enter('b', live)]);
    expect(turns.map((t) => t.kind)).toEqual(['entered', 'entered', 'entered']);
    const third = gate.enter('a', live);
    expect(gate.addresses).toBe(2);
    gate.leave('a');
    expect(await third).toEqual({ kind: 'entered' });
    gate.leave('a');
    gate.leave('a');
    gate.leave('b');
    expect(gate.addresses).toBe(0);
  });

  it('refuses past the waiters allowed per address, and a waiter past its longest wait', async () => {
    const gate = new SessionCheckGate(new CountingThrottle(1), { maxWaiting: 1, maxWaitMs: 20 });
    expect(await gate.enter('a', live)).toEqual({ kind: 'entered' });
    const waiting = gate.enter('a', live);
    await new Promise((resolve) => setImmediate(resolve));
    expect(await gate.enter('a', live)).toMatchObject({ kind: 'refused', reason: 'too_many_waiting' });
    expect(await waiting).toMatchObject({ kind: 'refused', reason: 'too_many_waiting', retryAfterMs: 1000 });
    gate.leave('a');
    expect(gate.addresses).toBe(0);
  });
});

describe('SessionCheckGate without contention', () => {
  it('gives the turn as a value, not a promise, while the address has room and nobody waits', () => {
    const gate = new SessionCheckGate(new CountingThrottle(2));
    expect(gate.enter('a', live)).toEqual({ kind: 'entered' });
    expect(gate.enter('a', live)).toEqual({ kind: 'entered' });
    expect(gate.enter('a', live)).toBeInstanceOf(Promise);
    expect(gate.enter('b', live)).toEqual({ kind: 'entered' });
  });

  it('refuses a spent address at once, with the time its window has left', () => {
    const throttle = new CountingThrottle(1);
    void throttle.failed('a');
    expect(new SessionCheckGate(throttle).enter('a', live)).toEqual({ kind: 'refused', reason: 'too_many_failures', retryAfterMs: 30_000 });
  });
});

describe('FailureWindows: failed checks per address in fixed windows', () => {
  it('a count heard from a shared store: the highest of the window wins, late answers do not lower it', () => {
    const clock = new FakeClock();
    const windows = new FailureWindows(3, 60_000, clock);
    windows.heard('a', 2, 50_000);
    windows.heard('a', 1, 55_000); // an earlier call's answer, arriving last
    expect(windows.verdict('a')).toEqual({ allowed: true, remaining: 1 });
    windows.heard('a', 3, 49_000);
    expect(windows.verdict('a')).toEqual({ allowed: false, retryAfterMs: 49_000 });
    clock.t += 49_000;
    expect(windows.verdict('a')).toEqual({ allowed: true, remaining: 3 });
  });

  it('never keeps a heard window longer than the window itself', () => {
    const clock = new FakeClock();
    const windows = new FailureWindows(1, 60_000, clock);
    windows.heard('a', 1, 3_600_000);
    expect(windows.verdict('a')).toEqual({ allowed: false, retryAfterMs: 60_000 });
  });

  it('forgets ended windows as new addresses come: memory follows the addresses of the last window', () => {
    const clock = new FakeClock();
    const windows = new FailureWindows(3, 1000, clock);
    for (let i = 0; i < 5000; i++) windows.add(`old-${i}`);
    clock.t += 1000;
    for (let i = 0; i < 4000; i++) windows.add(`new-${i}`);
    expect(windows.size).toBe(4000);
    expect(windows.verdict('new-0')).toEqual({ allowed: true, remaining: 2 });
  });
});
