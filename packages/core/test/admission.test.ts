import { describe, expect, it } from 'vitest';
import { noopMetrics, OriginPolicy, UpgradeAdmission, type UpgradeRequest } from '@wsgw/core';
import { FakeLeases, FakeSessions, RecordingLogger } from './fakes.js';

function setup(overrides: { origins?: string[]; draining?: boolean; unavailable?: boolean } = {}) {
  const log = new RecordingLogger();
  const leases = new FakeLeases();
  const sessions = new FakeSessions(async (token) =>
    token === 'good' ? { valid: true, session: { userId: 'u1' } } : { valid: false, reason: 'unknown' },
  );
  const admission = new UpgradeAdmission({
    origins: OriginPolicy.fromList(overrides.origins ?? ['https://app.example']),
    sessions,
    leases,
    isDraining: () => overrides.draining ?? false,
    isUnavailable: () => overrides.unavailable ?? false,
    metrics: noopMetrics,
    log,
  });
  return { admission, leases, sessions, log };
}

const req = (over: Partial<UpgradeRequest> = {}): UpgradeRequest => ({
  path: '/api/ws/agent',
  origin: 'https://app.example',
  token: 'good',
  remoteAddress: '127.0.0.1',
  ...over,
});

const live = { aborted: false };

describe('UpgradeAdmission: the checks of CONTRACT §4, in order', () => {
  it('admits a good request and takes a slot', async () => {
    const { admission, leases } = setup();
    const result = await admission.admit(req(), live);
    expect(result.admitted).toBe(true);
    if (result.admitted) expect(result.ticket.userId).toBe('u1');
    expect(leases.held.size).toBe(1);
  });

  it('origin first: a bad origin with a bad token is origin_not_allowed, and the validator is not asked', async () => {
    const { admission, sessions, log } = setup();
    const result = await admission.admit(req({ origin: 'https://evil.example', token: 'bad' }), live);
    expect(result).toMatchObject({ admitted: false, rejection: { status: 403, code: 'origin_not_allowed' } });
    expect(sessions.calls).toBe(0);
    expect(log.events()).toEqual(['security.origin_rejected']);
  });

  it('a missing Origin is allowed (non-browser clients)', async () => {
    const { admission } = setup();
    expect((await admission.admit(req({ origin: undefined }), live)).admitted).toBe(true);
  });

  it('session second: missing or invalid token is 401 session_invalid, logged with a hash only', async () => {
    const { admission, log } = setup();
    expect(await admission.admit(req({ token: undefined }), live)).toMatchObject({
      rejection: { status: 401, code: 'session_invalid' },
    });
    expect(await admission.admit(req({ token: 'bad' }), live)).toMatchObject({
      rejection: { status: 401, code: 'session_invalid' },
    });
    expect(log.events()).toEqual(['security.session_invalid', 'security.session_invalid']);
    expect(JSON.stringify(log.lines)).not.toContain('"bad"');
    expect(log.lines[1]?.obj['token_hash']).toMatch(/^[0-9a-f]{12}$/);
  });

  it('then draining (503), even for a valid session', async () => {
    const { admission, leases } = setup({ draining: true });
    expect(await admission.admit(req(), live)).toMatchObject({ rejection: { status: 503, code: 'draining' } });
    expect(leases.held.size).toBe(0);
  });

  it('invalid session wins over draining', async () => {
    const { admission } = setup({ draining: true });
    expect(await admission.admit(req({ token: 'bad' }), live)).toMatchObject({ rejection: { code: 'session_invalid' } });
  });

  it('then unavailable (503)', async () => {
    const { admission } = setup({ unavailable: true });
    expect(await admission.admit(req(), live)).toMatchObject({ rejection: { status: 503, code: 'unavailable' } });
  });

  it('then the limits, with Retry-After', async () => {
    const { admission, leases, log } = setup();
    leases.decision = { granted: false, reason: 'global_connection_limit', retryAfterMs: 1500 };
    expect(await admission.admit(req(), live)).toMatchObject({
      rejection: { status: 503, code: 'global_connection_limit', retryAfterSeconds: 2 },
    });
    leases.decision = { granted: false, reason: 'user_connection_limit', retryAfterMs: 1000 };
    expect(await admission.admit(req(), live)).toMatchObject({
      rejection: { status: 429, code: 'user_connection_limit', retryAfterSeconds: 1 },
    });
    expect(log.events()).toEqual(['security.connection_limit', 'security.connection_limit']);
  });

  it.each([
    [false, 'unavailable'],
    // CONTRACT §4's order: a draining replica says `draining` before `unavailable`.
    [true, 'draining'],
  ])('a validator that cannot reach its backend gives 503, not 401 (draining: %s)', async (draining, code) => {
    const { SessionBackendUnavailableError } = await import('@wsgw/core');
    const log = new RecordingLogger();
    const admission = new UpgradeAdmission({
      origins: OriginPolicy.fromList(['*']),
      sessions: new FakeSessions(async () => {
        throw new SessionBackendUnavailableError('down');
      }),
      leases: new FakeLeases(),
      isDraining: () => draining,
      isUnavailable: () => false,
      metrics: noopMetrics,
      log,
    });
    expect(await admission.admit(req(), live)).toMatchObject({ rejection: { status: 503, code } });
  });

  it('a session backend outage is logged (why every upgrade gets 503), once per burst, never per upgrade', async () => {
    const { SessionBackendUnavailableError } = await import('@wsgw/core');
    const log = new RecordingLogger();
    const admission = new UpgradeAdmission({
      origins: OriginPolicy.fromList(['*']),
      sessions: new FakeSessions(async () => {
        throw new SessionBackendUnavailableError('introspection answered 502');
      }),
      leases: new FakeLeases(),
      isDraining: () => false,
      isUnavailable: () => false,
      metrics: noopMetrics,
      log,
    });
    for (let i = 0; i < 5; i++) expect(await admission.admit(req(), live)).toMatchObject({ rejection: { status: 503, code: 'unavailable' } });
    // Before: no line at any level said why.
    const warnings = log.lines.filter((l) => l.level === 'warn' && l.msg?.startsWith('session backend unavailable'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.obj).toMatchObject({ reason: 'introspection answered 502', validator: 'fake', refused: 1 });
  });

  it('a client that leaves during the checks holds no slot', async () => {
    const log = new RecordingLogger();
    const leases = new FakeLeases();
    const abort = { aborted: false };
    const admission = new UpgradeAdmission({
      origins: OriginPolicy.fromList(['*']),
      sessions: new FakeSessions(async () => ({ valid: true, session: { userId: 'u' } })),
      leases: {
        ...leases,
        acquire: async (id, user) => {
          const d = await leases.acquire(id, user);
          abort.aborted = true; // the client goes away while the slot is being taken
          return d;
        },
        release: (id) => leases.release(id),
        onLost: () => {},
        releaseAll: () => leases.releaseAll(),
        close: () => leases.close(),
      },
      isDraining: () => false,
      isUnavailable: () => false,
      metrics: noopMetrics,
      log,
    });
    const result = await admission.admit(req(), abort);
    expect(result).toEqual({ admitted: false, rejection: null });
    expect(leases.held.size).toBe(0);
  });
});

describe('OriginPolicy', () => {
  it('matches exact origins, case- and trailing-slash-insensitively', () => {
    const p = OriginPolicy.fromList(['https://app.example', 'http://localhost:3000/']);
    expect(p.allows('https://app.example')).toBe(true);
    expect(p.allows('HTTPS://APP.EXAMPLE')).toBe(true);
    expect(p.allows('http://localhost:3000')).toBe(true);
    expect(p.allows('http://localhost:3001')).toBe(false);
    expect(p.allows('https://app.example.evil.com')).toBe(false);
    expect(p.allows('http://app.example')).toBe(false);
  });

  it('* allows everything', () => {
    expect(OriginPolicy.fromList(['*']).allows('https://anything.example')).toBe(true);
  });

  it('shares its own string for a listed origin and never changes the value a connection keeps', () => {
    const p = OriginPolicy.fromList(['https://app.example']);
    expect(p.shared(['https://', 'app.example'].join(''))).toBe('https://app.example');
    // Only an exact match is replaced: metrics and logs see what the client sent, as before.
    expect(p.shared('HTTPS://APP.EXAMPLE')).toBe('HTTPS://APP.EXAMPLE');
    expect(p.shared('https://other.example')).toBe('https://other.example');
    expect(p.shared(undefined)).toBeUndefined();
    expect(OriginPolicy.fromList(['*']).shared('https://any.example')).toBe('https://any.example');
  });
});
